#include "matrix_kernels.h"
#include "cpu_dispatch.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

// Blocking (BLIS's loop order): C is computed in MR x NR tiles from packed panels of A
// (MR rows, KC deep) and B (KC deep, NR columns). With AVX-512 (12 x 32 tiles) a KC x NR panel
// of B (32 KB) stays in L1, an MC x KC block of A (192 KB) in L2, a KC x NC block of B (up to
// 4 MB) in L3. The AVX2 tiles are 6 x 16 (12 of the 16 ymm registers accumulate), its A block
// 120 rows (120 KB, for the 256 KB L2 of older AVX2 cores). A transposed A, and then a stored
// B, are read in place instead of packed (see `lck_sgemm`): their panels' layout is already
// the packed one, with a stride.
enum { MR = 12, NR = 32, KC = 256, MC = 192, NC = 4096 };
enum { MR2 = 6, NR2 = 16, MC2 = 120 };

lck_isa lck_sgemm_widest_isa(void) {
  if (lck_cpu_supports(LCK_ISA_AVX512)) return LCK_ISA_AVX512;
  if (lck_cpu_supports(LCK_ISA_AVX2)) return LCK_ISA_AVX2;
  return LCK_ISA_PORTABLE;
}

// Per-thread packing buffers, allocated on a thread's first product and kept (packing into
// fresh pages every call would fault them in each time), freed when the thread exits.
typedef struct {
  float *a, *b;
} packing;

static pthread_key_t packing_key;
static pthread_once_t packing_once = PTHREAD_ONCE_INIT;

static void free_packing(void *value) {
  packing *buffers = value;
  free(buffers->a);
  free(buffers->b);
  free(buffers);
}

static void make_packing_key(void) { pthread_key_create(&packing_key, free_packing); }

static packing *thread_packing(void) {
  pthread_once(&packing_once, make_packing_key);
  packing *buffers = pthread_getspecific(packing_key);
  if (!buffers) {
    buffers = calloc(1, sizeof(packing));
    if (!buffers) abort();
    buffers->a = aligned_alloc(64, (size_t)MC * KC * sizeof(float));
    buffers->b = aligned_alloc(64, (size_t)KC * (NC + NR) * sizeof(float));
    if (!buffers->a || !buffers->b) abort();
    pthread_setspecific(packing_key, buffers);
  }
  return buffers;
}

// Packs rows [i0, i0 + mc) and depth [p0, p0 + kc) of op(A) into MR-row panels, each `kc`
// steps of MR values; rows past m are zero. A stored A is transposed in 4 x 4 blocks (it is
// packed once per product and feeds only n multiply-adds per value: scalar copies took a
// tenth of the products at n = 256); a transposed A has each step's rows contiguous.
__attribute__((target("avx512f"))) static void pack_a(const float *a, long lda, int t, long m,
                                                      long i0, long mc, long p0, long kc,
                                                      float *out) {
  for (long ir = 0; ir < mc; ir += MR) {
    float *panel = out + ir * kc;
    long rows = mc - ir < MR ? mc - ir : MR;
    if (i0 + ir + rows > m) rows = m - i0 - ir;
    if (t) {
      const __mmask16 inside = (__mmask16)((1u << rows) - 1u);
      for (long p = 0; p < kc; p++) {
        const __m512 v = _mm512_maskz_loadu_ps(inside, a + (p0 + p) * lda + i0 + ir);
        _mm512_mask_storeu_ps(panel + p * MR, (__mmask16)0x0fff, v);
      }
      continue;
    }
    const float *base = a + (i0 + ir) * lda + p0;
    long p = 0;
    if (rows == MR) {
      for (; p + 4 <= kc; p += 4) {
        for (long g = 0; g < MR; g += 4) {
          __m128 r0 = _mm_loadu_ps(base + g * lda + p), r1 = _mm_loadu_ps(base + (g + 1) * lda + p);
          __m128 r2 = _mm_loadu_ps(base + (g + 2) * lda + p), r3 = _mm_loadu_ps(base + (g + 3) * lda + p);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          _mm_storeu_ps(panel + p * MR + g, r0);
          _mm_storeu_ps(panel + (p + 1) * MR + g, r1);
          _mm_storeu_ps(panel + (p + 2) * MR + g, r2);
          _mm_storeu_ps(panel + (p + 3) * MR + g, r3);
        }
      }
    }
    for (; p < kc; p++)
      for (long r = 0; r < MR; r++) panel[p * MR + r] = r < rows ? base[r * lda + p] : 0;
  }
}

// Packs depth [p0, p0 + kc) and columns [j0, j0 + nc) of op(B) into `nr`-column panels, each
// `kc` steps of `nr` values; columns past n are zero. Inlined into one function per tile width,
// so that a row's copy has a size the compiler sees (a memcpy call per row cost more than the
// copy).
__attribute__((always_inline)) static inline void pack_b(const float *b, long ldb, int t, long n,
                                                         long p0, long kc, long j0, long nc,
                                                         long nr, float *out) {
  for (long jr = 0; jr < nc; jr += nr) {
    float *panel = out + jr * kc;
    const long width = (j0 + jr + nr <= n) ? nr : (n - j0 - jr);
    if (!t) {
      for (long p = 0; p < kc; p++) {
        const float *row = b + (p0 + p) * ldb + j0 + jr;
        float *dst = panel + p * nr;
        if (width == nr) {
          memcpy(dst, row, nr * sizeof(float));
        } else {
          for (long j = 0; j < nr; j++) dst[j] = j < width ? row[j] : 0;
        }
      }
    } else {
      for (long j = 0; j < nr; j++) {
        if (j < width) {
          const float *column = b + (j0 + jr + j) * ldb + p0;
          for (long p = 0; p < kc; p++) panel[p * nr + j] = column[p];
        } else {
          for (long p = 0; p < kc; p++) panel[p * nr + j] = 0;
        }
      }
    }
  }
}

static void pack_b_avx512(const float *b, long ldb, int t, long n, long p0, long kc, long j0,
                          long nc, float *out) {
  pack_b(b, ldb, t, n, p0, kc, j0, nc, NR, out);
}

static void pack_b_avx2(const float *b, long ldb, int t, long n, long p0, long kc, long j0,
                        long nc, float *out) {
  pack_b(b, ldb, t, n, p0, kc, j0, nc, NR2, out);
}

// Packs rows [i0, i0 + mc) and depth [p0, p0 + kc) of op(A) into MR2-row panels (the AVX2
// tiles'), each `kc` steps of MR2 values; rows past m are zero.
static void pack_a_avx2(const float *a, long lda, int t, long m, long i0, long mc, long p0, long kc,
                        float *out) {
  for (long ir = 0; ir < mc; ir += MR2) {
    float *panel = out + ir * kc;
    long rows = mc - ir < MR2 ? mc - ir : MR2;
    if (i0 + ir + rows > m) rows = m - i0 - ir;
    for (long p = 0; p < kc; p++) {
      for (long r = 0; r < MR2; r++) {
        const long i = i0 + ir + r, q = p0 + p;
        panel[p * MR2 + r] = r < rows ? (t ? a[q * lda + i] : a[i * lda + q]) : 0;
      }
    }
  }
}

// The MR x NR tile `acc = A B` over `kc` steps (A's element (i, p) at A[p a_step + i], B's
// (p, j) at B[p b_step + j]: packed panels have a_step = MR, b_step = NR), then
// `C = alpha acc + bias + beta C` (no bias when NULL; C not read when beta is 0) for the
// `rows x cols` part inside the matrix.
__attribute__((target("avx512f"), always_inline)) static inline void kernel_body(
    long kc, const float *A, long a_step, const float *B, long b_step, float *c, long ldc,
    float alpha, float beta, const float *bias, long rows, long cols) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  __m512 c60 = c00, c61 = c00, c70 = c00, c71 = c00, c80 = c00, c81 = c00;
  __m512 c90 = c00, c91 = c00, ca0 = c00, ca1 = c00, cb0 = c00, cb1 = c00;
  // The tile of C is read or written after the loop: start bringing it in now.
  for (long i = 0; i < rows; i++) {
    _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
  }
#pragma clang loop unroll_count(4)
  for (long p = 0; p < kc; p++) {
    const __m512 b0 = _mm512_loadu_ps(B), b1 = _mm512_loadu_ps(B + 16);
#define ROW(i, x0, x1)                      \
  {                                         \
    const __m512 ai = _mm512_set1_ps(A[i]); \
    x0 = _mm512_fmadd_ps(ai, b0, x0);       \
    x1 = _mm512_fmadd_ps(ai, b1, x1);       \
  }
    ROW(0, c00, c01) ROW(1, c10, c11) ROW(2, c20, c21) ROW(3, c30, c31)
    ROW(4, c40, c41) ROW(5, c50, c51) ROW(6, c60, c61) ROW(7, c70, c71)
    ROW(8, c80, c81) ROW(9, c90, c91) ROW(10, ca0, ca1) ROW(11, cb0, cb1)
#undef ROW
    A += a_step;
    B += b_step;
  }
  __m512 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51},
                       {c60, c61}, {c70, c71}, {c80, c81}, {c90, c91}, {ca0, ca1}, {cb0, cb1}};
  if (alpha != 1.0f) {
    const __m512 va = _mm512_set1_ps(alpha);
    for (long i = 0; i < MR; i++) acc[i][0] = _mm512_mul_ps(va, acc[i][0]), acc[i][1] = _mm512_mul_ps(va, acc[i][1]);
  }
  const __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1u);
  const __mmask16 m1 = cols >= 32 ? 0xffff : cols <= 16 ? 0 : (__mmask16)((1u << (cols - 16)) - 1u);
  if (bias) {
    const __m512 bias0 = _mm512_maskz_loadu_ps(m0, bias), bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    for (long i = 0; i < MR; i++) {
      acc[i][0] = _mm512_add_ps(acc[i][0], bias0);
      acc[i][1] = _mm512_add_ps(acc[i][1], bias1);
    }
  }
  const __m512 vb = _mm512_set1_ps(beta);
  if (rows == MR && cols == NR) {
    for (long i = 0; i < MR; i++) {
      float *row = c + i * ldc;
      if (beta == 0) {
        _mm512_storeu_ps(row, acc[i][0]);
        _mm512_storeu_ps(row + 16, acc[i][1]);
      } else {
        _mm512_storeu_ps(row, _mm512_fmadd_ps(vb, _mm512_loadu_ps(row), acc[i][0]));
        _mm512_storeu_ps(row + 16, _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + 16), acc[i][1]));
      }
    }
    return;
  }
  // Edge tile: masked columns, only the rows inside.
  for (long i = 0; i < rows; i++) {
    float *row = c + i * ldc;
    if (beta == 0) {
      _mm512_mask_storeu_ps(row, m0, acc[i][0]);
      _mm512_mask_storeu_ps(row + 16, m1, acc[i][1]);
    } else {
      _mm512_mask_storeu_ps(row, m0, _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, row), acc[i][0]));
      _mm512_mask_storeu_ps(row + 16, m1,
                            _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, row + 16), acc[i][1]));
    }
  }
}

// One entry point per layout of the operands, `a_step` and `b_step` the distance between a
// tile's depth steps: a packed panel's MR or NR, or the stored matrix's row stride (a transposed
// A read in place has a step's rows contiguous, a stored B a step's columns).
#define LCK_TILE_KERNEL(NAME, BODY, TARGET, A_STEP, B_STEP)                                     \
  TARGET static void NAME(long kc, const float *A, long lda, const float *B, long ldb, float *c, \
                          long ldc, float alpha, float beta, const float *bias, long rows,       \
                          long cols) {                                                           \
    BODY(kc, A, A_STEP, B, B_STEP, c, ldc, alpha, beta, bias, rows, cols);                       \
  }

// A and B packed; a transposed A in place and B packed; both in place.
LCK_TILE_KERNEL(kernel, kernel_body, __attribute__((target("avx512f"))), MR, NR)
LCK_TILE_KERNEL(kernel_steps, kernel_body, __attribute__((target("avx512f"))), lda, NR)
LCK_TILE_KERNEL(kernel_in_place, kernel_body, __attribute__((target("avx512f"))), lda, ldb)

// The MR2 x NR2 tile of the AVX2 kernels, as `kernel` (AVX-512) does its tile; edge tiles go
// through a copy of the tile in memory.
__attribute__((target("avx2,fma"), always_inline)) static inline void kernel_avx2_body(
    long kc, const float *A, long a_step, const float *B, long b_step, float *c, long ldc,
    float alpha, float beta, const float *bias, long rows, long cols) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (long i = 0; i < rows; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
#pragma clang loop unroll_count(4)
  for (long p = 0; p < kc; p++) {
    const __m256 b0 = _mm256_loadu_ps(B), b1 = _mm256_loadu_ps(B + 8);
#define ROW(i, x0, x1)                         \
  {                                            \
    const __m256 ai = _mm256_broadcast_ss(A + i); \
    x0 = _mm256_fmadd_ps(ai, b0, x0);          \
    x1 = _mm256_fmadd_ps(ai, b1, x1);          \
  }
    ROW(0, c00, c01) ROW(1, c10, c11) ROW(2, c20, c21) ROW(3, c30, c31) ROW(4, c40, c41)
    ROW(5, c50, c51)
#undef ROW
    A += a_step;
    B += b_step;
  }
  __m256 acc[MR2][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  if (alpha != 1.0f) {
    const __m256 va = _mm256_set1_ps(alpha);
    for (long i = 0; i < MR2; i++) acc[i][0] = _mm256_mul_ps(va, acc[i][0]), acc[i][1] = _mm256_mul_ps(va, acc[i][1]);
  }
  if (bias) {
    float row_of_bias[NR2] = {0};
    for (long j = 0; j < cols; j++) row_of_bias[j] = bias[j];
    const __m256 bias0 = _mm256_loadu_ps(row_of_bias), bias1 = _mm256_loadu_ps(row_of_bias + 8);
    for (long i = 0; i < MR2; i++) {
      acc[i][0] = _mm256_add_ps(acc[i][0], bias0);
      acc[i][1] = _mm256_add_ps(acc[i][1], bias1);
    }
  }
  if (rows == MR2 && cols == NR2) {
    const __m256 vb = _mm256_set1_ps(beta);
    for (long i = 0; i < MR2; i++) {
      float *row = c + i * ldc;
      if (beta == 0) {
        _mm256_storeu_ps(row, acc[i][0]);
        _mm256_storeu_ps(row + 8, acc[i][1]);
      } else {
        _mm256_storeu_ps(row, _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), acc[i][0]));
        _mm256_storeu_ps(row + 8, _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), acc[i][1]));
      }
    }
    return;
  }
  float tile[MR2][NR2];
  for (long i = 0; i < MR2; i++) {
    _mm256_storeu_ps(tile[i], acc[i][0]);
    _mm256_storeu_ps(tile[i] + 8, acc[i][1]);
  }
  for (long i = 0; i < rows; i++) {
    float *row = c + i * ldc;
    for (long j = 0; j < cols; j++) row[j] = beta == 0 ? tile[i][j] : tile[i][j] + beta * row[j];
  }
}

LCK_TILE_KERNEL(kernel_avx2, kernel_avx2_body, __attribute__((target("avx2,fma"))), MR2, NR2)
LCK_TILE_KERNEL(kernel_avx2_steps, kernel_avx2_body, __attribute__((target("avx2,fma"))), lda, NR2)
LCK_TILE_KERNEL(kernel_avx2_in_place, kernel_avx2_body, __attribute__((target("avx2,fma"))), lda,
                ldb)

// One instruction set's tiles: their sizes, how A and B are packed and the micro-kernel.
typedef struct {
  long mr, nr, mc;
  void (*pack_a)(const float *a, long lda, int t, long m, long i0, long mc, long p0, long kc,
                 float *out);
  void (*pack_b)(const float *b, long ldb, int t, long n, long p0, long kc, long j0, long nc,
                 float *out);
  // kernel[0]: A and B packed; [1]: a transposed A in place, B packed; [2]: both in place.
  void (*kernel[3])(long kc, const float *A, long lda, const float *B, long ldb, float *c, long ldc,
                    float alpha, float beta, const float *bias, long rows, long cols);
} tiles;

static const tiles avx512_tiles = {
    MR, NR, MC, pack_a, pack_b_avx512, {kernel, kernel_steps, kernel_in_place}};
static const tiles avx2_tiles = {
    MR2, NR2, MC2, pack_a_avx2, pack_b_avx2, {kernel_avx2, kernel_avx2_steps, kernel_avx2_in_place}};

// Lines of a stored sub-matrix (`rows` rows of `width` floats, `ld` apart) to prefetch into L2
// over `steps` calls of `prefetch_some`, a row's lines at a time.
typedef struct {
  const float *row;
  long ld, lines_per_row, rows_left, rows_per_step;
} prefetch_region;

static prefetch_region region(const float *base, long ld, long rows, long width, long steps) {
  return (prefetch_region){base, ld, (width + 15) / 16, rows, (rows + steps - 1) / steps};
}

static inline void prefetch_some(prefetch_region *r) {
  for (long q = 0; q < r->rows_per_step && r->rows_left > 0; q++, r->rows_left--, r->row += r->ld) {
    for (long line = 0; line < r->lines_per_row; line++) __builtin_prefetch(r->row + line * 16, 0, 2);
  }
}

// Adds to `sums[i]`, for the rows [i0, i0 + mc) of op(A), the sum of its depth [p0, p0 + kc):
// the block the tiles have just read, still in L2.
static void add_row_sums(const float *a, long lda, int t, long i0, long mc, long p0, long kc,
                         float *sums) {
  if (t) {
    for (long p = p0; p < p0 + kc; p++) {
      const float *row = a + p * lda + i0;
      for (long i = 0; i < mc; i++) sums[i] += row[i];
    }
  } else {
    for (long i = 0; i < mc; i++) {
      const float *row = a + (i0 + i) * lda + p0;
      float sum = 0;
      for (long p = 0; p < kc; p++) sum += row[p];
      sums[i] += sum;
    }
  }
}

void lck_sgemm(lck_isa isa, int transpose_a, int transpose_b, long m, long n, long k, float alpha,
               const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
               const float *bias, float *a_row_sums) {
  if (isa == LCK_ISA_PORTABLE || !lck_cpu_supports(isa)) abort();
  const tiles *tl = isa == LCK_ISA_AVX512 ? &avx512_tiles : &avx2_tiles;
  const packing *buffers = thread_packing();
  float *pa = buffers->a, *pb = buffers->b;
  // A transposed A is read in place: each step's MR rows are contiguous, as in a packed panel
  // (192 x 64 x 8192: 93 -> 109 GFLOP/s on one Zen 4 thread). A stored A is packed: read in
  // place, its rows' values would be MR lines apart, all in one L1 bank (83 -> 52 GFLOP/s).
  // With A in place, a stored B is read in place too (a weight gradient g^T x: x is not packed
  // again by every thread for every depth block): Hyena step 56.8 -> 55.2 ms on two threads,
  // TNN step 768 -> 748.
  const int direct = transpose_a, direct_b = direct && !transpose_b;
  if (a_row_sums) memset(a_row_sums, 0, (size_t)m * sizeof(float));
  for (long j0 = 0; j0 < n; j0 += NC) {
    const long nc = n - j0 < NC ? n - j0 : NC;
    for (long p0 = 0; p0 < k; p0 += KC) {
      const long kc = k - p0 < KC ? k - p0 : KC;
      // The first depth block applies the caller's beta and adds the bias; later ones
      // accumulate.
      const float block_beta = p0 == 0 ? beta : 1.0f;
      const float *block_bias = p0 == 0 ? bias : NULL;
      // With A read in place, a stored B is too but for a last partial panel (reading its
      // missing columns would leave the row): that one is packed.
      const long whole_columns = direct_b ? nc - nc % tl->nr : 0;
      if (whole_columns < nc)
        tl->pack_b(b, ldb, transpose_b, n, p0, kc, j0 + whole_columns, nc - whole_columns, pb);
      for (long i0 = 0; i0 < m; i0 += tl->mc) {
        const long mc = m - i0 < tl->mc ? m - i0 : tl->mc;
        // Read directly, A's tiles are those of the stored matrix, but for a last partial
        // tile (reading its missing rows would leave the matrix): that one is packed.
        const long whole = direct ? mc - mc % tl->mr : 0;
        if (whole < mc) tl->pack_a(a, lda, transpose_a, m, i0 + whole, mc - whole, p0, kc, pa);
        // While this block's tiles compute, bring the next block of A (after the last one, the
        // first of the next depth block) into L2, a few rows after each tile: packing it, or
        // reading it in place, then finds it there instead of waiting on memory (pack_a 7.5%
        // -> 3.8% of a one-thread Hyena step, the step 97.5 -> 91.5 ms; TNN step 1440 -> 1405).
        // B's next depth block, prefetched the same way, gained nothing measurable.
        prefetch_region next = {0};
        const long next_p0 = i0 + mc < m ? p0 : p0 + kc, next_i0 = i0 + mc < m ? i0 + mc : 0;
        if (next_p0 < k) {
          const long next_mc = m - next_i0 < tl->mc ? m - next_i0 : tl->mc;
          const long next_kc = k - next_p0 < KC ? k - next_p0 : KC;
          const long tiles_here = ((nc + tl->nr - 1) / tl->nr) * ((mc + tl->mr - 1) / tl->mr);
          next = transpose_a ? region(a + next_p0 * lda + next_i0, lda, next_kc, next_mc, tiles_here)
                             : region(a + next_i0 * lda + next_p0, lda, next_mc, next_kc, tiles_here);
        }
        for (long jr = 0; jr < nc; jr += tl->nr) {
          const long cols = nc - jr < tl->nr ? nc - jr : tl->nr;
          for (long ir = 0; ir < mc; ir += tl->mr) {
            const long rows = mc - ir < tl->mr ? mc - ir : tl->mr;
            float *tile_c = c + (i0 + ir) * ldc + j0 + jr;
            const float *tile_bias = block_bias ? block_bias + j0 + jr : NULL;
            const int b_in_place = jr < whole_columns;
            const float *tile_b =
                b_in_place ? b + p0 * ldb + j0 + jr : pb + (jr - whole_columns) * kc;
            if (ir < whole) {
              tl->kernel[b_in_place ? 2 : 1](kc, a + p0 * lda + i0 + ir, lda, tile_b, ldb, tile_c,
                                              ldc, alpha, block_beta, tile_bias, rows, cols);
            } else if (b_in_place) {
              // A's packed last tile with B in place: packed A panels are `lda = MR` steps of
              // MR rows, which the in-place kernel reads the same way.
              tl->kernel[2](kc, pa + (ir - whole) * kc, tl->mr, tile_b, ldb, tile_c, ldc, alpha,
                            block_beta, tile_bias, rows, cols);
            } else {
              tl->kernel[0](kc, pa + (ir - whole) * kc, tl->mr, tile_b, tl->nr, tile_c, ldc, alpha,
                            block_beta, tile_bias, rows, cols);
            }
            prefetch_some(&next);
          }
        }
        if (a_row_sums && j0 == 0) add_row_sums(a, lda, transpose_a, i0, mc, p0, kc, a_row_sums + i0);
      }
    }
  }
}

#else

lck_isa lck_sgemm_widest_isa(void) { return LCK_ISA_PORTABLE; }

void lck_sgemm(lck_isa isa, int transpose_a, int transpose_b, long m, long n, long k, float alpha,
               const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
               const float *bias, float *a_row_sums) {
  abort();
}

#endif

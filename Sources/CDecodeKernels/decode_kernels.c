#include "decode_kernels.h"
#include "cpu_dispatch.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define LCK_X86 1
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

// MARK: Matrix-vector products

// Each product is written once over its weights' type: Float32, or bfloat16 widened exactly to
// Float32 (its 16 bits become the upper half), so both compute the same Float32 sums.

static inline float widen_f32(const float *w, long i) { return w[i]; }
static inline float widen_bf16(const uint16_t *w, long i) {
  const uint32_t bits = (uint32_t)w[i] << 16;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

#if LCK_X86
__attribute__((target("avx512f"))) static inline __m512 load16_f32(const float *w) {
  return _mm512_loadu_ps(w);
}
__attribute__((target("avx512f"))) static inline __m512 load16_bf16(const uint16_t *w) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)w));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}
__attribute__((target("avx2,fma"))) static inline __m256 load8_f32(const float *w) {
  return _mm256_loadu_ps(w);
}
__attribute__((target("avx2,fma"))) static inline __m256 load8_bf16(const uint16_t *w) {
  const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)w));
  return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
}

// The last `count < 16` weights of a row, zero-filled (no read past the row).
#define LCK_TAIL16(WIDEN)                                                                   \
  __attribute__((target("avx512f"))) static inline __m512 tail16_##WIDEN(                 \
      const void *w, long count) {                                                         \
    float t[16] = {0};                                                                     \
    for (long i = 0; i < count; i++) t[i] = widen_##WIDEN(w, i);                           \
    return _mm512_loadu_ps(t);                                                             \
  }
LCK_TAIL16(f32)
LCK_TAIL16(bf16)

// Four rows at a time: `x` is loaded once per four rows, four independent accumulators.
#define LCK_GEMV_AVX512(NAME, T, KIND)                                                      \
  __attribute__((target("avx512f"))) static void NAME(const T *W, long rows, long cols,    \
                                                      const float *x, const float *bias,    \
                                                      float *y) {                           \
    long r = 0;                                                                             \
    const long full = cols & ~15L, rest = cols - full;                                      \
    const __mmask16 tail = (__mmask16)((1u << rest) - 1u);                                  \
    for (; r + 4 <= rows; r += 4) {                                                         \
      const T *w0 = W + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;        \
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                           \
      long c = 0;                                                                           \
      for (; c < full; c += 16) {                                                           \
        const __m512 v = _mm512_loadu_ps(x + c);                                            \
        a0 = _mm512_fmadd_ps(load16_##KIND(w0 + c), v, a0);                                \
        a1 = _mm512_fmadd_ps(load16_##KIND(w1 + c), v, a1);                                \
        a2 = _mm512_fmadd_ps(load16_##KIND(w2 + c), v, a2);                                \
        a3 = _mm512_fmadd_ps(load16_##KIND(w3 + c), v, a3);                                \
      }                                                                                     \
      if (tail) {                                                                           \
        const __m512 v = _mm512_maskz_loadu_ps(tail, x + c);                                \
        a0 = _mm512_fmadd_ps(tail16_##KIND(w0 + c, rest), v, a0);                           \
        a1 = _mm512_fmadd_ps(tail16_##KIND(w1 + c, rest), v, a1);                           \
        a2 = _mm512_fmadd_ps(tail16_##KIND(w2 + c, rest), v, a2);                           \
        a3 = _mm512_fmadd_ps(tail16_##KIND(w3 + c, rest), v, a3);                           \
      }                                                                                     \
      y[r] = _mm512_reduce_add_ps(a0) + (bias ? bias[r] : 0.0f);                            \
      y[r + 1] = _mm512_reduce_add_ps(a1) + (bias ? bias[r + 1] : 0.0f);                    \
      y[r + 2] = _mm512_reduce_add_ps(a2) + (bias ? bias[r + 2] : 0.0f);                    \
      y[r + 3] = _mm512_reduce_add_ps(a3) + (bias ? bias[r + 3] : 0.0f);                    \
    }                                                                                       \
    for (; r < rows; r++) {                                                                 \
      const T *w = W + r * cols;                                                            \
      __m512 a = _mm512_setzero_ps();                                                       \
      long c = 0;                                                                           \
      for (; c < full; c += 16) a = _mm512_fmadd_ps(load16_##KIND(w + c), _mm512_loadu_ps(x + c), a); \
      if (tail) a = _mm512_fmadd_ps(tail16_##KIND(w + c, rest), _mm512_maskz_loadu_ps(tail, x + c), a); \
      y[r] = _mm512_reduce_add_ps(a) + (bias ? bias[r] : 0.0f);                             \
    }                                                                                       \
  }
LCK_GEMV_AVX512(gemv_avx512, float, f32)
LCK_GEMV_AVX512(gemv_bf16_avx512, uint16_t, bf16)

__attribute__((target("avx2,fma"))) static float sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#define LCK_GEMV_AVX2(NAME, T, KIND)                                                        \
  __attribute__((target("avx2,fma"))) static void NAME(const T *W, long rows, long cols,   \
                                                       const float *x, const float *bias,   \
                                                       float *y) {                          \
    const long full = cols & ~7L;                                                           \
    for (long r = 0; r < rows; r++) {                                                       \
      const T *w = W + r * cols;                                                            \
      __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                             \
      long c = 0;                                                                           \
      for (; c + 16 <= full; c += 16) {                                                     \
        a0 = _mm256_fmadd_ps(load8_##KIND(w + c), _mm256_loadu_ps(x + c), a0);              \
        a1 = _mm256_fmadd_ps(load8_##KIND(w + c + 8), _mm256_loadu_ps(x + c + 8), a1);      \
      }                                                                                     \
      for (; c < full; c += 8) a0 = _mm256_fmadd_ps(load8_##KIND(w + c), _mm256_loadu_ps(x + c), a0); \
      float s = sum8(_mm256_add_ps(a0, a1));                                                \
      for (; c < cols; c++) s += widen_##KIND(w, c) * x[c];                                 \
      y[r] = s + (bias ? bias[r] : 0.0f);                                                   \
    }                                                                                       \
  }
LCK_GEMV_AVX2(gemv_avx2, float, f32)
LCK_GEMV_AVX2(gemv_bf16_avx2, uint16_t, bf16)

#endif

#define LCK_GEMV_PORTABLE(NAME, T, KIND)                                                    \
  static void NAME(const T *W, long rows, long cols, const float *x, const float *bias,     \
                   float *y) {                                                              \
    for (long r = 0; r < rows; r++) {                                                       \
      const T *w = W + r * cols;                                                            \
      float s[8] = {0};                                                                     \
      long c = 0;                                                                           \
      for (; c + 8 <= cols; c += 8)                                                         \
        for (int k = 0; k < 8; k++) s[k] += widen_##KIND(w, c + k) * x[c + k];             \
      float t = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));         \
      for (; c < cols; c++) t += widen_##KIND(w, c) * x[c];                                 \
      y[r] = t + (bias ? bias[r] : 0.0f);                                                   \
    }                                                                                       \
  }
LCK_GEMV_PORTABLE(gemv_portable, float, f32)
LCK_GEMV_PORTABLE(gemv_bf16_portable, uint16_t, bf16)

// MARK: Recurrence steps

// Each vector version leaves its tail (fewer states than a vector) to the next narrower one.
static double step_portable(long count, double x, const double *pr, const double *pi,
                            const float *rr, const float *ri, double *sr, double *si) {
  double y = 0;
  for (long n = 0; n < count; n++) {
    const double re = pr[n] * sr[n] - pi[n] * si[n] + x;
    const double im = pi[n] * sr[n] + pr[n] * si[n];
    sr[n] = re;
    si[n] = im;
    y += (double)rr[n] * re - (double)ri[n] * im;
  }
  return y;
}

#if LCK_X86
__attribute__((target("avx2,fma"))) static double step_avx2(long count, double x, const double *pr,
                                                            const double *pi, const float *rr,
                                                            const float *ri, double *sr,
                                                            double *si) {
  const __m256d xv = _mm256_set1_pd(x);
  __m256d acc = _mm256_setzero_pd();
  long n = 0;
  for (; n + 4 <= count; n += 4) {
    const __m256d a = _mm256_loadu_pd(sr + n), b = _mm256_loadu_pd(si + n);
    const __m256d p = _mm256_loadu_pd(pr + n), q = _mm256_loadu_pd(pi + n);
    const __m256d re = _mm256_fmadd_pd(p, a, _mm256_fnmadd_pd(q, b, xv));
    const __m256d im = _mm256_fmadd_pd(p, b, _mm256_mul_pd(q, a));
    _mm256_storeu_pd(sr + n, re);
    _mm256_storeu_pd(si + n, im);
    const __m256d c = _mm256_cvtps_pd(_mm_loadu_ps(rr + n));
    const __m256d d = _mm256_cvtps_pd(_mm_loadu_ps(ri + n));
    acc = _mm256_fmadd_pd(c, re, _mm256_fnmadd_pd(d, im, acc));
  }
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(acc), _mm256_extractf128_pd(acc, 1));
  const double y = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
  return y + step_portable(count - n, x, pr + n, pi + n, rr + n, ri + n, sr + n, si + n);
}

__attribute__((target("avx512f,avx2,fma"))) static double step_avx512(
    long count, double x, const double *pr, const double *pi, const float *rr, const float *ri,
    double *sr, double *si) {
  const __m512d xv = _mm512_set1_pd(x);
  __m512d acc = _mm512_setzero_pd();
  long n = 0;
  for (; n + 8 <= count; n += 8) {
    const __m512d a = _mm512_loadu_pd(sr + n), b = _mm512_loadu_pd(si + n);
    const __m512d p = _mm512_loadu_pd(pr + n), q = _mm512_loadu_pd(pi + n);
    const __m512d re = _mm512_fmadd_pd(p, a, _mm512_fnmadd_pd(q, b, xv));
    const __m512d im = _mm512_fmadd_pd(p, b, _mm512_mul_pd(q, a));
    _mm512_storeu_pd(sr + n, re);
    _mm512_storeu_pd(si + n, im);
    const __m512d c = _mm512_cvtps_pd(_mm256_loadu_ps(rr + n));
    const __m512d d = _mm512_cvtps_pd(_mm256_loadu_ps(ri + n));
    acc = _mm512_fmadd_pd(c, re, _mm512_fnmadd_pd(d, im, acc));
  }
  // Compact channels hold a few states each, so the tail is often all of the work (masked
  // AVX-512 loads and stores measured slower here than the AVX2 step).
  const double y = _mm512_reduce_add_pd(acc);
  return y + step_avx2(count - n, x, pr + n, pi + n, rr + n, ri + n, sr + n, si + n);
}

#endif

// Channel loops, one per instruction set, so that each step is a direct (inlinable) call: an
// indirect call per channel was a visible share of a compact step (4608 channels of ~9 states).
#define LCK_CHANNELS(NAME, STEP)                                                              \
  static void NAME(long first, long end, const long *offsets, int shared_poles,              \
                   const double *poles_re, const double *poles_im, const float *residues_re, \
                   const float *residues_im, const float *skip, double *state_re,            \
                   double *state_im, const float *x, float *y) {                             \
    for (long c = first; c < end; c++) {                                                      \
      const long begin = offsets[c], pole = shared_poles ? 0 : begin;                         \
      double out = STEP(offsets[c + 1] - begin, (double)x[c], poles_re + pole,                \
                        poles_im + pole, residues_re + begin, residues_im + begin,            \
                        state_re + begin, state_im + begin);                                  \
      /* As the Swift step: the skip product rounded to Float32, then added in Double. */     \
      if (skip) out += (double)(skip[c] * x[c]);                                              \
      y[c] = (float)out;                                                                      \
    }                                                                                         \
  }

LCK_CHANNELS(channels_portable, step_portable)
#if LCK_X86
__attribute__((target("avx2,fma"))) LCK_CHANNELS(channels_avx2, step_avx2)
__attribute__((target("avx512f,avx2,fma"))) LCK_CHANNELS(channels_avx512, step_avx512)
#endif

// MARK: Folded ETSC steps

// `sum_i w[i] a[i]` over `n` floats, written once over a vector of W floats (clang's vector
// extensions; the multiply-adds fuse where the target has FMA): four accumulators for the
// latency, then single vectors, then the scalar tail.
#define LCK_DOT(SUFFIX, W, TARGET)                                                             \
  typedef float dot_vector_##SUFFIX __attribute__((vector_size(4 * W)));                      \
  TARGET static float dot_##SUFFIX(const float *w, const float *a, long n) {                   \
    typedef dot_vector_##SUFFIX v;                                                             \
    v s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0}, x, y;                                            \
    long i = 0;                                                                                \
    for (; i + 4 * W <= n; i += 4 * W) {                                                       \
      memcpy(&x, w + i, sizeof x), memcpy(&y, a + i, sizeof y), s0 += x * y;                   \
      memcpy(&x, w + i + W, sizeof x), memcpy(&y, a + i + W, sizeof y), s1 += x * y;          \
      memcpy(&x, w + i + 2 * W, sizeof x), memcpy(&y, a + i + 2 * W, sizeof y), s2 += x * y;  \
      memcpy(&x, w + i + 3 * W, sizeof x), memcpy(&y, a + i + 3 * W, sizeof y), s3 += x * y;  \
    }                                                                                          \
    for (; i + W <= n; i += W) memcpy(&x, w + i, sizeof x), memcpy(&y, a + i, sizeof y), s0 += x * y; \
    const v t = (s0 + s1) + (s2 + s3);                                                         \
    float sum = 0;                                                                             \
    for (int k = 0; k < W; k++) sum += t[k];                                                   \
    for (; i < n; i++) sum += w[i] * a[i];                                                     \
    return sum;                                                                                \
  }

LCK_DOT(portable, 4, )
#if LCK_X86
LCK_DOT(avx2, 8, __attribute__((target("avx2,fma"))))
LCK_DOT(avx512, 16, __attribute__((target("avx512f"))))
#endif

// The channel loop once, over each instruction set's dot product (rescaling is rare: once
// every R steps, R in the thousands for TNN's decay, so a plain loop).
#define LCK_FOLDED(NAME, DOT)                                                                  \
  static void NAME(long first, long end, long m, long q, float rescale, float in_scale,       \
                   double out_scale, const float *window, const float *skip, float *slots,    \
                   const float *x, float *y) {                                                \
    for (long c = first; c < end; c++) {                                                      \
      float *a = slots + c * m;                                                               \
      if (rescale != 1.0f)                                                                    \
        for (long p = 0; p < m; p++) a[p] *= rescale;                                         \
      a[q] += in_scale * x[c];                                                                \
      const float *w = window + c * m;                                                        \
      const float sum = DOT(w + m - 1 - q, a, q + 1) + DOT(w, a + q + 1, m - 1 - q);          \
      double out = out_scale * (double)sum;                                                   \
      if (skip) out += (double)(skip[c] * x[c]);                                              \
      y[c] = (float)out;                                                                      \
    }                                                                                         \
  }

LCK_FOLDED(folded_portable, dot_portable)
#if LCK_X86
__attribute__((target("avx2,fma"))) LCK_FOLDED(folded_avx2, dot_avx2)
__attribute__((target("avx512f"))) LCK_FOLDED(folded_avx512, dot_avx512)
#endif

// MARK: Dispatch



int lck_kernels_named(const char *name, lck_kernels *kernels) {
  lck_isa isa = lck_cpu_isa();
  if (strcmp(name, "best") != 0 && (!lck_isa_named(name, &isa) || !lck_cpu_supports(isa))) return 0;
  switch (isa) {
#if LCK_X86
  case LCK_ISA_AVX512: *kernels = (lck_kernels){gemv_avx512, gemv_bf16_avx512, channels_avx512, folded_avx512, "avx512"}; return 1;
  case LCK_ISA_AVX2: *kernels = (lck_kernels){gemv_avx2, gemv_bf16_avx2, channels_avx2, folded_avx2, "avx2"}; return 1;
#endif
  default: *kernels = (lck_kernels){gemv_portable, gemv_bf16_portable, channels_portable, folded_portable, "portable"}; return 1;
  }
}

const char *lck_kernel_isa(void) { return lck_isa_name(lck_cpu_isa()); }

// MARK: Arena

enum { huge_page = 1 << 21, largest_chunk = 32 << 20 };

typedef struct chunk {
  struct chunk *next;
  char *memory;
  size_t size, used;
} chunk;

struct lck_arena {
  chunk *chunks;
};

lck_arena *lck_arena_create(void) { return calloc(1, sizeof(lck_arena)); }

void *lck_arena_allocate(lck_arena *arena, size_t bytes) {
  bytes = (bytes + 63) & ~(size_t)63;
  chunk *c = arena->chunks;
  if (!c || c->size - c->used < bytes) {
    // Chunks double from one huge page up to 32 MB (a small model's decoder stays small).
    size_t size = c ? 2 * c->size : huge_page;
    if (size > largest_chunk) size = largest_chunk;
    if (size < bytes) size = (bytes + huge_page - 1) & ~(size_t)(huge_page - 1);
    chunk *fresh = calloc(1, sizeof(chunk));
    if (!fresh) return NULL;
    void *memory = NULL;
    if (posix_memalign(&memory, huge_page, size) != 0) {
      free(fresh);
      return NULL;
    }
    // Advice only (without transparent huge pages the memory stays in 4 KB pages), and only for
    // large chunks: a huge page's first touch may wait for the kernel to compact memory (seen:
    // several ms), which a small model's decoder would pay on its first token for nothing.
    if (size >= 8 * (size_t)huge_page) (void)madvise(memory, size, MADV_HUGEPAGE);
    fresh->memory = memory, fresh->size = size, fresh->next = c;
    arena->chunks = c = fresh;
  }
  void *block = c->memory + c->used;
  c->used += bytes;
  memset(block, 0, bytes);
  return block;
}

void lck_arena_destroy(lck_arena *arena) {
  if (!arena) return;
  for (chunk *c = arena->chunks, *next; c; c = next) {
    next = c->next;
    free(c->memory);
    free(c);
  }
  free(arena);
}

// MARK: Team of threads

struct lck_team {
  int size;
  pthread_t *threads;
  // A run: the caller publishes body/context, then bumps `generation`.
  void (*body)(void *, int);
  void *context;
  _Atomic long generation;
  _Atomic int finished;  // members other than the caller done with the current run
  _Atomic int stopping;
  // Sleeping idle members, and wake-ups without a run (`lck_team_wake`).
  _Atomic int sleepers;
  _Atomic long nudges;
  _Atomic long nudged_wakeups;  // members woken by a nudge (tests, diagnostics)
  _Atomic int started;          // members whose thread has begun
  pthread_mutex_t lock;
  pthread_cond_t wake;
  // Sense-reversing barrier.
  _Atomic int arrived;
  _Atomic int sense;
};

// One turn of a wait loop: a pause, and after many turns a yield, so that a member waiting for
// one that the scheduler took off its core (more threads than cores) gives the core back. A
// barrier normally waits under 2 us; 512 pauses are several times that.
static inline void relax(long turn) {
  if (turn > 512) {
    sched_yield();
    return;
  }
#if LCK_X86
  _mm_pause();
#endif
}

static double seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// How long an idle member spins for the next run before it sleeps.
static const double idle_spin_seconds = 2e-3;

typedef struct {
  lck_team *team;
  int member;
} member_start;

static void *member_main(void *argument) {
  member_start start = *(member_start *)argument;
  free(argument);
  lck_team *team = start.team;
  long seen = 0;
  atomic_fetch_add(&team->started, 1);
  for (;;) {
    // Spin for a while, checking the clock every 256 pauses; then sleep until woken.
    long generation = atomic_load(&team->generation);
    if (generation == seen) {
      double deadline = seconds() + idle_spin_seconds;
      for (int spins = 1; (generation = atomic_load(&team->generation)) == seen; spins++) {
#if LCK_X86
        _mm_pause();
#endif
        if ((spins & 255) == 0 && seconds() > deadline) {
          pthread_mutex_lock(&team->lock);
          const long nudges = atomic_load(&team->nudges);
          atomic_fetch_add(&team->sleepers, 1);
          while ((generation = atomic_load(&team->generation)) == seen &&
                 atomic_load(&team->nudges) == nudges)
            pthread_cond_wait(&team->wake, &team->lock);
          atomic_fetch_sub(&team->sleepers, 1);
          if (generation == seen) atomic_fetch_add(&team->nudged_wakeups, 1);
          pthread_mutex_unlock(&team->lock);
          // Woken without a run (a nudge): spin for the next one again.
          deadline = seconds() + idle_spin_seconds;
        }
      }
    }
    seen = generation;
    if (atomic_load(&team->stopping)) return NULL;
    team->body(team->context, start.member);
    atomic_fetch_add(&team->finished, 1);
  }
}

lck_team *lck_team_create(int threads) {
  if (threads < 1) threads = 1;
  lck_team *team = calloc(1, sizeof(lck_team));
  if (!team) return NULL;
  team->size = threads;
  pthread_mutex_init(&team->lock, NULL);
  pthread_cond_init(&team->wake, NULL);
  team->threads = calloc((size_t)threads, sizeof(pthread_t));
  if (!team->threads) {
    free(team);
    return NULL;
  }
  for (int m = 1; m < threads; m++) {
    member_start *start = malloc(sizeof(member_start));
    if (!start) {
      team->size = m;
      lck_team_destroy(team);
      return NULL;
    }
    start->team = team;
    start->member = m;
    if (pthread_create(&team->threads[m], NULL, member_main, start) != 0) {
      free(start);
      team->size = m;
      lck_team_destroy(team);
      return NULL;
    }
  }
  return team;
}

int lck_team_ready(lck_team *team) {
  return atomic_load(&team->started) == team->size - 1 && atomic_load(&team->sleepers) == 0;
}

long lck_team_nudged_wakeups(lck_team *team) { return atomic_load(&team->nudged_wakeups); }

void lck_team_wake(lck_team *team) {
  pthread_mutex_lock(&team->lock);
  atomic_fetch_add(&team->nudges, 1);
  pthread_cond_broadcast(&team->wake);
  pthread_mutex_unlock(&team->lock);
}

static void publish(lck_team *team) {
  atomic_fetch_add(&team->generation, 1);
  if (atomic_load(&team->sleepers) > 0) {
    pthread_mutex_lock(&team->lock);
    pthread_cond_broadcast(&team->wake);
    pthread_mutex_unlock(&team->lock);
  }
}

void lck_team_destroy(lck_team *team) {
  if (!team) return;
  atomic_store(&team->stopping, 1);
  publish(team);
  for (int m = 1; m < team->size; m++) pthread_join(team->threads[m], NULL);
  pthread_mutex_destroy(&team->lock);
  pthread_cond_destroy(&team->wake);
  free(team->threads);
  free(team);
}

int lck_team_size(const lck_team *team) { return team->size; }

void lck_team_run(lck_team *team, void (*body)(void *, int), void *context) {
  if (team->size == 1) {
    body(context, 0);
    return;
  }
  team->body = body;
  team->context = context;
  atomic_store(&team->finished, 0);
  publish(team);
  body(context, 0);
  for (long turn = 0; atomic_load(&team->finished) < team->size - 1; turn++) relax(turn);
}

void lck_team_barrier(lck_team *team) {
  if (team->size == 1) return;
  const int sense = atomic_load(&team->sense);
  if (atomic_fetch_add(&team->arrived, 1) == team->size - 1) {
    atomic_store(&team->arrived, 0);
    atomic_store(&team->sense, !sense);
  } else {
    for (long turn = 0; atomic_load(&team->sense) == sense; turn++) relax(turn);
  }
}

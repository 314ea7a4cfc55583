#include "convolution_kernels.h"
#include "vector_loops.h"

// Each function is written once as a macro over a vector of W floats and instantiated per
// instruction set (16 lanes for AVX-512, 8 for AVX2, 4 for SSE2), as in CVectorMath.
//
// The transposes move W x W blocks: W loads of W consecutive values, log2(W) rounds of
// interleaving (row k with row k + W/2 into rows 2k and 2k + 1: after log2(W) rounds row j holds
// what was column j), W stores. Partial blocks are copied value by value.

// Lane patterns for __builtin_shufflevector, per width: even lanes twice, odd lanes twice,
// neighbours swapped, the low and high halves of two vectors interleaved, and the complex values
// (pairs of lanes) in reverse order.
#define LCK_REVERSE_4 2, 3, 0, 1
#define LCK_REVERSE_8 6, 7, 4, 5, 2, 3, 0, 1
#define LCK_REVERSE_16 14, 15, 12, 13, 10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1
#define LCK_EVEN_4 0, 0, 2, 2
#define LCK_ODD_4 1, 1, 3, 3
#define LCK_SWAP_4 1, 0, 3, 2
#define LCK_LOW_4 0, 4, 1, 5
#define LCK_HIGH_4 2, 6, 3, 7
#define LCK_EVEN_8 0, 0, 2, 2, 4, 4, 6, 6
#define LCK_ODD_8 1, 1, 3, 3, 5, 5, 7, 7
#define LCK_SWAP_8 1, 0, 3, 2, 5, 4, 7, 6
#define LCK_LOW_8 0, 8, 1, 9, 2, 10, 3, 11
#define LCK_HIGH_8 4, 12, 5, 13, 6, 14, 7, 15
#define LCK_EVEN_16 0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14
#define LCK_ODD_16 1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15
#define LCK_SWAP_16 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14
#define LCK_LOW_16 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define LCK_HIGH_16 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31

// The real DFT X of x (N = 2 half values) from the DFT Z of z[n] = x[2n] + i x[2n + 1], with
// w = exp(-2 pi i / N): for each pair (k, half - k), A = Z[k] and B = conj(Z[half - k]) give
//   E = (A + B) / 2,  T = -i w^k (A - B) / 2,  X[k] = E + T,  X[half - k] = conj(E - T)
// (Z[half] read as Z[0]). Packing inverts it (times 2, the unnormalised inverses' scale): with
// A = X[k], B = conj(X[half - k]),
//   E = A + B,  T = i conj(w^k) (A - B),  Z[k] = E + T,  Z[half - k] = conj(E - T).
// Both are one fold of each pair, with `scale` 1/2 or 1 and `direction` -1 (w, times -i) or
// +1 (conj(w), times i); they differ at k = 0 (X[0], X[half] real; Z[0] from their real parts).

// The fold of the pairs from `from` to the middle, one at a time.
static void fold_middle(float *s, long half, const float *twiddles, long from, float scale,
                        float direction) {
  for (long k = from; k <= half - k; k++) {
    const long j = half - k;
    const float ar = s[2 * k], ai = s[2 * k + 1], br = s[2 * j], bi = -s[2 * j + 1];
    const float er = scale * (ar + br), ei = scale * (ai + bi);
    const float dr = scale * (ar - br), di = scale * (ai - bi);
    // w^k, or its conjugate when packing; then times -i or i.
    const float wr = twiddles[2 * k], wi = -direction * twiddles[2 * k + 1];
    const float pr = wr * dr - wi * di, pi = wr * di + wi * dr;
    const float tr = -direction * pi, ti = direction * pr;
    s[2 * k] = er + tr, s[2 * k + 1] = ei + ti;
    if (j != k) s[2 * j] = er - tr, s[2 * j + 1] = -(ei - ti);
  }
}

static void unpack_middle(float *s, long half, const float *twiddles, long from) {
  const float z0r = s[0], z0i = s[1];
  s[0] = z0r + z0i, s[1] = 0;
  s[2 * half] = z0r - z0i, s[2 * half + 1] = 0;
  fold_middle(s, half, twiddles, from, 0.5f, -1.0f);
}

static void pack_middle(float *s, long half, const float *twiddles, long from) {
  const float x0 = s[0], xh = s[2 * half];
  s[0] = x0 + xh, s[1] = x0 - xh;
  fold_middle(s, half, twiddles, from, 1.0f, 1.0f);
}

#define LCK_CONVOLUTION_KERNELS(SUFFIX, W, TARGET)                                              \
  LCK_VECTOR_TYPES(SUFFIX, W, TARGET)                                                          \
                                                                                               \
  /* v[j] becomes what was column j of the block whose row k was v[k]. */                      \
  TARGET static inline void transpose_##SUFFIX(vf_##SUFFIX v[W]) {                             \
    for (int round = 1; round < W; round *= 2) {                                               \
      vf_##SUFFIX next[W];                                                                     \
      for (int k = 0; k < W / 2; k++) {                                                        \
        next[2 * k] = __builtin_shufflevector(v[k], v[k + W / 2], LCK_LOW_##W);                \
        next[2 * k + 1] = __builtin_shufflevector(v[k], v[k + W / 2], LCK_HIGH_##W);           \
      }                                                                                        \
      for (int k = 0; k < W; k++) v[k] = next[k];                                              \
    }                                                                                          \
  }                                                                                            \
                                                                                               \
  TARGET static void gather_##SUFFIX(const float *x, long ld, long length, long width,         \
                                     float *rows, long stride, long padded) {                  \
    long r0 = 0;                                                                               \
    for (; r0 + W <= width; r0 += W) {                                                         \
      long i0 = 0;                                                                             \
      for (; i0 + W <= length; i0 += W) {                                                      \
        vf_##SUFFIX v[W];                                                                      \
        for (int q = 0; q < W; q++) v[q] = load_##SUFFIX(x + (i0 + q) * ld + r0, W);           \
        /* Positions are ld apart, too far for the hardware prefetcher: the next block. */     \
        for (int q = 0; q < W && i0 + W + q < length; q++)                                     \
          __builtin_prefetch(x + (i0 + W + q) * ld + r0, 0, 3);                                \
        transpose_##SUFFIX(v);                                                                 \
        for (int q = 0; q < W; q++) store_##SUFFIX(rows + (r0 + q) * stride + i0, v[q], W);    \
      }                                                                                        \
      for (; i0 < length; i0++)                                                                \
        for (int q = 0; q < W; q++) rows[(r0 + q) * stride + i0] = x[i0 * ld + r0 + q];        \
    }                                                                                          \
    for (; r0 < width; r0++)                                                                   \
      for (long i = 0; i < length; i++) rows[r0 * stride + i] = x[i * ld + r0];               \
    if (padded > length)                                                                       \
      for (long r = 0; r < width; r++)                                                         \
        memset(rows + r * stride + length, 0, (size_t)(padded - length) * sizeof(float));      \
  }                                                                                            \
                                                                                               \
  TARGET static void scatter_##SUFFIX(const float *rows, long stride, long length, long width, \
                                      float *y, long ld, const float *skip,                    \
                                      const float *other) {                                    \
    long r0 = 0;                                                                               \
    for (; r0 + W <= width; r0 += W) {                                                         \
      const vf_##SUFFIX s = skip ? load_##SUFFIX(skip + r0, W) : (vf_##SUFFIX){0};             \
      long i0 = 0;                                                                             \
      for (; i0 + W <= length; i0 += W) {                                                      \
        vf_##SUFFIX v[W];                                                                      \
        for (int q = 0; q < W; q++) v[q] = load_##SUFFIX(rows + (r0 + q) * stride + i0, W);    \
        transpose_##SUFFIX(v);                                                                 \
        for (int q = 0; q < W; q++) {                                                          \
          const long at = (i0 + q) * ld + r0;                                                  \
          if (skip) v[q] = v[q] + s * load_##SUFFIX(other + at, W);                            \
          store_##SUFFIX(y + at, v[q], W);                                                     \
        }                                                                                      \
      }                                                                                        \
      for (; i0 < length; i0++)                                                                \
        for (int q = 0; q < W; q++) {                                                          \
          const long at = i0 * ld + r0 + q;                                                    \
          const float value = rows[(r0 + q) * stride + i0];                                    \
          y[at] = skip ? value + s[q] * other[at] : value;                                     \
        }                                                                                      \
    }                                                                                          \
    for (; r0 < width; r0++)                                                                   \
      for (long i = 0; i < length; i++) {                                                      \
        const long at = i * ld + r0;                                                           \
        const float value = rows[r0 * stride + i];                                             \
        y[at] = skip ? value + skip[r0] * other[at] : value;                                   \
      }                                                                                        \
  }                                                                                            \
                                                                                               \
  /* Interleaved complex values (even lanes real parts, odd lanes imaginary): a b, as          \
     a re(b) + swap(a) im(b) (-1, +1, ...); -i a or i a; conj(a). */                            \
  TARGET static inline vf_##SUFFIX complex_times_##SUFFIX(vf_##SUFFIX a, vf_##SUFFIX b) {      \
    vf_##SUFFIX sign;                                                                          \
    for (int k = 0; k < W; k++) sign[k] = k % 2 ? 1.0f : -1.0f;                                \
    return a * __builtin_shufflevector(b, b, LCK_EVEN_##W) +                                   \
           __builtin_shufflevector(a, a, LCK_SWAP_##W) * __builtin_shufflevector(b, b, LCK_ODD_##W) * sign; \
  }                                                                                            \
  TARGET static inline vf_##SUFFIX times_i_##SUFFIX(vf_##SUFFIX a, float direction) {          \
    vf_##SUFFIX sign;                                                                          \
    for (int k = 0; k < W; k++) sign[k] = k % 2 ? direction : -direction;                      \
    return __builtin_shufflevector(a, a, LCK_SWAP_##W) * sign;                                 \
  }                                                                                            \
  TARGET static inline vf_##SUFFIX conjugate_##SUFFIX(vf_##SUFFIX a) {                         \
    vf_##SUFFIX sign;                                                                          \
    for (int k = 0; k < W; k++) sign[k] = k % 2 ? -1.0f : 1.0f;                                \
    return a * sign;                                                                           \
  }                                                                                            \
                                                                                               \
  TARGET static void product_##SUFFIX(const float *a, const float *b, float *out, long count,  \
                                      float scale, int conjugate) {                            \
    LCK_EACH_VECTOR(W, 2 * count,                                                              \
      const vf_##SUFFIX bv = load_##SUFFIX(b + i, c) * scale;                                  \
      const vf_##SUFFIX factor = conjugate ? conjugate_##SUFFIX(bv) : bv;                      \
      store_##SUFFIX(out + i, complex_times_##SUFFIX(load_##SUFFIX(a + i, c), factor), c);     \
    )                                                                                          \
  }                                                                                            \
                                                                                               \
  TARGET static void accumulate_conjugate_product_##SUFFIX(const float *a, const float *b,     \
                                                           float *acc, long count) {           \
    LCK_EACH_VECTOR(W, 2 * count,                                                              \
      const vf_##SUFFIX term =                                                                 \
          complex_times_##SUFFIX(load_##SUFFIX(a + i, c), conjugate_##SUFFIX(load_##SUFFIX(b + i, c))); \
      store_##SUFFIX(acc + i, load_##SUFFIX(acc + i, c) + term, c);                            \
    )                                                                                          \
  }                                                                                            \
                                                                                               \
  /* The fold of the pairs (k, half - k), W / 2 of each at a time (the second run reversed),  \
     while the runs do not meet; returns the first k left for the scalar fold. */             \
  TARGET static long fold_##SUFFIX(float *s, long half, const float *twiddles, float scale,     \
                                   float direction) {                                          \
    const long C = W / 2;                                                                      \
    long k = 1;                                                                                \
    for (; 2 * k + 2 * C - 1 <= half; k += C) {                                                \
      float *mirror = s + 2 * (half - k - C + 1);                                              \
      const vf_##SUFFIX a = load_##SUFFIX(s + 2 * k, W), m = load_##SUFFIX(mirror, W);         \
      const vf_##SUFFIX b = conjugate_##SUFFIX(__builtin_shufflevector(m, m, LCK_REVERSE_##W)); \
      const vf_##SUFFIX w = load_##SUFFIX(twiddles + 2 * k, W);                                \
      const vf_##SUFFIX e = (a + b) * scale;                                                   \
      const vf_##SUFFIX t = times_i_##SUFFIX(                                                  \
          complex_times_##SUFFIX(direction < 0 ? w : conjugate_##SUFFIX(w), (a - b) * scale), direction); \
      const vf_##SUFFIX back = conjugate_##SUFFIX(e - t);                                      \
      store_##SUFFIX(s + 2 * k, e + t, W);                                                     \
      store_##SUFFIX(mirror, __builtin_shufflevector(back, back, LCK_REVERSE_##W), W);         \
    }                                                                                          \
    return k;                                                                                  \
  }                                                                                            \
  TARGET static void unpack_real_spectra_##SUFFIX(float *spectra, long rows, long stride,      \
                                                  long half, const float *twiddles) {          \
    for (long r = 0; r < rows; r++) {                                                          \
      float *s = spectra + 2 * r * stride;                                                     \
      unpack_middle(s, half, twiddles, fold_##SUFFIX(s, half, twiddles, 0.5f, -1.0f));         \
    }                                                                                          \
  }                                                                                            \
  TARGET static void pack_real_spectra_##SUFFIX(float *spectra, long rows, long stride,        \
                                                long half, const float *twiddles) {            \
    for (long r = 0; r < rows; r++) {                                                          \
      float *s = spectra + 2 * r * stride;                                                     \
      pack_middle(s, half, twiddles, fold_##SUFFIX(s, half, twiddles, 1.0f, 1.0f));            \
    }                                                                                          \
  }                                                                                            \
                                                                                               \
  TARGET static void tap_sums_##SUFFIX(const float *v, float *out, long row0, long row1,       \
                                       long length, long channels, const float *taps,          \
                                       long lags, int anticausal, const float *bias,           \
                                       const float *skip) {                                    \
    for (long row = row0; row < row1; row++) {                                                 \
      const long position = row % length;                                                      \
      const long room = anticausal ? length - position : position + 1;                         \
      const long reach = lags < room ? lags : room;                                            \
      const long step = anticausal ? channels : -channels;                                     \
      const float *here = v + row * channels;                                                  \
      float *o = out + row * channels;                                                         \
      LCK_EACH_VECTOR(W, channels, {                                                           \
        vf_##SUFFIX sum = bias ? load_##SUFFIX(bias + i, c) : (vf_##SUFFIX){0};                \
        if (skip) sum += load_##SUFFIX(skip + i, c) * load_##SUFFIX(here + i, c);               \
        for (long k = 0; k < reach; k++)                                                       \
          sum += load_##SUFFIX(taps + k * channels + i, c) *                                   \
                 load_##SUFFIX(here + k * step + i, c);                                        \
        store_##SUFFIX(o + i, sum, c);                                                         \
      })                                                                                       \
    }                                                                                          \
  }                                                                                            \
  TARGET static void tap_gradient_sums_##SUFFIX(const float *g, const float *x, long row0,     \
                                                long row1, long length, long channels,         \
                                                long lags, float *sums, float *bias_sums) {    \
    memset(sums, 0, (size_t)(lags * channels) * sizeof(float));                                \
    if (bias_sums) memset(bias_sums, 0, (size_t)channels * sizeof(float));                     \
    for (long row = row0; row < row1; row++) {                                                 \
      const long position = row % length;                                                      \
      const long reach = lags < position + 1 ? lags : position + 1;                            \
      const float *gr = g + row * channels, *xr = x + row * channels;                          \
      LCK_EACH_VECTOR(W, channels, {                                                           \
        const vf_##SUFFIX gv = load_##SUFFIX(gr + i, c);                                       \
        if (bias_sums) store_##SUFFIX(bias_sums + i, load_##SUFFIX(bias_sums + i, c) + gv, c);  \
        for (long k = 0; k < reach; k++) {                                                     \
          float *sk = sums + k * channels + i;                                                 \
          store_##SUFFIX(sk, load_##SUFFIX(sk, c) + gv * load_##SUFFIX(xr - k * channels + i, c), \
                         c);                                                                   \
        }                                                                                      \
      })                                                                                       \
    }                                                                                          \
  }                                                                                            \
                                                                                               \
  static const lck_convolution_kernels kernels_##SUFFIX = {                                    \
      gather_##SUFFIX, scatter_##SUFFIX, product_##SUFFIX,                                     \
      accumulate_conjugate_product_##SUFFIX, unpack_real_spectra_##SUFFIX,                     \
      pack_real_spectra_##SUFFIX, tap_sums_##SUFFIX, tap_gradient_sums_##SUFFIX, 0};

LCK_FOR_EACH_ISA(LCK_CONVOLUTION_KERNELS)

int lck_convolution_kernels_for(lck_isa isa, lck_convolution_kernels *out) {
  LCK_RETURN_TABLE_FOR(kernels, isa, out)
}

#include "convolution_kernels.h"
#include "vector_loops.h"

// Each function is written once as a macro over a vector of W floats and instantiated per
// instruction set (16 lanes for AVX-512, 8 for AVX2, 4 for SSE2), as in CVectorMath.
//
// The transposes move W x W blocks: W loads of W consecutive values, log2(W) rounds of
// interleaving (row k with row k + W/2 into rows 2k and 2k + 1: after log2(W) rounds row j holds
// what was column j), W stores. Partial blocks are copied value by value.

// Lane patterns for __builtin_shufflevector, per width: even lanes twice, odd lanes twice,
// neighbours swapped, and the low and high halves of two vectors interleaved.
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
  /* Even lanes real parts, odd lanes imaginary: a b = a re(b) + swap(a) im(b) (-1, +1, ...). */ \
  TARGET static void product_##SUFFIX(const float *a, const float *b, float *out, long count,  \
                                      float scale, int conjugate) {                            \
    vf_##SUFFIX sign;                                                                          \
    for (int k = 0; k < W; k++) sign[k] = k % 2 ? 1.0f : -1.0f;                                \
    const float imaginary_scale = conjugate ? -scale : scale;                                  \
    LCK_EACH_VECTOR(W, 2 * count,                                                              \
      const vf_##SUFFIX av = load_##SUFFIX(a + i, c), bv = load_##SUFFIX(b + i, c);            \
      const vf_##SUFFIX re = __builtin_shufflevector(bv, bv, LCK_EVEN_##W) * scale;            \
      const vf_##SUFFIX im = __builtin_shufflevector(bv, bv, LCK_ODD_##W) * imaginary_scale;   \
      const vf_##SUFFIX swapped = __builtin_shufflevector(av, av, LCK_SWAP_##W);               \
      store_##SUFFIX(out + i, av * re + swapped * im * sign, c);                               \
    )                                                                                          \
  }                                                                                            \
                                                                                               \
  /* a conj(b) = a re(b) + swap(a) im(b) (+1, -1, ...). */                                     \
  TARGET static void accumulate_conjugate_product_##SUFFIX(const float *a, const float *b,     \
                                                           float *acc, long count) {           \
    vf_##SUFFIX sign;                                                                          \
    for (int k = 0; k < W; k++) sign[k] = k % 2 ? -1.0f : 1.0f;                                \
    LCK_EACH_VECTOR(W, 2 * count,                                                              \
      const vf_##SUFFIX av = load_##SUFFIX(a + i, c), bv = load_##SUFFIX(b + i, c);            \
      const vf_##SUFFIX re = __builtin_shufflevector(bv, bv, LCK_EVEN_##W);                    \
      const vf_##SUFFIX im = __builtin_shufflevector(bv, bv, LCK_ODD_##W);                     \
      const vf_##SUFFIX swapped = __builtin_shufflevector(av, av, LCK_SWAP_##W);               \
      store_##SUFFIX(acc + i, load_##SUFFIX(acc + i, c) + av * re + swapped * im * sign, c);   \
    )                                                                                          \
  }                                                                                            \
                                                                                               \
  static const lck_convolution_kernels kernels_##SUFFIX = {                                    \
      gather_##SUFFIX, scatter_##SUFFIX, product_##SUFFIX,                                     \
      accumulate_conjugate_product_##SUFFIX, 0};

LCK_CONVOLUTION_KERNELS(portable, 4, )
#if defined(__x86_64__)
LCK_CONVOLUTION_KERNELS(avx2, 8, __attribute__((target("avx2,fma"))))
LCK_CONVOLUTION_KERNELS(avx512, 16, __attribute__((target("avx512f"))))
#endif

int lck_convolution_kernels_for(lck_isa isa, lck_convolution_kernels *kernels) {
  if (!lck_cpu_supports(isa)) return 0;
  switch (isa) {
#if defined(__x86_64__)
  case LCK_ISA_AVX512: *kernels = kernels_avx512; break;
  case LCK_ISA_AVX2: *kernels = kernels_avx2; break;
#endif
  default: *kernels = kernels_portable; break;
  }
  kernels->isa = isa;
  return 1;
}

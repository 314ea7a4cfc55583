// A single-precision matrix product with AVX-512 or AVX2 micro-kernels, for machines whose BLAS
// runs narrower kernels than the CPU has, and for products it runs with a memory pass fewer
// than BLAS (a bias, a transposed A; see LongConvTensors' BLAS.swift for when it is used).
#ifndef MATRIX_KERNELS_H
#define MATRIX_KERNELS_H

#include "cpu_dispatch.h"

#ifdef __cplusplus
extern "C" {
#endif

/// The widest kernels `lck_sgemm` has for this CPU: `LCK_ISA_AVX512`, `LCK_ISA_AVX2` (with FMA),
/// or `LCK_ISA_PORTABLE` when it has none (then do not call it).
lck_isa lck_sgemm_widest_isa(void);

/// Row-major `C = alpha op(A) op(B) + beta C + 1 bias^T`, `op(A)` `[m, k]`, `op(B)` `[k, n]`,
/// on the calling thread with the `isa` kernels (AVX-512 or AVX2, which the CPU must run:
/// otherwise it aborts); `lda`, `ldb`, `ldc` are the row strides of `A`, `B`, `C` as stored.
/// `bias` is `n` values added to every row, or NULL for none. With `beta == 0`, `C` is not
/// read. `a_row_sums`, unless NULL, receives the `m` sums over the depth of op(A)'s rows (for
/// `dW = g^T x` the bias gradient, the column sums of `g`), each added up block by block
/// while the block is in cache.
void lck_sgemm(lck_isa isa, int transpose_a, int transpose_b, long m, long n, long k, float alpha,
               const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc,
               const float *bias, float *a_row_sums);

#ifdef __cplusplus
}
#endif

#endif

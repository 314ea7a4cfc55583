// A single-precision matrix product with AVX-512 micro-kernels, for machines whose BLAS runs
// narrower kernels than the CPU has (see LongConvTensors' BLAS.swift for when it is used).
#ifndef MATRIX_KERNELS_H
#define MATRIX_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Whether this machine runs `lck_sgemm` (AVX-512F).
int lck_sgemm_available(void);

/// Row-major `C = alpha op(A) op(B) + beta C`, `op(A)` `[m, k]`, `op(B)` `[k, n]`, on the
/// calling thread; `lda`, `ldb`, `ldc` are the row strides of `A`, `B`, `C` as stored. With
/// `beta == 0`, `C` is not read. Call only when `lck_sgemm_available()`.
void lck_sgemm(int transpose_a, int transpose_b, long m, long n, long k, float alpha,
               const float *a, long lda, const float *b, long ldb, float beta, float *c, long ldc);

#ifdef __cplusplus
}
#endif

#endif

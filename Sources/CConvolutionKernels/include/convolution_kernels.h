// The loops around the FFTs of LongConvTensors' long convolution, with the machine's widest
// vector instructions (AVX-512, AVX2 + FMA, or SSE2 everywhere else), chosen at run time:
// moving channels between a `[B, L, D]` tensor and the zero-padded rows FFTW transforms (a
// transpose), the products of spectra; and the direct convolution of short causal kernels.
#ifndef LCK_CONVOLUTION_KERNELS_H
#define LCK_CONVOLUTION_KERNELS_H

#include "cpu_dispatch.h"

#ifdef __cplusplus
extern "C" {
#endif

/// The functions of one instruction set. Counts are `>= 0`; arrays do not overlap except where
/// a function says so.
typedef struct {
  /// `rows[r stride + i] = x[i ld + r]` for `r < width`, `i < length`, and
  /// `rows[r stride + i] = 0` for `length <= i < padded`: `width` channels of `length` positions
  /// (positions `ld` apart) into zero-padded rows.
  void (*gather)(const float *x, long ld, long length, long width, float *rows, long stride,
                 long padded);
  /// `y[i ld + r] = rows[r stride + i]`, plus `skip[r] other[i ld + r]` when `skip` is not NULL,
  /// for `r < width`, `i < length`: the inverse of `gather`.
  void (*scatter)(const float *rows, long stride, long length, long width, float *y, long ld,
                  const float *skip, const float *other);
  /// `out = scale a b`, or `scale a conj(b)` when `conjugate`, over `count` interleaved complex
  /// values. `out` may be `a`.
  void (*product)(const float *a, const float *b, float *out, long count, float scale,
                  int conjugate);
  /// `acc += a conj(b)` over `count` interleaved complex values.
  void (*accumulate_conjugate_product)(const float *a, const float *b, float *acc, long count);
  /// The real DFT from a complex one of half the size, in place on `rows` rows `stride` complex
  /// values apart: each row's `half` values `Z`, the DFT of `z[n] = x[2n] + i x[2n + 1]` for a
  /// real row `x` of `N = 2 half`, become `X[0 ... half]`, the first `half + 1` values of the DFT
  /// of `x`. `twiddles` holds `exp(-2 pi i k / N)` for `k = 0 ... half / 2`, interleaved.
  void (*unpack_real_spectra)(float *spectra, long rows, long stride, long half,
                              const float *twiddles);
  /// The inverse of `unpack_real_spectra` times 2: `X[0 ... half]` (the imaginary parts of
  /// `X[0]` and `X[half]` are ignored) become the `half` values whose unnormalised inverse DFT
  /// `z` gives `N` times the inverse real DFT of `X` as `x[2n] + i x[2n + 1] = z[n]`.
  void (*pack_real_spectra)(float *spectra, long rows, long stride, long half,
                            const float *twiddles);
  /// The direct (short) convolution of rows `[row0, row1)` of `v`, rows of `channels` values
  /// that are sequences of `length` positions one after another (row `r` is position
  /// `r % length`): `out[r] = bias + skip v[r] + sum_k taps[k] v[r -/+ k]` over the lags
  /// `k < lags` that stay in the row's sequence, `-` (causal) or `+` when `anticausal` (the
  /// adjoint); `taps` is `[lags, channels]`, `bias` and `skip` `[channels]` or NULL.
  void (*tap_sums)(const float *v, float *out, long row0, long row1, long length, long channels,
                   const float *taps, long lags, int anticausal, const float *bias,
                   const float *skip);
  /// The taps' gradient over rows `[row0, row1)`: `sums[k, c] = sum_r g[r, c] x[r - k, c]` over
  /// the rows whose position is at least `k` (`sums` `[lags, channels]`), and, unless NULL,
  /// `bias_sums[c] = sum_r g[r, c]`; both overwritten.
  void (*tap_gradient_sums)(const float *g, const float *x, long row0, long row1, long length,
                            long channels, long lags, float *sums, float *bias_sums);
  lck_isa isa;
} lck_convolution_kernels;

/// The functions of `isa` into `kernels`; 0 (and `kernels` untouched) when this CPU lacks `isa`.
int lck_convolution_kernels_for(lck_isa isa, lck_convolution_kernels *kernels);

#ifdef __cplusplus
}
#endif

#endif

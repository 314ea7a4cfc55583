// Element-wise activations over Float32 arrays with the machine's widest vector instructions
// (AVX-512, AVX2 + FMA, or SSE2 everywhere else), chosen at run time: the loops LongConvTensors'
// activations spend their time in. The formulas are LongConvTensors' own (`FastMath.exp`,
// `SiLUFunction`, `GELUTanhFunction`), written once here over a vector type.
#ifndef LCK_VECTOR_MATH_H
#define LCK_VECTOR_MATH_H

#include "cpu_dispatch.h"

#ifdef __cplusplus
extern "C" {
#endif

/// The functions of one instruction set. Every function takes element counts `n >= 0` and
/// arrays that do not overlap, except that an output may be its own input.
typedef struct {
  /// `y = exp(x)` as `FastMath.exp` (inputs clamped to [-87.3, 88.3], NaN kept).
  void (*exp)(const float *x, float *y, long n);
  /// `y = x sigmoid(x)`.
  void (*silu)(const float *x, float *y, long n);
  /// `dx = g s (1 + x (1 - s))`, `s = sigmoid(x)`.
  void (*silu_backward)(const float *g, const float *x, float *dx, long n);
  /// `y = a sigmoid(a) b`.
  void (*silu_gate)(const float *a, const float *b, float *y, long n);
  /// `da = g b s (1 + a (1 - s))`, `db = g a s` (`s = sigmoid(a)`); either output may be NULL.
  void (*silu_gate_backward)(const float *g, const float *a, const float *b, float *da, float *db,
                             long n);
  /// `y = x sigmoid(2u)`, `u = sqrt(2/pi) (x + 0.044715 x^3)`: GELU's tanh form.
  void (*gelu_tanh)(const float *x, float *y, long n);
  /// `dx = g (s + 2 x s (1 - s) sqrt(2/pi) (1 + 3 0.044715 x^2))`, `s = sigmoid(2u)`.
  void (*gelu_tanh_backward)(const float *g, const float *x, float *dx, long n);
  lck_isa isa;
} lck_vector_math;

/// The functions of `isa` into `math`; 0 (and `math` untouched) when this CPU lacks `isa`.
int lck_vector_math_for(lck_isa isa, lck_vector_math *math);

#ifdef __cplusplus
}
#endif

#endif

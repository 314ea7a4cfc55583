#include "vector_math.h"
#include "vector_loops.h"

// Each function is written once as a macro over a vector of W floats (clang's vector
// extensions) and instantiated per instruction set: 16 lanes for AVX-512, 8 for AVX2, 4 for the
// SSE2 every x86-64 has (and whatever the compiler makes of 4 lanes elsewhere). Tails go
// through a zero-padded vector, so no loop reads or writes past `n`.

#define LCK_VECTOR_MATH(SUFFIX, W, TARGET)                                                      \
  LCK_VECTOR_TYPES(SUFFIX, W, TARGET)                                                          \
                                                                                               \
  /* FastMath.exp: x = n ln2 + r, e^r by Cephes' polynomial, 2^n into the exponent bits. */    \
  TARGET static inline vf_##SUFFIX exp_v_##SUFFIX(vf_##SUFFIX x) {                             \
    typedef vf_##SUFFIX vf;                                                                    \
    typedef vi_##SUFFIX vi;                                                                    \
    /* Clamped by selects (a comparison with NaN is false, so NaN stays NaN). */               \
    vi high = x > 88.3f, low = x < -87.3f;                                                     \
    x = (vf)(((vi)x & ~high) | ((vi)LCK_SPLAT(vf, 88.3f) & high));                             \
    x = (vf)(((vi)x & ~low) | ((vi)LCK_SPLAT(vf, -87.3f) & low));                              \
    const vf t = x * 1.44269504f + 12582912.0f;                                                \
    const vf n = t - 12582912.0f;                                                              \
    vf r = x - n * 0.693359375f;                                                               \
    r = r - n * -2.12194440e-4f;                                                               \
    const vf r2 = r * r;                                                                       \
    vf p = LCK_SPLAT(vf, 1.98756915e-4f);                                                      \
    p = p * r + 1.39819995e-3f;                                                                \
    p = p * r + 8.3334519e-3f;                                                                 \
    p = p * r + 4.16657959e-2f;                                                                \
    p = p * r + 1.66666655e-1f;                                                                \
    p = p * r + 5.00000012e-1f;                                                                \
    const vf er = p * r2 + r + 1.0f;                                                           \
    return er * (vf)(((vi)t + 127) << 23);                                                     \
  }                                                                                            \
  TARGET static inline vf_##SUFFIX sigmoid_v_##SUFFIX(vf_##SUFFIX x) {                         \
    return 1.0f / (1.0f + exp_v_##SUFFIX(-x));                                                 \
  }                                                                                            \
  /* sigmoid(2u) = (1 + tanh(u)) / 2, u = sqrt(2/pi) (x + 0.044715 x^3). */                    \
  TARGET static inline vf_##SUFFIX gelu_s_##SUFFIX(vf_##SUFFIX x) {                            \
    return sigmoid_v_##SUFFIX(2.0f * 0.7978845608028654f * (x + 0.044715f * x * x * x));       \
  }                                                                                            \
                                                                                               \
  /* SiLU's derivative from x and s = sigmoid(x): s (1 + x (1 - s)). */                        \
  TARGET static inline vf_##SUFFIX silu_derivative_##SUFFIX(vf_##SUFFIX v, vf_##SUFFIX s) {    \
    return s * (1.0f + v * (1.0f - s));                                                        \
  }                                                                                            \
                                                                                               \
  TARGET static void exp_##SUFFIX(const float *x, float *y, long n) {                          \
    LCK_EACH_VECTOR(W, n,                                                                     \
      store_##SUFFIX(y + i, exp_v_##SUFFIX(load_##SUFFIX(x + i, c)), c);                       \
    )                                                                                          \
  }                                                                                            \
  TARGET static void silu_##SUFFIX(const float *x, float *y, long n) {                         \
    LCK_EACH_VECTOR(W, n,                                                                     \
      const vf_##SUFFIX v = load_##SUFFIX(x + i, c);                                           \
      store_##SUFFIX(y + i, v * sigmoid_v_##SUFFIX(v), c);                                     \
    )                                                                                          \
  }                                                                                            \
  TARGET static void silu_backward_##SUFFIX(const float *g, const float *x, float *dx,         \
                                            long n) {                                          \
    LCK_EACH_VECTOR(W, n,                                                                     \
      const vf_##SUFFIX v = load_##SUFFIX(x + i, c), s = sigmoid_v_##SUFFIX(v);                \
      store_##SUFFIX(dx + i, load_##SUFFIX(g + i, c) * silu_derivative_##SUFFIX(v, s), c);     \
    )                                                                                          \
  }                                                                                            \
  TARGET static void silu_gate_##SUFFIX(const float *a, const float *b, float *y, long n) {    \
    LCK_EACH_VECTOR(W, n,                                                                     \
      const vf_##SUFFIX v = load_##SUFFIX(a + i, c);                                           \
      store_##SUFFIX(y + i, v * sigmoid_v_##SUFFIX(v) * load_##SUFFIX(b + i, c), c);           \
    )                                                                                          \
  }                                                                                            \
  TARGET static void silu_gate_backward_##SUFFIX(const float *g, const float *a,               \
                                                 const float *b, float *da, float *db,         \
                                                 long n) {                                     \
    LCK_EACH_VECTOR(W, n,                                                                     \
      const vf_##SUFFIX v = load_##SUFFIX(a + i, c), s = sigmoid_v_##SUFFIX(v);                \
      const vf_##SUFFIX gv = load_##SUFFIX(g + i, c);                                          \
      if (da) store_##SUFFIX(da + i, gv * load_##SUFFIX(b + i, c) * silu_derivative_##SUFFIX(v, s), c); \
      if (db) store_##SUFFIX(db + i, gv * v * s, c);                                           \
    )                                                                                          \
  }                                                                                            \
  TARGET static void gelu_tanh_##SUFFIX(const float *x, float *y, long n) {                    \
    LCK_EACH_VECTOR(W, n,                                                                     \
      const vf_##SUFFIX v = load_##SUFFIX(x + i, c);                                           \
      store_##SUFFIX(y + i, v * gelu_s_##SUFFIX(v), c);                                        \
    )                                                                                          \
  }                                                                                            \
  TARGET static void gelu_tanh_backward_##SUFFIX(const float *g, const float *x, float *dx,    \
                                                 long n) {                                     \
    LCK_EACH_VECTOR(W, n,                                                                     \
      const vf_##SUFFIX v = load_##SUFFIX(x + i, c), s = gelu_s_##SUFFIX(v);                   \
      const vf_##SUFFIX d =                                                                    \
          s + 2.0f * v * s * (1.0f - s) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * v * v); \
      store_##SUFFIX(dx + i, load_##SUFFIX(g + i, c) * d, c);                                  \
    )                                                                                          \
  }                                                                                            \
  static const lck_vector_math math_##SUFFIX = {                                               \
      exp_##SUFFIX,       silu_##SUFFIX,      silu_backward_##SUFFIX,      silu_gate_##SUFFIX, \
      silu_gate_backward_##SUFFIX, gelu_tanh_##SUFFIX, gelu_tanh_backward_##SUFFIX, 0};

LCK_FOR_EACH_ISA(LCK_VECTOR_MATH)

int lck_vector_math_for(lck_isa isa, lck_vector_math *out) {
  LCK_RETURN_TABLE_FOR(math, isa, out)
}

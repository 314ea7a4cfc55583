// Loops over float arrays written once for every vector width (clang's vector extensions), shared
// by the C kernel targets that instantiate them per instruction set.
#ifndef LCK_VECTOR_LOOPS_H
#define LCK_VECTOR_LOOPS_H

#include <string.h>

#include "cpu_dispatch.h"

/// A vector of type `V` with every lane `s`.
#define LCK_SPLAT(V, s) ((V){0} + (s))

/// Runs the body (the macro's last argument) with `i` at the start of each vector of W elements
/// of `n` and `c` its element count: whole vectors first, where `c` is the constant W (so loads
/// and stores are plain vector moves; a count the compiler cannot see calls memcpy for every
/// vector), then the tail once.
#define LCK_EACH_VECTOR(W, n, ...)                                                             \
  {                                                                                            \
    long i = 0;                                                                                \
    for (; i + W <= n; i += W) {                                                               \
      const long c = W;                                                                        \
      __VA_ARGS__                                                                              \
    }                                                                                          \
    if (i < n) {                                                                               \
      const long c = n - i;                                                                    \
      __VA_ARGS__                                                                              \
    }                                                                                          \
  }

/// `vf_SUFFIX` (W floats), `vi_SUFFIX` (W ints), and `load_SUFFIX` / `store_SUFFIX` of the first
/// `count <= W` lanes (a shorter load is zero-filled; nothing past `count` is read or written).
#define LCK_VECTOR_TYPES(SUFFIX, W, TARGET)                                                    \
  typedef float vf_##SUFFIX __attribute__((vector_size(4 * W)));                               \
  typedef int vi_##SUFFIX __attribute__((vector_size(4 * W)));                                 \
  TARGET static inline vf_##SUFFIX load_##SUFFIX(const float *p, long count) {                 \
    vf_##SUFFIX v = {0};                                                                       \
    memcpy(&v, p, (size_t)count * sizeof(float));                                              \
    return v;                                                                                  \
  }                                                                                            \
  TARGET static inline void store_##SUFFIX(float *p, vf_##SUFFIX v, long count) {              \
    memcpy(p, &v, (size_t)count * sizeof(float));                                             \
  }

/// Instantiates `MACRO(SUFFIX, W, TARGET)` once per instruction set the kernel targets are
/// written for: `portable` (4 lanes: SSE2 on x86-64, whatever the compiler makes of it
/// elsewhere) and, on x86-64, `avx2` (8 lanes, with FMA) and `avx512` (16 lanes).
#if defined(__x86_64__)
#define LCK_FOR_EACH_ISA(MACRO)                                                                \
  MACRO(portable, 4, )                                                                         \
  MACRO(avx2, 8, __attribute__((target("avx2,fma"))))                                          \
  MACRO(avx512, 16, __attribute__((target("avx512f"))))
#define LCK_WIDE_TABLE_CASES(PREFIX, out)                                                      \
  case LCK_ISA_AVX512: *(out) = PREFIX##_avx512; break;                                        \
  case LCK_ISA_AVX2: *(out) = PREFIX##_avx2; break;
#else
#define LCK_FOR_EACH_ISA(MACRO) MACRO(portable, 4, )
#define LCK_WIDE_TABLE_CASES(PREFIX, out)
#endif

/// The body of a target's lookup `int ..._for(lck_isa isa, TABLE *out)` over the tables
/// `PREFIX##_portable`, `_avx2`, `_avx512` its `LCK_FOR_EACH_ISA` made: copies the one for
/// `isa` into `*out`, sets its `isa` field and returns 1; returns 0 (`*out` untouched) when this
/// CPU lacks `isa`.
#define LCK_RETURN_TABLE_FOR(PREFIX, isa, out)                                                 \
  if (!lck_cpu_supports(isa)) return 0;                                                        \
  switch (isa) {                                                                               \
    LCK_WIDE_TABLE_CASES(PREFIX, out)                                                          \
  default: *(out) = PREFIX##_portable; break;                                                  \
  }                                                                                            \
  (out)->isa = (isa);                                                                          \
  return 1;

#endif

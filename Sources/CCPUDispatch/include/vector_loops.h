// Loops over float arrays written once for every vector width (clang's vector extensions), shared
// by the C kernel targets that instantiate them per instruction set.
#ifndef LCK_VECTOR_LOOPS_H
#define LCK_VECTOR_LOOPS_H

#include <string.h>

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

#endif

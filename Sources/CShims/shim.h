// Small pieces of C the Swift code needs: glibc's malloc tuning and cache prefetch hints.
#include <malloc.h>

/// Hints that `address` will be read soon.
static inline void lck_prefetch_read(const void *address) { __builtin_prefetch(address, 0, 3); }

/// Hints that `address` will be written soon.
static inline void lck_prefetch_write(void *address) { __builtin_prefetch(address, 1, 3); }

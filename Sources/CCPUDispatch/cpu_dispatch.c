#include "cpu_dispatch.h"

#include <pthread.h>
#include <string.h>

static lck_isa detected = LCK_ISA_PORTABLE;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) {
    detected = LCK_ISA_AVX512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    detected = LCK_ISA_AVX2;
  }
#endif
}

lck_isa lck_cpu_isa(void) {
  pthread_once(&detect_once, detect);
  return detected;
}

int lck_cpu_supports(lck_isa isa) { return isa <= lck_cpu_isa(); }

const char *lck_isa_name(lck_isa isa) {
  switch (isa) {
  case LCK_ISA_AVX512: return "avx512";
  case LCK_ISA_AVX2: return "avx2";
  default: return "portable";
  }
}

int lck_isa_named(const char *name, lck_isa *isa) {
  for (int i = LCK_ISA_PORTABLE; i <= LCK_ISA_AVX512; i++) {
    if (strcmp(name, lck_isa_name((lck_isa)i)) == 0) {
      *isa = (lck_isa)i;
      return 1;
    }
  }
  return 0;
}

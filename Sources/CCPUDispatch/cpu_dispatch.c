#include "cpu_dispatch.h"

#include <pthread.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static lck_isa detected = LCK_ISA_PORTABLE;
static char vendor[13];
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect(void) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned int highest, ebx, ecx, edx;
  if (__get_cpuid(0, &highest, &ebx, &ecx, &edx)) {
    // Leaf 0 spells the vendor in EBX, EDX, ECX.
    memcpy(vendor, &ebx, 4);
    memcpy(vendor + 4, &edx, 4);
    memcpy(vendor + 8, &ecx, 4);
  }
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

const char *lck_cpu_vendor(void) {
  pthread_once(&detect_once, detect);
  return vendor;
}

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

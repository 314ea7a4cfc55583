#ifndef LCK_CPU_DISPATCH_H
#define LCK_CPU_DISPATCH_H

/// The vector instruction sets the toolkit's C kernels are written for, narrowest first.
typedef enum {
  LCK_ISA_PORTABLE = 0,  ///< plain C, any CPU
  LCK_ISA_AVX2 = 1,      ///< AVX2 with FMA
  LCK_ISA_AVX512 = 2,    ///< AVX-512 F
} lck_isa;

/// The widest instruction set this CPU runs (detected once): the one place every C kernel
/// (the decoding step's, the matrix product's) asks.
lck_isa lck_cpu_isa(void);

/// Whether this CPU runs `isa`.
int lck_cpu_supports(lck_isa isa);

/// The CPU's vendor as `cpuid` names it (`"GenuineIntel"`, `"AuthenticAMD"`, ...), or `""` on
/// other architectures.
const char *lck_cpu_vendor(void);

/// `"portable"`, `"avx2"` or `"avx512"`.
const char *lck_isa_name(lck_isa isa);

/// The instruction set named `name` (as `lck_isa_name` writes it) into `isa`; 0 for an unknown name.
int lck_isa_named(const char *name, lck_isa *isa);

#endif

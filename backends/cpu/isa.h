/* Which SIMD instruction sets the host (CPU and OS) can run, detected once. */
#ifndef PA_CPU_ISA_H
#define PA_CPU_ISA_H

#include "kernels.h"

typedef enum pa_cpu_isa {
  PA_ISA_SCALAR = 0,
  PA_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
  PA_ISA_AVX512 = 2, /* AVX-512 F, BW, VL, DQ */
  PA_ISA_NEON = 3,
  PA_ISA_AVX512BF16 = 4, /* AVX-512 + AVX512_BF16 (vdpbf16ps for bf16 K/V tiles) */
  PA_ISA_COUNT
} pa_cpu_isa;

const char *pa_cpu_isa_name(pa_cpu_isa isa);
/* -1 for an unknown name. */
int pa_cpu_isa_parse(const char *name);
/* Host supports it (CPU flags and OS register state). */
int pa_cpu_isa_host(pa_cpu_isa isa);
/* The kernel table built into this library for isa, or NULL if not built. */
const pa_cpu_kernels *pa_cpu_isa_kernels(pa_cpu_isa isa);
/* The best ISA that is both built and supported by the host. */
pa_cpu_isa pa_cpu_isa_best(void);

#endif

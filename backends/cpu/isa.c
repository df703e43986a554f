/* ISA detection: cpuid for the CPU's flags, xgetbv for whether the OS saves
 * the wide registers (a CPU with AVX-512 under an OS that does not enable it
 * must take the AVX2 or scalar path). */
#include "isa.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#define PA_X86 1
#endif

static const char *const isa_names[PA_ISA_COUNT] = {"scalar", "avx2", "avx512", "neon",
                                                    "avx512bf16"};
static int host_ok[PA_ISA_COUNT];
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

#ifdef PA_X86
static unsigned long long xgetbv0(void) {
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}
#endif

static void detect(void) {
  host_ok[PA_ISA_SCALAR] = 1;
#ifdef PA_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
  if (!osxsave || !avx) return;
  unsigned long long xcr0 = xgetbv0();
  if ((xcr0 & 0x6) != 0x6) return; /* XMM and YMM state */
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return;
  int avx2 = (b >> 5) & 1;
  host_ok[PA_ISA_AVX2] = avx2 && fma && f16c;
  int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  host_ok[PA_ISA_AVX512] = host_ok[PA_ISA_AVX2] && f && dq && bw && vl &&
                           (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM0-15 upper, ZMM16-31 */
  if (host_ok[PA_ISA_AVX512] && __get_cpuid_count(7, 1, &a, &b, &c, &d))
    host_ok[PA_ISA_AVX512BF16] = (a >> 5) & 1;
#elif defined(__aarch64__)
  host_ok[PA_ISA_NEON] = 1; /* baseline on aarch64 */
#endif
}

const char *pa_cpu_isa_name(pa_cpu_isa isa) {
  return (unsigned)isa < PA_ISA_COUNT ? isa_names[isa] : "unknown";
}

int pa_cpu_isa_parse(const char *name) {
  for (int i = 0; i < PA_ISA_COUNT; i++)
    if (strcmp(name, isa_names[i]) == 0) return i;
  return -1;
}

int pa_cpu_isa_host(pa_cpu_isa isa) {
  pthread_once(&detect_once, detect);
  return (unsigned)isa < PA_ISA_COUNT && host_ok[isa];
}

#ifdef PA_CPU_HAVE_AVX512BF16
/* The AVX-512 table plus the bf16 dot-product kernels. */
static pa_cpu_kernels bf16_table;
static pthread_once_t bf16_once = PTHREAD_ONCE_INIT;
static void make_bf16(void) {
  bf16_table = pa_cpu_kernels_avx512;
  bf16_table.name = "avx512bf16";
  bf16_table.bf16 = &pa_cpu_bf16_avx512;
}
#endif

const pa_cpu_kernels *pa_cpu_isa_kernels(pa_cpu_isa isa) {
  switch (isa) {
  case PA_ISA_SCALAR: return &pa_cpu_kernels_scalar;
#ifdef PA_CPU_HAVE_AVX2
  case PA_ISA_AVX2: return &pa_cpu_kernels_avx2;
#endif
#ifdef PA_CPU_HAVE_AVX512
  case PA_ISA_AVX512: return &pa_cpu_kernels_avx512;
#endif
#ifdef PA_CPU_HAVE_NEON
  case PA_ISA_NEON: return &pa_cpu_kernels_neon;
#endif
#ifdef PA_CPU_HAVE_AVX512BF16
  case PA_ISA_AVX512BF16: pthread_once(&bf16_once, make_bf16); return &bf16_table;
#endif
  default: return NULL;
  }
}

pa_cpu_isa pa_cpu_isa_best(void) {
  static const pa_cpu_isa order[] = {PA_ISA_AVX512BF16, PA_ISA_AVX512, PA_ISA_AVX2, PA_ISA_NEON};
  for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
    if (pa_cpu_isa_kernels(order[i]) && pa_cpu_isa_host(order[i])) return order[i];
  return PA_ISA_SCALAR;
}

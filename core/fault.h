/* Test-only fault injection: with -Dfault_injection=true (meson option,
 * off by default, so release builds hold no trace of it) every allocation of
 * the library (host memory, device buffers, OpenCL program builds) first asks
 * pa_fault_hit(), and tests/faults.c makes the N-th one fail. */
#ifndef PA_FAULT_H
#define PA_FAULT_H

#include <stdbool.h>

#ifdef PA_FAULT_INJECTION
/* True when the caller's allocation must fail (the armed hit); thread-safe. */
bool pa_fault_hit(void);
/* Arms the n-th hit from now (n >= 1) to fail, once; 0 disarms. Resets the count. */
void pa_fault_arm(long n);
/* Hits since the last pa_fault_arm. */
long pa_fault_hits(void);
#else
static inline bool pa_fault_hit(void) { return false; }
#endif

/* expr (an allocation yielding a pointer) or NULL when the fault hits. */
#define PA_FAULT_OR(expr) (pa_fault_hit() ? NULL : (expr))

#endif

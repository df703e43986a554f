/* See fault.h. Compiled only with -Dfault_injection=true. */
#include "fault.h"

#include <stdatomic.h>

static atomic_long armed, hits;

bool pa_fault_hit(void) {
  long n = atomic_fetch_add(&hits, 1) + 1;
  return n == atomic_load(&armed);
}

void pa_fault_arm(long n) {
  atomic_store(&armed, 0);
  atomic_store(&hits, 0);
  atomic_store(&armed, n);
}

long pa_fault_hits(void) { return atomic_load(&hits); }

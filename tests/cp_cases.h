/* Context-parallel test cases, run on every rank of a pa_cp (MPI or NCCL). */
#ifndef PA_TEST_CP_CASES_H
#define PA_TEST_CP_CASES_H

#include <stdbool.h>

#include "polyattn_cp.h"

/* Runs every case (quick: one per combine and ring shape) on ctx through
 * cp; returns this rank's failures (printed on stderr) and the number of
 * checks made. Collective. */
int cp_cases_run(pa_context *ctx, pa_cp *cp, bool quick, int *checks);

#endif

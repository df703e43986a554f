/* The run order of a plan's work list (core/schedule.c). */
#ifndef PA_CORE_SCHEDULE_H
#define PA_CORE_SCHEDULE_H
#include "backend.h"

/* Orders p->work for running, from p->choice: heaviest first by
 * rows x (keys + item_overhead); where the choice groups heads
 * (head_group_rows), items alike but for the KV head become head groups of
 * at most head_group_max, run in (request, KV head) runs, heaviest run first.
 * Sets every item's group field. */
pa_status pa_schedule_order(pa_context *ctx, pa_plan *p);

#endif

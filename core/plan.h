/* Planning shared by attention and MLA: batch -> requests, split selection,
 * work list, combine list, workspace layout, schedule upload. */
#ifndef PA_CORE_PLAN_H
#define PA_CORE_PLAN_H
#include "backend.h"
#include "tensor.h"

/* Validates the batch and builds everything in p from p->desc (already
 * validated), p->op and p->group. On failure p is left for pa_plan_destroy. */
pa_status pa_plan_build(pa_plan *p, const pa_batch *batch);

/* The checks every run starts with: a plan made for `op`, args present, and
 * the workspace run will use (the caller's, checked, or the plan's own). */
pa_status pa_plan_begin_run(pa_plan *p, pa_op op, const void *args, pa_buffer *user,
                            pa_buffer **ws);

/* The workspace is used from its first byte, so it may not share a buffer
 * with any tensor of the run (the plan's own workspace never does). */
pa_status pa_check_workspace_apart(const pa_plan *p, const pa_buffer *ws, const pa_named *outs,
                                   int n_outs, const pa_named *ins, int n_ins);

/* Checks the used entries of a host-visible block table (CPU backend) against
 * num_pages; a no-op where the table lives on a device. */
/* Core-internal helpers used by attention.c and mla.c. */
pa_status pa_plan_new(pa_context *ctx, pa_op op, pa_plan **out);
pa_status pa_check_block_table(const pa_plan *p, const pa_tensor *bt, int64_t num_pages);

pa_status pa_plan_check_pages(const pa_plan *p, const pa_tensor *block_table, int64_t num_pages,
                              const char *name);
#endif

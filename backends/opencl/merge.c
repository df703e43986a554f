/* Merge states (pair, fixed count, variable count) and the split-KV combine of
 * a plan; the merge rule itself is in kernels/merge.cl. */
#include <stdio.h>

#include "cl_backend.h"

#define MERGE_THREADS 64

pa_status pa_cl_combine(pa_context *ctx, const pa_plan *plan, cl_kernel k, const pa_tensor *out,
                        const pa_tensor *lse, const pa_tensor *sinks, pa_buffer *ws) {
  const pa_attention_desc *d = &plan->desc;
  int64_t sb, s1, sh;
  pa_cl_args g = {.k = k};
  pa_cl_arg_mem(&g, ws);
  pa_cl_arg_long(&g, (int64_t)(plan->ws_o_offset / 4));
  pa_cl_arg_long(&g, (int64_t)(plan->ws_lse_offset / 4));
  pa_cl_arg_int(&g, d->head_dim_v);
  pa_cl_arg_mem(&g, plan->schedule);
  pa_cl_arg_int(&g, (int)(plan->sched_req_off / 4));
  pa_cl_arg_int(&g, (int)(plan->sched_combine_off / 4));
  pa_cl_row_strides(out, &sb, &s1, &sh, 1);
  pa_cl_arg_mem(&g, out->buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(out));
  pa_cl_arg_long(&g, sb), pa_cl_arg_long(&g, s1), pa_cl_arg_long(&g, sh);
  sb = s1 = sh = 0;
  if (lse) pa_cl_row_strides(lse, &sb, &s1, &sh, 0);
  pa_cl_arg_mem(&g, lse ? lse->buf : NULL);
  pa_cl_arg_long(&g, lse ? pa_cl_elem_off(lse) : 0);
  pa_cl_arg_long(&g, sb), pa_cl_arg_long(&g, s1), pa_cl_arg_long(&g, sh);
  pa_cl_arg_mem(&g, sinks ? sinks->buf : NULL);
  pa_cl_arg_long(&g, sinks ? pa_cl_elem_off(sinks) : 0);
  pa_cl_arg_long(&g, sinks ? sinks->stride[0] : 0);
  pa_cl_arg_int(&g, d->num_q_heads);
  /* MLA q/out are always ragged [T, H, D] */
  pa_cl_arg_int(&g, out->ndim == 3);
  pa_cl_arg_int(&g, (lse ? 1 : 0) | (sinks ? 4 : 0));
  if (g.err != CL_SUCCESS)
    return pa_fail(ctx, PA_ERR_BACKEND, "opencl: combine argument %u: %s (%d)", g.bad,
                   pa_cl_error_name(g.err), (int)g.err);
  size_t local[2] = {MERGE_THREADS, 1};
  size_t global[2] = {(size_t)plan->num_combine * MERGE_THREADS, (size_t)d->num_q_heads};
  cl_int e = clEnqueueNDRangeKernel(pa_cl(ctx)->queue, k, 2, NULL, global, local, 0, NULL, NULL);
  return e == CL_SUCCESS ? PA_OK : pa_cl_fail(ctx, e, "enqueue pa_combine");
}

static void arg_tensor3(pa_cl_args *g, const pa_tensor *t) { /* [R, H, D] */
  pa_cl_arg_mem(g, t->buf);
  pa_cl_arg_long(g, pa_cl_elem_off(t));
  pa_cl_arg_long(g, t->stride[0]);
  pa_cl_arg_long(g, t->stride[1]);
}

static void arg_lse_out(pa_cl_args *g, const pa_tensor *lo) {
  bool has = lo && lo->buf;
  pa_cl_arg_mem(g, has ? lo->buf : NULL);
  pa_cl_arg_long(g, has ? pa_cl_elem_off(lo) : 0);
  pa_cl_arg_long(g, has ? lo->stride[0] : 0);
  pa_cl_arg_long(g, has ? lo->stride[1] : 0);
  pa_cl_arg_int(g, has);
}

pa_status pa_cl_merge(pa_context *ctx, const pa_merge_launch *m) {
  pa_cl_state *st = pa_cl(ctx);
  const pa_tensor *in = m->mode == PA_MERGE_PAIR ? m->a : m->v;
  char defs[128];
  snprintf(defs, sizeof defs, "-DV_DT=%d -DB_DT=%d -DO_DT=%d", (int)in->dtype,
           (int)(m->mode == PA_MERGE_PAIR ? m->b->dtype : in->dtype), (int)m->out->dtype);
  cl_kernel k;
  pa_status s = pa_cl_kernel(ctx, "merge.cl", defs, m->mode == PA_MERGE_PAIR ? "pa_merge_pair" : "pa_merge_list", &k);
  if (s != PA_OK) return s;
  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = k};
  if (m->mode == PA_MERGE_PAIR) {
    arg_tensor3(&g, m->a), arg_tensor3(&g, m->lse_a);
    arg_tensor3(&g, m->b), arg_tensor3(&g, m->lse_b);
  } else {
    bool fixed = m->mode == PA_MERGE_FIXED; /* v [T, N, H, D] / varlen v [P, H, D] */
    const pa_tensor *v = m->v, *sc = m->s;
    pa_cl_arg_mem(&g, v->buf);
    pa_cl_arg_long(&g, pa_cl_elem_off(v));
    pa_cl_arg_long(&g, fixed ? v->stride[0] : 0);
    pa_cl_arg_long(&g, fixed ? v->stride[1] : v->stride[0]);
    pa_cl_arg_long(&g, fixed ? v->stride[2] : v->stride[1]);
    pa_cl_arg_mem(&g, sc->buf);
    pa_cl_arg_long(&g, pa_cl_elem_off(sc));
    pa_cl_arg_long(&g, fixed ? sc->stride[0] : 0);
    pa_cl_arg_long(&g, fixed ? sc->stride[1] : sc->stride[0]);
    pa_cl_arg_long(&g, fixed ? sc->stride[2] : sc->stride[1]);
    pa_cl_arg_mem(&g, fixed ? NULL : m->indptr->buf);
    pa_cl_arg_long(&g, fixed ? 0 : pa_cl_elem_off(m->indptr));
    pa_cl_arg_int(&g, fixed ? (int)m->states : -1);
  }
  arg_tensor3(&g, m->out);
  arg_lse_out(&g, m->lse_out);
  pa_cl_arg_int(&g, (int)m->dim);
  if (g.err != CL_SUCCESS) {
    s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: merge argument %u: %s (%d)", g.bad,
                pa_cl_error_name(g.err), (int)g.err);
  } else {
    size_t local[2] = {MERGE_THREADS, 1};
    size_t global[2] = {(size_t)m->rows * MERGE_THREADS, (size_t)m->heads};
    cl_int e = clEnqueueNDRangeKernel(st->queue, k, 2, NULL, global, local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, "enqueue merge");
  }
  pthread_mutex_unlock(&st->lock);
  return s;
}

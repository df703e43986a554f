/* MLA decode run: kernels/attention.cl built with MLA=1 (K = ckv || kpe from two
 * views, V = the ckv columns of the K tile), then the split-KV combine. */
#include "cl_backend.h"

pa_status pa_cl_mla(pa_context *ctx, const pa_plan *plan, const pa_mla_args *a, pa_buffer *ws) {
  const pa_cl_plan *cp = plan->backend_data;
  const pa_attention_desc *d = &plan->desc;
  if (!plan->num_work) return PA_OK;
  pa_cl_state *st = pa_cl(ctx);
  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = cp->attention};
  const bool paged = d->page_size > 0;

  pa_cl_arg_mem(&g, a->q_nope.buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(&a->q_nope));
  pa_cl_arg_long(&g, 0), pa_cl_arg_long(&g, a->q_nope.stride[0]), pa_cl_arg_long(&g, a->q_nope.stride[1]);
  pa_cl_arg_mem(&g, a->q_pe.buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(&a->q_pe));
  pa_cl_arg_long(&g, a->q_pe.stride[0]), pa_cl_arg_long(&g, a->q_pe.stride[1]);

  /* ckv [pages, page_size, Dc]: (batch, token, head, page) strides. */
  pa_cl_arg_mem(&g, a->ckv.buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(&a->ckv));
  pa_cl_arg_long(&g, 0), pa_cl_arg_long(&g, paged ? a->ckv.stride[1] : a->ckv.stride[0]);
  pa_cl_arg_long(&g, 0), pa_cl_arg_long(&g, paged ? a->ckv.stride[0] : 0);
  pa_cl_arg_mem(&g, a->kpe.buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(&a->kpe));
  pa_cl_arg_long(&g, paged ? a->kpe.stride[1] : a->kpe.stride[0]);
  pa_cl_arg_long(&g, paged ? a->kpe.stride[0] : 0);
  pa_cl_arg_mem(&g, NULL); /* v: the ckv columns of the K tile */
  for (int i = 0; i < 5; i++) pa_cl_arg_long(&g, 0);

  pa_cl_arg_mem(&g, a->out.buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(&a->out));
  pa_cl_arg_long(&g, 0), pa_cl_arg_long(&g, a->out.stride[0]), pa_cl_arg_long(&g, a->out.stride[1]);

  bool want_lse = (d->flags & PA_RETURN_LSE) && a->lse.buf;
  pa_cl_arg_mem(&g, want_lse ? a->lse.buf : NULL);
  pa_cl_arg_long(&g, want_lse ? pa_cl_elem_off(&a->lse) : 0);
  pa_cl_arg_long(&g, 0);
  pa_cl_arg_long(&g, want_lse ? a->lse.stride[0] : 0);
  pa_cl_arg_long(&g, want_lse ? a->lse.stride[1] : 0);

  pa_cl_arg_mem(&g, paged ? a->block_table.buf : NULL);
  pa_cl_arg_long(&g, paged ? pa_cl_elem_off(&a->block_table) : 0);
  pa_cl_arg_long(&g, paged ? a->block_table.stride[0] : 0);
  pa_cl_arg_long(&g, paged ? a->block_table.stride[1] : 0);

  pa_cl_arg_mem(&g, NULL); /* mask */
  for (int i = 0; i < 5; i++) pa_cl_arg_long(&g, 0);
  for (int x = 0; x < 2; x++) { /* sinks, alibi */
    pa_cl_arg_mem(&g, NULL);
    pa_cl_arg_long(&g, 0), pa_cl_arg_long(&g, 0);
  }

  pa_cl_arg_mem(&g, plan->ws_size ? ws : NULL);
  pa_cl_arg_long(&g, (int64_t)(plan->ws_o_offset / 4));
  pa_cl_arg_long(&g, (int64_t)(plan->ws_lse_offset / 4));
  pa_cl_arg_mem(&g, plan->schedule);
  pa_cl_arg_int(&g, (int)(plan->sched_req_off / 4));
  pa_cl_arg_int(&g, (int)(plan->sched_work_off / 4));

  pa_cl_arg_int(&g, 1);      /* ragged q */
  pa_cl_arg_int(&g, !paged); /* ragged k when contiguous */
  pa_cl_arg_int(&g, d->page_size);
  pa_cl_arg_int(&g, plan->group);
  pa_cl_arg_int(&g, d->num_q_heads);
  pa_cl_arg_int(&g, pa_cl_vec_ok(&a->ckv) && pa_cl_vec_ok(&a->kpe));
  pa_cl_arg_float(&g, plan->scale);
  pa_cl_arg_float(&g, 0.0f);
  pa_cl_arg_int(&g, d->causal);
  pa_cl_arg_int(&g, -1), pa_cl_arg_int(&g, -1), pa_cl_arg_int(&g, 0);
  pa_cl_arg_int(&g, (int)(d->flags & PA_RETURN_LSE));

  pa_status s = PA_OK;
  if (g.err != CL_SUCCESS) {
    s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: mla argument %u: %s (%d)", g.bad,
                pa_cl_error_name(g.err), (int)g.err);
  } else {
    size_t local = cp->threads, global = local * (size_t)plan->num_work;
    cl_int e = clEnqueueNDRangeKernel(st->queue, cp->attention, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, "enqueue pa_attention (mla)");
  }
  if (s == PA_OK && plan->num_combine > 0)
    s = pa_cl_combine(ctx, plan, cp->combine, &a->out, want_lse ? &a->lse : NULL, NULL, ws);
  pthread_mutex_unlock(&st->lock);
  return s;
}

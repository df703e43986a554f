/* Attention run: one launch of kernels/attention.cl over the plan's work list,
 * then the split-KV combine when any request is split. No allocation, no wait. */
#include "cl_backend.h"

/* Strides of a ragged [T, H (, D)] or padded [B, S, H (, D)] tensor as (per
 * request, per token, per head); last_dims is 1 with a D dimension, else 0. */
void pa_cl_row_strides(const pa_tensor *t, int64_t *sb, int64_t *st, int64_t *sh, int last_dims) {
  if (t->ndim - last_dims == 3) {
    *sb = t->stride[0], *st = t->stride[1], *sh = t->stride[2];
  } else {
    *sb = 0, *st = t->stride[0], *sh = t->stride[1];
  }
}

void pa_cl_scale_args(pa_cl_args *g, const pa_tensor *s) {
  pa_cl_arg_mem(g, s ? s->buf : NULL);
  pa_cl_arg_long(g, s ? pa_cl_elem_off(s) : 0);
  pa_cl_arg_long(g, s && s->shape[0] > 1 ? s->stride[0] : 0);
}

pa_status pa_cl_attention(pa_context *ctx, const pa_plan *plan, const pa_attention_args *a,
                          pa_buffer *ws) {
  const pa_cl_plan *cp = plan->backend_data;
  const pa_attention_desc *d = &plan->desc;
  if (!plan->num_work) return PA_OK;
  pa_cl_state *st = pa_cl(ctx);
  int64_t sb, s1, sh;
  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = cp->attention};

  pa_cl_row_strides(&a->q, &sb, &s1, &sh, 1);
  pa_cl_arg_mem(&g, a->q.buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(&a->q));
  pa_cl_arg_long(&g, sb), pa_cl_arg_long(&g, s1), pa_cl_arg_long(&g, sh);
  pa_cl_arg_mem(&g, NULL); /* q2 (MLA only) */
  for (int i = 0; i < 3; i++) pa_cl_arg_long(&g, 0);

  const pa_tensor *kv[2] = {&a->k, &a->v};
  for (int x = 0; x < 2; x++) {
    const pa_tensor *t = kv[x];
    int64_t kb = 0, kt, kh, kp = 0;
    if (d->page_size > 0) {
      kp = t->stride[0], kt = t->stride[1], kh = t->stride[2];
    } else {
      pa_cl_row_strides(t, &kb, &kt, &kh, 1);
    }
    pa_cl_arg_mem(&g, t->buf);
    pa_cl_arg_long(&g, pa_cl_elem_off(t));
    pa_cl_arg_long(&g, kb), pa_cl_arg_long(&g, kt), pa_cl_arg_long(&g, kh), pa_cl_arg_long(&g, kp);
    if (x == 0) { /* k2 (MLA only) */
      pa_cl_arg_mem(&g, NULL);
      for (int i = 0; i < 3; i++) pa_cl_arg_long(&g, 0);
    }
  }

  pa_cl_row_strides(&a->out, &sb, &s1, &sh, 1);
  pa_cl_arg_mem(&g, a->out.buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(&a->out));
  pa_cl_arg_long(&g, sb), pa_cl_arg_long(&g, s1), pa_cl_arg_long(&g, sh);

  bool want_lse = (d->flags & PA_RETURN_LSE) && a->lse.buf;
  sb = s1 = sh = 0;
  if (want_lse) pa_cl_row_strides(&a->lse, &sb, &s1, &sh, 0);
  pa_cl_arg_mem(&g, want_lse ? a->lse.buf : NULL);
  pa_cl_arg_long(&g, want_lse ? pa_cl_elem_off(&a->lse) : 0);
  pa_cl_arg_long(&g, sb), pa_cl_arg_long(&g, s1), pa_cl_arg_long(&g, sh);

  bool paged = d->page_size > 0;
  pa_cl_arg_mem(&g, paged ? a->block_table.buf : NULL);
  pa_cl_arg_long(&g, paged ? pa_cl_elem_off(&a->block_table) : 0);
  pa_cl_arg_long(&g, paged ? a->block_table.stride[0] : 0);
  pa_cl_arg_long(&g, paged ? a->block_table.stride[1] : 0);

  bool mask = (d->flags & PA_HAS_MASK) != 0;
  const pa_tensor *m = &a->mask;
  pa_cl_arg_mem(&g, mask ? m->buf : NULL);
  pa_cl_arg_long(&g, mask ? pa_cl_elem_off(m) : 0);
  pa_cl_arg_long(&g, mask ? m->stride[0] : 0);
  pa_cl_arg_long(&g, mask && m->shape[1] > 1 ? m->stride[1] : 0);
  pa_cl_arg_long(&g, mask ? m->stride[2] : 0);
  pa_cl_arg_long(&g, mask ? m->stride[3] : 0);

  bool sinks = (d->flags & PA_HAS_SINKS) != 0, alibi = (d->flags & PA_HAS_ALIBI) != 0;
  pa_cl_arg_mem(&g, sinks ? a->sinks.buf : NULL);
  pa_cl_arg_long(&g, sinks ? pa_cl_elem_off(&a->sinks) : 0);
  pa_cl_arg_long(&g, sinks ? a->sinks.stride[0] : 0);
  pa_cl_arg_mem(&g, alibi ? a->alibi_slopes.buf : NULL);
  pa_cl_arg_long(&g, alibi ? pa_cl_elem_off(&a->alibi_slopes) : 0);
  pa_cl_arg_long(&g, alibi ? a->alibi_slopes.stride[0] : 0);

  pa_cl_arg_mem(&g, plan->ws_size ? ws : NULL);
  pa_cl_arg_long(&g, (int64_t)(plan->ws_o_offset / 4));
  pa_cl_arg_long(&g, (int64_t)(plan->ws_lse_offset / 4));
  pa_cl_arg_mem(&g, plan->schedule);
  pa_cl_arg_int(&g, (int)(plan->sched_req_off / 4));
  pa_cl_arg_int(&g, (int)(plan->sched_work_off / 4));

  pa_cl_arg_int(&g, a->q.ndim == 3);
  pa_cl_arg_int(&g, !paged && a->k.ndim == 3);
  pa_cl_arg_int(&g, d->page_size);
  pa_cl_arg_int(&g, plan->group);
  pa_cl_arg_int(&g, d->num_q_heads);
  pa_cl_arg_int(&g, pa_cl_vec_ok(&a->k) && pa_cl_vec_ok(&a->v));
  pa_cl_arg_float(&g, plan->scale);
  pa_cl_arg_float(&g, d->softcap);
  pa_cl_arg_int(&g, d->causal);
  pa_cl_arg_int(&g, d->window_left);
  pa_cl_arg_int(&g, d->window_right);
  pa_cl_arg_int(&g, d->sink_tokens);
  pa_cl_arg_int(&g, (int)d->flags);
  if (cp->tile.rg != 0 && cp->tile.rg != 255) { /* attention.cl (every fp8 plan) */
    pa_cl_scale_args(&g, pa_dtype_is_fp8(d->kv_dtype) ? &a->k_scale : NULL);
    pa_cl_scale_args(&g, pa_dtype_is_fp8(d->kv_dtype) ? &a->v_scale : NULL);
  }

  pa_status s = PA_OK;
  if (g.err != CL_SUCCESS) {
    s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: attention argument %u: %s (%d)", g.bad,
                pa_cl_error_name(g.err), (int)g.err);
  } else {
    size_t local = cp->threads, global = local * (size_t)plan->num_work;
    cl_int e = clEnqueueNDRangeKernel(st->queue, cp->attention, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, "enqueue pa_attention");
  }
  if (s == PA_OK && plan->num_combine > 0)
    s = pa_cl_combine(ctx, plan, cp->combine, &a->out, want_lse ? &a->lse : NULL,
                      sinks ? &a->sinks : NULL, ws);
  pthread_mutex_unlock(&st->lock);
  return s;
}

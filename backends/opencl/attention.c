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

/* A view's buffer, offset and its first n strides. */
static void arg_view(pa_cl_args *g, const pa_cl_view *v, int n) {
  pa_cl_arg_mem(g, v->buf);
  pa_cl_arg_long(g, v->off);
  for (int i = 0; i < n; i++) pa_cl_arg_long(g, v->s[i]);
}

void pa_cl_sched_args(pa_cl_args *g, const pa_plan *plan, pa_buffer *ws) {
  pa_cl_arg_mem(g, plan->ws_size ? ws : NULL);
  pa_cl_arg_long(g, (int64_t)(plan->ws_o_offset / 4));
  pa_cl_arg_long(g, (int64_t)(plan->ws_lse_offset / 4));
  pa_cl_arg_mem(g, plan->schedule);
  pa_cl_arg_int(g, (int)(plan->sched_req_off / 4));
  pa_cl_arg_int(g, (int)(plan->sched_work_off / 4));
}

void pa_cl_attention_args(pa_cl_args *g, const pa_plan *plan, pa_buffer *ws,
                          const pa_cl_attention_argv *c) {
  arg_view(g, &c->q, 3), arg_view(g, &c->q2, 2);
  arg_view(g, &c->k, 4), arg_view(g, &c->k2, 2), arg_view(g, &c->v, 4);
  arg_view(g, &c->out, 3), arg_view(g, &c->lse, 3), arg_view(g, &c->bt, 2);
  arg_view(g, &c->mask, 4), arg_view(g, &c->sinks, 1), arg_view(g, &c->alibi, 1);
  pa_cl_sched_args(g, plan, ws);
  pa_cl_arg_int(g, c->ragged_q);
  pa_cl_arg_int(g, c->ragged_k);
  pa_cl_arg_int(g, c->page_size);
  pa_cl_arg_int(g, c->group);
  pa_cl_arg_int(g, c->hq);
  pa_cl_arg_int(g, c->kv_vec);
  pa_cl_arg_float(g, c->scale);
  pa_cl_arg_float(g, c->softcap);
  pa_cl_arg_int(g, c->causal);
  pa_cl_arg_int(g, c->wl);
  pa_cl_arg_int(g, c->wr);
  pa_cl_arg_int(g, c->sink_tokens);
  pa_cl_arg_int(g, c->flags);
}

/* A present tensor's buffer and element offset (strides set by the caller). */
static pa_cl_view view_of(const pa_tensor *t) {
  return (pa_cl_view){.buf = t->buf, .off = pa_cl_elem_off(t)};
}

pa_status pa_cl_attention(pa_context *ctx, const pa_plan *plan, const pa_attention_args *a,
                          pa_buffer *ws) {
  const pa_cl_variant *v = pa_cl_variant_of(plan);
  const pa_cl_plan *cp = plan->backend_data;
  const pa_attention_desc *d = &plan->desc;
  if (!plan->num_work) return PA_OK;
  pa_cl_state *st = pa_cl(ctx);
  const bool paged = d->page_size > 0, mask = (d->flags & PA_HAS_MASK) != 0;
  const bool sinks = (d->flags & PA_HAS_SINKS) != 0, alibi = (d->flags & PA_HAS_ALIBI) != 0;
  const bool want_lse = (d->flags & PA_RETURN_LSE) && a->lse.buf;
  pa_cl_attention_argv c = {
      .ragged_q = a->q.ndim == 3,
      .ragged_k = !paged && a->k.ndim == 3,
      .page_size = d->page_size,
      .group = plan->group,
      .hq = d->num_q_heads,
      .kv_vec = pa_cl_vec_ok(&a->k) && pa_cl_vec_ok(&a->v),
      .scale = plan->scale,
      .softcap = d->softcap,
      .causal = d->causal,
      .wl = d->window_left,
      .wr = d->window_right,
      .sink_tokens = d->sink_tokens,
      .flags = (int)d->flags,
  };
  c.q = view_of(&a->q);
  pa_cl_row_strides(&a->q, &c.q.s[0], &c.q.s[1], &c.q.s[2], 1);
  const pa_tensor *kv[2] = {&a->k, &a->v};
  pa_cl_view *kvv[2] = {&c.k, &c.v};
  for (int x = 0; x < 2; x++) {
    const pa_tensor *t = kv[x];
    int64_t *s = kvv[x]->s; /* (batch, token, head, page) */
    *kvv[x] = view_of(t);
    if (paged)
      s[3] = t->stride[0], s[1] = t->stride[1], s[2] = t->stride[2];
    else
      pa_cl_row_strides(t, &s[0], &s[1], &s[2], 1);
  }
  c.out = view_of(&a->out);
  pa_cl_row_strides(&a->out, &c.out.s[0], &c.out.s[1], &c.out.s[2], 1);
  if (want_lse) {
    c.lse = view_of(&a->lse);
    pa_cl_row_strides(&a->lse, &c.lse.s[0], &c.lse.s[1], &c.lse.s[2], 0);
  }
  if (paged) {
    const pa_tensor *t = &a->block_table;
    c.bt = (pa_cl_view){t->buf, pa_cl_elem_off(t), {t->stride[0], t->stride[1]}};
  }
  if (mask) {
    const pa_tensor *m = &a->mask;
    c.mask = (pa_cl_view){
        m->buf,
        pa_cl_elem_off(m),
        {m->stride[0], m->shape[1] > 1 ? m->stride[1] : 0, m->stride[2], m->stride[3]}};
  }
  if (sinks) c.sinks = (pa_cl_view){a->sinks.buf, pa_cl_elem_off(&a->sinks), {a->sinks.stride[0]}};
  if (alibi)
    c.alibi = (pa_cl_view){
        a->alibi_slopes.buf, pa_cl_elem_off(&a->alibi_slopes), {a->alibi_slopes.stride[0]}};

  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = v->kernel};
  pa_cl_attention_args(&g, plan, ws, &c);
  const bool fp8 = pa_dtype_is_fp8(d->kv_dtype);
  if (v->family == PA_CL_TILE || (fp8 && v->family == PA_CL_DECODE_W)) { /* fp8 plans' kernels */
    pa_cl_scale_args(&g, fp8 ? &a->k_scale : NULL);
    pa_cl_scale_args(&g, fp8 ? &a->v_scale : NULL);
  }

  pa_status s = PA_OK;
  if (g.err != CL_SUCCESS) {
    s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: attention argument %u: %s (%d)", g.bad,
                pa_cl_error_name(g.err), (int)g.err);
  } else {
    size_t local = v->threads, global = local * (size_t)plan->num_work;
    cl_int e =
        clEnqueueNDRangeKernel(st->queue, v->kernel, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, v->name);
  }
  if (s == PA_OK && plan->num_combine > 0)
    s = pa_cl_combine(ctx, plan, cp->combine, &a->out, want_lse ? &a->lse : NULL,
                      sinks ? &a->sinks : NULL, ws);
  pthread_mutex_unlock(&st->lock);
  return s;
}

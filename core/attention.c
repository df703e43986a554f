/* pa_attention_*: descriptor and argument validation, then plan and run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "plan.h"
#include "tensor.h"

#define KNOWN_FLAGS (PA_RETURN_LSE | PA_DETERMINISTIC | PA_HAS_SINKS | PA_HAS_ALIBI | PA_HAS_MASK)
#define MAX_HEAD_DIM 256
#define MAX_HEADS 4096
#define MAX_PAGE 65536

void pa_attention_desc_init(pa_attention_desc *d, int num_q_heads, int num_kv_heads, int head_dim,
                            pa_dtype dtype) {
  if (!d) return;
  memset(d, 0, sizeof *d);
  d->num_q_heads = num_q_heads;
  d->num_kv_heads = num_kv_heads;
  d->head_dim_qk = d->head_dim_v = head_dim;
  d->q_dtype = d->kv_dtype = d->o_dtype = dtype;
  d->window_left = d->window_right = -1;
}

static bool is_float(pa_dtype t) { return t == PA_F32 || t == PA_F16 || t == PA_BF16; }

static pa_status check_desc(pa_context *ctx, const pa_attention_desc *d) {
#define BAD(...) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, __VA_ARGS__)
  if (d->num_q_heads < 1 || d->num_q_heads > MAX_HEADS)
    BAD("desc.num_q_heads=%d must be 1..%d", d->num_q_heads, MAX_HEADS);
  if (d->num_kv_heads < 1 || d->num_kv_heads > d->num_q_heads)
    BAD("desc.num_kv_heads=%d must be 1..num_q_heads=%d", d->num_kv_heads, d->num_q_heads);
  if (d->num_q_heads % d->num_kv_heads)
    BAD("desc.num_q_heads=%d is not a multiple of desc.num_kv_heads=%d", d->num_q_heads,
        d->num_kv_heads);
  if (d->head_dim_qk < 1 || d->head_dim_qk > MAX_HEAD_DIM)
    BAD("desc.head_dim_qk=%d must be 1..%d", d->head_dim_qk, MAX_HEAD_DIM);
  if (d->head_dim_v < 1 || d->head_dim_v > MAX_HEAD_DIM)
    BAD("desc.head_dim_v=%d must be 1..%d", d->head_dim_v, MAX_HEAD_DIM);
  if (!is_float(d->q_dtype)) BAD("desc.q_dtype=%d is not f32, f16 or bf16", (int)d->q_dtype);
  if (!is_float(d->kv_dtype) && !pa_dtype_is_fp8(d->kv_dtype))
    BAD("desc.kv_dtype=%d is not f32, f16, bf16, e4m3 or e5m2", (int)d->kv_dtype);
  if (!is_float(d->o_dtype)) BAD("desc.o_dtype=%d is not f32, f16 or bf16", (int)d->o_dtype);
  if (d->causal != 0 && d->causal != 1) BAD("desc.causal=%d must be 0 or 1", d->causal);
  if (d->window_left < -1) BAD("desc.window_left=%d must be >= -1", d->window_left);
  if (d->window_right < -1) BAD("desc.window_right=%d must be >= -1", d->window_right);
  if (d->sink_tokens < 0) BAD("desc.sink_tokens=%d is negative", d->sink_tokens);
  if (!isfinite(d->scale)) BAD("desc.scale=%g is not finite", (double)d->scale);
  if (!isfinite(d->softcap) || d->softcap < 0)
    BAD("desc.softcap=%g must be finite and >= 0", (double)d->softcap);
  if (d->page_size < 0 || d->page_size > MAX_PAGE)
    BAD("desc.page_size=%d must be 0..%d", d->page_size, MAX_PAGE);
  if (d->num_splits < 0 || d->num_splits > 1024)
    BAD("desc.num_splits=%d must be 0..1024", d->num_splits);
  if (d->kv_chunk < 0 || d->kv_chunk > (1 << 30))
    BAD("desc.kv_chunk=%d must be 0..%d", d->kv_chunk, 1 << 30);
  if (d->flags & ~(unsigned)KNOWN_FLAGS) BAD("desc.flags=0x%x has unknown bits", d->flags);
  return PA_OK;
#undef BAD
}

pa_status pa_plan_new(pa_context *ctx, pa_op op, pa_plan **out) {
  pa_plan *p = PA_FAULT_OR(calloc(1, sizeof *p));
  if (!p) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "plan");
  p->ctx = ctx;
  p->op = op;
  *out = p;
  return PA_OK;
}

pa_status pa_attention_plan(pa_context *ctx, const pa_attention_desc *desc, const pa_batch *batch,
                            pa_plan **out) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!desc || !out) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "desc or out is NULL");
  *out = NULL;
  pa_status st = check_desc(ctx, desc);
  if (st != PA_OK) return st;
  pa_plan *p = NULL;
  if ((st = pa_plan_new(ctx, PA_OP_ATTENTION, &p)) != PA_OK) return st;
  p->desc = *desc;
  p->group = desc->num_q_heads / desc->num_kv_heads;
  p->scale = desc->scale != 0.0f ? desc->scale : 1.0f / sqrtf((float)desc->head_dim_qk);
  st = pa_plan_build(p, batch);
  if (st != PA_OK) {
    pa_plan_destroy(p);
    return st;
  }
  *out = p;
  return PA_OK;
}

/* q/out/k/v: ragged [T, H, D] (T covering every request's slot) or padded
 * [B, S, H, D] (S covering the longest request). */
static pa_status check_rows(pa_context *ctx, const char *name, const pa_tensor *t, pa_dtype dtype,
                            int B, int64_t min_tokens, int32_t max_len, int64_t heads, int64_t dim) {
  int64_t w3[3] = {PA_ANY, heads, dim}, w4[4] = {B, PA_ANY, heads, dim};
  pa_status st = pa_tensor_check2(ctx, name, t, dtype, 3, w3, 4, w4);
  if (st != PA_OK) return st;
  if (t->ndim == 3 && t->shape[0] < min_tokens)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.shape[0]=%lld but the batch needs %lld tokens",
                   name, (long long)t->shape[0], (long long)min_tokens);
  if (t->ndim == 4 && t->shape[1] < max_len)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "%s.shape[1]=%lld but the longest request has %d tokens", name,
                   (long long)t->shape[1], max_len);
  return PA_OK;
}

pa_status pa_check_block_table(const pa_plan *p, const pa_tensor *bt, int64_t num_pages) {
  int ps = p->desc.page_size;
  int64_t pages = ((int64_t)p->max_len_k + ps - 1) / ps;
  int64_t w[2] = {p->batch_size, PA_ANY};
  pa_status st = pa_tensor_check(p->ctx, "block_table", bt, PA_I32, 2, w);
  if (st != PA_OK) return st;
  if (bt->shape[1] < pages)
    return pa_fail(p->ctx, PA_ERR_INVALID_ARGUMENT,
                   "block_table.shape[1]=%lld but the longest request needs %lld pages of %d",
                   (long long)bt->shape[1], (long long)pages, ps);
  if (num_pages == 0)
    for (int b = 0; b < p->batch_size; b++)
      if (p->reqs[b].len_q > 0 && p->reqs[b].len_k > 0)
        return pa_fail(p->ctx, PA_ERR_INVALID_ARGUMENT,
                       "the paged cache has 0 pages but request %d has %d keys", b,
                       p->reqs[b].len_k);
  return pa_plan_check_pages(p, bt, num_pages, "block_table");
}

static pa_status check_args(const pa_plan *p, const pa_attention_args *a, const pa_buffer *ws) {
  pa_context *ctx = p->ctx;
  const pa_attention_desc *d = &p->desc;
  int B = p->batch_size, Hq = d->num_q_heads, Hkv = d->num_kv_heads;
  pa_status st;
  if ((st = check_rows(ctx, "q", &a->q, d->q_dtype, B, p->min_q_tokens, p->max_len_q, Hq,
                       d->head_dim_qk)) != PA_OK)
    return st;
  if ((st = check_rows(ctx, "out", &a->out, d->o_dtype, B, p->min_q_tokens, p->max_len_q, Hq,
                       d->head_dim_v)) != PA_OK)
    return st;
  if ((st = pa_output_check(ctx, "out", &a->out)) != PA_OK) return st;
  if (a->out.ndim != a->q.ndim)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "out.ndim=%d but q.ndim=%d: layouts differ",
                   a->out.ndim, a->q.ndim);
  if (d->page_size == 0) {
    if ((st = check_rows(ctx, "k", &a->k, d->kv_dtype, B, p->min_k_tokens, p->max_len_k, Hkv,
                         d->head_dim_qk)) != PA_OK ||
        (st = check_rows(ctx, "v", &a->v, d->kv_dtype, B, p->min_k_tokens, p->max_len_k, Hkv,
                         d->head_dim_v)) != PA_OK)
      return st;
  } else {
    int64_t wk[4] = {PA_ANY, d->page_size, Hkv, d->head_dim_qk};
    int64_t wv[4] = {PA_ANY, d->page_size, Hkv, d->head_dim_v};
    if ((st = pa_tensor_check(ctx, "k", &a->k, d->kv_dtype, 4, wk)) != PA_OK ||
        (st = pa_tensor_check(ctx, "v", &a->v, d->kv_dtype, 4, wv)) != PA_OK)
      return st;
    if (a->v.shape[0] != a->k.shape[0])
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "v.shape[0]=%lld but k.shape[0]=%lld pages",
                     (long long)a->v.shape[0], (long long)a->k.shape[0]);
    if ((st = pa_check_block_table(p, &a->block_table, a->k.shape[0])) != PA_OK) return st;
  }
  if (d->flags & PA_RETURN_LSE) {
    int64_t w2[2] = {PA_ANY, Hq}, w3[3] = {B, PA_ANY, Hq};
    int want = a->q.ndim - 1;
    if ((st = pa_tensor_check(ctx, "lse", &a->lse, PA_F32, want, want == 2 ? w2 : w3)) != PA_OK)
      return st;
    if ((st = pa_output_check(ctx, "lse", &a->lse)) != PA_OK) return st;
    int64_t tokens = want == 2 ? a->lse.shape[0] : a->lse.shape[1];
    int64_t need = want == 2 ? p->min_q_tokens : p->max_len_q;
    if (tokens < need)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "lse.shape[%d]=%lld but %lld tokens needed",
                     want - 2, (long long)tokens, (long long)need);
  }
  int64_t wh[1] = {Hq};
  if ((d->flags & PA_HAS_SINKS) &&
      (st = pa_tensor_check(ctx, "sinks", &a->sinks, PA_F32, 1, wh)) != PA_OK)
    return st;
  if ((d->flags & PA_HAS_ALIBI) &&
      (st = pa_tensor_check(ctx, "alibi_slopes", &a->alibi_slopes, PA_F32, 1, wh)) != PA_OK)
    return st;
  if (d->flags & PA_HAS_MASK) {
    int64_t wm[4] = {B, PA_ANY, PA_ANY, PA_ANY};
    if ((st = pa_tensor_check(ctx, "mask", &a->mask, PA_F32, 4, wm)) != PA_OK) return st;
    if (a->mask.shape[1] != 1 && a->mask.shape[1] != Hq)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "mask.shape[1]=%lld must be 1 or num_q_heads=%d",
                     (long long)a->mask.shape[1], Hq);
    if (a->mask.shape[2] < p->max_len_q || a->mask.shape[3] < p->max_len_k)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                     "mask.shape=[..,%lld,%lld] but the batch needs at least [..,%d,%d]",
                     (long long)a->mask.shape[2], (long long)a->mask.shape[3], p->max_len_q,
                     p->max_len_k);
  }
  const int fp8 = pa_dtype_is_fp8(d->kv_dtype);
  if ((st = pa_check_kv_scale(ctx, "k_scale", &a->k_scale, d->kv_dtype, Hkv)) != PA_OK ||
      (st = pa_check_kv_scale(ctx, "v_scale", &a->v_scale, d->kv_dtype, Hkv)) != PA_OK)
    return st;
  const pa_named outs[] = {{&a->out, "out"}, {d->flags & PA_RETURN_LSE ? &a->lse : NULL, "lse"}};
  const pa_named ins[] = {{&a->q, "q"}, {&a->k, "k"}, {&a->v, "v"},
                          {d->flags & PA_HAS_MASK ? &a->mask : NULL, "mask"},
                          {d->page_size ? &a->block_table : NULL, "block_table"},
                          {d->flags & PA_HAS_SINKS ? &a->sinks : NULL, "sinks"},
                          {d->flags & PA_HAS_ALIBI ? &a->alibi_slopes : NULL, "alibi_slopes"},
                          {fp8 ? &a->k_scale : NULL, "k_scale"},
                          {fp8 ? &a->v_scale : NULL, "v_scale"}};
  if ((st = pa_check_apart(ctx, outs, 2, ins, 9)) != PA_OK) return st;
  return pa_check_workspace_apart(p, ws, outs, 2, ins, 9);
}

pa_status pa_attention_run(pa_plan *plan, const pa_attention_args *args, pa_buffer *workspace) {
  pa_buffer *ws;
  pa_status st = pa_plan_begin_run(plan, PA_OP_ATTENTION, args, workspace, &ws);
  if (st == PA_OK) st = check_args(plan, args, ws);
  if (st != PA_OK) return st;
  if (!plan->ctx->ops->attention)
    return pa_fail(plan->ctx, PA_ERR_UNSUPPORTED, "backend %s has no attention",
                   plan->ctx->ops->name);
  return plan->ctx->ops->attention(plan->ctx, plan, args, ws);
}

/* pa_mla_*: MLA decode as attention with one latent KV head (Hkv = 1,
 * g = H), K = ckv || kpe and V = ckv, always paged. */
#include <math.h>
#include <string.h>

#include "plan.h"
#include "tensor.h"

void pa_mla_desc_init(pa_mla_desc *d, int num_heads, int head_dim_ckv, int head_dim_kpe,
                      int page_size, pa_dtype dtype) {
  if (!d) return;
  memset(d, 0, sizeof *d);
  d->num_heads = num_heads;
  d->head_dim_ckv = head_dim_ckv;
  d->head_dim_kpe = head_dim_kpe;
  d->q_dtype = d->kv_dtype = d->o_dtype = dtype;
  d->page_size = page_size;
}

static pa_status check_desc(pa_context *ctx, const pa_mla_desc *d) {
#define BAD(...) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, __VA_ARGS__)
  if (d->num_heads < 1 || d->num_heads > 4096) BAD("desc.num_heads=%d must be 1..4096", d->num_heads);
  /* DeepSeek's 512 + 64 is the largest latent shape; every backend takes any
   * size up to it, so the limits are the same everywhere. */
  if (d->head_dim_ckv < 1 || d->head_dim_ckv > 512)
    BAD("desc.head_dim_ckv=%d must be 1..512", d->head_dim_ckv);
  if (d->head_dim_kpe < 1 || d->head_dim_kpe > 576 - d->head_dim_ckv)
    BAD("desc.head_dim_kpe=%d must be >= 1 with head_dim_ckv + head_dim_kpe <= 576 (ckv=%d)",
        d->head_dim_kpe, d->head_dim_ckv);
  const pa_dtype ts[3] = {d->q_dtype, d->kv_dtype, d->o_dtype};
  const char *names[3] = {"q_dtype", "kv_dtype", "o_dtype"};
  for (int i = 0; i < 3; i++)
    if (ts[i] != PA_F32 && ts[i] != PA_F16 && ts[i] != PA_BF16 && !(i == 1 && pa_dtype_is_fp8(ts[i])))
      BAD("desc.%s=%d is not f32, f16 or bf16%s", names[i], (int)ts[i],
          i == 1 ? " (or e4m3, e5m2)" : "");
  if (d->page_size < 1 || d->page_size > 65536) BAD("desc.page_size=%d must be 1..65536", d->page_size);
  if (d->causal != 0 && d->causal != 1) BAD("desc.causal=%d must be 0 or 1", d->causal);
  if (!isfinite(d->scale)) BAD("desc.scale=%g is not finite", (double)d->scale);
  if (d->num_splits < 0 || d->num_splits > 1024) BAD("desc.num_splits=%d must be 0..1024", d->num_splits);
  if (d->kv_chunk < 0 || d->kv_chunk > (1 << 30))
    BAD("desc.kv_chunk=%d must be 0..%d", d->kv_chunk, 1 << 30);
  if (d->flags & ~(unsigned)(PA_RETURN_LSE | PA_DETERMINISTIC))
    BAD("desc.flags=0x%x: MLA takes only PA_RETURN_LSE and PA_DETERMINISTIC", d->flags);
  return PA_OK;
#undef BAD
}

pa_status pa_mla_plan(pa_context *ctx, const pa_mla_desc *desc, const pa_batch *batch,
                      pa_plan **out) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!desc || !out) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "desc or out is NULL");
  *out = NULL;
  pa_status st = check_desc(ctx, desc);
  if (st != PA_OK) return st;
  pa_plan *p = NULL;
  if ((st = pa_plan_new(ctx, PA_OP_MLA, &p)) != PA_OK) return st;
  p->mla = *desc;
  pa_attention_desc *a = &p->desc;
  memset(a, 0, sizeof *a);
  a->num_q_heads = desc->num_heads;
  a->num_kv_heads = 1;
  a->head_dim_qk = desc->head_dim_ckv + desc->head_dim_kpe;
  a->head_dim_v = desc->head_dim_ckv;
  a->q_dtype = desc->q_dtype;
  a->kv_dtype = desc->kv_dtype;
  a->o_dtype = desc->o_dtype;
  a->causal = desc->causal;
  a->window_left = a->window_right = -1;
  a->scale = desc->scale;
  a->page_size = desc->page_size;
  a->num_splits = desc->num_splits;
  a->kv_chunk = desc->kv_chunk;
  a->flags = desc->flags;
  p->group = desc->num_heads;
  p->scale = desc->scale != 0.0f ? desc->scale : 1.0f / sqrtf((float)a->head_dim_qk);
  st = pa_plan_build(p, batch);
  if (st != PA_OK) {
    pa_plan_destroy(p);
    return st;
  }
  *out = p;
  return PA_OK;
}

static pa_status check_args(const pa_plan *p, const pa_mla_args *a, const pa_buffer *ws) {
  pa_context *ctx = p->ctx;
  const pa_mla_desc *d = &p->mla;
  int H = d->num_heads, Dc = d->head_dim_ckv, Dr = d->head_dim_kpe;
  pa_status st;
  int64_t wqn[3] = {PA_ANY, H, Dc}, wqp[3] = {PA_ANY, H, Dr};
  int64_t wc[3] = {PA_ANY, d->page_size, Dc}, wk[3] = {PA_ANY, d->page_size, Dr};
  int64_t wl[2] = {PA_ANY, H};
  if ((st = pa_tensor_check(ctx, "q_nope", &a->q_nope, d->q_dtype, 3, wqn)) != PA_OK ||
      (st = pa_tensor_check(ctx, "q_pe", &a->q_pe, d->q_dtype, 3, wqp)) != PA_OK ||
      (st = pa_tensor_check(ctx, "out", &a->out, d->o_dtype, 3, wqn)) != PA_OK ||
      (st = pa_tensor_check(ctx, "ckv", &a->ckv, d->kv_dtype, 3, wc)) != PA_OK ||
      (st = pa_tensor_check(ctx, "kpe", &a->kpe, d->kv_dtype, 3, wk)) != PA_OK)
    return st;
  const struct { const pa_tensor *t; const char *n; } rows[] = {
      {&a->q_nope, "q_nope"}, {&a->q_pe, "q_pe"}, {&a->out, "out"}};
  for (int i = 0; i < 3; i++)
    if (rows[i].t->shape[0] < p->min_q_tokens)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.shape[0]=%lld but the batch needs %lld tokens",
                     rows[i].n, (long long)rows[i].t->shape[0], (long long)p->min_q_tokens);
  if ((st = pa_output_check(ctx, "out", &a->out)) != PA_OK) return st;
  if (a->kpe.shape[0] != a->ckv.shape[0])
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "kpe.shape[0]=%lld but ckv.shape[0]=%lld pages",
                   (long long)a->kpe.shape[0], (long long)a->ckv.shape[0]);
  if ((st = pa_check_block_table(p, &a->block_table, a->ckv.shape[0])) != PA_OK) return st;
  if (d->flags & PA_RETURN_LSE) {
    if ((st = pa_tensor_check(ctx, "lse", &a->lse, PA_F32, 2, wl)) != PA_OK ||
        (st = pa_output_check(ctx, "lse", &a->lse)) != PA_OK)
      return st;
    if (a->lse.shape[0] < p->min_q_tokens)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "lse.shape[0]=%lld but %lld tokens needed",
                     (long long)a->lse.shape[0], (long long)p->min_q_tokens);
  }
  if ((st = pa_check_kv_scale(ctx, "kv_scale", &a->kv_scale, d->kv_dtype, 1)) != PA_OK) return st;
  const pa_named outs[] = {{&a->out, "out"}, {d->flags & PA_RETURN_LSE ? &a->lse : NULL, "lse"}};
  const pa_named ins[] = {{&a->q_nope, "q_nope"}, {&a->q_pe, "q_pe"}, {&a->ckv, "ckv"},
                          {&a->kpe, "kpe"}, {&a->block_table, "block_table"},
                          {pa_dtype_is_fp8(d->kv_dtype) ? &a->kv_scale : NULL, "kv_scale"}};
  if ((st = pa_check_apart(ctx, outs, 2, ins, 6)) != PA_OK) return st;
  return pa_check_workspace_apart(p, ws, outs, 2, ins, 6);
}

pa_status pa_mla_run(pa_plan *plan, const pa_mla_args *args, pa_buffer *workspace) {
  pa_buffer *ws;
  pa_status st = pa_plan_begin_run(plan, PA_OP_MLA, args, workspace, &ws);
  if (st == PA_OK) st = check_args(plan, args, ws);
  if (st != PA_OK) return st;
  if (!plan->ctx->ops->mla)
    return pa_fail(plan->ctx, PA_ERR_UNSUPPORTED, "backend %s has no MLA", plan->ctx->ops->name);
  return plan->ctx->ops->mla(plan->ctx, plan, args, ws);
}

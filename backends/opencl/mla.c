/* MLA decode run: kernels/mla_mma.cl (tensor cores, after the probe) or
 * kernels/attention.cl built with MLA=1 (K = ckv || kpe from two views, V = the
 * ckv columns of the K tile), then the split-KV combine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_backend.h"

/* kernels/mla_mma.cl's tuning, from the configuration. */
typedef struct mla_mma_cfg {
  int bn, nrg, pf, maxreg, ldsm, cpa, emu;
} mla_mma_cfg;

/* The variant from opencl.mla and the dev.opencl.mla_* keys (validated by
 * the configuration reader; defaults and the measurements behind them in
 * bench/RESULTS.md). False: the kernel is off (opencl.mla=portable). Without
 * the ldmatrix/cp.async probe the caller turns ldsm/cpa into PF. */
static bool mla_mma_env(const pa_config *cfg, mla_mma_cfg *c) {
  *c = (mla_mma_cfg){cfg->dev_opencl_mla_bn,
                     cfg->dev_opencl_mla_nrg,
                     cfg->dev_opencl_mla_pf,
                     cfg->dev_opencl_mla_maxreg,
                     cfg->dev_opencl_mla_ldsm,
                     cfg->dev_opencl_mla_cpa,
                     cfg->opencl_mla == PA_CFG_CLMLA_EMU};
  return cfg->opencl_mla != PA_CFG_CLMLA_PORTABLE;
}

static size_t mla_mma_local(const mla_mma_cfg *c, int dk) {
  size_t b = (size_t)(c->cpa ? 2 : 1) * c->bn * (dk + 8) * 2 + (size_t)c->nrg * 4 * (c->bn / 8) * 32 * 16 + 4 * (size_t)c->bn * 8;
  if (c->emu) b += 4 * ((size_t)c->nrg * 4 * 384 + 2 * (size_t)c->nrg * 128);
  return b;
}

/* Builds (or finds in the program cache) mla_mma.cl for a variant. */
static pa_status mla_mma_build(pa_context *ctx, const pa_mla_desc *m, pa_cl_variant *v) {
  char defs[256], cap[40] = "", shape[32];
  if (v->maxreg && !v->emu) snprintf(cap, sizeof cap, " -cl-nv-maxrregcount=%d", v->maxreg);
  snprintf(
      defs, sizeof defs,
      "-DDC=%d -DDR=%d -DKV_DT=%d -DO_DT=%d -DBN=%d -DNRG=%d -DPF=%d -DLDSM=%d -DCPA=%d -DEMU=%d%s",
      m->head_dim_ckv, m->head_dim_kpe, (int)m->kv_dtype, (int)m->o_dtype, v->bkv, v->bq / 16,
      v->pf, v->ldsm, v->cpa, v->emu, cap);
  v->threads = (size_t)v->bq / 16 * 128;
  snprintf(shape, sizeof shape, "bq%d.bn%d%s", v->bq, v->bkv, v->emu ? ".emu" : "");
  snprintf(v->name, sizeof v->name, "opencl.pa_mla_mma.%s", shape);
  return pa_cl_kernel(ctx, "mla_mma.cl", defs, "pa_mla_mma", &v->kernel);
}

bool pa_cl_mla_mma_variant(pa_context *ctx, const pa_plan *plan, pa_cl_variant *v) {
  const pa_cl_state *st = pa_cl(ctx);
  const pa_mla_desc *m = &plan->mla;
  mla_mma_cfg c;
  if (plan->op != PA_OP_MLA || !mla_mma_env(&ctx->cfg, &c)) return false;
  bool ok = m->q_dtype == PA_F16 ? st->mma_ok : m->q_dtype == PA_BF16 ? st->mma_bf16_ok : false;
  if (c.emu) ok = m->q_dtype == PA_F16 || m->q_dtype == PA_BF16;
  if (!c.emu && !st->ldsm_ok && (c.ldsm || c.cpa)) { /* ldmatrix/cp.async probe failed */
    c.pf |= c.cpa;
    c.ldsm = c.cpa = 0;
  }
  int dk = m->head_dim_ckv + m->head_dim_kpe;
  if (!ok || m->kv_dtype != m->q_dtype || m->head_dim_ckv % 32 || m->head_dim_kpe % 16 ||
      (plan->desc.flags & PA_DETERMINISTIC) || m->page_size < 1 || st->max_wg < (size_t)c.nrg * 128 ||
      st->local_mem < mla_mma_local(&c, dk) + 256)
    return false;
  *v = (pa_cl_variant){.family = PA_CL_MLA_MMA,
                       .bq = 16 * c.nrg,
                       .bkv = c.bn,
                       .warps = 4 * c.nrg,
                       .emu = c.emu,
                       .pf = c.pf,
                       .ldsm = c.ldsm,
                       .cpa = c.cpa,
                       .maxreg = c.maxreg};
  /* The ladder: 32 rows -> 16 rows -> the 16-row attention.cl tile. */
  if (mla_mma_build(ctx, m, v) == PA_OK) return true;
  if (v->bq > 16) {
    pa_log(1, "opencl: %d-row mla_mma.cl did not build, trying 16 rows: %.300s", v->bq, ctx->err);
    ctx->err[0] = 0;
    v->bq = 16, v->warps = 4;
    if (mla_mma_build(ctx, m, v) == PA_OK) return true;
  }
  pa_log(1, "opencl: mla_mma.cl did not build, using the portable tile: %.300s", ctx->err);
  ctx->err[0] = 0;
  *v = (pa_cl_variant){
      .bq = 16, .bkv = 16, .rg = 8, .cg = 16}; /* attention.cl MLA tile: 37 KB for 576 dims */
  return pa_cl_build_tile(ctx, plan, v) == PA_OK;
}

/* A tensor as the kernels take it: buffer, element offset, strides s0 and s1. */
static void arg_view(pa_cl_args *g, const pa_tensor *t, int s0, int s1) {
  pa_cl_arg_mem(g, t->buf);
  pa_cl_arg_long(g, pa_cl_elem_off(t));
  pa_cl_arg_long(g, t->stride[s0]), pa_cl_arg_long(g, t->stride[s1]);
}

/* mla_mma.cl's arguments: paged ckv/kpe, ragged q/out/lse [T, H, ...]. */
static void mla_mma_args(pa_cl_args *g, const pa_plan *plan, const pa_mla_args *a, pa_buffer *ws, bool want_lse) {
  const pa_attention_desc *d = &plan->desc;
  arg_view(g, &a->q_nope, 0, 1);
  arg_view(g, &a->q_pe, 0, 1);
  arg_view(g, &a->ckv, 1, 0);
  arg_view(g, &a->kpe, 1, 0);
  arg_view(g, &a->out, 0, 1);
  pa_cl_arg_mem(g, want_lse ? a->lse.buf : NULL);
  pa_cl_arg_long(g, want_lse ? pa_cl_elem_off(&a->lse) : 0);
  pa_cl_arg_long(g, want_lse ? a->lse.stride[0] : 0);
  pa_cl_arg_long(g, want_lse ? a->lse.stride[1] : 0);
  arg_view(g, &a->block_table, 0, 1);
  pa_cl_sched_args(g, plan, ws);
  pa_cl_arg_int(g, d->page_size);
  pa_cl_arg_int(g, plan->group);
  pa_cl_arg_int(g, d->num_q_heads);
  pa_cl_arg_int(g, pa_cl_vec_ok(&a->ckv) && pa_cl_vec_ok(&a->kpe));
  pa_cl_arg_float(g, plan->scale);
  pa_cl_arg_int(g, d->causal);
  pa_cl_arg_int(g, (int)(d->flags & PA_RETURN_LSE));
}

/* attention.cl (MLA=1)'s arguments: K = ckv || kpe, V = the ckv columns of
 * the K tile (no v view); no mask, sinks, ALiBi, window or softcap. */
static void tile_args(pa_cl_args *g, const pa_plan *plan, const pa_mla_args *a, pa_buffer *ws,
                      bool want_lse) {
  const pa_attention_desc *d = &plan->desc;
  const bool paged = d->page_size > 0;
  pa_cl_attention_argv c = {
      .q = {a->q_nope.buf,
            pa_cl_elem_off(&a->q_nope),
            {0, a->q_nope.stride[0], a->q_nope.stride[1]}},
      .q2 = {a->q_pe.buf, pa_cl_elem_off(&a->q_pe), {a->q_pe.stride[0], a->q_pe.stride[1]}},
      /* ckv [pages, page_size, Dc] or [T, Dc]: (batch, token, head, page) */
      .k = {a->ckv.buf,
            pa_cl_elem_off(&a->ckv),
            {0, paged ? a->ckv.stride[1] : a->ckv.stride[0], 0, paged ? a->ckv.stride[0] : 0}},
      .k2 = {a->kpe.buf,
             pa_cl_elem_off(&a->kpe),
             {paged ? a->kpe.stride[1] : a->kpe.stride[0], paged ? a->kpe.stride[0] : 0}},
      .out = {a->out.buf, pa_cl_elem_off(&a->out), {0, a->out.stride[0], a->out.stride[1]}},
      .ragged_q = 1,
      .ragged_k = !paged,
      .page_size = d->page_size,
      .group = plan->group,
      .hq = d->num_q_heads,
      .kv_vec = pa_cl_vec_ok(&a->ckv) && pa_cl_vec_ok(&a->kpe),
      .scale = plan->scale,
      .causal = d->causal,
      .wl = -1,
      .wr = -1,
      .flags = (int)(d->flags & PA_RETURN_LSE),
  };
  if (want_lse)
    c.lse =
        (pa_cl_view){a->lse.buf, pa_cl_elem_off(&a->lse), {0, a->lse.stride[0], a->lse.stride[1]}};
  if (paged)
    c.bt = (pa_cl_view){a->block_table.buf,
                        pa_cl_elem_off(&a->block_table),
                        {a->block_table.stride[0], a->block_table.stride[1]}};
  pa_cl_attention_args(g, plan, ws, &c);
  const bool fp8 = pa_dtype_is_fp8(d->kv_dtype);
  pa_cl_scale_args(g, fp8 ? &a->kv_scale : NULL);
  pa_cl_scale_args(g, fp8 ? &a->kv_scale : NULL);
}

pa_status pa_cl_mla(pa_context *ctx, const pa_plan *plan, const pa_mla_args *a, pa_buffer *ws) {
  const pa_cl_variant *v = pa_cl_variant_of(plan);
  const pa_cl_plan *cp = plan->backend_data;
  const pa_attention_desc *d = &plan->desc;
  if (!plan->num_work) return PA_OK;
  pa_cl_state *st = pa_cl(ctx);
  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = v->kernel};
  const bool mma = v->family == PA_CL_MLA_MMA;
  bool want_lse = (d->flags & PA_RETURN_LSE) && a->lse.buf;
  if (mma)
    mla_mma_args(&g, plan, a, ws, want_lse);
  else
    tile_args(&g, plan, a, ws, want_lse);

  pa_status s = PA_OK;
  if (g.err != CL_SUCCESS) {
    s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: mla argument %u: %s (%d)", g.bad,
                pa_cl_error_name(g.err), (int)g.err);
  } else {
    size_t local = v->threads, global = local * (size_t)plan->num_work;
    cl_int e =
        clEnqueueNDRangeKernel(st->queue, v->kernel, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, v->name);
  }
  if (s == PA_OK && plan->num_combine > 0)
    s = pa_cl_combine(ctx, plan, cp->combine, &a->out, want_lse ? &a->lse : NULL, NULL, ws);
  pthread_mutex_unlock(&st->lock);
  return s;
}

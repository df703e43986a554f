/* MLA decode run: kernels/mla_mma.cl (tensor cores, after the probe) or
 * kernels/attention.cl built with MLA=1 (K = ckv || kpe from two views, V = the
 * ckv columns of the K tile), then the split-KV combine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_backend.h"

/* kernels/mla_mma.cl's variant, packed into the plan's tile: bq = 16 NRG rows,
 * bkv = BN keys, rg = 254 (the mark), cg = PF | EMU << 1 | LDSM << 2 |
 * CPA << 3 | (index of the register cap in mla_regs) << 4. */
typedef struct mla_mma_cfg {
  int bn, nrg, pf, maxreg, ldsm, cpa, emu;
} mla_mma_cfg;
static const int mla_regs[4] = {0, 128, 168, 200};

/* PA_OPENCL_MLA=bn,nrg,pf,maxreg,ldsm,cpa[,emu] (tuning; read per plan): BN
 * 16 or 32, NRG 1 or 2, PF 0 or 1, maxreg 0 (none), 128, 168 or 200 (a
 * register cap), ldsm 1: B fragments by ldmatrix, cpa 1: two key stages
 * filled by cp.async (instead of PF); emu runs the kernel's PTX helpers in
 * OpenCL C on any device (tests). "portable" turns the kernel off. Default
 * 16,2,0,0,1,1 (H200, f16 h128 b64 kv4096, 2026-11-22 02:21 UTC): 1.017 ms,
 * against 1.209 for the next tile in registers (16,2,1,0,1,0) and 2.6 for BN
 * 32 NRG 1 with neither; 32,1,1,0,1,0 ran 0.953 ms but has not been through
 * the GPU tests yet. Without the ldmatrix/cp.async probe: ldsm 0, PF 1. */
static bool mla_mma_env(mla_mma_cfg *c) {
  *c = (mla_mma_cfg){16, 2, 0, 0, 1, 1, 0};
  const char *e = getenv("PA_OPENCL_MLA");
  if (!e || !*e) return true;
  if (!strcmp(e, "portable")) return false;
  char emu[8] = "";
  mla_mma_cfg v = {0};
  int n = sscanf(e, "%d,%d,%d,%d,%d,%d,%7s", &v.bn, &v.nrg, &v.pf, &v.maxreg, &v.ldsm, &v.cpa, emu);
  int reg_ok = 0;
  for (int i = 0; i < 4; i++) reg_ok |= v.maxreg == mla_regs[i];
  if (n < 6 || (v.ldsm != 0 && v.ldsm != 1) || (v.cpa != 0 && v.cpa != 1) || (v.cpa && v.pf) ||
      (v.bn != 16 && v.bn != 32) || (v.nrg != 1 && v.nrg != 2) || (v.pf != 0 && v.pf != 1) || !reg_ok) {
    pa_log(1, "opencl: PA_OPENCL_MLA=%s ignored (want bn,nrg,pf,maxreg,ldsm,cpa[,emu])", e);
    return true;
  }
  v.emu = !strcmp(emu, "emu");
  *c = v;
  return true;
}

static size_t mla_mma_local(const mla_mma_cfg *c, int dk) {
  size_t b = (size_t)(c->cpa ? 2 : 1) * c->bn * (dk + 8) * 2 + (size_t)c->nrg * 4 * (c->bn / 8) * 32 * 16 + 4 * (size_t)c->bn * 8;
  if (c->emu) b += 4 * ((size_t)c->nrg * 4 * 384 + 2 * (size_t)c->nrg * 128);
  return b;
}

/* Builds (or finds in the program cache) mla_mma.cl for a tile. */
static pa_status mla_mma_kernel(pa_context *ctx, const pa_mla_desc *m, pa_cl_tile t, cl_kernel *k) {
  int pf = t.cg & 1, emu = (t.cg >> 1) & 1, ldsm = (t.cg >> 2) & 1;
  int cpa = (t.cg >> 3) & 1, maxreg = mla_regs[(t.cg >> 4) & 3];
  char defs[256], cap[40] = "";
  if (maxreg && !emu) snprintf(cap, sizeof cap, " -cl-nv-maxrregcount=%d", maxreg);
  snprintf(defs, sizeof defs, "-DDC=%d -DDR=%d -DKV_DT=%d -DO_DT=%d -DBN=%d -DNRG=%d -DPF=%d -DLDSM=%d -DCPA=%d -DEMU=%d%s",
           m->head_dim_ckv, m->head_dim_kpe, (int)m->kv_dtype, (int)m->o_dtype, t.bkv, t.bq / 16, pf,
           ldsm, cpa, emu, cap);
  return pa_cl_kernel(ctx, "mla_mma.cl", defs, "pa_mla_mma", k);
}

bool pa_cl_mla_mma_pick(pa_context *ctx, const pa_plan *plan, pa_kernel_choice *choice) {
  const pa_cl_state *st = pa_cl(ctx);
  const pa_mla_desc *m = &plan->mla;
  mla_mma_cfg c;
  if (plan->op != PA_OP_MLA || !mla_mma_env(&c)) return false;
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
  int ri = 0;
  while (mla_regs[ri] != c.maxreg) ri++;
  pa_cl_tile t = {16 * c.nrg, c.bn, 254, c.pf | c.emu << 1 | c.ldsm << 2 | c.cpa << 3 | ri << 4};
  /* Only 16-row items have a portable fallback, so a taller tile is chosen
   * only once its kernel builds (plan_ready then finds it in the cache). */
  cl_kernel k;
  if (t.bq > 16 && mla_mma_kernel(ctx, m, t, &k) != PA_OK) {
    pa_log(1, "opencl: %d-row mla_mma.cl did not build, trying 16 rows: %.300s", t.bq, ctx->err);
    ctx->err[0] = 0;
    t.bq = 16;
  }
  *choice = (pa_kernel_choice){.kernel = pa_cl_tile_pack(t), .q_tile_rows = t.bq, .kv_align = t.bkv,
                               .name = c.emu ? "opencl.mla.mma.emu" : "opencl.mla.mma"};
  return true;
}

/* Builds the plan's mla_mma.cl kernel; if it does not build (only 16-row
 * tiles get here unbuilt: pick checks taller ones), logs why and leaves a
 * portable attention.cl tile in cp->tile for the caller to build. */
pa_status pa_cl_mla_mma_build(pa_context *ctx, pa_plan *plan, pa_cl_plan *cp) {
  cp->threads = (size_t)cp->tile.bq / 16 * 128;
  pa_status s = mla_mma_kernel(ctx, &plan->mla, cp->tile, &cp->attention);
  if (s == PA_OK) return PA_OK;
  pa_log(1, "opencl: mla_mma.cl did not build, using the portable tile: %.300s", ctx->err);
  ctx->err[0] = 0;
  if (cp->tile.bq > 16) return pa_fail(ctx, PA_ERR_BACKEND, "opencl: mla_mma.cl (%d rows) did not build", cp->tile.bq);
  cp->tile = (pa_cl_tile){16, 16, 8, 16}; /* attention.cl MLA tile: 37 KB for 576 dims */
  plan->choice.name = "opencl.mla.tile16";
  return PA_OK;
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
  pa_cl_arg_mem(g, plan->ws_size ? ws : NULL);
  pa_cl_arg_long(g, (int64_t)(plan->ws_o_offset / 4));
  pa_cl_arg_long(g, (int64_t)(plan->ws_lse_offset / 4));
  pa_cl_arg_mem(g, plan->schedule);
  pa_cl_arg_int(g, (int)(plan->sched_req_off / 4));
  pa_cl_arg_int(g, (int)(plan->sched_work_off / 4));
  pa_cl_arg_int(g, d->page_size);
  pa_cl_arg_int(g, plan->group);
  pa_cl_arg_int(g, d->num_q_heads);
  pa_cl_arg_int(g, pa_cl_vec_ok(&a->ckv) && pa_cl_vec_ok(&a->kpe));
  pa_cl_arg_float(g, plan->scale);
  pa_cl_arg_int(g, d->causal);
  pa_cl_arg_int(g, (int)(d->flags & PA_RETURN_LSE));
}

/* attention.cl (MLA=1)'s arguments. */
static void tile_args(pa_cl_args *g, const pa_plan *plan, const pa_mla_args *a, pa_buffer *ws, bool want_lse) {
  const pa_attention_desc *d = &plan->desc;
  const bool paged = d->page_size > 0;
  pa_cl_arg_mem(g, a->q_nope.buf);
  pa_cl_arg_long(g, pa_cl_elem_off(&a->q_nope));
  pa_cl_arg_long(g, 0), pa_cl_arg_long(g, a->q_nope.stride[0]), pa_cl_arg_long(g, a->q_nope.stride[1]);
  arg_view(g, &a->q_pe, 0, 1);

  /* ckv [pages, page_size, Dc]: (batch, token, head, page) strides. */
  pa_cl_arg_mem(g, a->ckv.buf);
  pa_cl_arg_long(g, pa_cl_elem_off(&a->ckv));
  pa_cl_arg_long(g, 0), pa_cl_arg_long(g, paged ? a->ckv.stride[1] : a->ckv.stride[0]);
  pa_cl_arg_long(g, 0), pa_cl_arg_long(g, paged ? a->ckv.stride[0] : 0);
  pa_cl_arg_mem(g, a->kpe.buf);
  pa_cl_arg_long(g, pa_cl_elem_off(&a->kpe));
  pa_cl_arg_long(g, paged ? a->kpe.stride[1] : a->kpe.stride[0]);
  pa_cl_arg_long(g, paged ? a->kpe.stride[0] : 0);
  pa_cl_arg_mem(g, NULL); /* v: the ckv columns of the K tile */
  for (int i = 0; i < 5; i++) pa_cl_arg_long(g, 0);

  pa_cl_arg_mem(g, a->out.buf);
  pa_cl_arg_long(g, pa_cl_elem_off(&a->out));
  pa_cl_arg_long(g, 0), pa_cl_arg_long(g, a->out.stride[0]), pa_cl_arg_long(g, a->out.stride[1]);

  pa_cl_arg_mem(g, want_lse ? a->lse.buf : NULL);
  pa_cl_arg_long(g, want_lse ? pa_cl_elem_off(&a->lse) : 0);
  pa_cl_arg_long(g, 0);
  pa_cl_arg_long(g, want_lse ? a->lse.stride[0] : 0);
  pa_cl_arg_long(g, want_lse ? a->lse.stride[1] : 0);

  pa_cl_arg_mem(g, paged ? a->block_table.buf : NULL);
  pa_cl_arg_long(g, paged ? pa_cl_elem_off(&a->block_table) : 0);
  pa_cl_arg_long(g, paged ? a->block_table.stride[0] : 0);
  pa_cl_arg_long(g, paged ? a->block_table.stride[1] : 0);

  pa_cl_arg_mem(g, NULL); /* mask */
  for (int i = 0; i < 5; i++) pa_cl_arg_long(g, 0);
  for (int x = 0; x < 2; x++) { /* sinks, alibi */
    pa_cl_arg_mem(g, NULL);
    pa_cl_arg_long(g, 0), pa_cl_arg_long(g, 0);
  }

  pa_cl_arg_mem(g, plan->ws_size ? ws : NULL);
  pa_cl_arg_long(g, (int64_t)(plan->ws_o_offset / 4));
  pa_cl_arg_long(g, (int64_t)(plan->ws_lse_offset / 4));
  pa_cl_arg_mem(g, plan->schedule);
  pa_cl_arg_int(g, (int)(plan->sched_req_off / 4));
  pa_cl_arg_int(g, (int)(plan->sched_work_off / 4));

  pa_cl_arg_int(g, 1);      /* ragged q */
  pa_cl_arg_int(g, !paged); /* ragged k when contiguous */
  pa_cl_arg_int(g, d->page_size);
  pa_cl_arg_int(g, plan->group);
  pa_cl_arg_int(g, d->num_q_heads);
  pa_cl_arg_int(g, pa_cl_vec_ok(&a->ckv) && pa_cl_vec_ok(&a->kpe));
  pa_cl_arg_float(g, plan->scale);
  pa_cl_arg_float(g, 0.0f);
  pa_cl_arg_int(g, d->causal);
  pa_cl_arg_int(g, -1), pa_cl_arg_int(g, -1), pa_cl_arg_int(g, 0);
  pa_cl_arg_int(g, (int)(d->flags & PA_RETURN_LSE));
  const bool fp8 = pa_dtype_is_fp8(d->kv_dtype);
  pa_cl_scale_args(g, fp8 ? &a->kv_scale : NULL);
  pa_cl_scale_args(g, fp8 ? &a->kv_scale : NULL);
}

pa_status pa_cl_mla(pa_context *ctx, const pa_plan *plan, const pa_mla_args *a, pa_buffer *ws) {
  const pa_cl_plan *cp = plan->backend_data;
  const pa_attention_desc *d = &plan->desc;
  if (!plan->num_work) return PA_OK;
  pa_cl_state *st = pa_cl(ctx);
  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = cp->attention};
  const bool mma = cp->tile.rg == 254;
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
    size_t local = cp->threads, global = local * (size_t)plan->num_work;
    cl_int e = clEnqueueNDRangeKernel(st->queue, cp->attention, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, mma ? "enqueue pa_mla_mma" : "enqueue pa_attention (mla)");
  }
  if (s == PA_OK && plan->num_combine > 0)
    s = pa_cl_combine(ctx, plan, cp->combine, &a->out, want_lse ? &a->lse : NULL, NULL, ws);
  pthread_mutex_unlock(&st->lock);
  return s;
}

/* The OpenCL selector: the kernel family and shape a plan runs, its fallback
 * ladder where a kernel does not build, and the build itself, all once per
 * plan (pa_cl_select); plan_ready only adds the split-KV combine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_backend.h"
#include "fault.h"

/* A candidate shape: rows, keys, and (attention.cl) the work-item grid. */
typedef struct pa_cl_tile {
  int bq, bkv, rg, cg;
} pa_cl_tile;

/* Local memory bytes of kernels/attention.cl for a tile (mirrors its arrays). */
static size_t pad_elems(int d, int dt) {
  if (pa_dtype_is_fp8((pa_dtype)dt)) return (size_t)((((d + 3) / 4) | 1) * 4);
  return dt == PA_F32 ? (size_t)(d | 1) : (size_t)((((d + 1) / 2) | 1) * 2);
}
static size_t tile_bytes(pa_cl_tile t, int dqk, int dv, pa_dtype qdt, pa_dtype kvdt, bool mla) {
  int dmax = dqk > dv ? dqk : dv;
  size_t b = (size_t)t.bq * pad_elems(dqk, qdt) * pa_dtype_size(qdt);
  b += (size_t)t.bkv * pad_elems(dmax, kvdt) * pa_dtype_size(kvdt);
  b += (size_t)t.bq * (t.bkv + 1) * 4 + (size_t)t.bq * 4;        /* p, alpha */
  b += (size_t)t.bkv * 16 + (size_t)t.bq * 8 + (size_t)t.bq * 8; /* offsets, row ids */
  if (mla) b += (size_t)t.bkv * 8 + (size_t)t.bq * 8;
  return b;
}

/* Candidate tiles, best first for the number of packed rows one (request, KV
 * head) has: decode (g * len_q small) takes a short tile so no FMA is spent on
 * absent rows; prefill takes the tallest tile local memory allows. */
static bool pick_tile(const pa_cl_state *st, int rows, int dqk, int dv, pa_dtype qdt, pa_dtype kvdt,
                      bool mla, bool deterministic, pa_cl_tile *out) {
  static const pa_cl_tile small[] = {
      {4, 64, 4, 32}, {4, 32, 4, 32}, {4, 16, 4, 16}, {4, 8, 4, 8}, {4, 4, 4, 4}};
  static const pa_cl_tile mid[] = {{16, 64, 8, 16}, {16, 32, 8, 16}, {16, 16, 8, 16},
                                   {8, 16, 8, 16},  {8, 8, 8, 8},    {4, 8, 4, 8},
                                   {4, 4, 4, 4}};
  static const pa_cl_tile big[] = {{64, 64, 8, 16}, {64, 32, 8, 16}, {32, 32, 8, 16},
                                   {32, 16, 8, 16}, {16, 16, 8, 16}, {8, 16, 8, 16},
                                   {8, 8, 8, 8},    {4, 8, 4, 8},    {4, 4, 4, 4}};
  const pa_cl_tile *list = rows <= 4 ? small : rows <= 16 ? mid : big;
  int n = rows <= 4 ? 5 : rows <= 16 ? 7 : 9;
  /* 48 KiB is what NVIDIA gives a work-group without opt-in; CPUs report more
   * but the same tiles keep the number of compiled variants down. */
  size_t budget = st->local_mem < 49152 ? st->local_mem : 49152;
  budget = budget > 1024 ? budget - 1024 : budget;
  /* A row's arithmetic depends on BKV only (dot order over d, softmax and
   * P V order within a key tile), so deterministic plans fix BKV from the
   * shape alone: the result cannot depend on the batch's longest request. */
  int det_bkv = 0;
  if (deterministic)
    for (int b = 32; b >= 4 && !det_bkv; b /= 2)
      if (tile_bytes((pa_cl_tile){4, b, 4, b < 32 ? b : 32}, dqk, dv, qdt, kvdt, mla) <= budget)
        det_bkv = b;
  for (int i = 0; i < n; i++) {
    pa_cl_tile t = list[i];
    if (det_bkv) {
      t.bkv = det_bkv;
      if (t.cg > det_bkv) t.cg = det_bkv;
    }
    if ((size_t)(t.rg * t.cg) > st->max_wg) continue;
    if (tile_bytes(t, dqk, dv, qdt, kvdt, mla) <= budget) {
      *out = t;
      return true;
    }
  }
  return false;
}

/* kernels/decode.cl for items of at most 8 packed rows: DL lanes of 8 dims
 * per key (a power of two covering both head dims), KG = 128 / DL key groups,
 * KPT keys per group per tile. Not for deterministic plans: whether a request
 * takes it depends on the batch. */
int pa_cl_decode_lanes(int dqk, int dv) {
  int dl = 1;
  while (dl * 8 < (dqk > dv ? dqk : dv)) dl *= 2;
  return dl;
}

static size_t local_budget(const pa_cl_state *st) {
  return st->local_mem < 49152 ? st->local_mem : 49152;
}

/* Builds kernel `fn` of `file` for v and names the variant after it. */
static pa_status build(pa_context *ctx, pa_cl_variant *v, const char *file, const char *defs,
                       const char *fn, const char *shape) {
  snprintf(v->name, sizeof v->name, "opencl.%s.%s", fn, shape);
  return pa_cl_kernel(ctx, file, defs, fn, &v->kernel);
}

/* A build that failed but has a fallback: say why, clear the error. */
static void fell_back(pa_context *ctx, const char *what, const char *instead) {
  pa_log(1, "opencl: %s did not build, using %s: %.300s", what, instead, ctx->err);
  ctx->err[0] = 0;
}

/* kernels/decode_w.cl's pa_decode_w (no barrier in the key loop): on NVIDIA
 * after the inline-PTX probe (warp shuffles), or anywhere with the shuffles
 * emulated (opencl.decode=emu, for testing); bkv is its step of
 * 32 * warps / bq keys. Warps per work-group: dev.opencl.decode_warps. */
static bool pick_decode_w(const pa_cl_state *st, const pa_config *cfg, int bq, int dl,
                          const pa_attention_desc *d, pa_cl_variant *out) {
  bool emu = cfg->opencl_decode == PA_CFG_DECODE_EMU;
  if (cfg->opencl_decode == PA_CFG_DECODE_PORTABLE || (!emu && !st->mma_ok) || dl < bq || dl > 32)
    return false;
  int warps = cfg->dev_opencl_decode_warps;
  if ((size_t)warps * 32 > st->max_wg) return false;
  int ng = warps * 32 / dl;
  size_t bytes = 4 * ((size_t)ng * bq * d->head_dim_v + 2 * (size_t)ng * bq + 2 * (size_t)bq +
                      (size_t)warps * 32);
  if (bytes + 1024 > local_budget(st)) return false;
  *out = (pa_cl_variant){
      .family = PA_CL_DECODE_W, .bq = bq, .bkv = 32 * warps / bq, .warps = warps, .emu = emu};
  return true;
}

/* pa_decode: KG key groups of KPT keys. */
static bool pick_decode_tile(const pa_cl_state *st, int bq, int dl, const pa_attention_desc *d,
                             pa_cl_variant *out) {
  if (dl > 32 || st->max_wg < 128) return false;
  int kg = 128 / dl;
  size_t budget = local_budget(st);
  for (int kpt = bq == 4 ? 8 : 4; kpt >= 1; kpt /= 2) {
    int bkv = kg * kpt;
    if (bkv > 128) continue;
    size_t part = (size_t)bkv * bq * (dl + 1), red = (size_t)kg * bq * d->head_dim_v;
    size_t bytes =
        4 * ((part > red ? part : red) + (size_t)bq * bkv + 2 * (size_t)kg * bq + 2 * (size_t)bq);
    if (bytes + 1024 <= budget) {
      *out = (pa_cl_variant){.family = PA_CL_DECODE, .bq = bq, .bkv = bkv, .kg = kg};
      return true;
    }
  }
  return false;
}

/* The decode kernels get the plan's page size compiled in (one program per
 * page size): key -> page and offset without a runtime division per key
 * (bench/RESULTS.md, OpenCL decode). dev.opencl.decode_cpage=0 keeps the
 * runtime page size. */
static bool cpage_on(const pa_config *cfg) { return cfg->dev_opencl_decode_cpage != 0; }

static pa_status build_decode(pa_context *ctx, const pa_attention_desc *d, pa_cl_variant *v) {
  int dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v);
  char defs[512], shape[32];
  v->threads = (size_t)v->kg * dl;
  snprintf(defs, sizeof defs,
           "-DDQK=%d -DDV=%d -DQ_DT=%d -DKV_DT=%d -DO_DT=%d -DBQ=%d -DBKV=%d -DDL=%d -DKG=%d",
           d->head_dim_qk, d->head_dim_v, (int)d->q_dtype, (int)d->kv_dtype, (int)d->o_dtype, v->bq,
           v->bkv, dl, v->kg);
  snprintf(shape, sizeof shape, "bq%d", v->bq);
  return build(ctx, v, "decode.cl", defs, "pa_decode", shape);
}

/* pa_decode_w with K/V through a cp.async ring (16-bit K/V) of as many steps
 * as local memory holds, up to dev.opencl.decode_stages (0 or 1: K/V through
 * registers); where the ring does not build, through registers. Tuning
 * switches: K/V loads through ld.global.nc (register path), a register cap. */
static pa_status build_decode_w(pa_context *ctx, const pa_attention_desc *d, pa_cl_variant *v) {
  const pa_config *cfg = &ctx->cfg;
  int dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v), warps = v->warps;
  int ntw = warps * 32, ng = ntw / dl, u = dl / v->bq;
  bool nv = !v->emu;
  int nc = cfg->dev_opencl_decode_nc, regs = cfg->dev_opencl_decode_regs;
  int smax = cfg->dev_opencl_decode_stages, stages = 0;
  size_t budget = local_budget(pa_cl(ctx));
  size_t small =
      4 * (2 * (size_t)ng * v->bq + 2 * (size_t)v->bq) + (nv ? 0 : 4 * (size_t)ntw) + 1024;
  const bool fp8 = pa_dtype_is_fp8(d->kv_dtype);
  int fp8cvt = fp8 && nv; /* fp8: the sm_89 cvt in PTX, else the integer decode */
  if (d->kv_dtype != PA_F32 && !fp8 && budget > small) /* the ring moves 16-byte slices */
    for (stages = smax < 8 ? smax : 8;
         stages >= 2 && (size_t)stages * 2 * u * ntw * 16 > budget - small; stages--) {
    }
  /* the ring's cp.async needs the probe that checked its shared addresses */
  if (stages < 2 || (nv && !pa_cl(ctx)->ldsm_ok)) stages = 0;
  char extra[64] = "", defs[512], shape[32];
  if (nv && regs > 0) snprintf(extra, sizeof extra, " -cl-nv-maxrregcount=%d", regs);
  if (cpage_on(cfg) && d->page_size > 0) {
    size_t n = strlen(extra);
    snprintf(extra + n, sizeof extra - n, " -DPAGE=%d", d->page_size);
  }
  v->threads = (size_t)ntw;
  for (;;) {
    snprintf(defs, sizeof defs,
             "-DDQK=%d -DDV=%d -DQ_DT=%d -DKV_DT=%d -DO_DT=%d -DBQ=%d -DDL=%d -DWARPS=%d -DNV=%d "
             "-DNC=%d "
             "-DCPA=%d -DSTAGES=%d -DCP_WAIT=%d -DFP8CVT=%d%s",
             d->head_dim_qk, d->head_dim_v, (int)d->q_dtype, (int)d->kv_dtype, (int)d->o_dtype,
             v->bq, dl, warps, nv ? 1 : 2, nv && nc == 1, stages > 0, stages > 0 ? stages : 1,
             stages > 0 ? stages - 1 : 0, fp8cvt, extra);
    v->stages = stages;
    snprintf(shape, sizeof shape, "bq%d.w%d.s%d%s%s", v->bq, warps, stages, fp8cvt ? ".cvt" : "",
             v->emu ? ".emu" : "");
    pa_status s = build(ctx, v, "decode_w.cl", defs, "pa_decode_w", shape);
    if (s == PA_OK || (stages == 0 && !fp8cvt)) return s;
    if (stages > 0) {
      fell_back(ctx, "pa_decode_w with the cp.async ring", "K/V through registers");
      stages = 0;
    } else {
      fell_back(ctx, "pa_decode_w with the fp8 cvt", "the integer fp8 decode");
      fp8cvt = 0;
    }
  }
}

/* The decode ladder: pa_decode_w, then the portable pa_decode; a kernel
 * that does not build hands over to the next. False: no decode kernel
 * applies. */
static bool choose_decode(pa_context *ctx, int rows, const pa_attention_desc *d, pa_cl_variant *v,
                          pa_status *s) {
  const pa_cl_state *st = pa_cl(ctx);
  const pa_config *cfg = &ctx->cfg;
  if (cfg->opencl_decode == PA_CFG_DECODE_OFF) return false;
  int bq = rows <= 4 ? 4 : 8, dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v);
  if (pick_decode_w(st, cfg, bq, dl, d, v)) {
    if ((*s = build_decode_w(ctx, d, v)) == PA_OK) return true;
    fell_back(ctx, "pa_decode_w", "the next decode kernel");
  }
  if (!pick_decode_tile(st, bq, dl, d, v)) return false;
  *s = build_decode(ctx, d, v);
  return true;
}

/* fp8 K/V, few rows: pa_decode_w only (NVIDIA, or emulated for tests);
 * false sends the plan to the portable tile. */
static bool choose_decode_w8(pa_context *ctx, int rows, const pa_attention_desc *d,
                             pa_cl_variant *v) {
  const pa_config *cfg = &ctx->cfg;
  if (cfg->opencl_decode == PA_CFG_DECODE_OFF) return false;
  int bq = rows <= 4 ? 4 : 8, dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v);
  if (!pick_decode_w(pa_cl(ctx), cfg, bq, dl, d, v)) return false;
  if (build_decode_w(ctx, d, v) == PA_OK) return true;
  fell_back(ctx, "pa_decode_w (fp8)", "the portable tile");
  return false;
}

/* kernels/prefill_mma.cl: f16/bf16 (Q and K/V alike), head dims multiples of
 * 16 up to 128, more than 8 packed rows, after the probe passed. Not for
 * deterministic plans (the kernel taken would depend on the batch). */
static bool use_mma(const pa_cl_state *st, const pa_plan *plan, int64_t rows) {
  const pa_attention_desc *d = &plan->desc;
  bool ok = d->q_dtype == PA_F16 ? st->mma_ok : d->q_dtype == PA_BF16 ? st->mma_bf16_ok : false;
  return ok && plan->op == PA_OP_ATTENTION && d->kv_dtype == d->q_dtype &&
         d->head_dim_qk % 16 == 0 && d->head_dim_v % 16 == 0 && d->head_dim_qk <= 128 &&
         d->head_dim_v <= 128 && rows > 8 && !(d->flags & PA_DETERMINISTIC) && st->max_wg >= 128 &&
         st->local_mem >= 40 * 1024;
}

/* The mma kernel's shape: the plain kernel (PIPE=0, 64 rows, 64 keys), or
 * the pipelined one (kernels/prefill_mma.cl says why) with bq = 16 x warps:
 * 8 warps (BQ 128) once an item has more than 64 rows, since each staged K/V
 * tile then feeds twice the rows (H200, f16 d128 causal s4096,
 * bench/RESULTS.md). dev.opencl.prefill=plain and dev.opencl.prefill_warps /
 * _bkv override, for tuning. */
static pa_cl_variant mma_variant(const pa_cl_state *st, const pa_config *cfg, int64_t rows) {
  pa_cl_variant v = {.family = PA_CL_PREFILL_MMA, .bq = 64, .bkv = 64, .warps = 4};
  if (cfg->dev_opencl_prefill == PA_CFG_CLPREFILL_PLAIN) return v;
  v.pipe = st->ldsm_ok;
  if (v.pipe && rows > 64 && st->max_wg >= 256) v.bq = 128;
  int w = cfg->dev_opencl_prefill_warps;
  if (v.pipe && (w == 4 || (w == 8 && st->max_wg >= 256))) v.bq = 16 * w;
  if (v.pipe && cfg->dev_opencl_prefill_bkv) v.bkv = cfg->dev_opencl_prefill_bkv;
  v.warps = v.bq / 16;
  return v;
}

/* Builds (or finds in the program cache) prefill_mma.cl for an mma variant. */
static pa_status build_mma(pa_context *ctx, const pa_attention_desc *d, pa_cl_variant *v) {
  char defs[256], shape[32];
  int n =
      snprintf(defs, sizeof defs, "-DPROBE_ONLY=0 -DDQK=%d -DDV=%d -DKV_DT=%d -DO_DT=%d -DPIPE=%d",
               d->head_dim_qk, d->head_dim_v, (int)d->kv_dtype, (int)d->o_dtype, v->pipe);
  if (v->pipe) snprintf(defs + n, sizeof defs - n, " -DWARPS=%d -DBKV=%d", v->bq / 16, v->bkv);
  v->threads = v->pipe ? (size_t)v->bq * 2 : 128; /* a warp per 16 rows */
  snprintf(shape, sizeof shape, v->pipe ? "bq%d.bkv%d.pipe" : "bq%d.plain", v->bq, v->bkv);
  return build(ctx, v, "prefill_mma.cl", defs, "pa_prefill_mma", shape);
}

/* The prefill ladder: 128-row pipelined -> 64-row pipelined -> plain ->
 * the portable 64-row tile. */
static pa_status choose_mma(pa_context *ctx, const pa_plan *plan, int64_t rows, pa_cl_variant *v) {
  const pa_attention_desc *d = &plan->desc;
  *v = mma_variant(pa_cl(ctx), &ctx->cfg, rows);
  pa_status s = build_mma(ctx, d, v);
  if (s != PA_OK && v->bq > 64) {
    fell_back(ctx, "the 128-row pa_prefill_mma", "64 rows");
    v->bq = 64, v->warps = 4;
    s = build_mma(ctx, d, v);
  }
  if (s != PA_OK && v->pipe && v->bkv == 64) {
    fell_back(ctx, "the pipelined pa_prefill_mma", "the plain one");
    v->pipe = false;
    s = build_mma(ctx, d, v);
  }
  if (s != PA_OK) {
    fell_back(ctx, "pa_prefill_mma", "the portable tile");
    *v = (pa_cl_variant){.family = PA_CL_TILE, .bq = 64, .bkv = 32, .rg = 8, .cg = 16};
    s = pa_cl_build_tile(ctx, plan, v);
  }
  return s;
}

pa_status pa_cl_build_tile(pa_context *ctx, const pa_plan *plan, pa_cl_variant *v) {
  const pa_attention_desc *d = &plan->desc;
  bool mla = plan->op == PA_OP_MLA;
  char defs[512], shape[32];
  v->family = PA_CL_TILE;
  v->threads = (size_t)v->rg * v->cg;
  snprintf(
      defs, sizeof defs,
      "-DDQK=%d -DDV=%d -DQ_DT=%d -DKV_DT=%d -DO_DT=%d -DBQ=%d -DBKV=%d -DRG=%d -DCG=%d -DMLA=%d",
      d->head_dim_qk, d->head_dim_v, (int)d->q_dtype, (int)d->kv_dtype, (int)d->o_dtype, v->bq,
      v->bkv, v->rg, v->cg, mla ? 1 : 0);
  snprintf(shape, sizeof shape, "%sbq%d.bkv%d", mla ? "mla." : "", v->bq, v->bkv);
  return build(ctx, v, "attention.cl", defs, "pa_attention", shape);
}

static pa_status choose(pa_context *ctx, const pa_plan *plan, pa_cl_variant *v) {
  const pa_attention_desc *d = &plan->desc;
  const pa_config *cfg = &ctx->cfg;
  bool mla = plan->op == PA_OP_MLA;
  int64_t rows = (int64_t)plan->group * (plan->max_len_q > 0 ? plan->max_len_q : 1);
  pa_status s = PA_OK;
  /* dev.opencl.tile_* force a tile (tuning; validated by the reader, must
   * fit the device). */
  if (cfg->dev_opencl_tile_bq > 0) {
    *v = (pa_cl_variant){.bq = cfg->dev_opencl_tile_bq,
                         .bkv = cfg->dev_opencl_tile_bkv,
                         .rg = cfg->dev_opencl_tile_rg,
                         .cg = cfg->dev_opencl_tile_cg};
    return pa_cl_build_tile(ctx, plan, v);
  }
  /* fp8 K/V: pa_decode_w for few rows (NVIDIA; dev.opencl.fp8_decode=1), else the portable
   * tile (attention.cl) */
  const bool fp8 = pa_dtype_is_fp8(d->kv_dtype);
  if (!fp8 && !mla && !(d->flags & PA_DETERMINISTIC) && rows <= 8 &&
      choose_decode(ctx, (int)rows, d, v, &s))
    return s;
  if (fp8 && cfg->dev_opencl_fp8_decode && !mla && !(d->flags & PA_DETERMINISTIC) && rows <= 8 &&
      choose_decode_w8(ctx, (int)rows, d, v))
    return PA_OK;
  if (!fp8 && mla && pa_cl_mla_mma_variant(ctx, plan, v)) return PA_OK;
  if (!fp8 && use_mma(pa_cl(ctx), plan, rows)) return choose_mma(ctx, plan, rows, v);
  pa_cl_tile t;
  if (!pick_tile(pa_cl(ctx), rows > 64 ? 64 : (int)rows, d->head_dim_qk, d->head_dim_v, d->q_dtype,
                 d->kv_dtype, mla, (d->flags & PA_DETERMINISTIC) != 0, &t))
    return pa_fail(
        ctx, PA_ERR_UNSUPPORTED,
        "opencl: head_dim_qk=%d head_dim_v=%d need more local memory than the device's %zu B",
        d->head_dim_qk, d->head_dim_v, pa_cl(ctx)->local_mem);
  *v = (pa_cl_variant){.bq = t.bq, .bkv = t.bkv, .rg = t.rg, .cg = t.cg};
  return pa_cl_build_tile(ctx, plan, v);
}

pa_status pa_cl_select(pa_context *ctx, const pa_plan *plan, pa_kernel_choice *choice) {
  pa_cl_variant *v = calloc(1, sizeof *v);
  if (!v) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: plan variant");
  pa_status s = choose(ctx, plan, v);
  if (s != PA_OK) {
    free(v);
    return s;
  }
  *choice =
      (pa_kernel_choice){.q_tile_rows = v->bq, .kv_align = v->bkv, .name = v->name, .variant = v};
  return PA_OK;
}

static void plan_free(void *p) { free(p); }

pa_status pa_cl_plan_ready(pa_context *ctx, const pa_plan *plan, pa_plan_state *state) {
  if (plan->num_combine == 0) return PA_OK;
  pa_cl_plan *cp = PA_FAULT_OR(calloc(1, sizeof *cp));
  if (!cp) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: plan state");
  char defs[64];
  snprintf(defs, sizeof defs, "-DV_DT=0 -DO_DT=%d", (int)plan->desc.o_dtype);
  pa_status s = pa_cl_kernel(ctx, "merge.cl", defs, "pa_combine", &cp->combine);
  if (s != PA_OK) {
    free(cp);
    return s;
  }
  *state = (pa_plan_state){cp, plan_free};
  return PA_OK;
}

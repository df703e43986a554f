/* Tile choice for the attention/MLA kernel (the selector that supports() and
 * dispatch share) and the per-plan kernel build. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_backend.h"
#include "fault.h"

/* Local memory bytes of kernels/attention.cl for a tile (mirrors its arrays). */
static size_t pad_elems(int d, int dt) {
  if (pa_dtype_is_fp8((pa_dtype)dt)) return (size_t)((((d + 3) / 4) | 1) * 4);
  return dt == PA_F32 ? (size_t)(d | 1) : (size_t)((((d + 1) / 2) | 1) * 2);
}
static size_t tile_bytes(pa_cl_tile t, int dqk, int dv, pa_dtype qdt, pa_dtype kvdt, bool mla) {
  int dmax = dqk > dv ? dqk : dv;
  size_t b = (size_t)t.bq * pad_elems(dqk, qdt) * pa_dtype_size(qdt);
  b += (size_t)t.bkv * pad_elems(dmax, kvdt) * pa_dtype_size(kvdt);
  b += (size_t)t.bq * (t.bkv + 1) * 4 + (size_t)t.bq * 4; /* p, alpha */
  b += (size_t)t.bkv * 16 + (size_t)t.bq * 8 + (size_t)t.bq * 8; /* offsets, row ids */
  if (mla) b += (size_t)t.bkv * 8 + (size_t)t.bq * 8;
  return b;
}

/* Candidate tiles, best first for the number of packed rows one (request, KV
 * head) has: decode (g * len_q small) takes a short tile so no FMA is spent on
 * absent rows; prefill takes the tallest tile local memory allows. */
static bool pick_tile(const pa_cl_state *st, int rows, int dqk, int dv, pa_dtype qdt, pa_dtype kvdt,
                      bool mla, bool deterministic, pa_cl_tile *out) {
  static const pa_cl_tile small[] = {{4, 64, 4, 32}, {4, 32, 4, 32}, {4, 16, 4, 16}, {4, 8, 4, 8}, {4, 4, 4, 4}};
  static const pa_cl_tile mid[] = {{16, 64, 8, 16}, {16, 32, 8, 16}, {16, 16, 8, 16},
                                   {8, 16, 8, 16},  {8, 8, 8, 8},    {4, 8, 4, 8}, {4, 4, 4, 4}};
  static const pa_cl_tile big[] = {{64, 64, 8, 16}, {64, 32, 8, 16}, {32, 32, 8, 16},
                                   {32, 16, 8, 16}, {16, 16, 8, 16}, {8, 16, 8, 16},
                                   {8, 8, 8, 8},    {4, 8, 4, 8}, {4, 4, 4, 4}};
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
      if (tile_bytes((pa_cl_tile){4, b, 4, b < 32 ? b : 32}, dqk, dv, qdt, kvdt, mla) <= budget) det_bkv = b;
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
 * KPT keys per group per tile. Marked by rg = 0 in the packed choice. Not for
 * deterministic plans: whether a request takes it depends on the batch. */
int pa_cl_decode_lanes(int dqk, int dv) {
  int dl = 1;
  while (dl * 8 < (dqk > dv ? dqk : dv)) dl *= 2;
  return dl;
}
/* kernels/decode.cl's pa_decode_w (no barrier in the key loop): on NVIDIA
 * after the inline-PTX probe (warp shuffles), or anywhere with the shuffles
 * emulated (PA_OPENCL_DECODE=emu, for testing). Marked by rg = 0 and cg = 0
 * (PTX) or 1 (emulated); bkv is its step of 32 * warps / bq keys. Warps per
 * work-group: PA_OPENCL_DECODE_WARPS (1, 2, 4 or 8; default 4). */
static bool pick_decode_w(const pa_cl_state *st, int bq, int dl, const pa_attention_desc *d, pa_cl_tile *out) {
  const char *mode = getenv("PA_OPENCL_DECODE");
  bool emu = mode && !strcmp(mode, "emu");
  if ((mode && !strcmp(mode, "portable")) || (!emu && !st->mma_ok) || dl < bq || dl > 32) return false;
  const char *we = getenv("PA_OPENCL_DECODE_WARPS");
  int warps = we ? atoi(we) : 4;
  if (warps != 1 && warps != 2 && warps != 8) warps = 4;
  if ((size_t)warps * 32 > st->max_wg) return false;
  int ng = warps * 32 / dl;
  size_t bytes = 4 * ((size_t)ng * bq * d->head_dim_v + 2 * (size_t)ng * bq + 2 * (size_t)bq + (size_t)warps * 32);
  size_t budget = st->local_mem < 49152 ? st->local_mem : 49152;
  if (bytes + 1024 > budget) return false;
  *out = (pa_cl_tile){bq, 32 * warps / bq, 0, emu ? 1 : 0};
  return true;
}

/* pa_decode: rg = 0, cg = its KG key groups. */
static bool pick_decode_tile(const pa_cl_state *st, int bq, int dl, const pa_attention_desc *d, pa_cl_tile *out) {
  if (dl > 32 || st->max_wg < 128) return false;
  int kg = 128 / dl;
  size_t budget = st->local_mem < 49152 ? st->local_mem : 49152;
  for (int kpt = bq == 4 ? 8 : 4; kpt >= 1; kpt /= 2) {
    int bkv = kg * kpt;
    if (bkv > 128) continue;
    size_t part = (size_t)bkv * bq * (dl + 1), red = (size_t)kg * bq * d->head_dim_v;
    size_t bytes = 4 * ((part > red ? part : red) + (size_t)bq * bkv + 2 * (size_t)kg * bq + 2 * (size_t)bq);
    if (bytes + 1024 <= budget) {
      *out = (pa_cl_tile){bq, bkv, 0, kg};
      return true;
    }
  }
  return false;
}

/* The decode kernels get the plan's page size compiled in (one program per
 * page size): key -> page and offset without a runtime division per key. On
 * the H200 (NVIDIA OpenCL, 2026-11-22 02:40 UTC) that took f16 GQA decode b64
 * kv4096 page 16 from 0.494 to 0.333 ms (51.6% -> 76.5% of read BW).
 * PA_OPENCL_DECODE_CPAGE=0 keeps the runtime page size. */
static bool cpage_on(void) {
  const char *e = getenv("PA_OPENCL_DECODE_CPAGE");
  return !(e && atoi(e) == 0);
}

/* decode.cl's pa_decode_tc (tensor cores: mma.sync, ldmatrix, cp.async) for
 * f16/bf16 Q and K/V alike, head dims 64 or 128: opt-in, PA_OPENCL_DECODE=tc
 * after the probe (tcemu: emulated anywhere, for tests). Marked by rg = 0 and
 * cg = 2 (PTX) or 3 (emulated); bkv = 16 keys x warps (PA_OPENCL_DECODE_TCW:
 * 1, 2 or 4, default 2). Correct on the H200 but slower than pa_decode_w with
 * the page size compiled in (0.355 vs 0.333 ms, 2026-11-22), hence opt-in. */
static bool pick_decode_tc(const pa_cl_state *st, int bq, const pa_attention_desc *d, pa_cl_tile *out) {
  const char *mode = getenv("PA_OPENCL_DECODE");
  bool emu = mode && !strcmp(mode, "tcemu");
  if (!mode || (!emu && strcmp(mode, "tc"))) return false;
  bool ok = (d->q_dtype == PA_F16 ? st->mma_ok : d->q_dtype == PA_BF16 ? st->mma_bf16_ok : false) && st->ldsm_ok;
  if ((d->q_dtype != PA_F16 && d->q_dtype != PA_BF16) || !(ok || emu) || d->kv_dtype != d->q_dtype ||
      d->head_dim_qk != d->head_dim_v ||
      (d->head_dim_qk != 64 && d->head_dim_qk != 128))
    return false;
  const char *we = getenv("PA_OPENCL_DECODE_TCW");
  int warps = we ? atoi(we) : 2;
  if (warps != 1 && warps != 4) warps = 2;
  if ((size_t)warps * 32 > st->max_wg) return false;
  *out = (pa_cl_tile){bq, 16 * warps, 0, emu ? 3 : 2};
  return true;
}

static bool pick_decode(const pa_cl_state *st, int rows, const pa_attention_desc *d, pa_cl_tile *out) {
  if (getenv("PA_OPENCL_NO_DECODE")) return false;
  int bq = rows <= 4 ? 4 : 8, dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v);
  return pick_decode_tc(st, bq, d, out) || pick_decode_w(st, bq, dl, d, out) || pick_decode_tile(st, bq, dl, d, out);
}

/* kernels/prefill_mma.cl: f16/bf16 (Q and K/V alike), head dims multiples of
 * 16 up to 128, more than 8 packed rows, after the probe passed. Not for
 * deterministic plans (the kernel taken would depend on the batch). */
static bool use_mma(const pa_cl_state *st, const pa_plan *plan, int64_t rows) {
  const pa_attention_desc *d = &plan->desc;
  bool ok = d->q_dtype == PA_F16 ? st->mma_ok : d->q_dtype == PA_BF16 ? st->mma_bf16_ok : false;
  return ok && plan->op == PA_OP_ATTENTION &&
         d->kv_dtype == d->q_dtype && d->head_dim_qk % 16 == 0 && d->head_dim_v % 16 == 0 &&
         d->head_dim_qk <= 128 && d->head_dim_v <= 128 && rows > 8 &&
         !(d->flags & PA_DETERMINISTIC) && st->max_wg >= 128 && st->local_mem >= 40 * 1024;
}


/* The mma kernel's tile: {bq, bkv, 255, cg}; cg = 0 is the PIPE=0 kernel (BQ 64,
 * BKV 64), else cg = 1 the pipelined one (kernels/prefill_mma.cl says why)
 * with bq = 16 x warps: 8 warps (BQ 128) once an item has more than 64 rows,
 * since each staged K/V tile then feeds twice the rows (H200, f16 d128 causal
 * s4096: 191.6 TFLOP/s vs 146.4 with 4 warps, 2026-11-22). PA_OPENCL_MMA=old|warps,bkv
 * (4|8, 32|64) overrides, for tuning. */
static pa_cl_tile mma_tile(const pa_cl_state *st, int64_t rows) {
  const char *env = getenv("PA_OPENCL_MMA");
  if (env && !strcmp(env, "old")) return (pa_cl_tile){64, 64, 255, 0}; /* its rows are fixed at 64 */
  pa_cl_tile t = {64, 64, 255, st->ldsm_ok ? 1 : 0};
  if (t.cg && rows > 64 && st->max_wg >= 256) t.bq = 128;
  int w, bkv;
  if (env && t.cg && sscanf(env, "%d,%d", &w, &bkv) == 2 && (w == 4 || (w == 8 && st->max_wg >= 256)) &&
      (bkv == 32 || bkv == 64))
    t.bq = 16 * w, t.bkv = bkv;
  return t;
}

/* Builds (or finds in the program cache) prefill_mma.cl for an mma tile. */
static pa_status mma_build(pa_context *ctx, const pa_attention_desc *d, pa_cl_tile t, cl_kernel *k) {
  char defs[256];
  bool pipe = t.cg != 0;
  int n = snprintf(defs, sizeof defs, "-DPROBE_ONLY=0 -DDQK=%d -DDV=%d -DKV_DT=%d -DO_DT=%d -DPIPE=%d",
                   d->head_dim_qk, d->head_dim_v, (int)d->kv_dtype, (int)d->o_dtype, pipe);
  if (pipe) snprintf(defs + n, sizeof defs - n, " -DWARPS=%d -DBKV=%d", t.bq / 16, t.bkv);
  return pa_cl_kernel(ctx, "prefill_mma.cl", defs, "pa_prefill_mma", k);
}

static const char *tile_name(pa_cl_tile t, bool mla) {
  switch (t.bq) {
    case 4: return mla ? "opencl.mla.tile4" : "opencl.tile4";
    case 8: return mla ? "opencl.mla.tile8" : "opencl.tile8";
    case 16: return mla ? "opencl.mla.tile16" : "opencl.tile16";
    case 32: return mla ? "opencl.mla.tile32" : "opencl.tile32";
    default: return mla ? "opencl.mla.tile64" : "opencl.tile64";
  }
}

pa_status pa_cl_select(pa_context *ctx, const pa_plan *plan, pa_kernel_choice *choice) {
  const pa_attention_desc *d = &plan->desc;
  bool mla = plan->op == PA_OP_MLA;
  int64_t rows = (int64_t)plan->group * (plan->max_len_q > 0 ? plan->max_len_q : 1);
  pa_cl_tile t;
  /* PA_OPENCL_TILE=bq,bkv,rg,cg forces a tile (tuning; must fit the device). */
  const char *force = getenv("PA_OPENCL_TILE");
  if (force && sscanf(force, "%d,%d,%d,%d", &t.bq, &t.bkv, &t.rg, &t.cg) == 4 && t.bq > 0 &&
      t.bq <= 64 && t.rg > 0 && t.bq % t.rg == 0 && t.cg > 0 && t.bkv % t.cg == 0 &&
      t.bq <= t.rg * t.cg && t.bkv <= 128) {
    *choice = (pa_kernel_choice){.kernel = pa_cl_tile_pack(t), .q_tile_rows = t.bq,
                                 .kv_align = t.bkv, .name = "opencl.tile.forced"};
    return PA_OK;
  }
  /* fp8 K/V: the portable tile (attention.cl) for every shape */
  const bool fp8 = pa_dtype_is_fp8(d->kv_dtype);
  if (!fp8 && !mla && !(d->flags & PA_DETERMINISTIC) && rows <= 8 && pick_decode(pa_cl(ctx), (int)rows, d, &t)) {
    bool warp = t.cg <= 1, tc = t.cg == 2 || t.cg == 3;
    *choice = (pa_kernel_choice){.kernel = pa_cl_tile_pack(t), .q_tile_rows = t.bq, .kv_align = t.bkv,
                                 .name = t.bq == 4 ? (tc ? "opencl.decode4tc" : warp ? "opencl.decode4w" : "opencl.decode4")
                                                   : (tc ? "opencl.decode8tc" : warp ? "opencl.decode8w" : "opencl.decode8")};
    return PA_OK;
  }
  if (!fp8 && mla && pa_cl_mla_mma_pick(ctx, plan, choice)) return PA_OK;
  if (!fp8 && use_mma(pa_cl(ctx), plan, rows)) {
    t = mma_tile(pa_cl(ctx), rows);
    /* Only 64-row items have fallbacks (plain kernel, portable tile), so a
     * taller tile is chosen only once its kernel is known to build (plan time;
     * plan_ready then finds it in the cache). */
    cl_kernel k;
    if (t.bq > 64 && mma_build(ctx, d, t, &k) != PA_OK) {
      pa_log(1, "opencl: %d-row mma kernel did not build, using 64 rows: %.300s", t.bq, ctx->err);
      ctx->err[0] = 0;
      t.bq = 64;
    }
    *choice = (pa_kernel_choice){.kernel = pa_cl_tile_pack(t), .q_tile_rows = t.bq, .kv_align = t.bkv,
                                 .name = t.cg == 0 ? "opencl.mma64" : t.bq == 64 ? "opencl.mma64p" : "opencl.mma128p"};
    return PA_OK;
  }
  if (!pick_tile(pa_cl(ctx), rows > 64 ? 64 : (int)rows, d->head_dim_qk, d->head_dim_v, d->q_dtype,
                 d->kv_dtype, mla, (d->flags & PA_DETERMINISTIC) != 0, &t))
    return pa_fail(ctx, PA_ERR_UNSUPPORTED,
                   "opencl: head_dim_qk=%d head_dim_v=%d need more local memory than the device's %zu B",
                   d->head_dim_qk, d->head_dim_v, pa_cl(ctx)->local_mem);
  *choice = (pa_kernel_choice){
      .kernel = pa_cl_tile_pack(t), .q_tile_rows = t.bq, .kv_align = t.bkv, .name = tile_name(t, mla)};
  return PA_OK;
}

static void plan_free(void *p) { free(p); }

pa_status pa_cl_plan_ready(pa_context *ctx, pa_plan *plan) {
  const pa_attention_desc *d = &plan->desc;
  bool mla = plan->op == PA_OP_MLA;
  pa_cl_plan *cp = PA_FAULT_OR(calloc(1, sizeof *cp));
  if (!cp) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: plan state");
  cp->tile = pa_cl_tile_unpack(plan->choice.kernel);
  char defs[512];
  pa_status s = PA_OK;
  if (cp->tile.rg == 254) s = pa_cl_mla_mma_build(ctx, plan, cp); /* else a portable tile */
  if (cp->tile.rg == 255) { /* prefill_mma.cl; the portable tile if it does not build */
    bool pipe = cp->tile.cg != 0;
    cp->threads = pipe ? (size_t)cp->tile.bq * 2 : 128; /* a warp per 16 rows */
    s = mma_build(ctx, d, cp->tile, &cp->attention);
    if (s != PA_OK && pipe && cp->tile.bq == 64 && cp->tile.bkv == 64) {
      pa_log(1, "opencl: pipelined mma kernel did not build, using the plain one: %.300s", ctx->err);
      ctx->err[0] = 0;
      cp->tile.cg = 0, cp->threads = 128;
      s = mma_build(ctx, d, cp->tile, &cp->attention);
    }
    if (s != PA_OK && cp->tile.bq == 64) {
      pa_log(1, "opencl: mma kernel did not build, using the portable tile: %.300s", ctx->err);
      ctx->err[0] = 0;
      cp->tile = (pa_cl_tile){64, 32, 8, 16};
    }
  }
  if (cp->tile.rg == 0 && cp->tile.cg <= 1) { /* decode.cl, pa_decode_w */
    int dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v), warps = cp->tile.bkv * cp->tile.bq / 32;
    int ntw = warps * 32, ng = ntw / dl, u = dl / cp->tile.bq;
    bool nv = cp->tile.cg == 0;
    /* K/V through a cp.async ring (16-bit K/V) of as many steps as local
     * memory holds, up to PA_OPENCL_DECODE_STAGES (default 4; 0 or 1: K/V
     * through registers instead). Tuning switches, read per plan: K/V loads
     * through ld.global.nc (register path), a register cap. */
    const char *nc = getenv("PA_OPENCL_DECODE_NC"), *regs = getenv("PA_OPENCL_DECODE_REGS");
    const char *se = getenv("PA_OPENCL_DECODE_STAGES");
    int smax = se ? atoi(se) : 4, stages = 0;
    size_t lm = pa_cl(ctx)->local_mem, budget = lm < 49152 ? lm : 49152;
    size_t small = 4 * (2 * (size_t)ng * cp->tile.bq + 2 * (size_t)cp->tile.bq) + (nv ? 0 : 4 * (size_t)ntw) + 1024;
    if (d->kv_dtype != PA_F32 && budget > small)
      for (stages = smax < 8 ? smax : 8; stages >= 2 && (size_t)stages * 2 * u * ntw * 16 > budget - small; stages--) {
      }
    /* the ring's cp.async needs the probe that checked its shared addresses */
    if (stages < 2 || (nv && !pa_cl(ctx)->ldsm_ok)) stages = 0;
    char extra[64] = "";
    if (nv && regs && atoi(regs) > 0) snprintf(extra, sizeof extra, " -cl-nv-maxrregcount=%d", atoi(regs));
    if (cpage_on() && d->page_size > 0) {
      size_t n = strlen(extra);
      snprintf(extra + n, sizeof extra - n, " -DPAGE=%d", d->page_size);
    }
    cp->threads = (size_t)ntw;
    for (;;) {
      snprintf(defs, sizeof defs,
               "-DDQK=%d -DDV=%d -DQ_DT=%d -DKV_DT=%d -DO_DT=%d -DBQ=%d -DDL=%d -DWARPS=%d -DNV=%d -DNC=%d "
               "-DCPA=%d -DSTAGES=%d -DCP_WAIT=%d%s",
               d->head_dim_qk, d->head_dim_v, (int)d->q_dtype, (int)d->kv_dtype, (int)d->o_dtype, cp->tile.bq,
               dl, warps, nv ? 1 : 2, nv && nc && atoi(nc) == 1, stages > 0, stages > 0 ? stages : 1,
               stages > 0 ? stages - 1 : 0, extra);
      s = pa_cl_kernel(ctx, "decode.cl", defs, "pa_decode_w", &cp->attention);
      if (s == PA_OK || stages == 0) break;
      pa_log(1, "opencl: decode kernel with the cp.async ring did not build, trying registers: %.300s", ctx->err);
      ctx->err[0] = 0;
      stages = 0;
    }
    /* a driver that takes the probe but not this kernel: the portable one */
    if (s != PA_OK && pick_decode_tile(pa_cl(ctx), cp->tile.bq, dl, d, &cp->tile)) {
      pa_log(1, "opencl: decode kernel did not build, using pa_decode: %.300s", ctx->err);
      ctx->err[0] = 0;
      s = PA_OK;
    }
  }
  if (cp->tile.rg == 0 && (cp->tile.cg == 2 || cp->tile.cg == 3)) { /* decode.cl, pa_decode_tc */
    int warps = cp->tile.bkv / 16, dd = d->head_dim_qk;
    bool nv = cp->tile.cg == 2;
    /* stages per warp ring: as many as local memory holds, at most
     * PA_OPENCL_DECODE_STAGES (default 4) */
    const char *se = getenv("PA_OPENCL_DECODE_STAGES");
    int smax = se ? atoi(se) : 4, stages;
    size_t lm = pa_cl(ctx)->local_mem, budget = lm < 49152 ? lm : 49152;
    size_t pair = 2 * 16 * (size_t)(dd + 8) * 2, fixed = 8 * 16 * (size_t)warps + 1024;
    if (!nv) fixed += 4 * (384 * (size_t)warps + 64 * (size_t)warps);
    for (stages = smax < 8 ? smax : 8; stages > 2 && fixed + (size_t)stages * warps * pair > budget; stages--) {
    }
    if (stages < 2) stages = 2;
    char extra[32] = "";
    if (cpage_on() && d->page_size > 0) snprintf(extra, sizeof extra, " -DPAGE=%d", d->page_size);
    cp->threads = (size_t)warps * 32;
    if (fixed + (size_t)stages * warps * pair > budget)
      s = pa_fail(ctx, PA_ERR_UNSUPPORTED, "opencl: pa_decode_tc needs %zu B of local memory, the budget is %zu B",
                  fixed + (size_t)stages * warps * pair, budget);
    else {
      snprintf(defs, sizeof defs,
               "-DTC=%d -DD=%d -DDQK=%d -DDV=%d -DQ_DT=%d -DKV_DT=%d -DO_DT=%d -DBQ=%d -DNV=%d -DSTAGES=%d -DCP_WAIT=%d%s",
               warps, dd, dd, dd, (int)d->q_dtype, (int)d->kv_dtype, (int)d->o_dtype, cp->tile.bq, nv ? 1 : 2,
               stages, stages - 1, extra);
      s = pa_cl_kernel(ctx, "decode.cl", defs, "pa_decode_tc", &cp->attention);
    }
    int dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v);
    if (s != PA_OK && pick_decode_tile(pa_cl(ctx), cp->tile.bq, dl, d, &cp->tile)) {
      pa_log(1, "opencl: tensor-core decode kernel not taken, using pa_decode: %.300s", ctx->err);
      ctx->err[0] = 0;
      s = PA_OK;
    }
  }
  if (cp->tile.rg == 0 && cp->tile.cg > 3) { /* decode.cl, pa_decode */
    int dl = pa_cl_decode_lanes(d->head_dim_qk, d->head_dim_v);
    cp->threads = (size_t)cp->tile.cg * dl;
    snprintf(defs, sizeof defs, "-DDQK=%d -DDV=%d -DQ_DT=%d -DKV_DT=%d -DO_DT=%d -DBQ=%d -DBKV=%d -DDL=%d -DKG=%d",
             d->head_dim_qk, d->head_dim_v, (int)d->q_dtype, (int)d->kv_dtype, (int)d->o_dtype,
             cp->tile.bq, cp->tile.bkv, dl, cp->tile.cg);
    s = pa_cl_kernel(ctx, "decode.cl", defs, "pa_decode", &cp->attention);
  } else if (cp->tile.rg != 0 && cp->tile.rg != 255 && cp->tile.rg != 254) {
    cp->threads = (size_t)cp->tile.rg * cp->tile.cg;
    snprintf(defs, sizeof defs, "-DDQK=%d -DDV=%d -DQ_DT=%d -DKV_DT=%d -DO_DT=%d -DBQ=%d -DBKV=%d -DRG=%d -DCG=%d -DMLA=%d",
           d->head_dim_qk, d->head_dim_v, (int)d->q_dtype, (int)d->kv_dtype, (int)d->o_dtype,
           cp->tile.bq, cp->tile.bkv, cp->tile.rg, cp->tile.cg, mla ? 1 : 0);
    s = pa_cl_kernel(ctx, "attention.cl", defs, "pa_attention", &cp->attention);
  }
  if (s == PA_OK && plan->num_combine > 0) {
    snprintf(defs, sizeof defs, "-DV_DT=0 -DO_DT=%d", (int)d->o_dtype);
    s = pa_cl_kernel(ctx, "merge.cl", defs, "pa_combine", &cp->combine);
  }
  if (s != PA_OK) {
    free(cp);
    return s;
  }
  plan->backend_data = cp;
  plan->backend_free = plan_free;
  return PA_OK;
}

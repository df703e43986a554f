/* The CUDA backend's host glue: devices, contexts on an owned or borrowed
 * stream, buffers, kernel selection and dispatch of a plan. Kernels live in
 * the .cu files, one operation each, behind the launchers of launch.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launch.h"
#include "state.h"

pa_status pa_cuda_fail(pa_context *ctx, cudaError_t e, const char *what) {
  (void)cudaGetLastError(); /* clear a non-sticky error so the next call starts clean */
  pa_status s = e == cudaErrorMemoryAllocation ? PA_ERR_OUT_OF_MEMORY
                : (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver)
                    ? PA_ERR_NO_DEVICE
                    : PA_ERR_BACKEND;
  return pa_fail(ctx, s, "%s: %s (%s)", what, cudaGetErrorName(e), cudaGetErrorString(e));
}

#define CU_TRY(ctx, call)                                                                      \
  do {                                                                                         \
    cudaError_t e_ = (call);                                                                   \
    if (e_ != cudaSuccess) return pa_cuda_fail((ctx), e_, #call);                              \
  } while (0)

static pa_status cu_device_count(int *count) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    *count = 0;
    return PA_OK; /* no driver or no device: zero devices, not an error */
  }
  *count = n;
  return PA_OK;
}

static pa_status cu_device_info(int device, pa_device_info *info) {
  struct cudaDeviceProp p;
  cudaError_t e = cudaGetDeviceProperties(&p, device);
  if (e != cudaSuccess) return pa_cuda_fail(NULL, e, "cudaGetDeviceProperties");
  snprintf(info->name, sizeof info->name, "%.127s", p.name);
  info->backend = PA_BACKEND_CUDA;
  info->compute_units = p.multiProcessorCount;
  info->global_mem = (int64_t)p.totalGlobalMem;
  info->shared_mem = (int64_t)p.sharedMemPerBlockOptin;
  snprintf(info->features, sizeof info->features, "sm_%d%d gpu l2=%dKB", p.major, p.minor,
           p.l2CacheSize / 1024);
  return PA_OK;
}

static pa_status cu_create(pa_context *ctx, int device, const pa_context_desc *desc,
                           void **state) {
  int n = 0;
  cu_device_count(&n);
  if (device < 0) {
    device = ctx->cfg.cuda_device >= 0 ? ctx->cfg.cuda_device : 0;
  }
  if (n == 0) return pa_fail(ctx, PA_ERR_NO_DEVICE, "cuda: no CUDA device (cudaGetDeviceCount=0)");
  if (device >= n)
    return pa_fail(ctx, PA_ERR_NO_DEVICE, "cuda: device=%d but %d device(s)", device, n);
  CU_TRY(ctx, cudaSetDevice(device));
  struct cudaDeviceProp probe; /* here, so a failure carries its CUDA error name into ctx */
  CU_TRY(ctx, cudaGetDeviceProperties(&probe, device));
  pa_status st = cu_device_info(device, &ctx->info);
  if (st != PA_OK) return pa_fail(ctx, st, "cuda: device %d properties", device);

  pa_cuda_state *s = calloc(1, sizeof *s);
  if (!s) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cuda: context state");
  s->device = device;
  cudaError_t e = cudaDeviceGetAttribute(&s->sm_major, cudaDevAttrComputeCapabilityMajor, device);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&s->sm_minor, cudaDevAttrComputeCapabilityMinor, device);
  if (e == cudaSuccess)
    e = cudaDeviceGetAttribute(&s->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  s->pdl = ctx->cfg.cuda_pdl && s->sm_major >= 9;
  /* The sm_90a kernels run on sm_90 only; elsewhere prefill and MLA take
   * their mma.sync kernels whatever the configuration says. */
  const int sm90 = s->sm_major == 9 && s->sm_minor == 0;
  s->wgmma_prefill = sm90 && ctx->cfg.cuda_prefill != PA_CFG_PREFILL_MMA;
  s->ws_prefill = sm90 && ctx->cfg.cuda_prefill != PA_CFG_PREFILL_MMA && pa_cu_prefill_ws_available();
  s->ws_everywhere = ctx->cfg.cuda_prefill == PA_CFG_PREFILL_WS;
  s->ws_pingpong = ctx->cfg.dev_cuda_ws_pingpong;
  s->ws_release = ctx->cfg.dev_cuda_ws_release;
  s->ws_lazy = ctx->cfg.dev_cuda_ws_lazy;
  s->mla_kernel = !sm90 || ctx->cfg.cuda_mla == PA_CFG_MLA_MMA ? PA_CU_MLA_MMA
                  : ctx->cfg.cuda_mla == PA_CFG_MLA_FAST    ? PA_CU_MLA_FAST
                                                            : PA_CU_MLA_SEESAW;
  if (e == cudaSuccess && desc && desc->native_queue) {
    s->stream = (cudaStream_t)desc->native_queue;
  } else if (e == cudaSuccess) {
    e = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking);
    s->own_stream = e == cudaSuccess;
  }
  /* Raise the kernels' shared-memory limits once, here, not in run. */
  if (e == cudaSuccess) e = pa_cu_generic_init(s->smem_optin);
  if (e == cudaSuccess && s->sm_major >= 8) e = pa_cu_decode_init(s->smem_optin);
  if (e == cudaSuccess && s->sm_major >= 8) e = pa_cu_prefill_init(s->smem_optin, s->wgmma_prefill);
  if (e == cudaSuccess && s->sm_major >= 8) e = pa_cu_mla_mma_init(s->smem_optin);
  if (e == cudaSuccess && s->ws_prefill) e = pa_cu_prefill_ws_init();
  if (e == cudaSuccess && s->mla_kernel == PA_CU_MLA_SEESAW) e = pa_cu_mla_seesaw_init();
  if (e == cudaSuccess && sm90 && (s->mla_kernel == PA_CU_MLA_FAST || ctx->cfg.dev_cuda_mla_fp8))
    e = pa_cu_mla_fast_init();
  if (e != cudaSuccess) {
    if (s->own_stream) cudaStreamDestroy(s->stream);
    free(s);
    return pa_cuda_fail(ctx, e, "cuda: context setup");
  }
  cublasStatus_t bs = cublasCreate(&s->blas);
  if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(s->blas, s->stream);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    if (s->blas) cublasDestroy(s->blas);
    if (s->own_stream) cudaStreamDestroy(s->stream);
    free(s);
    return pa_fail(ctx, PA_ERR_BACKEND, "cuda: cublasCreate: %s", cublasGetStatusName(bs));
  }
  ctx->device = device;
  ctx->props.compute_units = ctx->info.compute_units;
  /* One work item per SM per wave: fewer, longer splits. Measured on H200,
   * decode b1 KV 32768: 1 -> 32 splits 48 us, 2 -> 64 splits 59 us (the
   * per-item pipeline ramp and the combine grow with the split count). */
  ctx->props.slots_per_unit = ctx->cfg.dev_cuda_slots; /* tuning; default 1 */
  ctx->props.min_kv_per_split = 256;
  ctx->props.max_splits = 64;
  *state = s;
  return PA_OK;
}

static void cu_destroy(pa_context *ctx) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  if (!s) return;
  cudaSetDevice(s->device);
  if (s->blas) cublasDestroy(s->blas);
  if (s->own_stream) {
    cudaStreamSynchronize(s->stream);
    cudaStreamDestroy(s->stream);
  }
  free(s);
  ctx->state = NULL;
}

static pa_status cu_buf_alloc(pa_context *ctx, size_t bytes, void **handle) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  CU_TRY(ctx, cudaSetDevice(s->device));
  void *p = NULL;
  cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
  if (e != cudaSuccess) {
    char what[96];
    snprintf(what, sizeof what, "cudaMalloc(%zu bytes)", bytes);
    return pa_cuda_fail(ctx, e, what);
  }
  *handle = p;
  return PA_OK;
}

static void cu_buf_free(pa_context *ctx, void *handle) {
  cudaSetDevice(pa_cuda_st(ctx)->device);
  cudaFree(handle);
}

/* Blocking copies, ordered after the work queued on the context's stream. */
static pa_status cu_copy(pa_context *ctx, void *dst, const void *src, size_t n,
                         enum cudaMemcpyKind kind) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  if (n == 0) return PA_OK;
  CU_TRY(ctx, cudaSetDevice(s->device));
  CU_TRY(ctx, cudaMemcpyAsync(dst, src, n, kind, s->stream));
  CU_TRY(ctx, cudaStreamSynchronize(s->stream));
  return PA_OK;
}

static pa_status cu_buf_write(pa_context *ctx, void *handle, size_t off, const void *src,
                              size_t n) {
  return cu_copy(ctx, (char *)handle + off, src, n, cudaMemcpyHostToDevice);
}

static pa_status cu_buf_read(pa_context *ctx, void *handle, size_t off, void *dst, size_t n) {
  return cu_copy(ctx, dst, (const char *)handle + off, n, cudaMemcpyDeviceToHost);
}

/* ------------------------------------------------------------------------ */
/* Selection                                                                 */

static int tc_dtype(pa_dtype q, pa_dtype kv, pa_dtype o) {
  return q == kv && kv == o && (q == PA_F16 || q == PA_BF16);
}

/* The kernel function each variant runs, as plans report it. */
static const char *kernel_name(pa_cu_kernel k) {
  switch (k) {
  case PA_CU_GENERIC: return "cuda.generic_attention";
  case PA_CU_DECODE: return "cuda.decode_attention";
  case PA_CU_PREFILL_MMA: return "cuda.prefill_attention";
  case PA_CU_PREFILL_WGMMA: return "cuda.prefill_wgmma";
  case PA_CU_MLA_MMA: return "cuda.mla_decode_mma";
  case PA_CU_MLA_SEESAW: return "cuda.mla_decode_seesaw";
  case PA_CU_PREFILL_WS: return "cuda.prefill_ws";
  case PA_CU_MLA_FAST: return "cuda.mla_decode_fast";
  }
  return "cuda.?";
}

/* The variant and the schedule needs core reads from the choice. */
static pa_status choose(pa_context *ctx, pa_kernel_choice *c, pa_cu_kernel k, int rows, int align) {
  pa_cu_variant *v = malloc(sizeof *v);
  if (!v) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cuda: plan variant");
  *v = (pa_cu_variant){k, PA_CU_GENERIC};
  /* Heavy items first (causal prefill, uneven lengths), so the last wave is
   * short; an item costs its keys plus a pipeline ramp of about 64 keys. */
  *c = (pa_kernel_choice){.q_tile_rows = rows,
                          .kv_align = align,
                          .name = kernel_name(k),
                          .item_overhead = 64,
                          .variant = v};
  return PA_OK;
}

/* Decode kernels are memory-bound: the split rule counts several blocks per
 * SM in a wave (dev.cuda.decode_slots), so a batch that fills the SMs once
 * is still split (GQA 32/8 d128 b16 kv8192: 2 splits 0.136 ms against 1
 * split 0.203 ms on an H200, bench/RESULTS.md). */
static pa_status choose_decode(pa_context *ctx, pa_kernel_choice *c) {
  pa_status st = choose(ctx, c, PA_CU_DECODE, 16, 64);
  c->slots_per_unit = ctx->cfg.dev_cuda_decode_slots;
  return st;
}

/* Under cuda.prefill=auto the warp-specialised kernel runs where it beat the
 * wgmma kernel on an H200 (bench/RESULTS.md, 2026-12-07): head dims other
 * than 128/128 (d 256 2.9x, 192/128 2.1x, d 64 1.05x) and paged k/v (1.07x);
 * contiguous d 128 stays on wgmma (equal causal, 0.93x non-causal) unless
 * K and V are released apart (dev.cuda.ws_release: 1.22-1.30x over the
 * release after PV on an H100, 2026-12-08). */
static int ws_preferred(const pa_cuda_state *s, const pa_attention_desc *d) {
  return s->ws_release != 0 || d->head_dim_qk != 128 || d->head_dim_v != 128 || d->page_size > 0;
}

/* Why the warp-specialised prefill cannot run a plan (NULL: it can). */
static const char *ws_refuses(const pa_plan *plan) {
  const pa_attention_desc *d = &plan->desc;
  if (!pa_cu_prefill_ws_supported(d->head_dim_qk, d->head_dim_v, d->q_dtype)) return "head dims";
  if (d->page_size > 0 && (d->page_size % 16 || !plan->ctx->cfg.dev_cuda_ws_paged))
    return "paged k/v with pages not a multiple of 16 keys, or dev.cuda.ws_paged=0";
  if (d->softcap > 0.f || d->window_left >= 0 || d->window_right >= 0 ||
      (d->flags & (PA_HAS_ALIBI | PA_HAS_MASK)) || !(plan->scale > 0.f))
    return "softcap, window, ALiBi, mask or scale <= 0";
  return NULL;
}

static pa_status cu_select(pa_context *ctx, const pa_plan *plan, pa_kernel_choice *c) {
  const pa_cuda_state *s = pa_cuda_st(ctx);
  const int tc_ok = s->sm_major >= 8;
  if (plan->op == PA_OP_MLA) {
    const pa_mla_desc *m = &plan->mla;
    const int tc_mla =
        tc_ok && m->q_dtype == m->o_dtype &&
        pa_cu_mla_supported(m->head_dim_ckv, m->head_dim_kpe, m->q_dtype, s->smem_optin);
    /* fp8 ckv/kpe on mla_fast.cu: opt-in (dev.cuda.mla_fp8), sm_90 */
    const int fp8_fast = s->mla_kernel != PA_CU_MLA_MMA && ctx->cfg.dev_cuda_mla_fp8 &&
                         pa_dtype_is_fp8(m->kv_dtype);
    if (tc_mla && (m->kv_dtype == m->q_dtype || fp8_fast)) {
      const pa_cu_kernel k = fp8_fast ? PA_CU_MLA_FAST : (pa_cu_kernel)s->mla_kernel;
      pa_status st = choose(ctx, c, k, 64, 64);
      /* one KV chunk for the batch where it balances the SMs better
       * (dev.cuda.mla_balance); a split item also writes 64 x 512 f32
       * partials and is read back by the combine: about 128 keys */
      c->balance_splits = ctx->cfg.dev_cuda_mla_balance;
      c->split_overhead = 128;
      return st;
    }
    if (!pa_cu_generic_fits(m->head_dim_ckv + m->head_dim_kpe, m->head_dim_ckv, s->smem_optin))
      return pa_fail(ctx, PA_ERR_UNSUPPORTED,
                     "cuda: MLA Dc=%d Dr=%d needs more shared memory than this device's %d bytes",
                     m->head_dim_ckv, m->head_dim_kpe, s->smem_optin);
    pa_log(2, "cuda: MLA Dc=%d Dr=%d %s takes the generic kernel", m->head_dim_ckv,
           m->head_dim_kpe, pa_dtype_name(m->q_dtype));
    return choose(ctx, c, PA_CU_GENERIC, PA_CU_GENERIC_ROWS, 32);
  }
  const pa_attention_desc *d = &plan->desc;
  const int64_t rows = (int64_t)plan->max_len_q * plan->group;
  /* Deterministic: one kernel whatever the batch, so a request's bits do not
   * depend on its neighbours (the decode kernel is picked by the batch). */
  const int det = (d->flags & PA_DETERMINISTIC) != 0;
  /* fp8 K/V: the tensor-core decode for D = 128 and f16/bf16 Q = O; every
   * other fp8 shape takes the generic kernel */
  if (tc_ok && !det && rows <= 16 && d->q_dtype == d->o_dtype &&
      pa_cu_decode8_supported(d->head_dim_qk, d->head_dim_v, d->q_dtype, d->kv_dtype, s->smem_optin))
    return choose_decode(ctx, c);
  const int bm8 = tc_ok && d->q_dtype == d->o_dtype
                      ? pa_cu_prefill8_supported(d->head_dim_qk, d->head_dim_v, d->q_dtype,
                                                 d->kv_dtype, s->smem_optin)
                      : 0;
  if (bm8 == 128 && s->wgmma_prefill && ctx->cfg.dev_cuda_fp8_prefill &&
      pa_cu_prefill_wgmma8_supported(d->head_dim_qk, d->head_dim_v, d->q_dtype, d->kv_dtype))
    return choose(ctx, c, PA_CU_PREFILL_WGMMA, bm8, 64); /* same items as the mma.sync kernel */
  if (bm8 > 0) return choose(ctx, c, PA_CU_PREFILL_MMA, bm8, 64);
  if (tc_ok && tc_dtype(d->q_dtype, d->kv_dtype, d->o_dtype)) {
    if (!det && rows <= 16 &&
        pa_cu_decode_supported(d->head_dim_qk, d->head_dim_v, d->q_dtype, s->smem_optin))
      return choose_decode(ctx, c);
    const int bm = pa_cu_prefill_supported(d->head_dim_qk, d->head_dim_v, d->q_dtype, s->smem_optin);
    /* The wgmma kernel's items are the mma.sync kernel's (BM 128), so the
     * plan is the same whichever of the two runs. */
    if (bm > 0 && s->ws_prefill && (s->ws_everywhere || ws_preferred(s, d))) {
      const char *why = ws_refuses(plan);
      if (!why) return choose(ctx, c, PA_CU_PREFILL_WS, 128, 64);
      pa_log(2, "cuda: prefill ws does not take this plan (%s)", why);
    }
    if (bm == 128 && s->wgmma_prefill &&
        pa_cu_prefill_wgmma_supported(d->head_dim_qk, d->head_dim_v, d->q_dtype))
      return choose(ctx, c, PA_CU_PREFILL_WGMMA, bm, 64);
    if (bm > 0) return choose(ctx, c, PA_CU_PREFILL_MMA, bm, 64);
  }
  if (!pa_cu_generic_fits(d->head_dim_qk, d->head_dim_v, s->smem_optin))
    return pa_fail(ctx, PA_ERR_UNSUPPORTED,
                   "cuda: Dqk=%d Dv=%d need more shared memory than this device's %d bytes",
                   d->head_dim_qk, d->head_dim_v, s->smem_optin);
  pa_log(2, "cuda: attention Dqk=%d Dv=%d q/kv/o=%s/%s/%s takes the generic kernel",
         d->head_dim_qk, d->head_dim_v, pa_dtype_name(d->q_dtype), pa_dtype_name(d->kv_dtype),
         pa_dtype_name(d->o_dtype));
  return choose(ctx, c, PA_CU_GENERIC, PA_CU_GENERIC_ROWS, 32);
}

/* ------------------------------------------------------------------------ */
/* Plan state: the in-kernel decode merge's counters                          */

typedef struct cu_plan_data {
  int device;
  unsigned *counters; /* device [batch x Hkv], zeros: decode merges its own splits */
  int merge_u;        /* the in-kernel merge's loads in flight per thread */
} cu_plan_data;

static void cu_plan_free(void *p) {
  cu_plan_data *d = p;
  if (!d) return;
  cudaSetDevice(d->device);
  cudaFree(d->counters);
  free(d);
}

/* A split decode plan whose merge the decode kernel can do: one tile per
 * (request, KV head) (the decode kernel's rows <= 16) and at most 1024
 * splits (the merge keeps 16 x num_splits weights in its 64 KB ring). */
static int decode_fusable(const pa_plan *plan) {
  const pa_cu_variant *v = plan->choice.variant;
  if (plan->op != PA_OP_ATTENTION || v->kernel != PA_CU_DECODE) return 0;
  int any = 0;
  for (int b = 0; b < plan->batch_size; ++b) {
    const pa_req *r = &plan->reqs[b];
    if (r->num_splits > 1024 || (int64_t)r->len_q * plan->group > 16) return 0;
    any |= r->num_splits > 1;
  }
  return any;
}

/* Split decode plans merge inside the decode kernel (no combine launch):
 * cuda.decode_fuse, with dev.cuda.fuse_loads partials in flight per thread.
 * The counters are zeroed here, so run stays free of host work. */
static pa_status cu_plan_ready(pa_context *ctx, const pa_plan *plan, pa_plan_state *state) {
  if (!ctx->cfg.cuda_decode_fuse || !decode_fusable(plan)) return PA_OK;
  pa_cuda_state *s = pa_cuda_st(ctx);
  cu_plan_data *d = calloc(1, sizeof *d);
  if (!d) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cuda: plan state");
  d->device = s->device;
  d->merge_u = ctx->cfg.dev_cuda_fuse_loads;
  const size_t nc = (size_t)plan->batch_size * (size_t)plan->desc.num_kv_heads;
  cudaError_t e = cudaSetDevice(s->device);
  if (e == cudaSuccess) e = cudaMalloc((void **)&d->counters, sizeof(unsigned) * nc);
  if (e == cudaSuccess) e = cudaMemsetAsync(d->counters, 0, sizeof(unsigned) * nc, s->stream);
  if (e == cudaSuccess) e = cudaStreamSynchronize(s->stream);
  if (e != cudaSuccess) {
    cu_plan_free(d);
    return pa_cuda_fail(ctx, e, "cuda: decode merge counters");
  }
  *state = (pa_plan_state){d, cu_plan_free};
  return PA_OK;
}

/* ------------------------------------------------------------------------ */
/* Views and dispatch                                                        */

static char *tptr(const pa_tensor *t) {
  return t->buf ? (char *)t->buf->handle + t->offset : NULL;
}

/* q/out/k/v ([T, H, D] or [B, S, H, D]) and paged k/v ([P, page, H, D] or,
 * for MLA, [P, page, D]). */
static pa_cu_view row_view(const pa_tensor *t, int paged) {
  pa_cu_view v = {tptr(t), 0, 0, 0, 0, (int)t->dtype};
  if (paged) {
    v.padded = 1;
    v.sb = t->stride[0];
    v.st = t->stride[1];
    v.sh = t->ndim == 4 ? t->stride[2] : 0;
  } else if (t->ndim == 4) {
    v.padded = 1;
    v.sb = t->stride[0];
    v.st = t->stride[1];
    v.sh = t->stride[2];
  } else {
    v.st = t->stride[0];
    v.sh = t->stride[1];
  }
  return v;
}

/* lse ([T, H] or [B, S, H]). */
static pa_cu_view lse_view(const pa_tensor *t) {
  pa_cu_view v = {tptr(t), 0, 0, 0, 0, PA_F32};
  if (!t->buf) return v;
  if (t->ndim == 3) {
    v.padded = 1;
    v.sb = t->stride[0];
    v.st = t->stride[1];
    v.sh = t->stride[2];
  } else {
    v.st = t->stride[0];
    v.sh = t->stride[1];
  }
  return v;
}

static void fill_schedule(const pa_plan *plan, pa_buffer *ws, pa_cu_attn *a) {
  char *sched = (char *)plan->schedule->handle;
  a->reqs = (const pa_req *)(sched + plan->sched_req_off);
  a->work = (const pa_work *)(sched + plan->sched_work_off);
  a->comb = (const pa_combine *)(sched + plan->sched_combine_off);
  a->num_work = plan->num_work;
  a->num_combine = plan->num_combine;
  a->smem_optin = pa_cuda_st(plan->ctx)->smem_optin;
  a->pdl = pa_cuda_st(plan->ctx)->pdl;
  a->fp8_regs = plan->ctx->cfg.dev_cuda_fp8_decode;
  a->window_fast = plan->ctx->cfg.dev_cuda_window_fast;
  if (ws && plan->ws_size > 0) {
    a->ws_o = (float *)((char *)ws->handle + plan->ws_o_offset);
    a->ws_lse = (float *)((char *)ws->handle + plan->ws_lse_offset);
  }
}

/* The tensor-core kernels move 16-byte chunks of rows: base and strides of
 * q, k, v (and k2 for MLA) must keep every row 16-byte aligned. */
static int aligned16(const pa_cu_view *v) {
  const int64_t e = 16 / (int64_t)pa_dtype_size((pa_dtype)v->dtype); /* elements per 16 bytes */
  return ((uintptr_t)v->ptr % 16) == 0 && v->sb % e == 0 && v->st % e == 0 && v->sh % e == 0;
}

static pa_status dispatch(pa_context *ctx, const pa_plan *plan, const pa_cu_attn *a) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  CU_TRY(ctx, cudaSetDevice(s->device));
  cudaError_t e = cudaSuccess;
  const pa_cu_variant *v = plan->choice.variant;
  pa_cu_kernel kernel = v->kernel;
  /* The one run-time rule, fixed in the variant: a run whose rows are not
   * 16-byte aligned (a property of its tensors, not of the plan) takes the
   * variant's unaligned kernel. */
  if (kernel != v->unaligned && !(aligned16(&a->q) && aligned16(&a->k) && aligned16(&a->v) &&
                                  aligned16(&a->q2) && aligned16(&a->k2))) {
    pa_log(2, "cuda: %s needs 16-byte aligned rows; this run takes %s", plan->choice.name,
           kernel_name(v->unaligned));
    kernel = v->unaligned;
  }
  /* Decode merges its own splits when the plan has counters and the
   * workspace takes its 16-byte partial loads. */
  const cu_plan_data *pd = plan->backend_data;
  const int fused = kernel == PA_CU_DECODE && pd && pd->counters && ((uintptr_t)a->ws_o % 16) == 0;
  switch (kernel) {
  case PA_CU_DECODE:
    e = fused ? pa_cu_decode_attention_fused(a, pd->counters, pd->merge_u, s->stream)
              : pa_cu_decode_attention(a, s->stream);
    break;
  case PA_CU_PREFILL_MMA: e = pa_cu_prefill_attention(a, s->stream); break;
  case PA_CU_PREFILL_WGMMA: e = pa_cu_prefill_wgmma(a, s->stream); break;
  case PA_CU_PREFILL_WS:
    e = pa_cu_prefill_ws(a, s->ws_pingpong, s->ws_release | s->ws_lazy << 2, s->stream);
    break;
  case PA_CU_MLA_MMA: e = pa_cu_mla_mma_decode(a, s->stream); break;
  case PA_CU_MLA_SEESAW: e = pa_cu_mla_seesaw_decode(a, s->stream); break;
  case PA_CU_MLA_FAST:
    e = pa_cu_mla_fast_decode(a, ctx->cfg.dev_cuda_mla_pf, ctx->cfg.dev_cuda_mla_early_pb,
                              s->stream);
    break;
  case PA_CU_GENERIC: e = pa_cu_generic_attention(a, s->stream); break;
  }
  if (e != cudaSuccess) return pa_cuda_fail(ctx, e, kernel_name(kernel));
  if (fused) return PA_OK;
  e = pa_cu_combine(a, s->stream);
  if (e != cudaSuccess) return pa_cuda_fail(ctx, e, "cuda.combine");
  return PA_OK;
}

static pa_status cu_attention(pa_context *ctx, const pa_plan *plan,
                              const pa_attention_args *args, pa_buffer *ws) {
  const pa_attention_desc *d = &plan->desc;
  const int paged = d->page_size > 0;
  pa_cu_attn a;
  memset(&a, 0, sizeof a);
  a.q = row_view(&args->q, 0);
  a.k = row_view(&args->k, paged);
  a.v = row_view(&args->v, paged);
  a.o = row_view(&args->out, 0);
  a.q2 = a.q;
  a.k2 = a.k;
  /* rows per slot and slots (paged: page size and pages) */
  a.kv_tokens = args->k.ndim == 4 ? args->k.shape[1] : args->k.shape[0];
  a.kv_batch = args->k.ndim == 4 ? args->k.shape[0] : 1;
  a.return_lse = (d->flags & PA_RETURN_LSE) != 0 && args->lse.buf;
  if (a.return_lse) a.lse = lse_view(&args->lse);
  if (paged) {
    a.bt = row_view(&args->block_table, 0);
    a.bt.sb = args->block_table.stride[0];
    a.bt.st = args->block_table.stride[1];
  }
  a.has_sinks = (d->flags & PA_HAS_SINKS) != 0;
  if (a.has_sinks) a.sinks = (const float *)tptr(&args->sinks);
  a.has_alibi = (d->flags & PA_HAS_ALIBI) != 0;
  if (a.has_alibi) a.alibi = (const float *)tptr(&args->alibi_slopes);
  a.has_mask = (d->flags & PA_HAS_MASK) != 0;
  if (a.has_mask) {
    const pa_tensor *m = &args->mask;
    a.mask = (pa_cu_view){tptr(m), m->stride[0], m->stride[2], m->shape[1] == 1 ? 0 : m->stride[1],
                          0, PA_F32};
  }
  a.hq = d->num_q_heads;
  a.hkv = d->num_kv_heads;
  a.group = plan->group;
  a.dqk = a.dqk1 = d->head_dim_qk;
  a.dv = d->head_dim_v;
  a.page_size = d->page_size;
  a.causal = d->causal;
  a.window_left = d->window_left;
  a.window_right = d->window_right;
  a.sink_tokens = d->sink_tokens;
  a.scale = plan->scale;
  a.softcap = d->softcap;
  if (pa_dtype_is_fp8(d->kv_dtype)) { /* generic kernel, or the decode kernel for D = 128 */
    a.k_scale = (const float *)tptr(&args->k_scale);
    a.v_scale = (const float *)tptr(&args->v_scale);
    a.k_scale_s = args->k_scale.shape[0] > 1 ? args->k_scale.stride[0] : 0;
    a.v_scale_s = args->v_scale.shape[0] > 1 ? args->v_scale.stride[0] : 0;
  }
  fill_schedule(plan, ws, &a);
  return dispatch(ctx, plan, &a);
}

static pa_status cu_mla(pa_context *ctx, const pa_plan *plan, const pa_mla_args *args,
                        pa_buffer *ws) {
  const pa_mla_desc *m = &plan->mla;
  pa_cu_attn a;
  memset(&a, 0, sizeof a);
  a.q = row_view(&args->q_nope, 0);
  a.q2 = row_view(&args->q_pe, 0);
  a.k = row_view(&args->ckv, 1);
  a.k2 = row_view(&args->kpe, 1);
  a.v = a.k;
  a.o = row_view(&args->out, 0);
  a.return_lse = (m->flags & PA_RETURN_LSE) != 0 && args->lse.buf;
  if (a.return_lse) a.lse = lse_view(&args->lse);
  a.bt = row_view(&args->block_table, 0);
  a.bt.sb = args->block_table.stride[0];
  a.bt.st = args->block_table.stride[1];
  a.hq = m->num_heads;
  a.hkv = 1;
  a.group = m->num_heads;
  a.dqk1 = m->head_dim_ckv;
  a.dqk = m->head_dim_ckv + m->head_dim_kpe;
  a.dv = m->head_dim_ckv;
  a.page_size = m->page_size;
  a.causal = m->causal;
  a.window_left = a.window_right = -1;
  a.scale = plan->scale;
  if (pa_dtype_is_fp8(m->kv_dtype)) a.k_scale = a.v_scale = (const float *)tptr(&args->kv_scale);
  fill_schedule(plan, ws, &a);
  return dispatch(ctx, plan, &a);
}

static pa_status cu_append(pa_context *ctx, const pa_append_launch *L) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  CU_TRY(ctx, cudaSetDevice(s->device));
  cudaError_t e = pa_cu_append(L, ctx->cfg.dev_cuda_append_vec, s->stream);
  return e == cudaSuccess ? PA_OK : pa_cuda_fail(ctx, e, "cuda.append");
}

static pa_cu_nd nd_view(const pa_tensor *t) {
  pa_cu_nd v;
  memset(&v, 0, sizeof v);
  if (!t || !t->buf) return v;
  v.ptr = tptr(t);
  v.dtype = (int)t->dtype;
  for (int i = 0; i < t->ndim && i < 4; ++i) v.s[i] = t->stride[i];
  return v;
}

static pa_status cu_merge(pa_context *ctx, const pa_merge_launch *ml) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  pa_cu_merge m;
  memset(&m, 0, sizeof m);
  m.mode = (int)ml->mode;
  m.rows = ml->rows;
  m.heads = ml->heads;
  m.dim = ml->dim;
  m.states = ml->states;
  m.a = nd_view(ml->a);
  m.lse_a = nd_view(ml->lse_a);
  m.b = nd_view(ml->b);
  m.lse_b = nd_view(ml->lse_b);
  m.v = nd_view(ml->v);
  m.s = nd_view(ml->s);
  m.out = nd_view(ml->out);
  m.lse_out = nd_view(ml->lse_out);
  if (ml->mode == PA_MERGE_VARLEN) m.indptr = (const int32_t *)tptr(ml->indptr);
  CU_TRY(ctx, cudaSetDevice(s->device));
  cudaError_t e = pa_cu_merge_states(&m, s->stream);
  if (e != cudaSuccess) return pa_cuda_fail(ctx, e, "cuda.merge_states");
  return PA_OK;
}

static pa_status cu_synchronize(pa_context *ctx) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  CU_TRY(ctx, cudaSetDevice(s->device));
  CU_TRY(ctx, cudaStreamSynchronize(s->stream));
  return PA_OK;
}

const pa_backend_ops pa_cuda_backend = {
    .abi_version = PA_BACKEND_ABI,
    .kind = PA_BACKEND_CUDA,
    .name = "cuda",
    .device_count = cu_device_count,
    .device_info = cu_device_info,
    .create = cu_create,
    .destroy = cu_destroy,
    .buf_alloc = cu_buf_alloc,
    .buf_free = cu_buf_free,
    .buf_wrap = NULL,
    .buf_unwrap = NULL,
    .buf_write = cu_buf_write,
    .buf_read = cu_buf_read,
    .select = cu_select,
    .plan_ready = cu_plan_ready,
    .attention = cu_attention,
    .mla = cu_mla,
    .merge = cu_merge,
    .head_gemm = pa_cuda_head_gemm,
    .synchronize = cu_synchronize,
    .append = cu_append,
};

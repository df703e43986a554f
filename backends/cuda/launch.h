/* What the C host glue (cuda.c) hands the .cu launchers: flat views of the
 * tensors and the plan's device schedule. Plain C, so both sides include it. */
#ifndef PA_CUDA_LAUNCH_H
#define PA_CUDA_LAUNCH_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor as kernels index it (strides in elements, the last dim contiguous):
 *   row tensors (q, out, contiguous k/v): padded ? b*sb + i*st : (start+i)*st, + h*sh
 *   paged k/v: page*sb + (j % page_size)*st + h*sh
 *   lse: like a row tensor without the last dim; mask: b*sb + h*sh + i*st + j;
 *   block_table: b*sb + p*st. */
typedef struct pa_cu_view {
  char *ptr; /* buffer + offset */
  int64_t sb, st, sh;
  int padded;
  int dtype; /* pa_dtype */
} pa_cu_view;

/* Everything an attention (or MLA) kernel needs, passed by value. For MLA the
 * key is two segments: dims [0, dqk1) from q/k, the rest from q2/k2. */
typedef struct pa_cu_attn {
  pa_cu_view q, k, v, o, lse, mask, bt, q2, k2;
  const float *sinks, *alibi;
  const pa_req *reqs;
  const pa_work *work; /* in run order (core/schedule.c): block b runs work[b] */
  const pa_combine *comb;
  float *ws_o, *ws_lse;
  int num_work, num_combine;
  int hq, hkv, group, dqk, dqk1, dv;
  int page_size, causal, window_left, window_right, sink_tokens;
  float scale, softcap;
  int return_lse, has_sinks, has_alibi, has_mask;
  int smem_optin; /* bytes of dynamic shared memory a block may use on this device */
  /* fp8 K/V (generic kernel): dequantisation scales at k_scale[hk * k_scale_s]
   * (stride 0: one per tensor); NULL otherwise. MLA: both are kv_scale. */
  const float *k_scale, *v_scale;
  int64_t k_scale_s, v_scale_s;
  int pdl;      /* launch with programmatic dependent launch (pdl.cuh) */
  int fp8_regs; /* fp8 decode: operands converted in registers (dev.cuda.fp8_decode) */
  int window_fast; /* wgmma prefill: windows on the compact loop (dev.cuda.window_fast) */
  /* k/v extent: tokens per batch slot (all tokens when ragged; the page size
   * when paged) and slots (1 when ragged; pages); the TMA kernel's tensor
   * maps end there. */
  int64_t kv_tokens, kv_batch;
} pa_cu_attn;

/* A merge-states operand: up to 4-d strided view. */
typedef struct pa_cu_nd {
  char *ptr;
  int64_t s[4];
  int dtype;
} pa_cu_nd;

typedef struct pa_cu_merge {
  int mode; /* pa_merge_mode */
  int64_t rows, heads, dim, states;
  pa_cu_nd a, lse_a, b, lse_b, v, s, out, lse_out; /* lse_out.ptr may be NULL */
  const int32_t *indptr;
} pa_cu_merge;

/* The kernels a plan can run, one kernel function each. */
typedef enum pa_cu_kernel {
  PA_CU_GENERIC = 0,   /* generic.cu: SIMT, any head dim up to 512, any dtype */
  PA_CU_DECODE,        /* decode.cu: tensor cores, KV split across warps: few packed rows */
  PA_CU_PREFILL_MMA,   /* prefill.cu: tensor cores (mma.sync), FA2-style: many packed rows */
  PA_CU_PREFILL_WGMMA, /* prefill_wgmma.cu: sm_90 wgmma, D 64/128 */
  PA_CU_MLA_MMA,       /* mla_mma.cu: MLA decode on mma.sync (sm_80+), 64 heads per tile */
  PA_CU_MLA_SEESAW,    /* mla_seesaw.cu: MLA decode on wgmma, seesaw schedule (sm_90) */
  PA_CU_PREFILL_WS,    /* prefill_ws.cu: sm_90 TMA + warp specialisation */
  PA_CU_MLA_FAST,      /* mla_fast.cu: the seesaw kernel reworked, fp8 caches too (sm_90) */
} pa_cu_kernel;

/* The variant a plan runs (pa_kernel_choice.variant), chosen once by select:
 * the kernel, and the one a run takes when its q/k/v rows are not 16-byte
 * aligned (the generic kernel; == kernel when that is already generic). */
typedef struct pa_cu_variant {
  pa_cu_kernel kernel, unaligned;
} pa_cu_variant;

#define PA_CU_GENERIC_ROWS 16

#ifdef __CUDACC__
/* The work item block b runs: core ordered the list (heavy items first, so
 * the tail is short). */
__device__ __forceinline__ const pa_work &pa_cu_item(const pa_cu_attn &a) {
  return a.work[blockIdx.x];
}
#endif

/* Launchers return the launch's cudaError_t (never synchronise). */
/* *_init(smem_optin) raise each kernel's shared-memory limit once per context;
 * instantiations that need more than the device allows are left alone and
 * their *_supported answers 0, so the selector takes another kernel (consumer
 * GPUs allow 99 KB per block, A100 163 KB, H100/H200 227 KB). */
cudaError_t pa_cu_generic_init(int smem_optin);
cudaError_t pa_cu_generic_attention(const pa_cu_attn *a, cudaStream_t s);
/* Whether the generic kernel fits these dims in the device's shared memory. */
int pa_cu_generic_fits(int dqk, int dv, int smem_optin);
cudaError_t pa_cu_combine(const pa_cu_attn *a, cudaStream_t s);
cudaError_t pa_cu_merge_states(const pa_cu_merge *m, cudaStream_t s);

/* Tensor-core kernels; *_supported is 0 when no instantiation fits (dims,
 * dtype); for prefill it is the packed rows per work item (BM). */
int pa_cu_decode_supported(int dqk, int dv, int dtype, int smem_optin);
cudaError_t pa_cu_decode_init(int smem_optin);
/* fp8 K/V (e4m3/e5m2) with f16/bf16 Q and O, D = 128. */
int pa_cu_decode8_supported(int dqk, int dv, int dtype, int kv_dtype, int smem_optin);
cudaError_t pa_cu_decode_attention(const pa_cu_attn *a, cudaStream_t s);
/* Split decode plans: the last split of each (request, KV head) to finish
 * merges the group (counters: device, batch x Hkv, zero, left zero again). */
cudaError_t pa_cu_decode_attention_fused(const pa_cu_attn *a, unsigned *counters, int merge_u,
                                         cudaStream_t s);
int pa_cu_prefill_supported(int dqk, int dv, int dtype, int smem_optin);
/* fp8 K/V (e4m3/e5m2) with f16/bf16 Q and O, D 128/128: BM, or 0. */
int pa_cu_prefill8_supported(int dqk, int dv, int dtype, int kv_dtype, int smem_optin);
/* wgmma: 1 also prepares the sm_90 wgmma kernel (only on sm_90). */
cudaError_t pa_cu_prefill_init(int smem_optin, int wgmma);
cudaError_t pa_cu_prefill_attention(const pa_cu_attn *a, cudaStream_t s);
/* Dqk = Dv in {64, 128}, f16/bf16, sm_90 (the sm_90a code runs nowhere else). */
int pa_cu_prefill_wgmma_supported(int dqk, int dv, int dtype);
int pa_cu_prefill_wgmma8_supported(int dqk, int dv, int dtype, int kv_dtype);
cudaError_t pa_cu_prefill_wgmma(const pa_cu_attn *a, cudaStream_t s);
/* Warp-specialised TMA prefill (sm_90): (Dqk, Dv) in {64/64, 128/128,
 * 256/256, 192/128}, f16/bf16, contiguous k/v, 128 packed rows per item; pp:
 * ping-pong between the consumer warpgroups. */
int pa_cu_prefill_ws_available(void);
cudaError_t pa_cu_prefill_ws_init(void);
int pa_cu_prefill_ws_supported(int dqk, int dv, int dtype);
/* opt: dev.cuda.ws_release (0..2) | dev.cuda.ws_lazy << 2 */
cudaError_t pa_cu_prefill_ws(const pa_cu_attn *a, int pp, int opt, cudaStream_t s);
int pa_cu_mla_supported(int dc, int dr, int dtype, int smem_optin);

/* pa_kv_append / pa_mla_append (append.cu). */
cudaError_t pa_cu_append(const pa_append_launch *L, int vec, cudaStream_t s);
cudaError_t pa_cu_mla_mma_init(int smem_optin);
cudaError_t pa_cu_mla_mma_decode(const pa_cu_attn *a, cudaStream_t s);
/* sm_90 only. */
cudaError_t pa_cu_mla_seesaw_init(void);
cudaError_t pa_cu_mla_seesaw_decode(const pa_cu_attn *a, cudaStream_t s);
/* mla_fast.cu (sm_90 only): f16/bf16 Q/O, ckv/kpe the same or fp8. pf:
 * 64-key tiles prefetched into L2 ahead of the two in shared memory;
 * early_pb: P_B handed to warpgroup 0 as soon as it is written. */
cudaError_t pa_cu_mla_fast_init(void);
cudaError_t pa_cu_mla_fast_decode(const pa_cu_attn *a, int pf, int early_pb, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif

/* Device helpers shared by the CUDA kernels: dtype loads/stores, indexing of
 * the flat views, the score/visibility rule, and the merge rule. The numerics
 * (online softmax, LSE = m + log(l), empty = -inf) are written here once. */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math_constants.h>

#include "launch.h"

namespace pa {

__device__ __forceinline__ float ld(const char *p, int dt, int64_t i) {
  if (dt == PA_F32) return reinterpret_cast<const float *>(p)[i];
  if (dt == PA_F16) return __half2float(reinterpret_cast<const __half *>(p)[i]);
  return __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(p)[i]);
}

__device__ __forceinline__ void st(char *p, int dt, int64_t i, float x) {
  if (dt == PA_F32) reinterpret_cast<float *>(p)[i] = x;
  else if (dt == PA_F16) reinterpret_cast<__half *>(p)[i] = __float2half_rn(x);
  else reinterpret_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(x);
}

/* Row of a q/out/lse view (see launch.h). */
__device__ __forceinline__ int64_t row_off(const pa_cu_view &v, int b, int start, int i, int h) {
  return (v.padded ? (int64_t)b * v.sb + (int64_t)i * v.st : ((int64_t)start + i) * v.st) +
         (int64_t)h * v.sh;
}

/* Key j of request b in a k/v view, contiguous or paged. */
__device__ __forceinline__ int64_t key_off(const pa_cu_attn &a, const pa_cu_view &v, int b,
                                           int k_start, int j, int hk) {
  if (a.page_size > 0) {
    const int32_t *bt = reinterpret_cast<const int32_t *>(a.bt.ptr);
    int64_t page = bt[(int64_t)b * a.bt.sb + (int64_t)(j / a.page_size) * a.bt.st];
    return page * v.sb + (int64_t)(j % a.page_size) * v.st + (int64_t)hk * v.sh;
  }
  return row_off(v, b, k_start, j, hk);
}

/* polyattn.h's visibility rule; off = len_k - len_q. */
__device__ __forceinline__ bool visible(const pa_cu_attn &a, int i, int j, int off) {
  int diag = i + off;
  if (a.causal && j > diag) return false;
  if (j < a.sink_tokens) return true;
  if (a.window_left >= 0 && j < diag - a.window_left) return false;
  if (a.window_right >= 0 && j > diag + a.window_right) return false;
  return true;
}

/* Raw dot product -> logit (scale, softcap, ALiBi, mask), -inf when invisible. */
__device__ __forceinline__ float logit(const pa_cu_attn &a, float dot, int b, int i, int j,
                                       int off, int h) {
  if (!visible(a, i, j, off)) return -CUDART_INF_F;
  float s = dot * a.scale;
  if (a.softcap > 0.f) s = a.softcap * tanhf(s / a.softcap);
  if (a.has_alibi) s -= a.alibi[h] * fabsf((float)(i + off - j));
  if (a.has_mask)
    s += reinterpret_cast<const float *>(a.mask.ptr)[(int64_t)b * a.mask.sb +
                                                     (int64_t)h * a.mask.sh +
                                                     (int64_t)i * a.mask.st + j];
  return s;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}
__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

/* exp(x - m) that is 0 (not NaN) when both are -inf. */
__device__ __forceinline__ float exp_diff(float x, float m) {
  return x == -CUDART_INF_F ? 0.f : expf(x - m);
}

/* Where a finished row (i, h) of request b goes: out/lse directly, or its
 * partial row in the workspace when the request is split. State (m, l) is
 * the running max and denominator; sinks join here only when unsplit. */
struct row_dest {
  bool split;
  int64_t o_off;   /* element offset in out, or in ws_o */
  int64_t lse_off; /* element offset in lse, or in ws_lse; -1: none */
};

__device__ __forceinline__ row_dest dest_of(const pa_cu_attn &a, const pa_req &rq, int b,
                                            int split, int i, int h) {
  row_dest d;
  d.split = rq.num_splits > 1;
  if (d.split) {
    int64_t p = (int64_t)rq.part_row + ((int64_t)split * rq.len_q + i) * a.hq + h;
    d.o_off = p * a.dv;
    d.lse_off = p;
  } else {
    d.o_off = row_off(a.o, b, rq.q_start, i, h);
    d.lse_off = a.return_lse ? row_off(a.lse, b, rq.q_start, i, h) : -1;
  }
  return d;
}

/* Folds the sink (unsplit rows only) into (m, l); returns the factor the
 * accumulator must be multiplied by before dividing by l. */
__device__ __forceinline__ float fold_sink(const pa_cu_attn &a, const row_dest &d, int h,
                                           float &m, float &l) {
  if (d.split || !a.has_sinks) return 1.f;
  float sk = a.sinks[h];
  float mn = fmaxf(m, sk);
  float c = exp_diff(m, mn);
  l = l * c + exp_diff(sk, mn);
  m = mn;
  return c;
}

__device__ __forceinline__ float final_lse(float m, float l) {
  return l > 0.f ? m + logf(l) : -CUDART_INF_F;
}

} // namespace pa

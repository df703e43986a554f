/* Combine: merges the num_splits partial rows of each (token, head) of every
 * token in the plan's combine list into out/lse. The sink, when present,
 * joins here as one more state (O = 0, LSE = sink), never in the splits.
 * One block per (combine entry, head): the split weights go to shared memory
 * once, then each thread owns dims and sums the splits with independent
 * loads in flight (one long request can have 64 splits and one entry).
 * Split plans of decode.cu skip it: that kernel merges its own splits
 * (PA_CUDA_DECODE_FUSE=0 brings this kernel back for them). */
#include "common.cuh"
#include "pdl.cuh"

namespace {

constexpr int kThreads = 128;
constexpr int kMaxSplits = 256;

__global__ void __launch_bounds__(kThreads) combine_splits(const pa_cu_attn a) {
  __shared__ float wgt[kMaxSplits];
  __shared__ float red[kThreads / 32];
  /* Launched with PDL: the splits' kernel may still be running until here.
   * Then the next PDL launch may start its own prologue. */
  pa::pdl_wait();
  pa::pdl_trigger();
  const pa_combine c = a.comb[blockIdx.x];
  const int h = blockIdx.y;
  const pa_req rq = a.reqs[c.b];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int ns = rq.num_splits;
  const int64_t p0 = (int64_t)rq.part_row + (int64_t)c.i * a.hq + h;
  const int64_t step = (int64_t)rq.len_q * a.hq; /* partial rows between splits */

  float m = -CUDART_INF_F;
  for (int s = tid; s < ns; s += kThreads) {
    const float x = a.ws_lse[p0 + s * step];
    if (s < kMaxSplits) wgt[s] = x; /* read the LSEs from global memory once */
    m = fmaxf(m, x);
  }
  m = pa::warp_max(m);
  if (lane == 0) red[warp] = m;
  __syncthreads();
  m = a.has_sinks ? a.sinks[h] : -CUDART_INF_F;
#pragma unroll
  for (int v = 0; v < kThreads / 32; ++v) m = fmaxf(m, red[v]);
  __syncthreads(); /* red is reused below */
  float l = 0.f;
  for (int s = tid; s < ns; s += kThreads) {
    const float x = pa::exp_diff(s < kMaxSplits ? wgt[s] : a.ws_lse[p0 + s * step], m);
    if (s < kMaxSplits) wgt[s] = x;
    l += x;
  }
  l = pa::warp_sum(l);
  if (lane == 0) red[warp] = l;
  __syncthreads();
  l = a.has_sinks ? pa::exp_diff(a.sinks[h], m) : 0.f;
#pragma unroll
  for (int v = 0; v < kThreads / 32; ++v) l += red[v];
  const float inv = l > 0.f ? 1.f / l : 0.f;
  /* More splits than wgt holds (a user's num_splits): recompute the rest. */
  auto weight = [&](int s) {
    return s < kMaxSplits ? wgt[s] : pa::exp_diff(a.ws_lse[p0 + s * step], m);
  };

  const int64_t oo = pa::row_off(a.o, c.b, rq.q_start, c.i, h);
  for (int d = tid; d < a.dv; d += kThreads) {
    const float *src = a.ws_o + p0 * a.dv + d;
    /* 16 independent loads in flight per thread: the splits of one row are
     * far apart in the workspace, each load a separate L2 round trip (the
     * 8-deep version took 9.6 us for 64 splits x 32 heads on H200). */
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int s = 0;
    for (; s + 16 <= ns; s += 16) {
      float x[16];
#pragma unroll
      for (int u = 0; u < 16; ++u) x[u] = src[(s + u) * step * a.dv];
#pragma unroll
      for (int u = 0; u < 16; ++u) acc[u & 7] = fmaf(weight(s + u), x[u], acc[u & 7]);
    }
    for (; s + 8 <= ns; s += 8) {
      float x[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) x[u] = src[(s + u) * step * a.dv];
#pragma unroll
      for (int u = 0; u < 8; ++u) acc[u] = fmaf(weight(s + u), x[u], acc[u]);
    }
    for (; s < ns; ++s) acc[0] = fmaf(weight(s), src[s * step * a.dv], acc[0]);
    const float acc0 = (acc[0] + acc[1]) + (acc[2] + acc[3]), acc1 = (acc[4] + acc[5]) + (acc[6] + acc[7]);
    pa::st(a.o.ptr, a.o.dtype, oo + d, (acc0 + acc1) * inv);
  }
  if (tid == 0 && a.return_lse)
    reinterpret_cast<float *>(a.lse.ptr)[pa::row_off(a.lse, c.b, rq.q_start, c.i, h)] =
        pa::final_lse(m, l);
}

} // namespace

extern "C" cudaError_t pa_cu_combine(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_combine == 0) return cudaSuccess;
  return pa::launch_pdl(a->pdl != 0, combine_splits, dim3(a->num_combine, a->hq), dim3(kThreads), 0,
                        s, *a);
}

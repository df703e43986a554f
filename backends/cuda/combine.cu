/* Combine: merges the num_splits partial rows of each (token, head) of every
 * token in the plan's combine list into out/lse. The sink, when present,
 * joins here as one more state (O = 0, LSE = sink), never in the splits.
 * One block per combine entry; a warp per head at a time, lanes over dims. */
#include "common.cuh"

namespace {

constexpr int kWarps = 4;

__global__ void __launch_bounds__(kWarps * 32) combine_splits(const pa_cu_attn a) {
  const pa_combine c = a.comb[blockIdx.x];
  const pa_req rq = a.reqs[c.b];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int h = warp; h < a.hq; h += kWarps) {
    const int64_t p0 = (int64_t)rq.part_row + (int64_t)c.i * a.hq + h;
    const int64_t step = (int64_t)rq.len_q * a.hq; /* partial rows between splits */
    float m = a.has_sinks ? a.sinks[h] : -CUDART_INF_F;
    for (int s = lane; s < rq.num_splits; s += 32) m = fmaxf(m, a.ws_lse[p0 + s * step]);
    m = pa::warp_max(m);
    float l = a.has_sinks ? pa::exp_diff(a.sinks[h], m) : 0.f;
    for (int s = lane; s < rq.num_splits; s += 32) l += pa::exp_diff(a.ws_lse[p0 + s * step], m);
    l = pa::warp_sum(l);
    const float inv = l > 0.f ? 1.f / l : 0.f;
    const int64_t oo = pa::row_off(a.o, c.b, rq.q_start, c.i, h);
    for (int d = lane; d < a.dv; d += 32) {
      float acc = 0.f;
      for (int s = 0; s < rq.num_splits; ++s) {
        const float wgt = pa::exp_diff(a.ws_lse[p0 + s * step], m);
        if (wgt > 0.f) acc = fmaf(wgt, a.ws_o[(p0 + s * step) * a.dv + d], acc);
      }
      pa::st(a.o.ptr, a.o.dtype, oo + d, acc * inv);
    }
    if (lane == 0 && a.return_lse)
      reinterpret_cast<float *>(a.lse.ptr)[pa::row_off(a.lse, c.b, rq.q_start, c.i, h)] =
          pa::final_lse(m, l);
  }
}

} // namespace

extern "C" cudaError_t pa_cu_combine(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_combine == 0) return cudaSuccess;
  combine_splits<<<a->num_combine, kWarps * 32, 0, s>>>(*a);
  return cudaGetLastError();
}

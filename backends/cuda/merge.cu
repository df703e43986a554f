/* Merge states (public API): pair, fixed count and variable count. One warp
 * per output (row, head); lanes first reduce the states' LSEs, then own dims.
 * Same rule as combine.cu: lse = log(sum exp(lse_k)), empty gives 0 / -inf. */
#include "common.cuh"

namespace {

constexpr int kWarps = 4;

struct state_ref {
  const pa_cu_nd *o, *lse;
  int64_t o_off, lse_off;
};

/* State k of output (r, h). */
__device__ inline state_ref state_at(const pa_cu_merge &m, int64_t r, int64_t h, int64_t k,
                                     int64_t base) {
  state_ref s;
  if (m.mode == PA_MERGE_PAIR) {
    s.o = k == 0 ? &m.a : &m.b;
    s.lse = k == 0 ? &m.lse_a : &m.lse_b;
    s.o_off = r * s.o->s[0] + h * s.o->s[1];
    s.lse_off = r * s.lse->s[0] + h * s.lse->s[1];
  } else if (m.mode == PA_MERGE_FIXED) { /* v [T, N, H, D], s [T, N, H] */
    s.o = &m.v;
    s.lse = &m.s;
    s.o_off = r * m.v.s[0] + k * m.v.s[1] + h * m.v.s[2];
    s.lse_off = r * m.s.s[0] + k * m.s.s[1] + h * m.s.s[2];
  } else { /* v [P, H, D], s [P, H], partial base + k */
    s.o = &m.v;
    s.lse = &m.s;
    s.o_off = (base + k) * m.v.s[0] + h * m.v.s[1];
    s.lse_off = (base + k) * m.s.s[0] + h * m.s.s[1];
  }
  return s;
}

__device__ inline float lse_of(const state_ref &s) {
  return reinterpret_cast<const float *>(s.lse->ptr)[s.lse_off];
}

__global__ void __launch_bounds__(kWarps * 32) merge_states(const pa_cu_merge m) {
  const int lane = threadIdx.x & 31;
  const int64_t task = (int64_t)blockIdx.x * kWarps + (threadIdx.x >> 5);
  if (task >= m.rows * m.heads) return;
  const int64_t r = task / m.heads, h = task % m.heads;
  int64_t base = 0, n = m.mode == PA_MERGE_PAIR ? 2 : m.states;
  if (m.mode == PA_MERGE_VARLEN) {
    base = m.indptr[r];
    n = m.indptr[r + 1] - base;
  }
  float mx = -CUDART_INF_F;
  for (int64_t k = lane; k < n; k += 32) mx = fmaxf(mx, lse_of(state_at(m, r, h, k, base)));
  mx = pa::warp_max(mx);
  float l = 0.f;
  for (int64_t k = lane; k < n; k += 32) l += pa::exp_diff(lse_of(state_at(m, r, h, k, base)), mx);
  l = pa::warp_sum(l);
  const float inv = l > 0.f ? 1.f / l : 0.f;
  const int64_t oo = r * m.out.s[0] + h * m.out.s[1];
  for (int64_t d = lane; d < m.dim; d += 32) {
    float acc = 0.f;
    for (int64_t k = 0; k < n; ++k) {
      const state_ref s = state_at(m, r, h, k, base);
      const float wgt = pa::exp_diff(lse_of(s), mx);
      if (wgt > 0.f) acc = fmaf(wgt, pa::ld(s.o->ptr, s.o->dtype, s.o_off + d), acc);
    }
    pa::st(m.out.ptr, m.out.dtype, oo + d, acc * inv);
  }
  if (lane == 0 && m.lse_out.ptr)
    reinterpret_cast<float *>(m.lse_out.ptr)[r * m.lse_out.s[0] + h * m.lse_out.s[1]] =
        pa::final_lse(mx, l);
}

} // namespace

extern "C" cudaError_t pa_cu_merge_states(const pa_cu_merge *m, cudaStream_t s) {
  const int64_t tasks = m->rows * m->heads;
  if (tasks == 0) return cudaSuccess;
  merge_states<<<(unsigned)((tasks + kWarps - 1) / kWarps), kWarps * 32, 0, s>>>(*m);
  return cudaGetLastError();
}

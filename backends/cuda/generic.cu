/* Generic attention: SIMT, any head dims (Dqk up to 576, Dv up to 512), any
 * dtype mix, every mask feature. It executes the plan's work list like the
 * fast kernels do and is the fallback for every shape they do not cover.
 *
 * Why SIMT and not NVRTC: one kernel with run-time dims and dtypes costs two
 * instantiations of build time, needs no compiler at run time, and is
 * correct everywhere; the common shapes go to the tensor-core kernels.
 *
 * Tile: one block = one work item, 4 warps x 4 packed rows = 16 rows; keys
 * in tiles of BK (32, or 16 when the dims are large) staged in shared memory
 * as f32. Scores: lane j of a warp owns key j of the tile (K rows padded to an
 * odd stride, so the lanes hit distinct banks). PV: lane owns dims lane+32c. */
#include "common.cuh"
#include "fp8.cuh"

namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = PA_CU_GENERIC_ROWS / kWarps;
constexpr int kMaxSmem = 112 * 1024;

__host__ __device__ inline int kstride(int dqk) { return dqk | 1; }

__host__ inline size_t smem_bytes(int dqk, int dv, int bk) {
  return sizeof(float) * ((size_t)PA_CU_GENERIC_ROWS * dqk + (size_t)bk * kstride(dqk) +
                          (size_t)bk * dv);
}

__device__ inline float ld_q(const pa_cu_attn &a, int b, const pa_req &rq, int i, int h, int d) {
  if (d < a.dqk1) return pa::ld(a.q.ptr, a.q.dtype, pa::row_off(a.q, b, rq.q_start, i, h) + d);
  return pa::ld(a.q2.ptr, a.q2.dtype, pa::row_off(a.q2, b, rq.q_start, i, h) + d - a.dqk1);
}

/* DVC: accumulator chunks of 32 dims per lane (Dv <= 32 * DVC). */
/* Rows [row0, row0 + rows) of work item w (rows <= 16). */
template <int DVC>
__device__ void rows_attention(const pa_cu_attn &a, const pa_work &w, const pa_req &rq,
                               const int row0, const int rows, const int bk, float *smem) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int dqk = a.dqk, dv = a.dv, ks = kstride(dqk);
  const int off = rq.len_k - rq.len_q;
  float *qs = smem;
  float *kt = qs + PA_CU_GENERIC_ROWS * dqk;
  float *vt = kt + bk * ks;

  for (int r = warp; r < PA_CU_GENERIC_ROWS; r += kWarps) {
    int pr = row0 + r, i = pr / a.group, h = w.hk * a.group + pr % a.group;
    for (int d = lane; d < dqk; d += 32)
      qs[r * dqk + d] = r < rows ? ld_q(a, w.b, rq, i, h, d) : 0.f;
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][DVC];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    m[r] = -CUDART_INF_F;
    l[r] = 0.f;
#pragma unroll
    for (int c = 0; c < DVC; ++c) acc[r][c] = 0.f;
  }

  /* fp8 K/V: staged dequantised (scale x code, as the API defines it) */
  const float ksc = a.k_scale ? a.k_scale[w.hk * a.k_scale_s] : 1.f;
  const float vsc = a.v_scale ? a.v_scale[w.hk * a.v_scale_s] : 1.f;
  for (int j0 = w.kv_begin; j0 < w.kv_end; j0 += bk) {
    const int nk = min(bk, w.kv_end - j0);
    __syncthreads(); /* previous tile consumed */
    for (int jj = warp; jj < nk; jj += kWarps) {
      int j = j0 + jj;
      int64_t ko = pa::key_off(a, a.k, w.b, rq.k_start, j, w.hk);
      int64_t vo = pa::key_off(a, a.v, w.b, rq.k_start, j, w.hk);
      int64_t k2o = a.dqk1 < dqk ? pa::key_off(a, a.k2, w.b, rq.k_start, j, w.hk) : 0;
      for (int d = lane; d < dqk; d += 32)
        kt[jj * ks + d] = ksc * (d < a.dqk1 ? pa::ld_any(a.k.ptr, a.k.dtype, ko + d)
                                            : pa::ld_any(a.k2.ptr, a.k2.dtype, k2o + d - a.dqk1));
      for (int d = lane; d < dv; d += 32) vt[jj * dv + d] = vsc * pa::ld_any(a.v.ptr, a.v.dtype, vo + d);
    }
    __syncthreads();

#pragma unroll
    for (int r = 0; r < kRowsPerWarp; ++r) {
      const int row = warp * kRowsPerWarp + r;
      if (row >= rows) break; /* uniform across the warp */
      const int pr = row0 + row, i = pr / a.group, h = w.hk * a.group + pr % a.group;
      float s = -CUDART_INF_F;
      if (lane < nk) {
        const float *qr = qs + row * dqk, *kr = kt + lane * ks;
        float dot = 0.f;
        for (int d = 0; d < dqk; ++d) dot = fmaf(qr[d], kr[d], dot);
        s = pa::logit(a, dot, w.b, i, j0 + lane, off, h);
      }
      const float mn = fmaxf(m[r], pa::warp_max(s));
      if (mn == -CUDART_INF_F) continue; /* nothing visible yet */
      const float p = pa::exp_diff(s, mn), c = pa::exp_diff(m[r], mn);
      l[r] = l[r] * c + pa::warp_sum(p);
      m[r] = mn;
#pragma unroll
      for (int cc = 0; cc < DVC; ++cc) acc[r][cc] *= c;
      for (int jj = 0; jj < nk; ++jj) {
        const float pj = __shfl_sync(0xffffffffu, p, jj);
#pragma unroll
        for (int cc = 0; cc < DVC; ++cc) {
          const int d = lane + 32 * cc;
          if (d < dv) acc[r][cc] = fmaf(pj, vt[jj * dv + d], acc[r][cc]);
        }
      }
    }
  }

#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    const int row = warp * kRowsPerWarp + r;
    if (row >= rows) break;
    const int pr = row0 + row, i = pr / a.group, h = w.hk * a.group + pr % a.group;
    const pa::row_dest dst = pa::dest_of(a, rq, w.b, w.split, i, h);
    float mm = m[r], ll = l[r];
    const float c = pa::fold_sink(a, dst, h, mm, ll);
    const float inv = ll > 0.f ? c / ll : 0.f;
#pragma unroll
    for (int cc = 0; cc < DVC; ++cc) {
      const int d = lane + 32 * cc;
      if (d >= dv) continue;
      if (dst.split) a.ws_o[dst.o_off + d] = acc[r][cc] * inv;
      else pa::st(a.o.ptr, a.o.dtype, dst.o_off + d, acc[r][cc] * inv);
    }
    if (lane == 0 && dst.lse_off >= 0) {
      const float lse = pa::final_lse(mm, ll);
      if (dst.split) a.ws_lse[dst.lse_off] = lse;
      else reinterpret_cast<float *>(a.lse.ptr)[dst.lse_off] = lse;
    }
  }
}

/* Items have up to 16 packed rows when the plan was made for this kernel;
 * more when a tensor-core plan falls back here (misaligned tensors). */
template <int DVC>
__global__ void __launch_bounds__(kWarps * 32)
    generic_attention(const pa_cu_attn a, const int bk) {
  extern __shared__ float smem[];
  const pa_work w = pa_cu_item(a);
  const pa_req rq = a.reqs[w.b];
  for (int rb = 0; rb < w.rows; rb += PA_CU_GENERIC_ROWS) {
    if (rb > 0) __syncthreads(); /* shared q/k/v of the previous rows consumed */
    rows_attention<DVC>(a, w, rq, w.row0 + rb, min(PA_CU_GENERIC_ROWS, w.rows - rb), bk, smem);
  }
}

} // namespace

extern "C" cudaError_t pa_cu_generic_init(int smem_optin) {
  const int limit = smem_optin < kMaxSmem ? smem_optin : kMaxSmem;
  cudaError_t e = cudaFuncSetAttribute(generic_attention<8>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, limit);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(generic_attention<16>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                              limit);
}

extern "C" int pa_cu_generic_fits(int dqk, int dv, int smem_optin) {
  const size_t limit = (size_t)(smem_optin < kMaxSmem ? smem_optin : kMaxSmem);
  return dv <= 512 && smem_bytes(dqk, dv, 1) <= limit;
}

extern "C" cudaError_t pa_cu_generic_attention(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  /* The widest key tile that fits (576/512 needs 72 KB at 8 keys, 41 KB at 1). */
  const size_t limit = (size_t)(a->smem_optin < kMaxSmem ? a->smem_optin : kMaxSmem);
  int bk = 32;
  while (bk > 1 && smem_bytes(a->dqk, a->dv, bk) > limit) bk /= 2;
  size_t smem = smem_bytes(a->dqk, a->dv, bk);
  if (smem > limit || a->dv > 512) return cudaErrorInvalidValue;
  if (a->dv <= 256)
    generic_attention<8><<<a->num_work, kWarps * 32, smem, s>>>(*a, bk);
  else
    generic_attention<16><<<a->num_work, kWarps * 32, smem, s>>>(*a, bk);
  return cudaGetLastError();
}

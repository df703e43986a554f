/* MLA decode on mma.sync tensor cores (sm_80+; f16/bf16, Dc = 512, Dr = 64), heads blocked
 * 64 per tile as in the TileLang kernel: one latent KV row serves every
 * head, so 64 heads share each K tile (and V is the ckv part of the same
 * tile: loaded once). MLA is bound by arithmetic, not bytes.
 *
 * One block per work item: 64 packed rows (heads x MTP tokens), 8 warps.
 * Warp (rg, hf) = (w % 4, w / 4) owns rows 16 rg.. and, of the 576 QK dims,
 * half hf (288 each): the two halves' partial scores meet in shared memory,
 * both warps then hold the full S and the same P, and each multiplies P by
 * its 256 of the 512 V dims, so no mma is done twice and O takes 128
 * registers per thread. KV tiles of 32 keys x 576, two cp.async stages.
 * Shared memory: Q 72 KB + 2 x 36 KB tiles + 16 KB score exchange = 160 KB. */
#include "mma.cuh"

namespace {

constexpr int kWarps = 8;
constexpr int DC = 512, DR = 64, DK = DC + DR;
constexpr int BM = 64, BN = 32;
constexpr int CH = DK / 8; /* 72 chunks of 16 bytes per row */
constexpr int NT = BN / 8;
constexpr int Q_BYTES = BM * DK * 2, TILE = BN * DK * 2, SX_BYTES = kWarps * NT * 32 * 16;
constexpr int SMEM = Q_BYTES + 2 * TILE + SX_BYTES;
constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

__device__ __forceinline__ void pair_barrier(int id) {
  asm volatile("bar.sync %0, 64;\n" ::"r"(id));
}

template <typename T>
__global__ void __launch_bounds__(kWarps * 32, 1) mla_decode_mma(const pa_cu_attn a) {
  extern __shared__ __align__(16) unsigned char smem[];
  unsigned char *qs = smem, *ring = smem + Q_BYTES;
  float4 *sx = reinterpret_cast<float4 *>(ring + 2 * TILE);
  const uint32_t q_addr = pa::smem_addr(qs), ring_addr = pa::smem_addr(ring);

  const pa_work w = pa_cu_item(a);
  const pa_req rq = a.reqs[w.b];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int rg = warp & 3, hf = warp >> 2;
  const int g = a.group, off = rq.len_k - rq.len_q;

  for (int c = tid; c < BM * CH; c += kWarps * 32) {
    const int r = c / CH, ch = c % CH;
    const bool ok = r < w.rows;
    const T *src = reinterpret_cast<const T *>(a.q.ptr);
    if (ok) {
      const int pr = w.row0 + r, i = pr / g, h = pr % g;
      src = ch < DC / 8 ? reinterpret_cast<const T *>(a.q.ptr) +
                              pa::row_off(a.q, w.b, rq.q_start, i, h) + ch * 8
                        : reinterpret_cast<const T *>(a.q2.ptr) +
                              pa::row_off(a.q2, w.b, rq.q_start, i, h) + (ch - DC / 8) * 8;
    }
    pa::cp_async16(q_addr + 16 * pa::swz<CH>(r, ch), src, ok);
  }

  const int nkeys = w.kv_end - w.kv_begin;
  const int ntiles = (nkeys + BN - 1) / BN;
  /* Each lane owns key row `lane` of a tile; its block-table entry is fetched
   * a tile ahead, and the loads get row offsets by shuffle. */
  static_assert(BN == 32, "one key row per lane");
  const int32_t *bt = reinterpret_cast<const int32_t *>(a.bt.ptr) + (int64_t)w.b * a.bt.sb;
  int32_t next_page = 0;
  auto fetch_page = [&](int t) {
    const int j = w.kv_begin + t * BN + lane;
    if (j < w.kv_end) next_page = bt[(int64_t)(j / a.page_size) * a.bt.st];
  };
  fetch_page(0);
  auto load_tile = [&](int t) {
    const uint32_t base = ring_addr + (t & 1) * TILE;
    const int j = w.kv_begin + t * BN + lane;
    const bool ok = j < w.kv_end;
    const int64_t in_page = ok ? j % a.page_size : 0;
    const int64_t co = ok ? next_page * a.k.sb + in_page * a.k.st : 0;
    const int64_t po = ok ? next_page * a.k2.sb + in_page * a.k2.st : 0;
    fetch_page(t + 1);
#pragma unroll
    for (int u = 0; u < BN * CH / (kWarps * 32); ++u) {
      const int c = tid + u * kWarps * 32, r = c / CH, ch = c % CH;
      const int64_t cr = __shfl_sync(0xffffffffu, co, r), pr = __shfl_sync(0xffffffffu, po, r);
      const bool okr = __shfl_sync(0xffffffffu, ok, r);
      const T *src =
          ch < DC / 8 ? reinterpret_cast<const T *>(a.k.ptr) + (okr ? cr + ch * 8 : 0)
                      : reinterpret_cast<const T *>(a.k2.ptr) + (okr ? pr + (ch - DC / 8) * 8 : 0);
      pa::cp_async16(base + 16 * pa::swz<CH>(r, ch), src, okr);
    }
  };
  if (ntiles > 0) load_tile(0);
  pa::cp_commit();

  const int a_row = rg * 16 + (lane & 15), a_ch = lane >> 4;
  const int k_row = (lane & 7) + ((lane >> 4) << 3), k_ch = (lane >> 3) & 1;
  const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_ch = lane >> 4;
  const int r0 = lane >> 2, tq = lane & 3;
  const float scale2 = a.scale * kLog2e;
  constexpr int KSTEPS = DK / 16 / 2; /* k-steps of this warp's half: 18 */
  constexpr int DVH = DC / 2;         /* V dims of this warp: 256 */

  float o[DVH / 8][4];
#pragma unroll
  for (int n = 0; n < DVH / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-CUDART_INF_F, -CUDART_INF_F}, l[2] = {0.f, 0.f};
  int lim[2]; /* last visible key of each of this thread's rows */
#pragma unroll
  for (int x = 0; x < 2; ++x) {
    const int r = rg * 16 + r0 + 8 * x, i = (w.row0 + r) / g;
    lim[x] = r < w.rows ? (a.causal ? min(w.kv_end - 1, i + off) : w.kv_end - 1) : -1;
  }

  for (int t = 0; t < ntiles; ++t) {
    if (t + 1 < ntiles) load_tile(t + 1);
    pa::cp_commit();
    pa::cp_wait<1>();
    __syncthreads(); /* tile t (and Q) landed for every warp */
    const uint32_t kt = ring_addr + (t & 1) * TILE;

    float s[NT][4];
#pragma unroll
    for (int n = 0; n < NT; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < KSTEPS; ++kk) {
      const int ks = hf * KSTEPS + kk;
      uint32_t qa[4];
      pa::ldsm_x4(q_addr + 16 * pa::swz<CH>(a_row, 2 * ks + a_ch), qa[0], qa[1], qa[2], qa[3]);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t b0, b1, b2, b3;
        pa::ldsm_x4(kt + 16 * pa::swz<CH>(np * 16 + k_row, 2 * ks + k_ch), b0, b1, b2, b3);
        pa::mma16816<T>(s[2 * np], qa, b0, b1);
        pa::mma16816<T>(s[2 * np + 1], qa, b2, b3);
      }
    }
    /* Swap partial scores with the partner warp (same rows, other half). */
#pragma unroll
    for (int n = 0; n < NT; ++n)
      sx[(warp * NT + n) * 32 + lane] = make_float4(s[n][0], s[n][1], s[n][2], s[n][3]);
    pair_barrier(1 + rg);
    const int partner = warp ^ 4;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const float4 p = sx[(partner * NT + n) * 32 + lane];
      /* same order of addition in both warps, so both get the same bits */
      if (hf == 0) {
        s[n][0] += p.x, s[n][1] += p.y, s[n][2] += p.z, s[n][3] += p.w;
      } else {
        s[n][0] = p.x + s[n][0], s[n][1] = p.y + s[n][1], s[n][2] = p.z + s[n][2],
        s[n][3] = p.w + s[n][3];
      }
    }

    const int j0 = w.kv_begin + t * BN;
    uint32_t pf[BN / 16][4];
#pragma unroll
    for (int x = 0; x < 2; ++x) {
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float &v = s[n][2 * x + e];
          v = j0 + n * 8 + 2 * tq + e <= lim[x] ? v * scale2 : -CUDART_INF_F;
        }
      float mx = -CUDART_INF_F;
#pragma unroll
      for (int n = 0; n < NT; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * x], s[n][2 * x + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(m[x], mx);
      const float mu = mn == -CUDART_INF_F ? 0.f : mn;
      const float c = ex2(m[x] - mu);
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        s[n][2 * x] = ex2(s[n][2 * x] - mu);
        s[n][2 * x + 1] = ex2(s[n][2 * x + 1] - mu);
        sum += s[n][2 * x] + s[n][2 * x + 1];
      }
      l[x] = l[x] * c + sum;
      m[x] = mn;
#pragma unroll
      for (int n = 0; n < DVH / 8; ++n) {
        o[n][2 * x] *= c;
        o[n][2 * x + 1] *= c;
      }
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      pf[kk][0] = pa::pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      pf[kk][1] = pa::pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      pf[kk][2] = pa::pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      pf[kk][3] = pa::pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
      for (int dn = 0; dn < DVH / 16; ++dn) {
        uint32_t b0, b1, b2, b3;
        pa::ldsm_x4_t(kt + 16 * pa::swz<CH>(kk * 16 + v_row, hf * (DVH / 8) + 2 * dn + v_ch), b0,
                      b1, b2, b3);
        pa::mma16816<T>(o[2 * dn], pf[kk], b0, b1);
        pa::mma16816<T>(o[2 * dn + 1], pf[kk], b2, b3);
      }
    __syncthreads(); /* tile t consumed before tile t + 2 overwrites it */
  }
  pa::cp_wait<0>();

#pragma unroll
  for (int x = 0; x < 2; ++x) {
    float ls = l[x];
    ls += __shfl_xor_sync(0xffffffffu, ls, 1);
    ls += __shfl_xor_sync(0xffffffffu, ls, 2);
    const int r = rg * 16 + r0 + 8 * x;
    if (r >= w.rows) continue;
    const int pr = w.row0 + r, i = pr / g, h = pr % g;
    const pa::row_dest dst = pa::dest_of(a, rq, w.b, w.split, i, h);
    const float mm = m[x] * kLn2;
    const float inv = ls > 0.f ? 1.f / ls : 0.f;
#pragma unroll
    for (int n = 0; n < DVH / 8; ++n) {
      const int d = hf * DVH + n * 8 + 2 * tq;
      const float v0 = o[n][2 * x] * inv, v1 = o[n][2 * x + 1] * inv;
      if (dst.split) {
        *reinterpret_cast<float2 *>(a.ws_o + dst.o_off + d) = make_float2(v0, v1);
      } else {
        T *op = reinterpret_cast<T *>(a.o.ptr) + dst.o_off + d;
        op[0] = static_cast<T>(v0);
        op[1] = static_cast<T>(v1);
      }
    }
    if (hf == 0 && tq == 0 && dst.lse_off >= 0) {
      const float lse = pa::final_lse(mm, ls);
      if (dst.split)
        a.ws_lse[dst.lse_off] = lse;
      else
        reinterpret_cast<float *>(a.lse.ptr)[dst.lse_off] = lse;
    }
  }
}

} // namespace

extern "C" int pa_cu_mla_supported(int dc, int dr, int dtype, int smem_optin) {
  return dc == DC && dr == DR && (dtype == PA_F16 || dtype == PA_BF16) && SMEM <= smem_optin;
}

extern "C" cudaError_t pa_cu_mla_mma_init(int smem_optin) {
  if (SMEM > smem_optin) return cudaSuccess; /* not on this device: supported() says 0 */
  cudaError_t e = cudaFuncSetAttribute(mla_decode_mma<__half>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(mla_decode_mma<__nv_bfloat16>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
  return e;
}

extern "C" cudaError_t pa_cu_mla_mma_decode(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  if (a->q.dtype == PA_F16)
    mla_decode_mma<__half><<<a->num_work, kWarps * 32, SMEM, s>>>(*a);
  else
    mla_decode_mma<__nv_bfloat16><<<a->num_work, kWarps * 32, SMEM, s>>>(*a);
  return cudaGetLastError();
}

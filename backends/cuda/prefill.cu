/* Prefill attention on tensor cores, FlashAttention-2 style (f16/bf16;
 * Dqk/Dv = 64/64, 128/128, 192/128, 256/256).
 *
 * One block per work item: BM packed rows (4 warps x MT m16 tiles) of one
 * (request, KV head), KV tiles of BN keys. Q stays in shared memory and is
 * re-read by ldmatrix per k-step (registers go to the O accumulator); with
 * MT = 2 each K/V fragment feeds two mma, which keeps ldmatrix traffic under
 * the tensor-core rate. K/V double-buffered: tile t+1 loads (cp.async)
 * during all of tile t's math; two blocks per SM overlap each other's
 * barriers. Softmax in registers, base 2.
 *   D 64/128: MT 2 (BM 128), BN 64: 48 / 96 KB shared
 *   D 192/128: MT 1 (BM 64), BN 64: 104 KB;  D 256: MT 1 (BM 64), BN 32: 96 KB
 * fp8 K/V (KV = PA_FP8_E4M3 / E5M2, D 128/128 only): the two stages hold
 * the fp8 tiles as loaded; after each wait the block converts the current
 * one into a 16-bit K and V tile of the usual swizzled layout (exact for
 * every code) and the MMA loop reads that: 96 KB as for 16-bit K/V. K's
 * scale joins the score scale, V's the output factor. */
#include <cuda_fp8.h>

#include <type_traits>

#include "mma.cuh"
#include "pdl.cuh"

namespace {

constexpr int kWarps = 4;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

/* KV: 0, or the fp8 dtype of K/V. */
template <int DQK, int DV, int KV = 0> struct cfg {
  static constexpr int MT = (DQK <= 128 && DV <= 128) ? 2 : 1;
  static constexpr int BM = kWarps * 16 * MT;
  static constexpr int BN = DQK <= 192 ? 64 : 32;
  static constexpr int CHK = DQK / 8, CHV = DV / 8;     /* 16-byte chunks of 16-bit rows */
  static constexpr int EB = KV ? 1 : 2;                   /* bytes per K/V element in a stage */
  static constexpr int CHK8 = DQK * EB / 16, CHV8 = DV * EB / 16; /* chunks of stage rows */
  static constexpr int Q_BYTES = BM * DQK * 2, K_BYTES = BN * DQK * 2, V_BYTES = BN * DV * 2;
  static constexpr int SK_BYTES = BN * DQK * EB, SV_BYTES = BN * DV * EB;
  static constexpr int STAGE = SK_BYTES + SV_BYTES;
  static constexpr int CONV = KV ? K_BYTES + V_BYTES : 0; /* fp8: the converted tile */
  static constexpr int SMEM = Q_BYTES + CONV + 2 * STAGE; /* K/V double-buffered */
};

/* 8 fp8 codes -> 8 values of T (one 16-byte chunk), exact; 8 at a time
 * keeps the conversion's registers few next to the O accumulators. */
template <typename T, int KV> __device__ __forceinline__ uint4 fp8x8_to(uint2 x) {
  const __nv_fp8_interpretation_t kind = KV == PA_FP8_E4M3 ? __NV_E4M3 : __NV_E5M2;
  const uint32_t in[2] = {x.x, x.y};
  uint32_t out[4];
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(
        (__nv_fp8x2_storage_t)((in[i / 2] >> (16 * (i % 2))) & 0xffffu), kind);
    if constexpr (pa::dtype_of<T>::value == PA_F16) {
      out[i] = (uint32_t)h.x | ((uint32_t)h.y << 16);
    } else {
      const __nv_bfloat162 b = __float22bfloat162_rn(__half22float2(__half2(h)));
      out[i] = *reinterpret_cast<const uint32_t *>(&b);
    }
  }
  return make_uint4(out[0], out[1], out[2], out[3]);
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

template <typename T, int DQK, int DV, int KV = 0>
__global__ void __launch_bounds__(kWarps * 32, 2) prefill_attention(const pa_cu_attn a) {
  using C = cfg<DQK, DV, KV>;
  using KT = typename std::conditional<KV != 0, uint8_t, T>::type; /* K/V element in memory */
  constexpr int MT = C::MT, BM = C::BM, BN = C::BN, CHK = C::CHK, CHV = C::CHV;
  constexpr int NT = BN / 8; /* n-tiles of S */
  extern __shared__ __align__(16) unsigned char smem[];
  /* [Q][fp8: converted K, V][stage 0][stage 1] */
  const uint32_t q_addr = pa::smem_addr(smem), conv_addr = q_addr + C::Q_BYTES,
                 kv_addr = conv_addr + C::CONV;

  pa::pdl_trigger(); /* a PDL combine may start waiting now */
  const pa_work w = pa_cu_item(a);
  const pa_req rq = a.reqs[w.b];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = a.group, off = rq.len_k - rq.len_q;

  /* Q: rows past w.rows are zero (computed, never stored). */
#pragma unroll
  for (int u = 0; u < BM * CHK / (kWarps * 32); ++u) {
    const int c = tid + u * kWarps * 32, r = c / CHK, ch = c % CHK;
    const bool ok = r < w.rows;
    int64_t qo = 0;
    if (ok) {
      const int pr = w.row0 + r;
      qo = pa::row_off(a.q, w.b, rq.q_start, pr / g, w.hk * g + pr % g) + ch * 8;
    }
    pa::cp_async16(q_addr + 16 * pa::swz<CHK>(r, ch), reinterpret_cast<const T *>(a.q.ptr) + qo,
                   ok);
  }

  const bool paged = a.page_size > 0;
  const int nkeys = w.kv_end - w.kv_begin;
  const int ntiles = (nkeys + BN - 1) / BN;
  auto load_kv = [&](const pa_cu_view &v, uint32_t base, int t, auto chn) {
    constexpr int CH = decltype(chn)::value; /* 16-byte chunks per stage row */
    constexpr int EPC = 16 / (int)sizeof(KT);
    static_assert(BN * CH % (kWarps * 32) == 0, "whole passes");
    const int j0 = w.kv_begin + t * BN;
    /* contiguous K/V: rows are linear in j, so one row_off per tile */
    const int64_t base0 = paged ? 0 : pa::row_off(v, w.b, rq.k_start, j0, w.hk);
#pragma unroll
    for (int u = 0; u < BN * CH / (kWarps * 32); ++u) {
      const int c = tid + u * kWarps * 32, r = c / CH, ch = c % CH, j = j0 + r;
      const bool ok = j < w.kv_end;
      int64_t o = 0;
      if (ok)
        o = (paged ? pa::key_off(a, v, w.b, rq.k_start, j, w.hk) : base0 + (int64_t)r * v.st) +
            ch * EPC;
      /* 16-bit rows swizzled for ldmatrix; fp8 rows linear (converted later) */
      pa::cp_async16(base + 16 * (KV ? r * CH + ch : pa::swz<CH>(r, ch)),
                     reinterpret_cast<const KT *>(v.ptr) + o, ok);
    }
  };
  using chk_t = std::integral_constant<int, C::CHK8>;
  using chv_t = std::integral_constant<int, C::CHV8>;
  if (ntiles > 0) {
    load_kv(a.k, kv_addr, 0, chk_t{});
    load_kv(a.v, kv_addr + C::SK_BYTES, 0, chv_t{});
  }
  pa::cp_commit();

  const int a_row = lane & 15, a_ch = lane >> 4;
  const int k_row = (lane & 7) + ((lane >> 4) << 3), k_ch = (lane >> 3) & 1;
  const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_ch = lane >> 4;
  const int r0 = lane >> 2, tq = lane & 3;
  const int wrow = warp * 16 * MT; /* first row of this warp in the tile */

  const bool simple = a.softcap <= 0.f && !a.has_alibi && !a.has_mask && a.window_left < 0 &&
                      a.window_right < 0;
  const int diag_min = w.row0 / g + off;
  const float kscale = KV ? a.k_scale[w.hk * a.k_scale_s] : 1.f;
  const float vscale = KV ? a.v_scale[w.hk * a.v_scale_s] : 1.f;
  const float scale2 = a.scale * kscale * kLog2e;

  float o[MT][DV / 8][4];
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int n = 0; n < DV / 8; ++n) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f;
    m[mt][0] = m[mt][1] = -CUDART_INF_F;
    l[mt][0] = l[mt][1] = 0.f;
  }

  for (int t = 0; t < ntiles; ++t) {
    /* Tile t+1 loads into the other stage during all of tile t's math. */
    if (t + 1 < ntiles) {
      const uint32_t nxt = kv_addr + ((t + 1) & 1) * C::STAGE;
      load_kv(a.k, nxt, t + 1, chk_t{});
      load_kv(a.v, nxt + C::SK_BYTES, t + 1, chv_t{});
    }
    pa::cp_commit();
    pa::cp_wait<1>();
    __syncthreads(); /* tile t (and Q) landed for every warp */
    uint32_t k_addr = kv_addr + (t & 1) * C::STAGE, v_addr = k_addr + C::SK_BYTES;
    if constexpr (KV != 0) { /* fp8 stage -> the 16-bit tile, then as usual */
      const unsigned char *sk = smem + (k_addr - q_addr), *sv = sk + C::SK_BYTES;
      unsigned char *ck = smem + C::Q_BYTES, *cv = ck + C::K_BYTES;
      /* one 8-code half chunk at a time: the O accumulators hold most registers */
#pragma unroll 1
      for (int c = tid; c < BN * CHK; c += kWarps * 32) {
        const int r = c / CHK, ch = c % CHK;
        *reinterpret_cast<uint4 *>(ck + 16 * pa::swz<CHK>(r, ch)) =
            fp8x8_to<T, KV>(reinterpret_cast<const uint2 *>(sk)[c]);
      }
#pragma unroll 1
      for (int c = tid; c < BN * CHV; c += kWarps * 32) {
        const int r = c / CHV, ch = c % CHV;
        *reinterpret_cast<uint4 *>(cv + 16 * pa::swz<CHV>(r, ch)) =
            fp8x8_to<T, KV>(reinterpret_cast<const uint2 *>(sv)[c]);
      }
      __syncthreads(); /* the converted tile complete (the loop's last barrier guards its reuse) */
      k_addr = conv_addr;
      v_addr = conv_addr + C::K_BYTES;
    }

    float s[MT][NT][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int n = 0; n < NT; ++n) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
    for (int kk = 0; kk < DQK / 16; ++kk) {
      uint32_t qa[MT][4];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
        pa::ldsm_x4(q_addr + 16 * pa::swz<CHK>(wrow + mt * 16 + a_row, 2 * kk + a_ch), qa[mt][0],
                    qa[mt][1], qa[mt][2], qa[mt][3]);
#pragma unroll
      for (int np = 0; np < NT / 2; ++np) {
        uint32_t b0, b1, b2, b3;
        pa::ldsm_x4(k_addr + 16 * pa::swz<CHK>(np * 16 + k_row, 2 * kk + k_ch), b0, b1, b2, b3);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          pa::mma16816<T>(s[mt][2 * np], qa[mt], b0, b1);
          pa::mma16816<T>(s[mt][2 * np + 1], qa[mt], b2, b3);
        }
      }
    }

    const int j0 = w.kv_begin + t * BN;
    const bool fast = simple && j0 + BN <= w.kv_end && (!a.causal || j0 + BN - 1 <= diag_min);
    uint32_t p[MT][BN / 16][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int x = 0; x < 2; ++x) {
        const int r = wrow + mt * 16 + r0 + 8 * x;
        if (fast) {
#pragma unroll
          for (int n = 0; n < NT; ++n) {
            s[mt][n][2 * x] *= scale2;
            s[mt][n][2 * x + 1] *= scale2;
          }
        } else if (simple) { /* only the causal edge and the range end */
          const int i = (w.row0 + r) / g;
          const int lim = r < w.rows ? (a.causal ? min(w.kv_end - 1, i + off) : w.kv_end - 1) : -1;
#pragma unroll
          for (int n = 0; n < NT; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              float &v = s[mt][n][2 * x + e];
              v = j0 + n * 8 + 2 * tq + e <= lim ? v * scale2 : -CUDART_INF_F;
            }
        } else {
          const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
#pragma unroll
          for (int n = 0; n < NT; ++n)
#pragma unroll
            for (int e = 0; e < 2; ++e) {
              const int j = j0 + n * 8 + 2 * tq + e;
              float &v = s[mt][n][2 * x + e];
              v = (r < w.rows && j < w.kv_end) ? pa::logit(a, v * kscale, w.b, i, j, off, h) * kLog2e
                                               : -CUDART_INF_F;
            }
        }
        float mx = -CUDART_INF_F;
#pragma unroll
        for (int n = 0; n < NT; ++n) mx = fmaxf(mx, fmaxf(s[mt][n][2 * x], s[mt][n][2 * x + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float mn = fmaxf(m[mt][x], mx);
        const float mu = mn == -CUDART_INF_F ? 0.f : mn; /* all masked: p = ex2(-inf) = 0 */
        const float c = ex2(m[mt][x] - mu);
        float sum = 0.f;
#pragma unroll
        for (int n = 0; n < NT; ++n) {
          s[mt][n][2 * x] = ex2(s[mt][n][2 * x] - mu);
          s[mt][n][2 * x + 1] = ex2(s[mt][n][2 * x + 1] - mu);
          sum += s[mt][n][2 * x] + s[mt][n][2 * x + 1];
        }
        l[mt][x] = l[mt][x] * c + sum;
        m[mt][x] = mn;
#pragma unroll
        for (int n = 0; n < DV / 8; ++n) {
          o[mt][n][2 * x] *= c;
          o[mt][n][2 * x + 1] *= c;
        }
      }
#pragma unroll
      for (int kk = 0; kk < BN / 16; ++kk) {
        p[mt][kk][0] = pa::pack2<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        p[mt][kk][1] = pa::pack2<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        p[mt][kk][2] = pa::pack2<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        p[mt][kk][3] = pa::pack2<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
    }


#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk)
#pragma unroll
      for (int dn = 0; dn < DV / 16; ++dn) {
        uint32_t b0, b1, b2, b3;
        pa::ldsm_x4_t(v_addr + 16 * pa::swz<CHV>(kk * 16 + v_row, 2 * dn + v_ch), b0, b1, b2, b3);
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          pa::mma16816<T>(o[mt][2 * dn], p[mt][kk], b0, b1);
          pa::mma16816<T>(o[mt][2 * dn + 1], p[mt][kk], b2, b3);
        }
      }
    __syncthreads(); /* stage t & 1 consumed before tile t + 2 loads into it */
  }
  pa::cp_wait<0>(); /* Q alone when there were no tiles */

#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      float ls = l[mt][x];
      ls += __shfl_xor_sync(0xffffffffu, ls, 1);
      ls += __shfl_xor_sync(0xffffffffu, ls, 2);
      const int r = wrow + mt * 16 + r0 + 8 * x;
      if (r >= w.rows) continue;
      const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
      const pa::row_dest dst = pa::dest_of(a, rq, w.b, w.split, i, h);
      float mm = m[mt][x] * kLn2; /* natural log from here on */
      const float cs = pa::fold_sink(a, dst, h, mm, ls);
      const float inv = ls > 0.f ? cs / ls * vscale : 0.f;
#pragma unroll
      for (int n = 0; n < DV / 8; ++n) {
        const int d = n * 8 + 2 * tq;
        const float v0 = o[mt][n][2 * x] * inv, v1 = o[mt][n][2 * x + 1] * inv;
        if (dst.split) {
          *reinterpret_cast<float2 *>(a.ws_o + dst.o_off + d) = make_float2(v0, v1);
        } else {
          T *op = reinterpret_cast<T *>(a.o.ptr) + dst.o_off + d;
          op[0] = static_cast<T>(v0);
          op[1] = static_cast<T>(v1);
        }
      }
      if (tq == 0 && dst.lse_off >= 0) {
        const float lse = pa::final_lse(mm, ls);
        if (dst.split) a.ws_lse[dst.lse_off] = lse;
        else reinterpret_cast<float *>(a.lse.ptr)[dst.lse_off] = lse;
      }
    }
}

template <typename T, int DQK, int DV> cudaError_t set_smem(int optin) {
  if (cfg<DQK, DV>::SMEM > optin) return cudaSuccess; /* not on this device: supported() says 0 */
  return cudaFuncSetAttribute(prefill_attention<T, DQK, DV>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, cfg<DQK, DV>::SMEM);
}

template <typename T, int DQK, int DV> cudaError_t go(const pa_cu_attn *a, cudaStream_t s) {
  prefill_attention<T, DQK, DV><<<a->num_work, kWarps * 32, cfg<DQK, DV>::SMEM, s>>>(*a);
  return cudaGetLastError();
}

template <typename T> cudaError_t launch(const pa_cu_attn *a, cudaStream_t s) {
  if (a->dqk == 64 && a->dv == 64) return go<T, 64, 64>(a, s);
  if (a->dqk == 128 && a->dv == 128) return go<T, 128, 128>(a, s);
  if (a->dqk == 192 && a->dv == 128) return go<T, 192, 128>(a, s);
  if (a->dqk == 256 && a->dv == 256) return go<T, 256, 256>(a, s);
  return cudaErrorInvalidValue;
}

/* fp8 K/V: D 128/128 (the other shapes take the generic kernel). */
template <typename T, int KV> cudaError_t set_smem8(int optin) {
  if (cfg<128, 128, KV>::SMEM > optin) return cudaSuccess;
  return cudaFuncSetAttribute(prefill_attention<T, 128, 128, KV>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, cfg<128, 128, KV>::SMEM);
}

template <typename T> cudaError_t launch8(const pa_cu_attn *a, cudaStream_t s) {
  if (a->dqk != 128 || a->dv != 128) return cudaErrorInvalidValue;
  if (a->k.dtype == PA_FP8_E4M3)
    prefill_attention<T, 128, 128, PA_FP8_E4M3>
        <<<a->num_work, kWarps * 32, cfg<128, 128, PA_FP8_E4M3>::SMEM, s>>>(*a);
  else
    prefill_attention<T, 128, 128, PA_FP8_E5M2>
        <<<a->num_work, kWarps * 32, cfg<128, 128, PA_FP8_E5M2>::SMEM, s>>>(*a);
  return cudaGetLastError();
}

template <typename T> cudaError_t init_all(int optin) {
  cudaError_t e = set_smem<T, 64, 64>(optin);
  if (e == cudaSuccess) e = set_smem<T, 128, 128>(optin);
  if (e == cudaSuccess) e = set_smem<T, 192, 128>(optin);
  if (e == cudaSuccess) e = set_smem<T, 256, 256>(optin);
  if (e == cudaSuccess) e = set_smem8<T, PA_FP8_E4M3>(optin);
  if (e == cudaSuccess) e = set_smem8<T, PA_FP8_E5M2>(optin);
  return e;
}

/* BM when cfg fits the device's shared memory, else 0. */
template <int DQK, int DV> int bm_if_fits(int optin) {
  return cfg<DQK, DV>::SMEM <= optin ? cfg<DQK, DV>::BM : 0;
}

} // namespace

/* Packed rows per work item the plan must use (BM), 0 if unsupported. */
extern "C" int pa_cu_prefill_supported(int dqk, int dv, int dtype, int smem_optin) {
  if (dtype != PA_F16 && dtype != PA_BF16) return 0;
  if (dqk == 64 && dv == 64) return bm_if_fits<64, 64>(smem_optin);
  if (dqk == 128 && dv == 128) return bm_if_fits<128, 128>(smem_optin);
  if (dqk == 192 && dv == 128) return bm_if_fits<192, 128>(smem_optin);
  if (dqk == 256 && dv == 256) return bm_if_fits<256, 256>(smem_optin);
  return 0;
}

/* fp8 K/V with f16/bf16 Q: BM for D 128/128, else 0. */
extern "C" int pa_cu_prefill8_supported(int dqk, int dv, int dtype, int kv_dtype, int smem_optin) {
  if (dtype != PA_F16 && dtype != PA_BF16) return 0;
  if (kv_dtype != PA_FP8_E4M3 && kv_dtype != PA_FP8_E5M2) return 0;
  return dqk == 128 && dv == 128 && cfg<128, 128, PA_FP8_E4M3>::SMEM <= smem_optin
             ? cfg<128, 128, PA_FP8_E4M3>::BM
             : 0;
}

/* The Hopper kernel (prefill_wgmma.cu) takes D 64/128 on sm_90. */
extern "C" cudaError_t pa_cu_prefill_wgmma_init(void);
extern "C" int pa_cu_prefill_wgmma_takes(int dqk, int dv);
extern "C" cudaError_t pa_cu_prefill_wgmma(const pa_cu_attn *a, cudaStream_t s);

extern "C" cudaError_t pa_cu_prefill_init(int smem_optin) {
  cudaError_t e = init_all<__half>(smem_optin);
  if (e == cudaSuccess) e = init_all<__nv_bfloat16>(smem_optin);
  return e == cudaSuccess ? pa_cu_prefill_wgmma_init() : e;
}

extern "C" cudaError_t pa_cu_prefill_attention(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  if (a->k.dtype == PA_FP8_E4M3 || a->k.dtype == PA_FP8_E5M2) /* mma.sync path, any sm_80+ */
    return a->q.dtype == PA_F16 ? launch8<__half>(a, s) : launch8<__nv_bfloat16>(a, s);
  if (pa_cu_prefill_wgmma_takes(a->dqk, a->dv)) return pa_cu_prefill_wgmma(a, s);
  return a->q.dtype == PA_F16 ? launch<__half>(a, s) : launch<__nv_bfloat16>(a, s);
}

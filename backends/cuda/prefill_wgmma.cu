/* Prefill attention on Hopper tensor cores (sm_90a wgmma), f16/bf16,
 * Dqk = Dv in {64, 128}; the mma.sync kernel (prefill.cu) takes the rest and
 * every other chip.
 *
 * One block of 2 warpgroups per work item: BM = 128 packed rows of one
 * (request, KV head), warpgroup w owns rows [64w, 64w + 64), warp v of it
 * rows 16v.. as in the mma.sync layout. KV tiles of BN = 64 keys,
 * double-buffered by cp.async (tile t+1 loads during tile t).
 *   S = Q K^T:  wgmma m64n64k16, Q and K read from shared memory by the
 *               tensor cores (the mma.sync kernel re-reads Q and K into
 *               registers through ldmatrix for every warp: 80 ldmatrix per
 *               256 mma, close to the shared-memory bandwidth);
 *   O += P V:   P stays in registers (the S accumulator layout is the A
 *               operand layout), V is a transposed (MN-major) B in shared.
 * Softmax in registers, base 2, the scale folded into one FFMA per score.
 * FULL = false: causal, sliding windows and range end (the common cases, a
 * compact hot loop); FULL = true: softcap, ALiBi, dense mask via pa::logit.
 * Shared memory (wgmma.cuh's 128-byte swizzle): Q BM x D + 2 stages of K and
 * V BN x D: 96 KB at D 128, 48 KB at D 64, + 1 KB to align: 2 blocks/SM.
 *
 * fp8 K/V (KV = PA_FP8_E4M3 / E5M2, D 128): the two stages hold the fp8
 * tiles as loaded (linear 128-byte rows, half the bytes); after each wait
 * the block converts the current tile in one pass into a 16-bit K and V
 * tile of the usual swizzled layout (exact: every fp8 value is an f16 and a
 * bf16), and the wgmma loop is the 16-bit one. The conversion keeps no
 * register across the MMAs, so the accumulators keep theirs (the same
 * shared memory as the 16-bit kernel). K's scale joins the score scale, V's
 * the output factor. */
#include <stdlib.h>
#include <string.h>

#include <climits>
#include <type_traits>

#include "fp8.cuh"
#include "mma.cuh"
#include "pdl.cuh"
#include "wgmma.cuh"

namespace {

constexpr int kThreads = 256;
constexpr int BM = 128, BN = 64;

/* KV: 0, or the fp8 dtype of K/V. Shared memory: [Q][fp8: 16-bit K, V][stage 0][stage 1] */
template <int D, int KV = 0> struct wcfg {
  static constexpr int Q_BYTES = BM * D * 2, K_BYTES = BN * D * 2;
  static constexpr int CONV = KV ? 2 * K_BYTES : 0;
  static constexpr int STAGE = (KV ? 1 : 2) * BN * D * 2; /* K then V, as loaded */
  static constexpr int SMEM = Q_BYTES + CONV + 2 * STAGE + 1024;
};

#if PA_WGMMA
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ void sts128(uint32_t addr, uint32_t a, uint32_t b, uint32_t c,
                                       uint32_t d) {
  asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(a), "r"(b), "r"(c),
               "r"(d)
               : "memory");
}

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
#endif

template <typename T, int D, bool FULL, int KV = 0>
__global__ void __launch_bounds__(kThreads, FULL ? 1 : 2) prefill_wgmma(const pa_cu_attn a) {
#if PA_WGMMA
  using C = wcfg<D, KV>;
  constexpr int CH = D / 8 /* 16-byte chunks per row */, NT = BN / 8, NO = D / 8;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t q_addr = (pa::smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t conv_addr = q_addr + C::Q_BYTES; /* fp8: the converted K, V */
  const uint32_t kv_addr = conv_addr + C::CONV;

  pa::pdl_trigger(); /* a PDL combine may start waiting now */
  const pa_work w = pa_cu_item(a);
  const pa_req rq = a.reqs[w.b];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int g = a.group, off = rq.len_k - rq.len_q;

  /* Q: rows past w.rows are zero (computed, never stored). */
#pragma unroll
  for (int u = 0; u < BM * CH / kThreads; ++u) {
    const int c = tid + u * kThreads, r = c / CH, ch = c % CH;
    const bool ok = r < w.rows;
    int64_t qo = 0;
    if (ok) {
      const int pr = w.row0 + r;
      qo = pa::row_off(a.q, w.b, rq.q_start, pr / g, w.hk * g + pr % g) + ch * 8;
    }
    pa::cp_async16(q_addr + pa::sw128<BM>(r, ch), reinterpret_cast<const T *>(a.q.ptr) + qo, ok);
  }

  const bool paged = a.page_size > 0;
  const int ntiles = (w.kv_end - w.kv_begin + BN - 1) / BN;
  /* A thread loads chunk lch of rows lr, lr + RSTEP, ...: one smem offset
   * and, for contiguous K/V, one pointer per tensor (few registers: the
   * accumulators need them). */
  /* fp8 stages: rows of CHL 16-byte chunks, linear */
  constexpr int CHL = KV ? D / 16 : CH, RSTEP = kThreads / CHL;
  static_assert(kThreads % CHL == 0 && RSTEP % 8 == 0 && BN % RSTEP == 0, "load pattern");
  constexpr int EPC = KV ? 16 : 8; /* elements per 16-byte chunk in memory */
  using KT = typename std::conditional<KV != 0, uint8_t, T>::type;
  const int lr = tid / CHL, lch = tid % CHL;
  const uint32_t so = KV ? (uint32_t)tid * 16 : pa::sw128<BN>(lr, lch);
  constexpr uint32_t SK_BYTES = C::STAGE / 2;
  /* RSTEP rows further: fp8 rows are linear (D bytes each); a 16-bit row
   * lives in 128-byte pieces, one per 64-column block of the swizzle */
  constexpr uint32_t ROWS_STEP = RSTEP * (KV ? CHL * 16 : 128);
  const int64_t kst = (int64_t)RSTEP * a.k.st, vst = (int64_t)RSTEP * a.v.st;
  const KT *kb = reinterpret_cast<const KT *>(a.k.ptr), *vb = reinterpret_cast<const KT *>(a.v.ptr);
  if (!paged) {
    kb += pa::row_off(a.k, w.b, rq.k_start, w.kv_begin + lr, w.hk) + lch * EPC;
    vb += pa::row_off(a.v, w.b, rq.k_start, w.kv_begin + lr, w.hk) + lch * EPC;
  }
  /* K and V tile t into the stage at base. */
  auto load_kv = [&](uint32_t base, int t) {
    const int j0 = w.kv_begin + t * BN + lr;
    const KT *kp = kb, *vp = vb;
    if (!paged) {
      kp += (int64_t)t * BN * a.k.st;
      vp += (int64_t)t * BN * a.v.st;
    }
#pragma unroll
    for (int u = 0; u < BN / RSTEP; ++u) {
      const int j = j0 + u * RSTEP;
      const bool ok = j < w.kv_end;
      const KT *ks = kb, *vs = vb;
      if (ok && paged) {
        ks = kb + pa::key_off(a, a.k, w.b, rq.k_start, j, w.hk) + lch * EPC;
        vs = vb + pa::key_off(a, a.v, w.b, rq.k_start, j, w.hk) + lch * EPC;
      } else if (ok) {
        ks = kp + u * kst;
        vs = vp + u * vst;
      }
      pa::cp_async16(base + so + u * ROWS_STEP, ks, ok);
      pa::cp_async16(base + SK_BYTES + so + u * ROWS_STEP, vs, ok);
    }
  };
  if (ntiles > 0) load_kv(kv_addr, 0);
  pa::cp_commit();

  const int r0 = lane >> 2, tq = lane & 3;
  const int wrow = warp * 16;            /* first row of this warp in the tile */
  const int diag_min = w.row0 / g + off; /* every row sees keys <= this under causal */
  /* Sliding windows on the compact path: a tile needs the per-key mask only
   * where it reaches below the last row's left bound or above the first
   * row's right bound (sink tokens stay visible: the mask checks them). */
  const int diag_max = (w.row0 + w.rows - 1) / g + off;
  const int edge_lo = a.window_left >= 0 ? diag_max - a.window_left : INT_MIN;
  const int edge_hi = a.window_right >= 0 ? diag_min + a.window_right : INT_MAX;
  const float kscale = KV ? a.k_scale[w.hk * a.k_scale_s] : 1.f;
  const float scale2 = a.scale * kscale * kLog2e;

  float o[NO][4], s[NT][4];
  float m[2] = {-CUDART_INF_F, -CUDART_INF_F}, l[2] = {0.f, 0.f};
#pragma unroll
  for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
#pragma unroll
  for (int n = 0; n < NT; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.f;

  for (int t = 0; t < ntiles; ++t) {
    if (t + 1 < ntiles) load_kv(kv_addr + ((t + 1) & 1) * C::STAGE, t + 1);
    pa::cp_commit();
    pa::cp_wait<1>();
    pa::fence_proxy_async(); /* cp.async wrote through the generic proxy; wgmma reads async */
    __syncthreads();
    uint32_t k_addr = kv_addr + (t & 1) * C::STAGE, v_addr = k_addr + C::K_BYTES;
    if constexpr (KV != 0) { /* the fp8 stage -> 16-bit K and V (swizzled), one pass */
      const unsigned char *sb = smem_raw + (k_addr - pa::smem_addr(smem_raw));
#pragma unroll 1
      for (int u = 0; u < 2 * BN * CHL / kThreads; ++u) {
        const int c = tid + u * kThreads, kv = c / (BN * CHL), cc = c % (BN * CHL);
        const int r = cc / CHL, ch = cc % CHL;
        const uint4 x = *reinterpret_cast<const uint4 *>(sb + kv * SK_BYTES + cc * 16);
        const uint32_t xw[4] = {x.x, x.y, x.z, x.w};
        uint32_t y[8];
#pragma unroll
        for (int i = 0; i < 8; ++i) y[i] = pa::fp8x2_to<T, KV>(xw[i / 2] >> (16 * (i % 2)));
        const uint32_t dst = conv_addr + kv * C::K_BYTES;
        sts128(dst + pa::sw128<BN>(r, 2 * ch), y[0], y[1], y[2], y[3]);
        sts128(dst + pa::sw128<BN>(r, 2 * ch + 1), y[4], y[5], y[6], y[7]);
      }
      pa::fence_proxy_async(); /* generic-proxy stores, read next by wgmma */
      __syncthreads();
      k_addr = conv_addr, v_addr = conv_addr + C::K_BYTES;
    }

    pa::wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const uint64_t da =
          pa::sw128_desc(q_addr + (kk >> 2) * (BM * 128) + wg * 64 * 128 + (kk & 3) * 32, 16, 1024);
      const uint64_t db = pa::sw128_desc(k_addr + (kk >> 2) * (BN * 128) + (kk & 3) * 32, 16, 1024);
      pa::wgmma_ss_n64<T>(&s[0][0], da, db, kk > 0);
    }
    pa::wg_commit();
    pa::wg_wait<0>();
    pa::reg_fence<NT * 4>(&s[0][0]);

    const int j0 = w.kv_begin + t * BN;
    const bool edge = j0 + BN > w.kv_end || (a.causal && j0 + BN - 1 > diag_min) || j0 < edge_lo ||
                      j0 + BN - 1 > edge_hi;
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      const int r = wrow + r0 + 8 * x;
      float sc = scale2; /* scores stay raw; ex2(s * sc - m) */
      if (FULL) {
        const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = j0 + n * 8 + 2 * tq + e;
            float &v = s[n][2 * x + e];
            v = (r < w.rows && j < w.kv_end) ? pa::logit(a, v * kscale, w.b, i, j, off, h) * kLog2e
                                             : -CUDART_INF_F;
          }
        sc = 1.f;
      } else if (edge) { /* diagonal, range end, window bounds; sc > 0 keeps -inf */
        const int diag = (w.row0 + r) / g + off;
        const int lim = r < w.rows ? (a.causal ? min(w.kv_end - 1, diag) : w.kv_end - 1) : -1;
        const int lo = a.window_left >= 0 ? diag - a.window_left : INT_MIN;
        const int hi = a.window_right >= 0 ? diag + a.window_right : INT_MAX;
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const int j = j0 + n * 8 + 2 * tq + e;
            if (j > lim || (j >= a.sink_tokens && (j < lo || j > hi)))
              s[n][2 * x + e] = -CUDART_INF_F;
          }
      }
      float mx = -CUDART_INF_F;
#pragma unroll
      for (int n = 0; n < NT; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * x], s[n][2 * x + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(m[x], mx * sc);
      const float mu = mn == -CUDART_INF_F ? 0.f : mn; /* all masked: p = ex2(-inf) = 0 */
      const float c = ex2(m[x] - mu);
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        s[n][2 * x] = ex2(fmaf(s[n][2 * x], sc, -mu));
        s[n][2 * x + 1] = ex2(fmaf(s[n][2 * x + 1], sc, -mu));
        sum += s[n][2 * x] + s[n][2 * x + 1];
      }
      l[x] = l[x] * c + sum;
      m[x] = mn;
#pragma unroll
      for (int n = 0; n < NO; ++n) {
        o[n][2 * x] *= c;
        o[n][2 * x + 1] *= c;
      }
    }
    uint32_t p[BN / 16][4];
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      p[kk][0] = pa::pack2<T>(s[2 * kk][0], s[2 * kk][1]);
      p[kk][1] = pa::pack2<T>(s[2 * kk][2], s[2 * kk][3]);
      p[kk][2] = pa::pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      p[kk][3] = pa::pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
    }

    pa::wg_fence();
#pragma unroll
    for (int kk = 0; kk < BN / 16; ++kk) {
      const uint64_t db = pa::sw128_desc(v_addr + kk * 16 * 128, BN * 128, 1024);
      if constexpr (D == 64)
        pa::wgmma_rs_n64<T>(&o[0][0], p[kk], db, 1);
      else
        pa::wgmma_rs_n128<T>(&o[0][0], p[kk], db, 1);
    }
    pa::wg_commit();
    pa::wg_wait<0>();
    pa::reg_fence<NO * 4>(&o[0][0]);
    __syncthreads(); /* stage t & 1 consumed before tile t + 2 loads into it */
  }
  pa::cp_wait<0>(); /* Q alone when there were no tiles */

#pragma unroll
  for (int x = 0; x < 2; ++x) {
    float ls = l[x];
    ls += __shfl_xor_sync(0xffffffffu, ls, 1);
    ls += __shfl_xor_sync(0xffffffffu, ls, 2);
    const int r = wrow + r0 + 8 * x;
    if (r >= w.rows) continue;
    const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
    const pa::row_dest dst = pa::dest_of(a, rq, w.b, w.split, i, h);
    float mm = m[x] * kLn2; /* natural log from here on */
    const float cs = pa::fold_sink(a, dst, h, mm, ls);
    const float vscale =
        KV ? a.v_scale[w.hk * a.v_scale_s] : 1.f; /* read late: one register less in the loop */
    const float inv = ls > 0.f ? cs / ls * vscale : 0.f;
#pragma unroll
    for (int n = 0; n < NO; ++n) {
      const int d = n * 8 + 2 * tq;
      const float v0 = o[n][2 * x] * inv, v1 = o[n][2 * x + 1] * inv;
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
      if (dst.split)
        a.ws_lse[dst.lse_off] = lse;
      else
        reinterpret_cast<float *>(a.lse.ptr)[dst.lse_off] = lse;
    }
  }
#endif /* PA_WGMMA */
}

template <typename T, int D, bool FULL, int KV = 0> cudaError_t set_smem() {
  return cudaFuncSetAttribute(prefill_wgmma<T, D, FULL, KV>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, wcfg<D, KV>::SMEM);
}

template <typename T, int D, int KV = 0> cudaError_t init_dim() {
  cudaError_t e = set_smem<T, D, false, KV>();
  return e == cudaSuccess ? set_smem<T, D, true, KV>() : e;
}

template <typename T, int D, int KV = 0> cudaError_t go(const pa_cu_attn *a, cudaStream_t s) {
  const bool full = a->softcap > 0.f || a->has_alibi || a->has_mask || !(a->scale > 0.f) ||
                    (!a->window_fast && (a->window_left >= 0 || a->window_right >= 0));
  if (full)
    prefill_wgmma<T, D, true, KV><<<a->num_work, kThreads, wcfg<D, KV>::SMEM, s>>>(*a);
  else
    prefill_wgmma<T, D, false, KV><<<a->num_work, kThreads, wcfg<D, KV>::SMEM, s>>>(*a);
  return cudaGetLastError();
}

template <typename T> cudaError_t launch(const pa_cu_attn *a, cudaStream_t s) {
  if (a->k.dtype == PA_FP8_E4M3 || a->k.dtype == PA_FP8_E5M2) {
    if (a->dqk != 128 || a->dv != 128) return cudaErrorInvalidValue;
    return a->k.dtype == PA_FP8_E4M3 ? go<T, 128, PA_FP8_E4M3>(a, s)
                                     : go<T, 128, PA_FP8_E5M2>(a, s);
  }
  if (a->dqk == 64 && a->dv == 64) return go<T, 64>(a, s);
  if (a->dqk == 128 && a->dv == 128) return go<T, 128>(a, s);
  return cudaErrorInvalidValue;
}

} // namespace

/* Raises the kernels' shared-memory limits; called once per context, on
 * sm_90 only, where the selector may take this kernel. */
extern "C" cudaError_t pa_cu_prefill_wgmma_init(void) {
  cudaError_t e = init_dim<__half, 64>();
  if (e == cudaSuccess) e = init_dim<__half, 128>();
  if (e == cudaSuccess) e = init_dim<__nv_bfloat16, 64>();
  if (e == cudaSuccess) e = init_dim<__nv_bfloat16, 128>();
  if (e == cudaSuccess) e = init_dim<__half, 128, PA_FP8_E4M3>();
  if (e == cudaSuccess) e = init_dim<__half, 128, PA_FP8_E5M2>();
  if (e == cudaSuccess) e = init_dim<__nv_bfloat16, 128, PA_FP8_E4M3>();
  if (e == cudaSuccess) e = init_dim<__nv_bfloat16, 128, PA_FP8_E5M2>();
  return e;
}

/* Same packed rows per item as the mma.sync kernel (BM 128), so the plan
 * does not depend on which of the two runs. */
extern "C" int pa_cu_prefill_wgmma_supported(int dqk, int dv, int dtype) {
  return ((dqk == 64 && dv == 64) || (dqk == 128 && dv == 128)) &&
         (dtype == PA_F16 || dtype == PA_BF16);
}

/* fp8 K/V with f16/bf16 Q: D 128/128 (the same BM). */
extern "C" int pa_cu_prefill_wgmma8_supported(int dqk, int dv, int dtype, int kv_dtype) {
  return dqk == 128 && dv == 128 && (dtype == PA_F16 || dtype == PA_BF16) &&
         (kv_dtype == PA_FP8_E4M3 || kv_dtype == PA_FP8_E5M2);
}

extern "C" cudaError_t pa_cu_prefill_wgmma(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  return a->q.dtype == PA_F16 ? launch<__half>(a, s) : launch<__nv_bfloat16>(a, s);
}

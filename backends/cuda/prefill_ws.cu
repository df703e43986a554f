/* Prefill attention on Hopper, warp-specialised (the FlashAttention-3
 * design, sm_90a), f16/bf16, (Dqk, Dv) in {64/64, 128/128, 256/256,
 * 192/128 (MLA prefill, V not padded)}, contiguous or ragged K/V; causal (bottom-right) or not,
 * sinks and LSE; every other case goes to prefill_wgmma.cu / prefill.cu through the selector
 * (cuda.c).
 *
 * Block = 3 warpgroups, persistent (one block per SM, walking the plan's
 * work list, heaviest first, in rounds of the grid's size, back and forth):
 *   warpgroup 0, producer: gives its registers back (setmaxnreg) and one
 *     thread issues the bulk tensor copies (TMA) of each item's K and V tiles
 *     (BN keys x D, 128-byte swizzle) into a ring of STAGES shared stages
 *     (scfg: BN 128, or 64 at Dv 256; 2 stages, 4 at D 64);
 *     K and V complete on their own mbarriers, so S starts before V lands.
 *     A tile that runs past the item's keys (padding, the next request of a
 *     ragged batch) has those V rows zeroed by the producer warp before it
 *     is handed over (0 * NaN would spoil O; K rows are masked to -inf).
 *   warpgroups 1 and 2, consumers (more registers): rows [64c, 64c + 64) of
 *     the item's BM = 128 packed rows each; Q by cp.async (GQA packing and
 *     ragged rows stay exact), then per KV tile t:
 *       S(t) = Q K(t)^T issued before O += P(t-1) V(t-1), both async; the
 *       softmax of S(t) runs while the PV wgmma is in flight (intra-warpgroup
 *       overlap); P stays in registers as the A operand.
 *     PP: ping-pong, the two consumers take turns issuing their GEMMs
 *     (named barriers 1 and 2), so one's softmax overlaps the other's GEMMs.
 *     A stage is released (empty mbarrier, 256 arrivals) after its PV;
 *     dev.cuda.ws_release 1/2 release its K after S instead and its V after
 *     PV, and the producer loads V(t-1) after K(t), the order of use, so
 *     K(t + 1) need not wait for PV(t - 1) (FlashAttention-3's split).
 * Tensor maps (host, cuTensorMapEncodeTiled through the runtime's driver
 * entry point) view K and V as 4-d (d, head, token, batch); a ragged batch
 * is one batch of all tokens. Rows past the tensor's end read as zeros. */
#include <cuda.h>
#include <cudaTypedefs.h>
#include <stdlib.h>
#include <string.h>

#include "mma.cuh"
#include "pdl.cuh"
#include "tma.cuh"
#include "wgmma.cuh"
#include "ws_wgmma.cuh"

namespace {

constexpr int kThreads = 384;
constexpr int BM = 128;
constexpr int PR = 16; /* paged K/V: rows per box (page sizes are multiples of it) */

/* Keys per tile and ring depth per head-dim pair: the S and O accumulators
 * (BN / 2 + DV / 2 floats per thread) and the stages must fit the registers
 * and 227 KB of shared memory. */
template <int DQK, int DV> struct scfg {
  static constexpr int BN = DV == 256 ? 64 : 128;
  static constexpr int STAGES = DQK == 64 ? 4 : 2;
  static constexpr int Q_BYTES = BM * DQK * 2, K_TILE = BN * DQK * 2, V_TILE = BN * DV * 2;
  static constexpr int STAGE = K_TILE + V_TILE; /* K then V */
  /* Dqk <= 128: two Q buffers, the next item's Q loads during this one */
  static constexpr int QBUFS = DQK <= 128 ? 2 : 1;
  static constexpr int BARS = 5 * STAGES * 8;
  static constexpr int SMEM = 1024 + QBUFS * Q_BYTES + STAGES * STAGE + BARS;
};

#if PA_WGMMA
/* setmaxnreg split: 128 x 56 + 256 x 224 <= 64 K registers (no spills at
 * any head-dim pair with nvcc 13.0; 208 spills at Dqk 192). */
constexpr int kProducerRegs = 56, kConsumerRegs = 224;
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

__device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}
#endif

template <typename T, int DQK, int DV, bool PP>
__global__ void __launch_bounds__(kThreads, 1)
    prefill_ws(const pa_cu_attn a, const __grid_constant__ CUtensorMap tk,
               const __grid_constant__ CUtensorMap tv, const int ragged, const int opt) {
#if PA_WGMMA
  using C = scfg<DQK, DV>;
  constexpr int BN = C::BN, STAGES = C::STAGES;
  const int rel = opt & 3; /* dev.cuda.ws_release; bit 2: dev.cuda.ws_lazy */
  constexpr int CH = DQK / 8, NT = BN / 8, NO = DV / 8, KCB = DQK / 64, VCB = DV / 64;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t q_addr = (pa::smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t kv0 = q_addr + C::QBUFS * C::Q_BYTES;
  const uint32_t bar0 = kv0 + STAGES * C::STAGE;
  auto full_k = [&](int s) { return bar0 + 8 * s; };
  auto full_v = [&](int s) { return bar0 + 8 * (STAGES + s); };
  /* rel 0: empty_k frees K and V together; 1, 2: empty_v frees V */
  auto empty_k = [&](int s) { return bar0 + 8 * (2 * STAGES + s); };
  auto vaux = [&](int s) { return bar0 + 8 * (3 * STAGES + s); };
  auto empty_v = [&](int s) { return bar0 + 8 * (4 * STAGES + s); };
  const int tid = threadIdx.x;
  if (tid == 0) {
    for (int s = 0; s < STAGES; ++s) {
      pa::tma::bar_init(full_k(s), 1);
      pa::tma::bar_init(full_v(s), 1);
      pa::tma::bar_init(empty_k(s), rel == 1 ? 2 : 256);
      pa::tma::bar_init(vaux(s), 1);
      pa::tma::bar_init(empty_v(s), rel == 1 ? 2 : 256);
    }
    pa::tma::bar_init_fence();
    pa::tma::prefetch_map(&tk);
    pa::tma::prefetch_map(&tv);
  }
  __syncthreads();
  pa::pdl_trigger();
  /* Round r of the persistent walk: the list is heaviest first, so rounds go
   * back and forth across the grid (every block gets a heavy and a light
   * item in turn); blocks past the end of the last round stop. */
  auto item_of = [&](int r) {
    const int x = (r & 1) ? (int)gridDim.x - 1 - (int)blockIdx.x : (int)blockIdx.x;
    return r * (int)gridDim.x + x;
  };

  if (tid < 128) {
    /* ---- producer ---- */
    pa::tma::regs_down<kProducerRegs>();
    if (tid < 32) {
      const int lane = tid;
      const bool paged = a.page_size > 0;
      const int32_t *bt = reinterpret_cast<const int32_t *>(a.bt.ptr);
      int stage = 0;
      uint32_t ph = 0, auxph = 0;
      /* K (or V) of the keys [j0, j0 + valid) of item w into a stage. */
      auto load_kv = [&](const pa_work &w, bool is_v, int st, int j0, int valid) {
        const int k0 = ragged ? a.reqs[w.b].k_start : 0, bb = ragged ? 0 : w.b;
        const int CB = is_v ? VCB : KCB, TILE = is_v ? C::V_TILE : C::K_TILE;
        const uint32_t dst = kv0 + st * C::STAGE + (is_v ? C::K_TILE : 0);
        const CUtensorMap *map = is_v ? &tv : &tk;
        const uint32_t bar = !is_v ? full_k(st) : valid < BN ? vaux(st) : full_v(st);
        if (!paged) {
          if (lane == 0) {
            pa::tma::arrive_tx(bar, TILE);
            for (int cb = 0; cb < CB; ++cb)
              pa::tma::load_4d(dst + cb * BN * 128, map, bar, cb * 64, w.hk, k0 + j0, bb);
          }
        } else {
          /* One box of PR rows per (page segment, column block), a lane each;
           * only the segments that hold keys of the item (the block table is
           * read no further than the request's pages). */
          const int nseg = (valid + PR - 1) / PR;
          if (lane == 0) pa::tma::arrive_tx(bar, nseg * CB * PR * 128);
          __syncwarp();
          for (int e = lane; e < nseg * CB; e += 32) {
            const int sg = e / CB, cb = e % CB, j = j0 + sg * PR;
            const int page = bt[(int64_t)w.b * a.bt.sb + (int64_t)(j / a.page_size) * a.bt.st];
            pa::tma::load_4d(dst + cb * BN * 128 + sg * PR * 128, map, bar, cb * 64, w.hk,
                             j % a.page_size, page);
          }
        }
        if (is_v && valid < BN) { /* zero V rows [valid, BN), then hand the stage over */
          pa::tma::wait(bar, (auxph >> st) & 1u);
          auxph ^= 1u << st;
          for (int e = lane; e < (BN - valid) * 8 * VCB; e += 32) {
            const int r = valid + e / (8 * VCB), rest = e % (8 * VCB);
            pa::tma::st_zero16(dst + (rest / 8) * BN * 128 + r * 128 + (rest % 8) * 16);
          }
          pa::fence_proxy_async();
          __syncwarp();
          if (lane == 0) pa::tma::arrive(full_v(st));
        }
      };
      for (int round = 0, it; (it = item_of(round)) < a.num_work; ++round) {
        const pa_work w = a.work[it];
        const int nt = (w.kv_end - w.kv_begin + BN - 1) / BN;
        /* V(t) is loaded in step t, or with rel in step t + 1, after K(t + 1):
         * S(t + 1) is issued before P(t)V(t). */
        int vst = 0;
        uint32_t vph = 0;
        for (int t = 0; t < nt + (rel != 0); ++t) {
          const int jk = w.kv_begin + t * BN;
          const int kst = stage;
          if (t < nt) {
            pa::tma::wait(empty_k(stage), ph ^ 1);
            load_kv(w, false, stage, jk, min(BN, w.kv_end - jk));
          }
          const int tv = rel ? t - 1 : t;
          if (tv >= 0) {
            const int jv = w.kv_begin + tv * BN, st = rel ? vst : kst;
            if (rel) pa::tma::wait(empty_v(st), vph ^ 1);
            load_kv(w, true, st, jv, min(BN, w.kv_end - jv));
          }
          vst = stage;
          vph = ph;
          if (t < nt && ++stage == STAGES) {
            stage = 0;
            ph ^= 1;
          }
        }
      }
    }
  } else {
    /* ---- consumers ---- */
    pa::tma::regs_up<kConsumerRegs>();
    const int c = (tid >> 7) - 1, wt = tid & 127, wv = wt >> 5, lane = tid & 31;
    const int r0 = lane >> 2, tq = lane & 3;
    const int wrow = 64 * c + 16 * wv; /* first row of this warp in the item */
    const float scale2 = a.scale * kLog2e;
    /* out rows keep 4-byte alignment: store each thread's column pair at once */
    const bool o_pairs =
        ((reinterpret_cast<uintptr_t>(a.o.ptr) | a.o.sb | a.o.st | a.o.sh) & 1) == 0 &&
        (reinterpret_cast<uintptr_t>(a.o.ptr) & 3) == 0;
    int stage = 0;
    uint32_t ph = 0;
    /* A stage's K is read by S, its V by PV: with rel, each is handed back
     * as soon as its GEMM completes (one thread per warpgroup with rel 1). */
    const int rel_on = rel == 2 || (rel == 1 && wt == 0);
    const uint32_t v_bars = rel ? empty_v(0) : empty_k(0);
    auto free_k = [&](int st) { pa::tma::arrive_if(empty_k(st), rel_on); };
    auto free_v = [&](int st) { pa::tma::arrive_if(v_bars + 8 * st, rel == 0 || rel_on); };
    if (PP && c == 1) pa::tma::named_arrive(1, 256); /* consumer 0 issues first */
    auto turn = [&]() {
      if (PP) pa::tma::named_sync(1 + c, 256);
    };
    auto pass = [&]() {
      if (PP) pa::tma::named_arrive(2 - c, 256);
    };

    const int g = a.group;
    /* This warpgroup's 64 rows of item it's Q into buffer qb (cp.async: GQA
     * packing and ragged rows exact; rows past the item zero). */
    auto load_q = [&](int it, uint32_t qb) {
      const pa_work w = a.work[it];
      const int q_start = a.reqs[w.b].q_start;
#pragma unroll
      for (int u = 0; u < 64 * CH / 128; ++u) {
        const int e = wt + u * 128, r = 64 * c + e / CH, ch = e % CH;
        const bool ok = r < w.rows;
        int64_t qo = 0;
        if (ok) {
          const int pr = w.row0 + r;
          qo = pa::row_off(a.q, w.b, q_start, pr / g, w.hk * g + pr % g) + ch * 8;
        }
        pa::cp_async16(qb + pa::sw128<BM>(r, ch), reinterpret_cast<const T *>(a.q.ptr) + qo, ok);
      }
      pa::cp_commit();
    };
    if (C::QBUFS == 2 && item_of(0) < a.num_work) load_q(item_of(0), q_addr);

    for (int round = 0, it; (it = item_of(round)) < a.num_work; ++round) {
      const pa_work w = a.work[it];
      const pa_req rq = a.reqs[w.b];
      const int off = rq.len_k - rq.len_q;
      const uint32_t qa = q_addr + (C::QBUFS == 2 ? (round & 1) * C::Q_BYTES : 0);
      if (C::QBUFS == 1) {
        pa::tma::named_sync(3 + c, 128); /* this warpgroup's wgmma reads of Q are done */
        load_q(it, qa);
      }
      pa::cp_wait<0>();
      pa::fence_proxy_async();
      pa::tma::named_sync(3 + c, 128); /* Q landed; the other buffer's readers are done */
      if (C::QBUFS == 2 && item_of(round + 1) < a.num_work)
        load_q(item_of(round + 1), q_addr + ((round + 1) & 1) * C::Q_BYTES);

      const int nt = (w.kv_end - w.kv_begin + BN - 1) / BN;
      const int diag_min = w.row0 / g + off;
      float o[NO][4], s[NT][4];
      uint32_t p[BN / 16][4];
      float m[2] = {-CUDART_INF_F, -CUDART_INF_F}, l[2] = {0.f, 0.f};
#pragma unroll
      for (int n = 0; n < NO; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;

      auto issue_s = [&](int st) {
        const uint32_t k_addr = kv0 + st * C::STAGE;
#pragma unroll
        for (int kk = 0; kk < DQK / 16; ++kk) {
          const uint64_t da =
              pa::sw128_desc(qa + (kk >> 2) * (BM * 128) + c * 64 * 128 + (kk & 3) * 32, 16, 1024);
          const uint64_t db =
              pa::sw128_desc(k_addr + (kk >> 2) * (BN * 128) + (kk & 3) * 32, 16, 1024);
          if constexpr (BN == 64)
            pa::wgmma_ss_n64<T>(&s[0][0], da, db, kk > 0);
          else
            pa::wgmma_ss_n128<T>(&s[0][0], da, db, kk > 0);
        }
        pa::wg_commit();
      };
      auto issue_pv = [&](int st) {
        const uint32_t v_addr = kv0 + st * C::STAGE + C::K_TILE;
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
          const uint64_t db = pa::sw128_desc(v_addr + kk * 16 * 128, BN * 128, 1024);
          if constexpr (DV == 64)
            pa::wgmma_rs_n64<T>(&o[0][0], p[kk], db, 1);
          else if constexpr (DV == 128)
            pa::wgmma_rs_n128<T>(&o[0][0], p[kk], db, 1);
          else
            pa::wgmma_rs_n256<T>(&o[0][0], p[kk], db, 1);
        }
        pa::wg_commit();
      };
      /* Masks S(t), updates m, turns s into unnormalised P (floats); cf: the
       * factor O and l take, sum: this tile's row sums. */
      auto softmax = [&](int t, float *cf, float *sum) {
        const int j0 = w.kv_begin + t * BN;
        const bool edge = j0 + BN > w.kv_end || (a.causal && j0 + BN - 1 > diag_min);
#pragma unroll
        for (int x = 0; x < 2; ++x) {
          const int r = wrow + r0 + 8 * x;
          if (edge) {
            const int i = (w.row0 + r) / g;
            const int lim =
                r < w.rows ? (a.causal ? min(w.kv_end - 1, i + off) : w.kv_end - 1) : -1;
#pragma unroll
            for (int n = 0; n < NT; ++n)
#pragma unroll
              for (int e = 0; e < 2; ++e)
                if (j0 + n * 8 + 2 * tq + e > lim) s[n][2 * x + e] = -CUDART_INF_F;
          }
          float mx = -CUDART_INF_F;
#pragma unroll
          for (int n = 0; n < NT; ++n) mx = fmaxf(mx, fmaxf(s[n][2 * x], s[n][2 * x + 1]));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
          mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
          const float mn = fmaxf(m[x], mx * scale2);
          const float mu = mn == -CUDART_INF_F ? 0.f : mn; /* all masked: p = ex2(-inf) = 0 */
          cf[x] = ex2(m[x] - mu);
          float sm = 0.f;
#pragma unroll
          for (int n = 0; n < NT; ++n) {
            s[n][2 * x] = ex2(fmaf(s[n][2 * x], scale2, -mu));
            s[n][2 * x + 1] = ex2(fmaf(s[n][2 * x + 1], scale2, -mu));
            sm += s[n][2 * x] + s[n][2 * x + 1];
          }
          sum[x] = sm;
          m[x] = mn;
        }
      };
      auto rescale_pack = [&](const float *cf, const float *sum) {
        /* ws_lazy: where no row max of the warp grew, every cf is exactly
         * ex2(0) = 1 and O is left as it is (the same bits). Dqk <= 128
         * only: the larger dims have no register to spare for it. */
        const bool scale_o = DQK > 128 || !(opt & 4) ||
                             __any_sync(0xffffffffu, cf[0] != 1.f || cf[1] != 1.f);
#pragma unroll
        for (int x = 0; x < 2; ++x) {
          l[x] = l[x] * cf[x] + sum[x];
          if (scale_o) {
#pragma unroll
            for (int n = 0; n < NO; ++n) {
              o[n][2 * x] *= cf[x];
              o[n][2 * x + 1] *= cf[x];
            }
          }
        }
#pragma unroll
        for (int kk = 0; kk < BN / 16; ++kk) {
          p[kk][0] = pa::pack2<T>(s[2 * kk][0], s[2 * kk][1]);
          p[kk][1] = pa::pack2<T>(s[2 * kk][2], s[2 * kk][3]);
          p[kk][2] = pa::pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
          p[kk][3] = pa::pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        }
      };

      if (nt > 0) {
        float cf[2], sum[2];
        pa::tma::wait(full_k(stage), ph);
        turn();
        pa::wg_fence();
        issue_s(stage);
        pass();
        pa::wg_wait<0>();
        pa::reg_fence<NT * 4>(&s[0][0]);
        free_k(stage);
        softmax(0, cf, sum);
        rescale_pack(cf, sum);
        int pst = stage;
        uint32_t pph = ph;
        if (++stage == STAGES) {
          stage = 0;
          ph ^= 1;
        }
        for (int t = 1; t < nt; ++t) {
          pa::tma::wait(full_k(stage), ph);
          pa::tma::wait(full_v(pst), pph);
          turn();
          pa::wg_fence();
          issue_s(stage);
          issue_pv(pst);
          pass();
          pa::wg_wait<1>();
          pa::reg_fence<NT * 4>(&s[0][0]);
          free_k(stage);
          softmax(t, cf, sum);
          pa::wg_wait<0>();
          pa::reg_fence<NO * 4>(&o[0][0]);
          free_v(pst);
          rescale_pack(cf, sum);
          pst = stage;
          pph = ph;
          if (++stage == STAGES) {
            stage = 0;
            ph ^= 1;
          }
        }
        pa::tma::wait(full_v(pst), pph);
        turn();
        pa::wg_fence();
        issue_pv(pst);
        pass();
        pa::wg_wait<0>();
        pa::reg_fence<NO * 4>(&o[0][0]);
        free_v(pst);
      }

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
        const float inv = ls > 0.f ? cs / ls : 0.f;
#pragma unroll
        for (int n = 0; n < NO; ++n) {
          const int d = n * 8 + 2 * tq;
          const float v0 = o[n][2 * x] * inv, v1 = o[n][2 * x + 1] * inv;
          if (dst.split) {
            *reinterpret_cast<float2 *>(a.ws_o + dst.o_off + d) = make_float2(v0, v1);
          } else {
            T *op = reinterpret_cast<T *>(a.o.ptr) + dst.o_off + d;
            if (o_pairs) {
              *reinterpret_cast<uint32_t *>(op) = pa::pack2<T>(v0, v1);
            } else {
              op[0] = static_cast<T>(v0);
              op[1] = static_cast<T>(v1);
            }
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
    }
    if (PP && c == 0) pa::tma::named_sync(1, 256); /* consumer 1's last hand-over */
  }
#endif /* PA_WGMMA */
}

template <typename T, int DQK, int DV, bool PP> cudaError_t set_smem() {
  return cudaFuncSetAttribute(prefill_ws<T, DQK, DV, PP>,
                              cudaFuncAttributeMaxDynamicSharedMemorySize, scfg<DQK, DV>::SMEM);
}

template <typename T, int DQK, int DV> cudaError_t init_dims() {
  cudaError_t e = set_smem<T, DQK, DV, true>();
  return e == cudaSuccess ? set_smem<T, DQK, DV, false>() : e;
}

template <typename T> cudaError_t init_type() {
  cudaError_t e = init_dims<T, 64, 64>();
  if (e == cudaSuccess) e = init_dims<T, 128, 128>();
  if (e == cudaSuccess) e = init_dims<T, 256, 256>();
  if (e == cudaSuccess) e = init_dims<T, 192, 128>();
  return e;
}

PFN_cuTensorMapEncodeTiled_v12000 encode_fn() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  if (!fn) {
    void *p = nullptr;
    cudaDriverEntryPointQueryResult q;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault,
                                         &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess)
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(p);
  }
  return fn;
}

/* K or V as (d, head, token, batch), boxes of 64 dims x 1 head x bn keys. */
bool make_map(CUtensorMap *m, const pa_cu_view &v, int d, int heads, int64_t tokens, int64_t batch,
              int bn) {
  PFN_cuTensorMapEncodeTiled_v12000 enc = encode_fn();
  if (!enc || tokens <= 0 || batch <= 0) return false;
  const int64_t es = 2;
  cuuint64_t dims[4] = {(cuuint64_t)d, (cuuint64_t)heads, (cuuint64_t)tokens, (cuuint64_t)batch};
  const int64_t sb = v.padded ? v.sb : v.st * tokens;
  cuuint64_t strides[3] = {(cuuint64_t)(v.sh * es), (cuuint64_t)(v.st * es), (cuuint64_t)(sb * es)};
  if (heads == 1) strides[0] = (cuuint64_t)(d * es);
  for (int i = 0; i < 3; ++i)
    if (strides[i] % 16 != 0 || strides[i] == 0) return false;
  cuuint32_t box[4] = {64, 1, (cuuint32_t)bn, 1}, estr[4] = {1, 1, 1, 1};
  const CUtensorMapDataType dt =
      v.dtype == PA_F16 ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  return enc(m, dt, 4, v.ptr, dims, strides, box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
             CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
             CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <typename T, int DQK, int DV>
cudaError_t go(const pa_cu_attn *a, int pp, int opt, int nsm, cudaStream_t s) {
  using C = scfg<DQK, DV>;
  CUtensorMap tk, tv;
  memset(&tk, 0, sizeof tk);
  memset(&tv, 0, sizeof tv);
  /* No key rows at all: every item is empty and no copy is issued. A map the
   * driver refuses (16-byte aligned rows are checked before) leaves D 64/128
   * to the wgmma kernel (same 128-row items); other dims fail the run. */
  const int rows = a->page_size > 0 ? PR : C::BN;
  if (a->kv_tokens > 0 && (!make_map(&tk, a->k, DQK, a->hkv, a->kv_tokens, a->kv_batch, rows) ||
                           !make_map(&tv, a->v, DV, a->hkv, a->kv_tokens, a->kv_batch, rows)))
    return DQK == DV && DQK <= 128 ? pa_cu_prefill_wgmma(a, s) : cudaErrorNotSupported;
  const int ragged = !a->k.padded, grid = a->num_work < nsm ? a->num_work : nsm;
  if (pp)
    prefill_ws<T, DQK, DV, true><<<grid, kThreads, C::SMEM, s>>>(*a, tk, tv, ragged, opt);
  else
    prefill_ws<T, DQK, DV, false><<<grid, kThreads, C::SMEM, s>>>(*a, tk, tv, ragged, opt);
  return cudaGetLastError();
}

template <typename T>
cudaError_t launch(const pa_cu_attn *a, int pp, int opt, int nsm, cudaStream_t s) {
  if (a->dqk == 64 && a->dv == 64) return go<T, 64, 64>(a, pp, opt, nsm, s);
  if (a->dqk == 128 && a->dv == 128) return go<T, 128, 128>(a, pp, opt, nsm, s);
  if (a->dqk == 256 && a->dv == 256) return go<T, 256, 256>(a, pp, opt, nsm, s);
  if (a->dqk == 192 && a->dv == 128) return go<T, 192, 128>(a, pp, opt, nsm, s);
  return cudaErrorInvalidValue;
}

} // namespace

extern "C" cudaError_t pa_cu_prefill_ws_init(void) {
  cudaError_t e = init_type<__half>();
  return e == cudaSuccess ? init_type<__nv_bfloat16>() : e;
}

/* The driver's tensor-map encoder is reachable (else cuda.prefill=ws is auto). */
extern "C" int pa_cu_prefill_ws_available(void) { return encode_fn() != nullptr; }

extern "C" int pa_cu_prefill_ws_supported(int dqk, int dv, int dtype) {
  return ((dqk == dv && (dqk == 64 || dqk == 128 || dqk == 256)) || (dqk == 192 && dv == 128)) &&
         (dtype == PA_F16 || dtype == PA_BF16);
}

extern "C" cudaError_t pa_cu_prefill_ws(const pa_cu_attn *a, int pp, int opt, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  int dev = 0, nsm = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e == cudaSuccess) e = cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, dev);
  if (e != cudaSuccess) return e;
  return a->q.dtype == PA_F16 ? launch<__half>(a, pp, opt, nsm, s)
                              : launch<__nv_bfloat16>(a, pp, opt, nsm, s);
}

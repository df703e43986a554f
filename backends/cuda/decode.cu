/* Decode attention on tensor cores (f16/bf16, D = 64, 128, 256).
 *
 * One block per work item = all packed rows of (request, KV head, split):
 * the whole GQA group (up to 16 rows: g heads x a few speculative tokens) is
 * one m16 tile, so each K/V byte is read once. Decode is bound by memory, so
 * the 4 warps split the KV range instead of the rows: warp w takes the
 * 16-key tiles w, w+4, ... into its own STAGES-deep cp.async ring (16-byte
 * loads, STAGES-1 tiles in flight per warp, no block barrier in the loop),
 * keeps its own online-softmax state, and the 4 states merge in shared
 * memory at the end. Tiles: K/V [16 keys][D], swizzled for ldmatrix.
 * Shared memory: D=64: 66 KB (4 stages), 128: 100 KB (3), 256: 136 KB (2).
 *
 * Paged K/V whose pages and range start are multiples of 16 keys (the usual
 * case): each lane holds the page of one of the warp's next 32 tiles,
 * fetched a whole window ahead, so issuing a tile's loads never waits on a
 * block-table read; other page sizes fetch each key's entry one tile ahead.
 * The softmax runs in base 2 with the scale folded into one multiply, and
 * the QK chain of a tile is split over two accumulators. Together these took
 * H200 decode b1 KV 32768 from 0.046 to 0.042 ms and b64 from 0.266 to
 * 0.253 ms; the window alone was slower (0.048 / 0.280), see
 * bench/RESULTS.md for the variants tried.
 *
 * Split requests (decode-long) are merged in this kernel by the last split
 * of each (request, KV head) to finish (a self-resetting counter per group
 * that the plan owns), not by combine.cu: no kernel boundary and launch
 * between the splits and the merge. H200 b1 KV 32768: 73.7% -> 75.6% of
 * copy bandwidth; unsplit plans run the FUSED = false instantiation.
 *
 * fp8 K/V (KV = PA_FP8_E4M3 / PA_FP8_E5M2, D = 128): the ring holds the
 * fp8 tiles as loaded (16 keys x 128 B, twice the stages in the same bytes,
 * rows swizzled by swz8) and the MMA operands are converted in registers
 * straight from them (cvt to f16x2; bf16 through f32, exact): no staging
 * tile, so the loads overlap as in the 16-bit kernel. The reduction orders
 * are permuted so each lane reads whole 16-byte chunks: QK takes dims
 * 64c + 16tq + 4m + {0,1 | 2,3} as k-block 4c + m (Q's fragments follow),
 * key 8t + 2tq + e of the score tile is ring row 4tq + 2t + e, so the PV
 * B operand of a lane is rows 4tq..4tq+3 (byte-permuted), and output dim
 * 16n + j is column n of n-tile j. K's scale joins the score scale, V's the
 * output factor. */
#include <cuda_fp8.h>

#include <type_traits>

#include "fp8.cuh"
#include "mma.cuh"
#include "pdl.cuh"

namespace {

constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

constexpr int W = 4;    /* warps */
constexpr int BN = 16;  /* keys per warp tile */
constexpr int TPW = 32; /* tiles per block-table window: one per lane */

/* KV: 0 for K/V of the Q dtype, else the fp8 dtype of K/V. REG (fp8): the
 * operands converted in registers (dev.cuda.fp8_decode=1), else each tile
 * converted into a per-warp 16-bit staging tile first. */
template <int D, int KV = 0, bool REG = false> struct cfg {
  static constexpr int CH = D / 8;        /* 16-byte chunks per 16-bit row */
  static constexpr int KB = KV ? 1 : 2;   /* bytes per K/V element in the ring */
  static constexpr int CHL = D * KB / 16; /* 16-byte chunks per ring row */
  static constexpr int ST = (KV ? 2 : 1) * (D <= 64    ? 4
                                            : D <= 128 ? 3
                                                       : 2); /* stages per warp ring */
  static constexpr int RTILE = BN * D * KB;                  /* bytes of one ring tile */
  static constexpr int Q_BYTES = 16 * D * 2;
  static constexpr int STAGE_BYTES = W * ST * 2 * RTILE;
  /* merge rows: fp8 lanes store dims 32tq + n, so rows are padded and dim d
   * sits at d + d / 32 (the 32 lanes of a store hit 32 banks) */
  static constexpr int OMS = KV && REG ? D + 4 : D;
  static constexpr int TILE = BN * D * 2; /* bytes of one 16-bit K (or V) tile */
  static constexpr int CONV_BYTES = KV && !REG ? W * 2 * TILE : 0; /* staging: per-warp K, V */
  static constexpr int MERGE_BYTES = W * 16 * (OMS + 2) * 4;
  static constexpr int SMEM =
      Q_BYTES + CONV_BYTES + (STAGE_BYTES > MERGE_BYTES ? STAGE_BYTES : MERGE_BYTES);
};

/* fp8 ring rows: 16-byte chunk ch of row r sits at chunk swz8(r, ch), so
 * the K reads (rows 2t + {0,1} + 4i, chunks 4c + tq) and the V reads (rows
 * 4tq + i, chunk n) of 8 lanes hit 8 different chunk columns. */
__device__ __forceinline__ int swz8(int r, int ch) {
  return ch ^ ((r & 1) << 2) ^ (((r >> 2) & 3) << 1);
}

/* 16 fp8 codes (one ring chunk) -> 16 values of T in two 16-byte chunks. */
template <typename T, int KV>
__device__ __forceinline__ void fp8x16_to(uint4 x, uint4 &lo, uint4 &hi) {
  const uint32_t in[4] = {x.x, x.y, x.z, x.w};
  uint32_t out[8];
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = pa::fp8x2_to<T, KV>(in[i / 2] >> (16 * (i % 2)));
  lo = make_uint4(out[0], out[1], out[2], out[3]);
  hi = make_uint4(out[4], out[5], out[6], out[7]);
}

/* 2^(x - m) (logits in log2 units), 0 when x = -inf. */
__device__ __forceinline__ float ex(float x, float m) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x - m));
  return x == -CUDART_INF_F ? 0.f : y;
}

/* Merges the num_splits partial rows of each packed row of w's tile into
 * out/lse, as combine.cu does (sink added once, here; splits summed in index
 * order, so the result does not depend on which block came last). Partials
 * are read past L1 (__ldcg): other SMs wrote them during this kernel.
 * wt: [rows][num_splits] split weights (<= 16 x 1024 floats = 64 KB, within
 * every ring); rinv: [16] 1 / sum of the weights per row. */
template <typename T, int D>
__device__ __forceinline__ void merge_group(const pa_cu_attn &a, const pa_work &w, const pa_req &rq,
                                            float *rinv, float *wt, int merge_u) {
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = a.group;
  const int ns = rq.num_splits, R = w.rows;
  const int64_t step = (int64_t)rq.len_q * a.hq; /* partial rows between splits */
  for (int r = warp; r < R; r += W) {
    const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
    const int64_t p0 = (int64_t)rq.part_row + (int64_t)i * a.hq + h;
    float *wr = wt + r * ns;
    float M = -CUDART_INF_F;
    for (int s = lane; s < ns; s += 32) {
      const float x = __ldcg(a.ws_lse + p0 + s * step);
      wr[s] = x;
      M = fmaxf(M, x);
    }
    M = pa::warp_max(M);
    if (a.has_sinks) M = fmaxf(M, a.sinks[h]);
    float L = 0.f;
    for (int s = lane; s < ns; s += 32) {
      const float e = pa::exp_diff(wr[s], M);
      wr[s] = e;
      L += e;
    }
    L = pa::warp_sum(L) + (a.has_sinks ? pa::exp_diff(a.sinks[h], M) : 0.f);
    if (lane == 0) {
      rinv[r] = L > 0.f ? 1.f / L : 0.f;
      if (a.return_lse)
        reinterpret_cast<float *>(a.lse.ptr)[pa::row_off(a.lse, w.b, rq.q_start, i, h)] =
            pa::final_lse(M, L);
    }
  }
  __syncthreads();

  /* Each thread: 4 dims of one row, all splits; merge_u float4 loads are
   * issued before the first is used (the partials are L2 round trips). */
  constexpr int C4 = D / 4;
  const float4 *ws4 =
      reinterpret_cast<const float4 *>(a.ws_o); /* 16-byte aligned: dispatch checks */
  for (int idx = tid; idx < R * C4; idx += W * 32) {
    const int r = idx / C4, c = idx % C4;
    const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
    const int64_t p0 = (int64_t)rq.part_row + (int64_t)i * a.hq + h;
    const float4 *src = ws4 + p0 * C4 + c;
    const int64_t st4 = step * C4;
    const float *wr = wt + r * ns;
    float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
    auto add = [&](float f, float4 x) {
      acc.x = fmaf(f, x.x, acc.x);
      acc.y = fmaf(f, x.y, acc.y);
      acc.z = fmaf(f, x.z, acc.z);
      acc.w = fmaf(f, x.w, acc.w);
    };
    int s = 0;
    if (merge_u >= 32) {
      for (; s + 32 <= ns; s += 32) {
        float4 x[32];
#pragma unroll
        for (int u = 0; u < 32; ++u) x[u] = __ldcg(src + (s + u) * st4);
#pragma unroll
        for (int u = 0; u < 32; ++u) add(wr[s + u], x[u]);
      }
    }
    for (; s + 8 <= ns; s += 8) {
      float4 x[8];
#pragma unroll
      for (int u = 0; u < 8; ++u) x[u] = __ldcg(src + (s + u) * st4);
#pragma unroll
      for (int u = 0; u < 8; ++u) add(wr[s + u], x[u]);
    }
    for (; s < ns; ++s) add(wr[s], __ldcg(src + s * st4));
    const float inv = rinv[r];
    T *o = reinterpret_cast<T *>(a.o.ptr) + pa::row_off(a.o, w.b, rq.q_start, i, h) + 4 * c;
    o[0] = static_cast<T>(acc.x * inv);
    o[1] = static_cast<T>(acc.y * inv);
    o[2] = static_cast<T>(acc.z * inv);
    o[3] = static_cast<T>(acc.w * inv);
  }
}

/* FUSED: split requests are merged here, by the last of a group's splits
 * to finish (merge_group); counters: one per (request, KV head), zero
 * between runs; merge_u: O partials a thread loads before using any (8, 32). */
template <typename T, int D, bool FUSED, int KV = 0, bool REG = false>
__global__ void __launch_bounds__(W * 32)
    decode_attention(const pa_cu_attn a, unsigned *counters, int merge_u) {
  using C = cfg<D, KV, REG>;
  constexpr bool R8 = KV != 0 && REG, S8 = KV != 0 && !REG;
  using KT = typename std::conditional<KV != 0, uint8_t, T>::type; /* K/V element in memory */
  constexpr int CH = C::CH, ST = C::ST, CHL = C::CHL, EPC = 16 / sizeof(KT);
  constexpr int QPT = (16 * CH + W * 32 - 1) / (W * 32); /* Q chunks per thread */
  constexpr bool kQInRegs = D <= 128;
  extern __shared__ __align__(16) unsigned char smem[];
  uint4 *qs = reinterpret_cast<uint4 *>(smem);
  unsigned char *conv = smem + C::Q_BYTES; /* staging: this warp's K, V at conv + warp * 2 * TILE */
  unsigned char *ring = conv + C::CONV_BYTES;

  /* Launched with PDL: the schedule (uploaded at plan time) is read while
   * the previous kernel finishes; everything else after pdl_wait. */
  pa::pdl_trigger();
  const pa_work w = pa_cu_item(a);
  const pa_req rq = a.reqs[w.b];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = a.group, off = rq.len_k - rq.len_q;
  pa::pdl_wait();

  /* ldmatrix lane roles: A (Q) rows lane%16, chunk +lane/16; B from K rows
   * (lane&7)+8*(lane>>4), chunk +(lane>>3)&1; B from V^T rows (lane&7)+8*((lane>>3)&1),
   * chunk +lane>>4. */
  const int a_row = lane & 15, a_ch = lane >> 4;
  const int k_row = (lane & 7) + ((lane >> 4) << 3), k_ch = (lane >> 3) & 1;
  const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_ch = lane >> 4;
  const uint32_t qs_addr = pa::smem_addr(qs);

  const int nkeys = w.kv_end - w.kv_begin;
  const int ntiles = (nkeys + BN - 1) / BN;
  const int my_tiles = ntiles > warp ? (ntiles - warp + W - 1) / W : 0;
  unsigned char *my_ring = ring + warp * ST * 2 * C::RTILE;
  const bool simple =
      a.softcap <= 0.f && !a.has_alibi && !a.has_mask && a.window_left < 0 && a.window_right < 0;
  const int diag_min = w.row0 / g + off; /* every row sees keys <= this under causal */

  /* Q first, into registers: its latency overlaps the block table's and the
   * first K/V loads'. */
  uint4 qv[QPT];
  auto load_q = [&] {
#pragma unroll
    for (int u = 0; u < QPT; ++u) {
      const int c = tid + u * W * 32, r = c / CH, ch = c % CH;
      qv[u] = make_uint4(0, 0, 0, 0);
      if (c < 16 * CH && r < w.rows) {
        const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
        qv[u] = *reinterpret_cast<const uint4 *>(reinterpret_cast<const T *>(a.q.ptr) +
                                                 pa::row_off(a.q, w.b, rq.q_start, i, h) + ch * 8);
      }
    }
  };
  load_q();

  const bool paged = a.page_size > 0;
  const int32_t *bt = reinterpret_cast<const int32_t *>(a.bt.ptr) + (int64_t)w.b * a.bt.sb;
  const bool win = paged && a.page_size % 16 == 0 && w.kv_begin % 16 == 0;
  /* Window: lane l holds the page of tile wi * TPW + l. */
  auto fetch_window = [&](int wi) {
    const int t = wi * TPW + lane;
    const int j = w.kv_begin + (warp + W * t) * BN;
    return t < my_tiles && j < w.kv_end ? bt[(int64_t)(j / a.page_size) * a.bt.st] : 0;
  };
  int32_t pg_cur = 0, pg_next = 0, win_idx = 0;
  if (win) {
    pg_cur = fetch_window(0);
    pg_next = fetch_window(1);
  }
  /* Otherwise: the entry of each key one tile ahead. */
  int32_t next_page = 0;
  auto fetch_page = [&](int it) {
    const int j = w.kv_begin + (warp + W * it) * BN + lane;
    if (paged && lane < BN && j < w.kv_end) next_page = bt[(int64_t)(j / a.page_size) * a.bt.st];
  };
  if (!win) fetch_page(0);

  auto load_tile = [&](int it) {
    const int j0 = w.kv_begin + (warp + W * it) * BN;
    unsigned char *kt = my_ring + (it % ST) * 2 * C::RTILE, *vt = kt + C::RTILE;
    /* 16-bit K/V land swizzled for ldmatrix, fp8 ones for the lanes' chunk reads */
    auto slot = [&](int r, int ch) {
      return 16 * (R8 ? r * CHL + swz8(r, ch) : S8 ? r * CHL + ch : pa::swz<CH>(r, ch));
    };
    if (win) {
      if (it / TPW != win_idx) { /* it grows by one: the next window is here */
        ++win_idx;
        pg_cur = pg_next;
        pg_next = fetch_window(win_idx + 1);
      }
      const int e = it % TPW, in_page0 = j0 % a.page_size; /* the tile lies in one page */
      const int64_t hko = (int64_t)w.hk * a.k.sh, hvo = (int64_t)w.hk * a.v.sh;
#pragma unroll
      for (int c = lane; c < BN * CHL; c += 32) {
        const int r = c / CHL, ch = c % CHL;
        const int64_t page = __shfl_sync(0xffffffffu, pg_cur, e);
        int in_page = in_page0 + r;
        if (in_page >= a.page_size) in_page -= a.page_size; /* guard only: both multiples of 16 */
        const bool ok = j0 + r < w.kv_end;
        const KT *kp = reinterpret_cast<const KT *>(a.k.ptr) +
                       (ok ? page * a.k.sb + in_page * a.k.st + hko + ch * EPC : 0);
        const KT *vp = reinterpret_cast<const KT *>(a.v.ptr) +
                       (ok ? page * a.v.sb + in_page * a.v.st + hvo + ch * EPC : 0);
        pa::cp_async16(pa::smem_addr(kt + slot(r, ch)), kp, ok);
        pa::cp_async16(pa::smem_addr(vt + slot(r, ch)), vp, ok);
      }
      return;
    }
    int64_t ko = 0, vo = 0;
    bool ok = false;
    if (lane < BN) {
      const int j = j0 + lane;
      ok = j < w.kv_end;
      if (ok && paged) {
        const int64_t in_page = j % a.page_size;
        ko = next_page * a.k.sb + in_page * a.k.st + (int64_t)w.hk * a.k.sh;
        vo = next_page * a.v.sb + in_page * a.v.st + (int64_t)w.hk * a.v.sh;
      } else if (ok) {
        ko = pa::row_off(a.k, w.b, rq.k_start, j, w.hk);
        vo = pa::row_off(a.v, w.b, rq.k_start, j, w.hk);
      }
    }
    fetch_page(it + 1);
#pragma unroll
    for (int c = lane; c < BN * CHL; c += 32) {
      const int r = c / CHL, ch = c % CHL;
      const int64_t kr = __shfl_sync(0xffffffffu, ko, r), vr = __shfl_sync(0xffffffffu, vo, r);
      const bool okr = __shfl_sync(0xffffffffu, ok, r);
      const KT *kp = reinterpret_cast<const KT *>(a.k.ptr) + (okr ? kr + ch * EPC : 0);
      const KT *vp = reinterpret_cast<const KT *>(a.v.ptr) + (okr ? vr + ch * EPC : 0);
      pa::cp_async16(pa::smem_addr(kt + slot(r, ch)), kp, okr);
      pa::cp_async16(pa::smem_addr(vt + slot(r, ch)), vp, okr);
    }
  };

  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
  float m[2] = {-CUDART_INF_F, -CUDART_INF_F}, l[2] = {0.f, 0.f};
  const int r0 = lane >> 2, tq = lane & 3;
  int ri[2], rh[2];
#pragma unroll
  for (int x = 0; x < 2; ++x) {
    const int pr = w.row0 + r0 + 8 * x;
    ri[x] = pr / g;
    rh[x] = w.hk * g + pr % g;
  }

#pragma unroll
  for (int s = 0; s < ST - 1; ++s) {
    if (s < my_tiles) load_tile(s);
    pa::cp_commit();
  }

#pragma unroll
  for (int u = 0; u < QPT; ++u) {
    const int c = tid + u * W * 32;
    if (c < 16 * CH) qs[pa::swz<CH>(c / CH, c % CH)] = qv[u];
  }
  __syncthreads();
  uint32_t qf[kQInRegs ? D / 16 : 1][4];
  if constexpr (R8) { /* k-block 4c + m = dims 64c + 16tq + 4m + {0,1 | 2,3} (see top) */
    const unsigned char *qb = reinterpret_cast<const unsigned char *>(qs);
    auto qword = [&](int r, int d) { /* dims d, d + 1 of row r */
                                     return *reinterpret_cast<const uint32_t *>(
                                         qb + 16 * pa::swz<CH>(r, d / 8) + 2 * (d % 8));
    };
    const int qr = lane >> 2, qt = lane & 3;
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      const int d = 64 * (kk / 4) + 16 * qt + 4 * (kk % 4);
      qf[kk][0] = qword(qr, d);
      qf[kk][1] = qword(qr + 8, d);
      qf[kk][2] = qword(qr, d + 2);
      qf[kk][3] = qword(qr + 8, d + 2);
    }
  } else if (kQInRegs) {
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk)
      pa::ldsm_x4(qs_addr + 16 * pa::swz<CH>(a_row, 2 * kk + a_ch), qf[kk][0], qf[kk][1], qf[kk][2],
                  qf[kk][3]);
  }
  /* fp8: K's dequantisation scale joins the score scale (generic logits
   * below take it through a.scale's place: see kscale) */
  const float kscale = KV ? a.k_scale[w.hk * a.k_scale_s] : 1.f;
  const float vscale = KV ? a.v_scale[w.hk * a.v_scale_s] : 1.f;
  const float sc = a.scale * kscale * kLog2e;

  for (int it = 0; it < my_tiles; ++it) {
    if (it + ST - 1 < my_tiles) load_tile(it + ST - 1);
    pa::cp_commit();
    pa::cp_wait<ST - 1>();
    __syncwarp();
    const unsigned char *kt = my_ring + (it % ST) * 2 * C::RTILE, *vt = kt + C::RTILE;
    if constexpr (S8) { /* fp8 ring tile -> this warp's 16-bit tiles */
      unsigned char *ck = conv + warp * 2 * C::TILE, *cv = ck + C::TILE;
#pragma unroll
      for (int c = lane; c < BN * CHL; c += 32) {
        const int r = c / CHL, ch = c % CHL;
        uint4 lo, hi;
        fp8x16_to<T, KV>(reinterpret_cast<const uint4 *>(kt)[c], lo, hi);
        *reinterpret_cast<uint4 *>(ck + 16 * pa::swz<CH>(r, 2 * ch)) = lo;
        *reinterpret_cast<uint4 *>(ck + 16 * pa::swz<CH>(r, 2 * ch + 1)) = hi;
        fp8x16_to<T, KV>(reinterpret_cast<const uint4 *>(vt)[c], lo, hi);
        *reinterpret_cast<uint4 *>(cv + 16 * pa::swz<CH>(r, 2 * ch)) = lo;
        *reinterpret_cast<uint4 *>(cv + 16 * pa::swz<CH>(r, 2 * ch + 1)) = hi;
      }
      __syncwarp();
      kt = ck, vt = cv;
    }
    const uint32_t k_addr = pa::smem_addr(kt), v_addr = pa::smem_addr(vt);

    /* Two accumulators (even and odd kk): half the dependent MMA chain. */
    float sa[2][2][4];
#pragma unroll
    for (int u = 0; u < 2; ++u)
#pragma unroll
      for (int n = 0; n < 2; ++n) sa[u][n][0] = sa[u][n][1] = sa[u][n][2] = sa[u][n][3] = 0.f;
    if constexpr (R8) {
      /* n-tile t, column r0 = ring row 4 (r0 / 2) + 2t + r0 % 2; chunks 4c + tq */
#pragma unroll
      for (int t = 0; t < 2; ++t) {
        const int kr = 4 * (r0 >> 1) + 2 * t + (r0 & 1);
#pragma unroll
        for (int c = 0; c < 2; ++c) {
          const uint4 x =
              *reinterpret_cast<const uint4 *>(kt + 16 * (kr * CHL + swz8(kr, 4 * c + tq)));
          const uint32_t xw[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
          for (int mq = 0; mq < 4; ++mq) {
            const int kk = 4 * c + mq;
            pa::mma16816<T>(sa[kk % 2][t], qf[kk], pa::fp8x2_to<T, KV>(xw[mq]),
                            pa::fp8x2_to<T, KV>(xw[mq] >> 16));
          }
        }
      }
    } else {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t qa[4];
        if (kQInRegs) {
          qa[0] = qf[kk][0], qa[1] = qf[kk][1], qa[2] = qf[kk][2], qa[3] = qf[kk][3];
        } else {
          pa::ldsm_x4(qs_addr + 16 * pa::swz<CH>(a_row, 2 * kk + a_ch), qa[0], qa[1], qa[2], qa[3]);
        }
        uint32_t b0, b1, b2, b3;
        pa::ldsm_x4(k_addr + 16 * pa::swz<CH>(k_row, 2 * kk + k_ch), b0, b1, b2, b3);
        pa::mma16816<T>(sa[kk % 2][0], qa, b0, b1);
        pa::mma16816<T>(sa[kk % 2][1], qa, b2, b3);
      }
    }
    float(&s)[2][4] = sa[0];
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] += sa[1][n][e];

    const int j0 = w.kv_begin + (warp + W * it) * BN;
    const bool fast = simple && j0 + BN <= w.kv_end && (!a.causal || j0 + BN - 1 <= diag_min);
#pragma unroll
    for (int n = 0; n < 2; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int x = e >> 1,
                  j = j0 + (R8 ? 4 * tq + 2 * n : n * 8 + 2 * tq) + (e & 1); /* fp8: see top */
        if (fast)
          s[n][e] *= sc;
        else if (r0 + 8 * x < w.rows && j < w.kv_end)
          s[n][e] = pa::logit(a, s[n][e] * kscale, w.b, ri[x], j, off, rh[x]) * kLog2e;
        else
          s[n][e] = -CUDART_INF_F;
      }

    float c[2];
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      float mx = fmaxf(fmaxf(s[0][2 * x], s[0][2 * x + 1]), fmaxf(s[1][2 * x], s[1][2 * x + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float mn = fmaxf(m[x], mx);
      c[x] = ex(m[x], mn);
      float sum = 0.f;
#pragma unroll
      for (int n = 0; n < 2; ++n)
#pragma unroll
        for (int e = 2 * x; e < 2 * x + 2; ++e) {
          s[n][e] = mn == -CUDART_INF_F ? 0.f : ex(s[n][e], mn);
          sum += s[n][e];
        }
      l[x] = l[x] * c[x] + sum; /* per-thread partial; the quad sums at the end */
      m[x] = mn;
    }
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      o[n][0] *= c[0];
      o[n][1] *= c[0];
      o[n][2] *= c[1];
      o[n][3] *= c[1];
    }
    const uint32_t p[4] = {pa::pack2<T>(s[0][0], s[0][1]), pa::pack2<T>(s[0][2], s[0][3]),
                           pa::pack2<T>(s[1][0], s[1][1]), pa::pack2<T>(s[1][2], s[1][3])};
    if constexpr (R8) {
      /* rows 4tq..4tq+3, chunk r0: dims 16 r0 + j; n-tile j's B pair = bytes j of rows (0,1), (2,3)
       */
      uint32_t vw[4][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int vr = 4 * tq + i;
        const uint4 x = *reinterpret_cast<const uint4 *>(vt + 16 * (vr * CHL + swz8(vr, r0)));
        vw[i][0] = x.x, vw[i][1] = x.y, vw[i][2] = x.z, vw[i][3] = x.w;
      }
#pragma unroll
      for (int j = 0; j < D / 8; ++j) {
        const uint32_t sel = (j % 4) | ((4 + j % 4) << 4);
        pa::mma16816<T>(o[j], p, pa::fp8x2_to<T, KV>(__byte_perm(vw[0][j / 4], vw[1][j / 4], sel)),
                        pa::fp8x2_to<T, KV>(__byte_perm(vw[2][j / 4], vw[3][j / 4], sel)));
      }
    } else {
#pragma unroll
      for (int dn = 0; dn < D / 16; ++dn) {
        uint32_t b0, b1, b2, b3;
        pa::ldsm_x4_t(v_addr + 16 * pa::swz<CH>(v_row, 2 * dn + v_ch), b0, b1, b2, b3);
        pa::mma16816<T>(o[2 * dn], p, b0, b1);
        pa::mma16816<T>(o[2 * dn + 1], p, b2, b3);
      }
    }
    __syncwarp();
  }
  pa::cp_wait<0>();
  __syncthreads(); /* every warp is done with its ring: reuse it for the merge */

  float *om = reinterpret_cast<float *>(ring); /* [warp][16][OMS] */
  constexpr int OMS = C::OMS;
  auto opos = [](int d) { return R8 ? d + (d >> 5) : d; };
  float *mm = om + W * 16 * OMS, *ll = mm + W * 16;
#pragma unroll
  for (int x = 0; x < 2; ++x) {
    l[x] += __shfl_xor_sync(0xffffffffu, l[x], 1);
    l[x] += __shfl_xor_sync(0xffffffffu, l[x], 2);
    const int r = r0 + 8 * x;
    if constexpr (R8) { /* column n of n-tile j is dim 16 n + j */
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        om[(warp * 16 + r) * OMS + opos(32 * tq + n)] = o[n][2 * x];
        om[(warp * 16 + r) * OMS + opos(32 * tq + 16 + n)] = o[n][2 * x + 1];
      }
    } else {
#pragma unroll
      for (int n = 0; n < D / 8; ++n)
        *reinterpret_cast<float2 *>(om + (warp * 16 + r) * D + n * 8 + 2 * tq) =
            make_float2(o[n][2 * x], o[n][2 * x + 1]);
    }
    if (tq == 0) {
      mm[warp * 16 + r] = m[x];
      ll[warp * 16 + r] = l[x];
    }
  }
  __syncthreads();

  for (int idx = tid; idx < w.rows * D; idx += W * 32) {
    const int r = idx / D, d = idx % D;
    float M = -CUDART_INF_F;
#pragma unroll
    for (int v = 0; v < W; ++v) M = fmaxf(M, mm[v * 16 + r]);
    float L = 0.f, acc = 0.f;
#pragma unroll
    for (int v = 0; v < W; ++v) {
      const float f = ex(mm[v * 16 + r], M);
      L += f * ll[v * 16 + r];
      acc += f * om[(v * 16 + r) * OMS + opos(d)];
    }
    M *= kLn2; /* back to natural-log units for the sink and the LSE */
    const int pr = w.row0 + r, i = pr / g, h = w.hk * g + pr % g;
    const pa::row_dest dst = pa::dest_of(a, rq, w.b, w.split, i, h);
    const float cs = pa::fold_sink(a, dst, h, M, L);
    const float out = L > 0.f ? acc * cs / L * vscale : 0.f;
    if (dst.split)
      a.ws_o[dst.o_off + d] = out;
    else
      reinterpret_cast<T *>(a.o.ptr)[dst.o_off + d] = static_cast<T>(out);
    if (d == 0 && dst.lse_off >= 0) {
      const float lse = pa::final_lse(M, L);
      if (dst.split)
        a.ws_lse[dst.lse_off] = lse;
      else
        reinterpret_cast<float *>(a.lse.ptr)[dst.lse_off] = lse;
    }
  }

  if constexpr (FUSED) {
    if (rq.num_splits <= 1) return;
    /* "Last block finishes the group": each thread's partial stores are made
     * visible device-wide before thread 0 counts this split in; the block
     * that brings the count to num_splits sees every partial and merges. */
    __threadfence();
    __syncthreads();                              /* also: every thread is done with om/mm/ll */
    int *is_last = reinterpret_cast<int *>(smem); /* Q's place: dead now */
    if (tid == 0) {
      unsigned *cnt = counters + (w.b * a.hkv + w.hk);
      const bool last = atomicAdd(cnt, 1u) == (unsigned)rq.num_splits - 1;
      if (last) {
        __threadfence(); /* acquire: the other splits' partials before our reads */
        *cnt = 0;        /* every split has counted: ready for the next run / graph replay */
      }
      *is_last = last;
    }
    __syncthreads();
    if (!*is_last) return;
    merge_group<T, D>(a, w, rq, reinterpret_cast<float *>(smem) + 16,
                      reinterpret_cast<float *>(ring), merge_u);
  }
}

template <typename T, int D, int KV = 0, bool REG = false> cudaError_t set_smem(int optin) {
  constexpr int smem = cfg<D, KV, REG>::SMEM;
  if (smem > optin) return cudaSuccess; /* not on this device: supported() says 0 */
  cudaError_t e = cudaFuncSetAttribute(decode_attention<T, D, false, KV, REG>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(decode_attention<T, D, true, KV, REG>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  return e;
}

int smem_of(int d) {
  return d == 64 ? cfg<64>::SMEM : d == 128 ? cfg<128>::SMEM : d == 256 ? cfg<256>::SMEM : 1 << 30;
}

template <typename T, int D>
cudaError_t launch_d(const pa_cu_attn *a, unsigned *counters, int merge_u, cudaStream_t s) {
  const dim3 grid(a->num_work), block(W * 32);
  if (counters)
    return pa::launch_pdl(a->pdl != 0, decode_attention<T, D, true>, grid, block, cfg<D>::SMEM, s,
                          *a, counters, merge_u);
  return pa::launch_pdl(a->pdl != 0, decode_attention<T, D, false>, grid, block, cfg<D>::SMEM, s,
                        *a, counters, merge_u);
}

/* fp8 K/V: D = 128 only (the other head dims take the generic kernel). */
template <typename T, int KV, bool REG>
cudaError_t launch8(const pa_cu_attn *a, unsigned *counters, int merge_u, cudaStream_t s) {
  constexpr int D = 128, smem = cfg<D, KV, REG>::SMEM;
  const dim3 grid(a->num_work), block(W * 32);
  if (counters)
    return pa::launch_pdl(a->pdl != 0, decode_attention<T, D, true, KV, REG>, grid, block, smem, s,
                          *a, counters, merge_u);
  return pa::launch_pdl(a->pdl != 0, decode_attention<T, D, false, KV, REG>, grid, block, smem, s,
                        *a, counters, merge_u);
}

template <typename T, int KV>
cudaError_t launch8(const pa_cu_attn *a, unsigned *counters, int merge_u, cudaStream_t s) {
  return a->fp8_regs ? launch8<T, KV, true>(a, counters, merge_u, s)
                     : launch8<T, KV, false>(a, counters, merge_u, s);
}

template <typename T>
cudaError_t launch(const pa_cu_attn *a, unsigned *counters, int merge_u, cudaStream_t s) {
  if (a->k.dtype == PA_FP8_E4M3 || a->k.dtype == PA_FP8_E5M2) {
    if (a->dqk != 128) return cudaErrorInvalidValue;
    return a->k.dtype == PA_FP8_E4M3 ? launch8<T, PA_FP8_E4M3>(a, counters, merge_u, s)
                                     : launch8<T, PA_FP8_E5M2>(a, counters, merge_u, s);
  }
  switch (a->dqk) {
  case 64: return launch_d<T, 64>(a, counters, merge_u, s);
  case 128: return launch_d<T, 128>(a, counters, merge_u, s);
  case 256: return launch_d<T, 256>(a, counters, merge_u, s);
  default: return cudaErrorInvalidValue;
  }
}

} // namespace

extern "C" int pa_cu_decode_supported(int dqk, int dv, int dtype, int smem_optin) {
  return dqk == dv && (dqk == 64 || dqk == 128 || dqk == 256) &&
         (dtype == PA_F16 || dtype == PA_BF16) && smem_of(dqk) <= smem_optin;
}

extern "C" cudaError_t pa_cu_decode_init(int smem_optin) {
  cudaError_t e = cudaSuccess;
  if (e == cudaSuccess) e = set_smem<__half, 64>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__half, 128>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__half, 256>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__nv_bfloat16, 64>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__nv_bfloat16, 128>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__nv_bfloat16, 256>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__half, 128, PA_FP8_E4M3, false>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__half, 128, PA_FP8_E4M3, true>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__half, 128, PA_FP8_E5M2, false>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__half, 128, PA_FP8_E5M2, true>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__nv_bfloat16, 128, PA_FP8_E4M3, false>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__nv_bfloat16, 128, PA_FP8_E4M3, true>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__nv_bfloat16, 128, PA_FP8_E5M2, false>(smem_optin);
  if (e == cudaSuccess) e = set_smem<__nv_bfloat16, 128, PA_FP8_E5M2, true>(smem_optin);
  return e;
}

extern "C" int pa_cu_decode8_supported(int dqk, int dv, int dtype, int kv_dtype, int smem_optin) {
  return dqk == 128 && dv == 128 && (dtype == PA_F16 || dtype == PA_BF16) &&
         (kv_dtype == PA_FP8_E4M3 || kv_dtype == PA_FP8_E5M2) &&
         cfg<128, PA_FP8_E4M3, false>::SMEM <= smem_optin; /* the larger of the two */
}

extern "C" cudaError_t pa_cu_decode_attention(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  return a->q.dtype == PA_F16 ? launch<__half>(a, nullptr, 0, s)
                              : launch<__nv_bfloat16>(a, nullptr, 0, s);
}

/* The decode kernel that also merges split requests (no combine launch
 * after it). counters: [batch x Hkv] zeros, left zero by every run. A plan
 * is run by one thread on one stream at a time, so its counters are never
 * shared; two replays of one captured plan on concurrent streams would
 * share them and are not supported. */
extern "C" cudaError_t pa_cu_decode_attention_fused(const pa_cu_attn *a, unsigned *counters,
                                                    int merge_u, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  return a->q.dtype == PA_F16 ? launch<__half>(a, counters, merge_u, s)
                              : launch<__nv_bfloat16>(a, counters, merge_u, s);
}

/* MLA decode on Hopper (sm_90a) warpgroup MMAs, f16/bf16, Dc = 512, Dr = 64:
 * the seesaw schedule, one block per work item of 64 packed rows. */
#include "mla_wgmma.cuh"
#include "mma.cuh"

namespace {

constexpr int DC = 512, DR = 64, DK = DC + DR;
/* (unused where the sm_90a kernel body is compiled out) */
[[maybe_unused]] constexpr int CH = DK / 8; /* 72 chunks of 16 bytes per row */
[[maybe_unused]] constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;

[[maybe_unused]] __device__ __forceinline__ float ex2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/* The output epilogue: warpgroup g holds O[64 rows, dims 256g..256g+255]
 * in o (wgmma m64n256 accumulator layout: row wr + r0 + 8x, dims 8n + 2tq,
 * +1) and its part of each row's denominator in l. The parts meet through red[2][64]; then O / l
 * and, from warpgroup 0, the LSE (row max m_of(x, r) in base 2) go to each row's destination
 * (output or split partial). */
template <typename T, typename MaxOf>
__device__ __forceinline__ void hopper_epilogue(const pa_cu_attn &a, const pa_req &rq,
                                                const pa_work &w, int grp, const float (&o)[128],
                                                const float (&l)[2], MaxOf m_of, float *red, int g,
                                                int wr, int r0, int tq) {
  /* The denominator: this thread's columns, then the quad, then both halves. */
#pragma unroll
  for (int x = 0; x < 2; ++x) {
    float ls = l[x];
    ls += __shfl_xor_sync(0xffffffffu, ls, 1);
    ls += __shfl_xor_sync(0xffffffffu, ls, 2);
    if (tq == 0) red[g * 64 + wr + r0 + 8 * x] = ls;
  }
  __syncthreads();
#pragma unroll
  for (int x = 0; x < 2; ++x) {
    const int r = wr + r0 + 8 * x;
    if (r >= w.rows) continue;
    const float ls = red[r] + red[64 + r];
    const int pr = w.row0 + r, i = pr / grp, h = pr % grp;
    const pa::row_dest dst = pa::dest_of(a, rq, w.b, w.split, i, h);
    const float inv = ls > 0.f ? 1.f / ls : 0.f;
#pragma unroll
    for (int n = 0; n < 32; ++n) {
      const int d = g * 256 + n * 8 + 2 * tq;
      const float v0 = o[4 * n + 2 * x] * inv, v1 = o[4 * n + 2 * x + 1] * inv;
      if (dst.split) {
        *reinterpret_cast<float2 *>(a.ws_o + dst.o_off + d) = make_float2(v0, v1);
      } else {
        T *op = reinterpret_cast<T *>(a.o.ptr) + dst.o_off + d;
        op[0] = static_cast<T>(v0);
        op[1] = static_cast<T>(v1);
      }
    }
    if (g == 0 && tq == 0 && dst.lse_off >= 0) {
      const float lse = pa::final_lse(m_of(x, r) * kLn2, ls);
      if (dst.split)
        a.ws_lse[dst.lse_off] = lse;
      else
        reinterpret_cast<float *>(a.lse.ptr)[dst.lse_off] = lse;
    }
  }
}

/* Hopper (sm_90a), seesaw schedule (the idea of FlashMLA's sm90 decode
 * kernel; our own code). Running S, softmax and P V of a tile in lock step
 * across both warpgroups would leave the tensor cores idle during every
 * softmax and barrier. Here warpgroup g owns O[:, 256g..256g+255],
 * but the keys come in pairs of 64-key tiles, A = 2i (buffer 0) and B = 2i + 1
 * (buffer 1), and warpgroup 0 computes S for A while warpgroup 1 computes S
 * for B (m64n64k16, all 576 dims), so one warpgroup's softmax overlaps the
 * other's GEMMs:
 *   WG0: softmax A (row max mA) -> O_L += P_A V_A,L (P in registers)
 *   WG1: softmax B after mA (mB)  -> O_R += P_B V_B,R; P_B to shared memory
 *   WG0: P_A * exp(mA - mB) to shared memory; O_L rescaled; O_L += P_B V_B,L
 *   WG1: O_R += P_A V_A,R
 *   then each issues S of its tile of the next pair.
 * The running max goes between the warpgroups through shared memory (s_m);
 * one side arrives, the other waits, at each hand-over (the tensor cores keep
 * one warpgroup's MMAs while the other waits), each ordered by an mbarrier
 * (arrive.release by the 128 producer threads, try_wait.acquire by the
 * consumers), which racecheck follows (named barriers, also correct by the
 * PTX rules, are not: bench/RESULTS.md, MLA). Loads of the next pair go into
 * a buffer's 64-dim column blocks as soon as their last reader is done:
 * blocks 0-3 (V_L) by WG0, blocks 4-8 by WG1, each block completing on its
 * own mbarrier (cp.async.mbarrier.arrive), so S starts on a block as soon as
 * it lands. Q's rope block (64 dims) lives in registers, so its shared space
 * holds P_B.
 * Shared memory: Q 72 KB + 2 x 72 KB K/V + P_A 8 KB + row state, 1024-byte
 * aligned: 227 KB. 238 registers, no spills. */
namespace ss {

constexpr int CB = 64 * 128;   /* a column block: 64 rows x 64 dims */
constexpr int TILE = 9 * CB;   /* Q or one K/V tile: 73728 B */
constexpr int PB_OFF = 8 * CB; /* P_B in Q's rope block */
constexpr int PA_OFF = 3 * TILE, ST_OFF = PA_OFF + CB;
constexpr int BAR_OFF = ST_OFF + 3 * 64 * 4; /* after m, l[2] rows */
constexpr int NBAR = 18 + 4;                 /* 18 load mbarriers, then the 4 hand-overs */
constexpr int SMEM = BAR_OFF + NBAR * 8 + 1024;
static_assert(SMEM <= 232448, "sm_90 gives a block at most 227 KB");
static_assert(PB_OFF + CB == TILE, "P_B takes exactly Q's rope block");
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
/* Byte offset of 16-byte chunk ch (of 72) of row r in a tile (Q or K/V). */
__device__ __forceinline__ uint32_t chunk_at(int r, int ch) {
  return (ch >> 3) * CB + r * 128 + (((ch & 7) ^ (r & 7)) << 4);
}
#endif
/* Hand-overs (mbarrier 18 + id - 1) */
enum { kScale0 = 1, kScale1 = 2, kPA = 3, kPB = 4 };

template <typename T>
__global__ void __launch_bounds__(256, 1) mla_decode_seesaw(const pa_cu_attn a) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using namespace pa::mla;
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw = pa::smem_addr(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  unsigned char *sm = smem_raw + (base - raw);
  const uint32_t q_s = base, pa_s = base + PA_OFF, pb_s = base + PB_OFF;
  float *s_m = reinterpret_cast<float *>(sm + ST_OFF); /* running row max */
  float *s_l = s_m + 64;                               /* l of both halves */
  /* The mbarrier that column block cb of buffer b completes on. */
  const uint32_t bar0 = base + BAR_OFF;
  auto bar = [&](int b, int cb) { return bar0 + 8 * (b * 9 + cb); };
  /* Hand-over `id`: every producer thread posts after its writes (and reads
   * of what the consumer writes next); the consumer takes it in pair `it`
   * (each hand-over completes once per pair, so its phase parity is it & 1;
   * a producer cannot post pair it + 1 before the consumer took pair it, as
   * each side waits for the other in between). */
  auto post = [&](int id) { mbar_arrive(bar0 + 8 * (17 + id)); };
  auto take = [&](int id, int it) {
    mbar_wait(bar0 + 8 * (17 + id), it & 1);
    wgmma_fence(); /* after each wait loop, or ptxas inserts its own and serialises */
  };

  const pa_work w = pa_cu_item(a);
  const pa_req rq = a.reqs[w.b];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = warp >> 2, wr = (warp & 3) * 16; /* warpgroup; its warp's first row */
  const int r0 = lane >> 2, tq = lane & 3;
  const int grp = a.group, off = rq.len_k - rq.len_q;
  const int ntiles = (w.kv_end - w.kv_begin + 63) / 64, npairs = (ntiles + 1) / 2;
  const int32_t *bt = reinterpret_cast<const int32_t *>(a.bt.ptr) + (int64_t)w.b * a.bt.sb;
  const T *ckv = reinterpret_cast<const T *>(a.k.ptr), *kpe = reinterpret_cast<const T *>(a.k2.ptr);

  if (tid == 0) {
#pragma unroll
    for (int b = 0; b < NBAR; ++b) mbar_init(bar0 + 8 * b, 128);
    mbar_init_fence();
  }
  if (tid < 64) s_m[tid] = -CUDART_INF_F;
  for (int c = tid; c < 64 * CH; c += 256) {
    const int r = c / CH, ch = c % CH;
    const bool ok = r < w.rows;
    const T *src = reinterpret_cast<const T *>(a.q.ptr);
    if (ok) {
      const int pr = w.row0 + r, i = pr / grp, h = pr % grp;
      src = ch < DC / 8 ? reinterpret_cast<const T *>(a.q.ptr) +
                              pa::row_off(a.q, w.b, rq.q_start, i, h) + ch * 8
                        : reinterpret_cast<const T *>(a.q2.ptr) +
                              pa::row_off(a.q2, w.b, rq.q_start, i, h) + (ch - DC / 8) * 8;
    }
    pa::cp_async16(q_s + chunk_at(r, ch), src, ok);
  }
  pa::cp_commit();
  __syncthreads(); /* mbarriers initialised before any copy arrives on them */

  /* Loads: thread u of a warpgroup copies key row u / 2, chunks of parity
   * u % 2 (two threads fill a 32-byte sector); WG0 the 32 chunks of blocks
   * 0-3, WG1 the 40 of blocks 4-8. Chunk 2 i + h of a block sits at soff[i % 4]. */
  const int lr = (tid & 127) >> 1, lh = tid & 1;
  uint32_t soff[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) soff[k] = lr * 128 + (((2 * k + lh) ^ (lr & 7)) << 4);
  auto page_of = [&](int t) {
    const int j = w.kv_begin + t * 64 + lr;
    return t < ntiles && j < w.kv_end ? bt[(int64_t)(j / a.page_size) * a.bt.st] : -1;
  };
  auto load = [&](int t, int page, int b) {
    const uint32_t dst = base + (1 + b) * TILE;
    const bool ok = page >= 0;
    const int64_t in_page = ok ? (w.kv_begin + t * 64 + lr) % a.page_size : 0;
    const T *c = ckv + (ok ? page * a.k.sb + in_page * a.k.st : 0);
    const T *p = kpe + (ok ? page * a.k2.sb + in_page * a.k2.st : 0);
    /* an arrival covers all of this thread's earlier copies */
    if (g == 0) {
#pragma unroll
      for (int i = 0; i < 16; ++i) {
        pa::cp_async16(dst + (i >> 2) * CB + soff[i & 3], c + (2 * i + lh) * 8, ok);
        if ((i & 3) == 3) cp_async_arrive(bar(b, i >> 2));
      }
    } else {
#pragma unroll
      for (int i = 0; i < 20; ++i) {
        const int ch = 32 + 2 * i + lh;
        pa::cp_async16(dst + (4 + (i >> 2)) * CB + soff[i & 3],
                       i < 16 ? c + ch * 8 : p + (ch - DC / 8) * 8, ok);
        if ((i & 3) == 3) cp_async_arrive(bar(b, 4 + (i >> 2)));
      }
    }
    pa::cp_commit();
  };
  /* The first pair is loaded and multiplied even when the item is empty
   * (rows past the end are zeros, all masked): a branch around the S below
   * makes ptxas serialise every wgmma. */
  load(0, page_of(0), 0);
  load(1, page_of(1), 1);
  int pg[2] = {page_of(2), page_of(3)}; /* pages of this thread's rows in the next loads */
  pa::cp_wait<2>();                     /* this thread's part of Q */
  fence_proxy_async();
  __syncthreads();
  uint32_t qr[4][4]; /* Q's rope block as the A fragments of 4 k-steps */
#pragma unroll
  for (int kk = 0; kk < 4; ++kk)
    pa::ldsm_x4(q_s + chunk_at(wr + (lane & 15), DC / 8 + 2 * kk + (lane >> 4)), qr[kk][0],
                qr[kk][1], qr[kk][2], qr[kk][3]);
  __syncwarp(); /* the warp's reads of its rope rows before it stores P_B there */

  const uint64_t dq = desc_k(q_s);
  /* S (+)= Q K^T over column blocks [cb0, cb1) of buffer b, each block after
   * its loads (phase parity par) landed; the rope block from registers. */
  auto qk = [&](float *s, int b, int cb0, int cb1, bool zero, uint32_t par) {
    const uint64_t dk = desc_k(base + (1 + b) * TILE);
#pragma unroll
    for (int cb = 0; cb < 9; ++cb) {
      if (cb < cb0 || cb >= cb1) continue;
      mbar_wait(bar(b, cb), par);
      fence_proxy_async();
      wgmma_fence(); /* after each wait loop, or ptxas inserts its own and serialises */
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) {
        const uint32_t o = (cb * CB + kk * 32) >> 4;
        const int sd = zero && cb == cb0 && kk == 0 ? 0 : 1;
        if (cb < 8)
          wgmma_m64n64k16_ss<T>(s, dq + o, dk + o, sd);
        else
          wgmma_m64n64k16_rs<T>(s, qr[kk], dk + o, sd);
      }
    }
  };

  float o[128];
#pragma unroll
  for (int n = 0; n < 128; ++n) o[n] = 0.f;
  float s[32];
  float l[2] = {0.f, 0.f}, mreg[2] = {-CUDART_INF_F, -CUDART_INF_F};
  int lim[2]; /* last visible key of each of this thread's rows */
#pragma unroll
  for (int x = 0; x < 2; ++x) {
    const int r = wr + r0 + 8 * x, i = (w.row0 + r) / grp;
    lim[x] = r < w.rows ? (a.causal ? min(w.kv_end - 1, i + off) : w.kv_end - 1) : -1;
  }
  const float scale2 = a.scale * kLog2e;
  uint32_t pf[4][4]; /* P as the A fragments of 4 k-steps (16 keys each) */
  auto pack_p = [&](float mul0, float mul1) {
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      pf[kk][0] = pa::pack2<T>(s[8 * kk] * mul0, s[8 * kk + 1] * mul0);
      pf[kk][1] = pa::pack2<T>(s[8 * kk + 2] * mul1, s[8 * kk + 3] * mul1);
      pf[kk][2] = pa::pack2<T>(s[8 * kk + 4] * mul0, s[8 * kk + 5] * mul0);
      pf[kk][3] = pa::pack2<T>(s[8 * kk + 6] * mul1, s[8 * kk + 7] * mul1);
    }
  };
  /* P (keys 8 jj + 2 tq.., rows r0 / r0 + 8) to a K-major swizzled 64 x 64 tile */
  auto store_p = [&](uint32_t p_s) {
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      const int r = wr + r0 + 8 * x;
#pragma unroll
      for (int jj = 0; jj < 8; ++jj) {
        const uint32_t v = pf[jj >> 1][2 * (jj & 1) + x];
        asm volatile(
            "st.shared.b32 [%0], %1;\n" ::"r"(p_s + r * 128 + ((jj ^ (r & 7)) << 4) + tq * 4),
            "r"(v)
            : "memory");
      }
    }
  };
  /* Masks tile t's scores, scales them to base 2 and returns the row maxima. */
  auto mask_max = [&](int t, float *mx) {
    const int j0 = w.kv_begin + t * 64 + 2 * tq;
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      float v = -CUDART_INF_F;
#pragma unroll
      for (int jj = 0; jj < 8; ++jj)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float &sv = s[4 * jj + 2 * x + e];
          sv = j0 + 8 * jj + e <= lim[x] ? sv * scale2 : -CUDART_INF_F;
          v = fmaxf(v, sv);
        }
      v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
      mx[x] = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
    }
  };
  /* exp2(s - mu) in place; returns the row sums of this thread's part */
  auto exp_rows = [&](const float *mu, float *sum) {
#pragma unroll
    for (int x = 0; x < 2; ++x) {
      sum[x] = 0.f;
#pragma unroll
      for (int jj = 0; jj < 8; ++jj)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float &sv = s[4 * jj + 2 * x + e];
          sv = ex2(sv - mu[x]);
          sum[x] += sv;
        }
    }
  };
  auto scale_o = [&](const float *c) {
#pragma unroll
    for (int n = 0; n < 32; ++n) {
      o[4 * n] *= c[0];
      o[4 * n + 1] *= c[0];
      o[4 * n + 2] *= c[1];
      o[4 * n + 3] *= c[1];
    }
  };
  const uint64_t dv0 = desc_mn(base + TILE + g * 4 * CB, CB),
                 dv1 = desc_mn(base + 2 * TILE + g * 4 * CB, CB);

  { /* S of the first pair */
    if (g == 0) {
      qk(s, 0, 0, 4, true, 0);
      qk(s, 0, 4, 9, false, 0);
    } else {
      qk(s, 1, 4, 9, true, 0);
      qk(s, 1, 0, 4, false, 0);
    }
    wgmma_commit();
  }
  wgmma_wait<0>(); /* outside the branch, or ptxas serialises the wgmmas */
  reg_fence<32>(s);

  /* One loop per warpgroup (a shared loop with a branch inside makes ptxas
   * serialise the wgmmas). */
  if (g == 0) {
    for (int it = 0; it < npairs; ++it) {
      const bool more = it + 1 < npairs;
      const uint32_t par = (it + 1) & 1; /* phase of the loads issued in this pair */
      float mx[2], mu[2], c[2], sum[2];
      mask_max(2 * it, mx);
#pragma unroll
      for (int x = 0; x < 2; ++x) {
        const float mn = fmaxf(mreg[x], mx[x]);
        mu[x] = mn == -CUDART_INF_F ? 0.f : mn;
        c[x] = ex2(mreg[x] - mu[x]);
        mx[x] = mn; /* mA */
      }
      if (tq == 0) {
#pragma unroll
        for (int x = 0; x < 2; ++x) s_m[wr + r0 + 8 * x] = mx[x];
      }
      post(kScale0);
      exp_rows(mu, sum);
#pragma unroll
      for (int x = 0; x < 2; ++x) l[x] = l[x] * c[x] + sum[x];
      scale_o(c);
      pack_p(1.f, 1.f);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma_m64n256k16_rs<T>(o, pf[kk], dv0 + kk * 128, 1);
      wgmma_commit();
      wgmma_wait<0>();
      reg_fence<128>(o);
      if (more) { /* V_A,L read: blocks 0-3 of buffer 0 take tile 2 it + 2 */
        load(2 * it + 2, pg[0], 0);
        pg[0] = page_of(2 * it + 4);
      }
      take(kScale1, it);
      float c1[2]; /* from mA to mB, the pair's max */
#pragma unroll
      for (int x = 0; x < 2; ++x) {
        mreg[x] = s_m[wr + r0 + 8 * x];
        c1[x] = ex2(mx[x] - (mreg[x] == -CUDART_INF_F ? 0.f : mreg[x]));
        l[x] *= c1[x];
      }
      pack_p(c1[0], c1[1]);
      store_p(pa_s);
      fence_proxy_async();
      post(kPA);
      scale_o(c1);
      take(kPB, it);
      const uint64_t dpb = desc_k(pb_s);
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma_m64n256k16<T>(o, dpb + kk * 2, dv1 + kk * 128, 1);
      wgmma_commit();
      if (more) {
        qk(s, 0, 0, 4, true, par);
        wgmma_commit();
        wgmma_wait<1>(); /* P_B V_B,L read: blocks 0-3 of buffer 1 take tile 2 it + 3 */
        load(2 * it + 3, pg[1], 1);
        pg[1] = page_of(2 * it + 5);
        qk(s, 0, 4, 9, false, par);
        wgmma_commit();
      }
      wgmma_wait<0>();
      reg_fence<128>(o);
      reg_fence<32>(s);
    }
  } else {
    for (int it = 0; it < npairs; ++it) {
      const bool more = it + 1 < npairs;
      const uint32_t par = (it + 1) & 1;
      float mx[2], mu[2], c[2], sum[2];
      mask_max(2 * it + 1, mx);
      take(kScale0, it);
#pragma unroll
      for (int x = 0; x < 2; ++x) {
        const float mn = fmaxf(s_m[wr + r0 + 8 * x], mx[x]); /* mB = max(mA, this tile) */
        mu[x] = mn == -CUDART_INF_F ? 0.f : mn;
        c[x] = ex2(mreg[x] - mu[x]); /* O_R and l: from last pair's max */
        mreg[x] = mn;
      }
      __syncwarp(); /* the quad's reads of s_m before its write */
      if (tq == 0) {
#pragma unroll
        for (int x = 0; x < 2; ++x) s_m[wr + r0 + 8 * x] = mreg[x];
      }
      post(kScale1);
      exp_rows(mu, sum);
#pragma unroll
      for (int x = 0; x < 2; ++x) l[x] = l[x] * c[x] + sum[x];
      scale_o(c);
      pack_p(1.f, 1.f);
      store_p(pb_s);
      fence_proxy_async();
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma_m64n256k16_rs<T>(o, pf[kk], dv1 + kk * 128, 1);
      wgmma_commit();
      take(kPA, it);
      const uint64_t dpa = desc_k(pa_s);
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) wgmma_m64n256k16<T>(o, dpa + kk * 2, dv0 + kk * 128, 1);
      wgmma_commit();
      post(kPB);
      /* waits outside the branches, or ptxas serialises the wgmmas */
      wgmma_wait<1>(); /* buffer 1 read: blocks 4-8 take tile 2 it + 3 */
      if (more) {
        load(2 * it + 3, pg[1], 1);
        pg[1] = page_of(2 * it + 5);
      }
      wgmma_wait<0>(); /* buffer 0 read: blocks 4-8 take tile 2 it + 2 */
      reg_fence<128>(o);
      if (more) {
        load(2 * it + 2, pg[0], 0);
        pg[0] = page_of(2 * it + 4);
        qk(s, 1, 4, 9, true, par);
        qk(s, 1, 0, 4, false, par);
        wgmma_commit();
      }
      wgmma_wait<0>();
      reg_fence<128>(o);
      reg_fence<32>(s);
    }
  }

  hopper_epilogue<T>(
      a, rq, w, grp, o, l, [s_m](int, int r) { return s_m[r]; }, s_l, g, wr, r0, tq);
#else
  __trap(); /* only launched on sm_90, which runs the sm_90a code above */
#endif
}

} // namespace ss

} // namespace

/* On sm_90 only (the sm_90a code runs nowhere else). */
extern "C" cudaError_t pa_cu_mla_seesaw_init(void) {
  cudaError_t e = cudaFuncSetAttribute(ss::mla_decode_seesaw<__half>,
                                       cudaFuncAttributeMaxDynamicSharedMemorySize, ss::SMEM);
  if (e == cudaSuccess)
    e = cudaFuncSetAttribute(ss::mla_decode_seesaw<__nv_bfloat16>,
                             cudaFuncAttributeMaxDynamicSharedMemorySize, ss::SMEM);
  return e;
}

extern "C" cudaError_t pa_cu_mla_seesaw_decode(const pa_cu_attn *a, cudaStream_t s) {
  if (a->num_work == 0) return cudaSuccess;
  if (a->q.dtype == PA_F16)
    ss::mla_decode_seesaw<__half><<<a->num_work, 256, ss::SMEM, s>>>(*a);
  else
    ss::mla_decode_seesaw<__nv_bfloat16><<<a->num_work, 256, ss::SMEM, s>>>(*a);
  return cudaGetLastError();
}

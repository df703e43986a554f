/* mla_mma.cl: MLA decode (K = ckv || kpe, V = ckv, one latent head for all
 * query heads) on NVIDIA tensor cores through inline PTX
 * (mma.sync.aligned.m16n8k16), f16/bf16, taken only after the context's probe
 * (probe.c) passed. Same semantics as attention.cl with MLA=1: paged keys,
 * several query tokens per request with bottom-right causal, the plan's
 * split-KV partials, LSE.
 *
 * Tile: NRG x 16 packed rows (heads x query tokens) per work-group, 4 warps
 * per 16 rows, keys in tiles of BN staged in local memory row-major with 8
 * halves of padding (the 32-bit fragment loads of a warp hit 32 banks).
 * Warp (rg, qd) owns rows 16 rg.. and a quarter qd of the DC + DR score dims
 * (its Q fragments stay in registers: 9 k-steps for 576) and a quarter of the
 * DC output dims (O in registers: 64 f32 for DC 512). The four partial score
 * blocks of a row group meet in local memory and every warp sums them in the
 * same order, so the four run the same softmax on the same bits and P needs
 * no exchange. Splitting keys between warps instead would need all of Q per
 * warp (18 KB per 16 rows in local memory), which with a 36 KB key tile
 * exceeds the 48 KB NVIDIA gives a work-group. V is the first DC columns of
 * the key tile: loaded once, read as B fragments by ldmatrix (.trans for V;
 * LDSM=0: 32-bit and 16-bit loads, key pairs being a row apart).
 * Key tiles move global -> local by one of: CPA=1, two stages filled by
 * cp.async while the other is used (no registers held; the default, 16,2);
 * PF=1, the next tile's loads held in registers during this one; neither.
 * Local memory: BN 32, NRG 1: keys 37.4 KB + scores 8 KB + offsets 1 KB;
 * BN 16, NRG 2, CPA: 2 x 18.7 KB + 8 KB + 0.5 KB.
 *
 * Fragment layout (PTX ISA, m16n8k16), lane = 4 g + t: A a0 (g, 2t..2t+1),
 * a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); B b0 (k 2t..2t+1, n g),
 * b1 (k 2t+8.., n g); C c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
 *
 * Defines: DC (multiple of 32: a warp's DC / 4 output dims are NDB n-blocks
 * of 8, which ldmatrix takes in pairs, an odd last one alone) DR (multiple
 * of 16) KV_DT (1 f16, 2 bf16; Q has the same) O_DT BN (16 or 32) NRG (1 or
 * 2) PF, CPA, LDSM (0 or 1), EMU. */

/* The PTX helpers (EMU=1, tests only, PA_OPENCL_MLA=...,emu: emulated in
 * local memory, so the indexing can be checked on PoCL) are in ptx.cl,
 * prepended to this program. The emulated ldmatrix reads relative to the
 * key tile. */
#if PA_PTX
#define LDSM_ARG
#else
#define LDSM_ARG , k_l, emu_l
#endif

#define DK (DC + DR)
#define NT (NRG * 128)
#define KS (DK + 8)             /* halves per staged key row */
#define NKS (DK / 16)           /* k-steps of Q K^T */
#define KSQ ((NKS + 3) / 4)     /* k-steps per warp */
#define NB (BN / 8)             /* n-blocks of S */
#define DQ (DC / 4)             /* output dims per warp */
#define NDB (DQ / 8)            /* n-blocks of O per warp */
#define CH (DK / 8)             /* 16-byte chunks per key row */
#define NCH ((BN * CH + NT - 1) / NT) /* chunks per thread per tile */
/* Whether k-step x of this warp exists: with NKS % 4 != 0 the last warps of a
 * row group have fewer (qd 3 of 128/16 none). The test is warp-uniform, so
 * the PTX skips the missing ones. The emulation puts work-group barriers in
 * every call, so there every work-item makes every call, reading in-range
 * (k-step 0) and zeroing B (Q is 0 already) for a missing step by a select:
 * no branch on the warp may sit between two calls (ptx.cl says why). */
#define KS_OK(x) (NKS % 4 == 0 || qd * KSQ + (x) < NKS)

#define O_RAW PA_CAT(PA_RAW_, O_DT)
#define STO(AS, p, i, v) PA_CAT(PA_ST_, O_DT)(AS, p, i, v)

#ifndef LB
#define LB 6
#endif
#ifndef LDSM
#define LDSM 0
#endif
#ifndef CPA
#define CPA 0
#endif
#define TW (BN * KS / 8) /* uint4 per key tile */

#define F_LSE 1
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* Chunk e of a key tile whose keys sit at ko[] (ckv) and k2o[] (kpe); zero
 * past the range, so no stale bits reach P V as 0 * NaN. */
inline uint4 pa_chunk(__global const ushort *k, __global const ushort *k2, __local const long *ko,
                      __local const long *k2o, int e, int kv_vec) {
  if (BN * CH % NT != 0 && e >= BN * CH) return (uint4)(0);
  int c = e / CH, d = (e - c * CH) * 8;
  long base = d < DC ? ko[c] : k2o[c];
  if (base < 0) return (uint4)(0);
  __global const ushort *p = d < DC ? k + base + d : k2 + base + d - DC;
  if (kv_vec) return *(__global const uint4 *)p;
  return (uint4)(p[0] | (uint)p[1] << 16, p[2] | (uint)p[3] << 16, p[4] | (uint)p[5] << 16,
                 p[6] | (uint)p[7] << 16);
}

/* Starts the copy of chunk e of a key tile into dst (zeros past the range):
 * cp.async when the rows allow 16-byte vectors, else loads and a store. */
inline void pa_issue(__local uint4 *dst, __global const ushort *k, __global const ushort *k2,
                     __local const long *ko, __local const long *k2o, int e, int kv_vec) {
  if (BN * CH % NT != 0 && e >= BN * CH) return;
  int c = e / CH, d = (e - c * CH) * 8;
  long base = d < DC ? ko[c] : k2o[c];
  __local uint4 *to = dst + (c * KS + d) / 8;
  if (kv_vec) {
    pa_cp16p(to, base < 0 ? k : d < DC ? k + base + d : k2 + base + d - DC, base >= 0);
  } else {
    *to = pa_chunk(k, k2, ko, k2o, e, 0);
  }
}

/* The ckv and kpe element offsets of key j (-1 past ke) into entry i of set
 * st of ko, k2o (work-item i < BN fills entry i of a tile's offsets). */
inline void pa_key_offsets(__local long (*ko)[BN], __local long (*k2o)[BN], int st, int i, int j, int ke, __global const int *bt,
                           long bt_off, int b, long bt_sb, long bt_sp, int page_size, long k_off, long k_st,
                           long k_sp, long k2_off, long k2_st, long k2_sp) {
  long kof = -1, k2of = -1;
  if (j < ke) {
    long page = bt[bt_off + b * bt_sb + (j / page_size) * bt_sp], in = j % page_size;
    kof = k_off + page * k_sp + in * k_st;
    k2of = k2_off + page * k2_sp + in * k2_st;
  }
  ko[st][i] = kof;
  k2o[st][i] = k2of;
}

__kernel __attribute__((reqd_work_group_size(NT, 1, 1))) void pa_mla_mma(
    __global const ushort *q, long q_off, long q_st, long q_sh,
    __global const ushort *q2, long q2_off, long q2_st, long q2_sh,
    __global const ushort *k, long k_off, long k_st, long k_sp,
    __global const ushort *k2, long k2_off, long k2_st, long k2_sp,
    __global O_RAW *out, long o_off, long o_st, long o_sh,
    __global float *lse, long l_off, long l_st, long l_sh,
    __global const int *bt, long bt_off, long bt_sb, long bt_sp,
    PA_SCHED_ARGS,
    int page_size, int group, int hq, int kv_vec, float scale, int causal, int flags) {
  __local uint4 k_w[(CPA ? 2 : 1) * TW];
  __local float4 sx[NRG * 4 * NB * 32];
  /* ckv and kpe offsets of the keys of a tile, -1 past the range; two sets,
   * so the next tile's are written while this tile's are read. */
  __local long koff_l[2][BN], k2off_l[2][BN];
#if !PA_PTX
  __local float emu_l[NRG * 4 * 384 + 2 * NT];
#endif

  const int tid = get_local_id(0), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  const int rg = warp / 4, qd = warp % 4;
  __global const pa_work_t *wi = pa_work_item(sched, work_off);
  const int b = wi->b, row0 = wi->row0, rows = wi->rows, split = wi->split;
  const int kb = wi->kv_begin, ke = wi->kv_end;
  __global const pa_req_t *rq = pa_request(sched, req_off, b);
  const int q_start = rq->q_start, len_q = rq->len_q, len_k = rq->len_k, nsplit = rq->num_splits,
            part_row = rq->part_row;
  const int off = len_k - len_q;
  const int ntiles = (ke - kb + BN - 1) / BN;

  /* This lane's two rows (x = 0: g, x = 1: g + 8) and their last visible key. */
  int ri[2], rh[2], lim[2];
  bool rv[2];
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    int r = rg * 16 + g + 8 * x;
    rv[x] = r < rows;
    int pr = row0 + (rv[x] ? r : 0);
    ri[x] = pr / group;
    rh[x] = pr % group;
    lim[x] = rv[x] ? (causal ? min(ke - 1, ri[x] + off) : ke - 1) : -1;
  }
  /* Q fragments of this warp's k-steps, straight from global (once per item). */
  uint qa[KSQ][4];
  #pragma unroll
  for (int s = 0; s < KSQ; s++) {
    int ks = qd * KSQ + s;
    #pragma unroll
    for (int x = 0; x < 2; x++)
      #pragma unroll
      for (int hh = 0; hh < 2; hh++) {
        int d = ks * 16 + 2 * t + 8 * hh;
        uint lo = 0, hi = 0;
        if (rv[x] && (NKS % 4 == 0 || ks < NKS)) {
          __global const ushort *p = d < DC ? q + q_off + (long)(q_start + ri[x]) * q_st + rh[x] * q_sh + d
                                            : q2 + q2_off + (long)(q_start + ri[x]) * q2_st + rh[x] * q2_sh + d - DC;
          lo = p[0], hi = p[1];
        }
        qa[s][x + 2 * hh] = lo | (hi << 16);
      }
  }

  if (tid < BN) { /* offsets of tile 0 */
    pa_key_offsets(koff_l, k2off_l, 0, tid, kb + tid, ke, bt, bt_off, b, bt_sb, bt_sp,
                   page_size, k_off, k_st, k_sp, k2_off, k2_st, k2_sp);
  }
  barrier(CLK_LOCAL_MEM_FENCE);

  /* The key tile moves in 16-byte chunks: chunk e = tid + u NT is dims
   * 8 (e % CH).. of key e / CH; with PF the next tile waits in pf[]. */
  uint4 pf[NCH];
#if CPA
  if (ntiles > 0) {
    #pragma unroll
    for (int u = 0; u < NCH; u++) pa_issue(k_w, k, k2, koff_l[0], k2off_l[0], tid + u * NT, kv_vec);
  }
  pa_cp_commit();
#elif PF
  if (ntiles > 0) {
    #pragma unroll
    for (int u = 0; u < NCH; u++) pf[u] = pa_chunk(k, k2, koff_l[0], k2off_l[0], tid + u * NT, kv_vec);
  }
#endif

  float o[NDB][4];
  #pragma unroll
  for (int n = 0; n < NDB; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  const float scale2 = scale * LOG2E; /* scores in base 2 */

  for (int tt = 0; tt < ntiles; tt++) {
    const int kt = kb + tt * BN;
    /* tid through an opaque move: else the chunk indices and local addresses
     * of all NCH chunks are hoisted out of the loop and held in registers */
    const int tv = pa_opaque(tid);
    __local const ushort *k_l = (__local const ushort *)(k_w + (CPA ? (tt & 1) * TW : 0));
#if CPA
    /* two stages: tile tt + 1 is copied (cp.async, no registers) while tile tt is used */
    if (tid < BN) { /* offsets of the next tile */
      pa_key_offsets(koff_l, k2off_l, (tt + 1) & 1, tid, kt + BN + tid, ke, bt, bt_off, b, bt_sb, bt_sp,
                     page_size, k_off, k_st, k_sp, k2_off, k2_st, k2_sp);
    }
    barrier(CLK_LOCAL_MEM_FENCE); /* those offsets written; stage (tt + 1) & 1 consumed */
    if (tt + 1 < ntiles) {
      #pragma unroll
      for (int u = 0; u < NCH; u++)
        pa_issue(k_w + ((tt + 1) & 1) * TW, k, k2, koff_l[(tt + 1) & 1], k2off_l[(tt + 1) & 1], tv + u * NT, kv_vec);
    }
    pa_cp_commit();
    PA_CP_WAIT(1);
    barrier(CLK_LOCAL_MEM_FENCE); /* tile tt landed for every thread */
#else
    barrier(CLK_LOCAL_MEM_FENCE); /* the last tile's keys and scores are consumed */
    #pragma unroll
    for (int u = 0; u < NCH; u++) {
#if !PF
      /* at most LB loads in flight: more would take registers from O and Q */
      if (u % LB == 0) pa_fence();
      pf[u] = pa_chunk(k, k2, koff_l[tt & 1], k2off_l[tt & 1], tv + u * NT, kv_vec);
#endif
      int e = tv + u * NT;
      if (BN * CH % NT == 0 || e < BN * CH) {
        int c = e / CH, d = (e - c * CH) * 8;
        k_w[(c * KS + d) / 8] = pf[u];
      }
    }
    if (tid < BN) { /* offsets of the next tile */
      pa_key_offsets(koff_l, k2off_l, (tt + 1) & 1, tid, kt + BN + tid, ke, bt, bt_off, b, bt_sb, bt_sp,
                     page_size, k_off, k_st, k_sp, k2_off, k2_st, k2_sp);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#if PF
    if (tt + 1 < ntiles) {
      #pragma unroll
      for (int u = 0; u < NCH; u++)
        pf[u] = pa_chunk(k, k2, koff_l[(tt + 1) & 1], k2off_l[(tt + 1) & 1], tv + u * NT, kv_vec);
    }
#endif
#endif /* CPA */

    /* This warp's part of S = Q K^T: 16 rows x BN keys over its k-steps. */
    float s[NB][4];
    #pragma unroll
    for (int nb = 0; nb < NB; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
#if LDSM
    /* x4: keys 8 nb.. and 8 nb + 8.., dims 16 ks.. and 16 ks + 8.. -> b0 b1 of two n-blocks */
    __local const ushort *kl = k_l + (lane % 8 + 8 * (lane / 16)) * KS + 8 * ((lane / 8) & 1) + qd * KSQ * 16;
    #pragma unroll
    for (int nb = 0; nb < NB; nb += 2)
      #pragma unroll
      for (int x = 0; x < KSQ; x++) {
        const bool kx = KS_OK(x);
#if PA_PTX
        if (!kx) continue;
#endif
        uint b[4];
        pa_ldsm4p(kl + nb * 8 * KS + (kx ? x * 16 : 0), b, 0 LDSM_ARG);
        #pragma unroll
        for (int i = 0; i < 4; i++) b[i] = kx ? b[i] : 0u; /* a select: see KS_OK */
        pa_mma(s[nb], qa[x][0], qa[x][1], qa[x][2], qa[x][3], b[0], b[1] EMU_ARG);
        pa_mma(s[nb + 1], qa[x][0], qa[x][1], qa[x][2], qa[x][3], b[2], b[3] EMU_ARG);
      }
#else
    #pragma unroll
    for (int nb = 0; nb < NB; nb++) {
      __local const uint *kr = (__local const uint *)(k_l + (nb * 8 + g) * KS + 2 * t) + qd * KSQ * 8;
      #pragma unroll
      for (int x = 0; x < KSQ; x++) {
        const bool kx = KS_OK(x);
#if PA_PTX
        if (!kx) continue;
#endif
        uint b0 = kr[(kx ? x : 0) * 8], b1 = kr[(kx ? x : 0) * 8 + 4];
        b0 = kx ? b0 : 0u, b1 = kx ? b1 : 0u;
        pa_mma(s[nb], qa[x][0], qa[x][1], qa[x][2], qa[x][3], b0, b1 EMU_ARG);
      }
    }
#endif
    #pragma unroll
    for (int nb = 0; nb < NB; nb++)
      sx[(warp * NB + nb) * 32 + lane] = (float4)(s[nb][0], s[nb][1], s[nb][2], s[nb][3]);
    barrier(CLK_LOCAL_MEM_FENCE);
    /* Full scores: the row group's four parts, summed in one order by all four warps. */
    #pragma unroll
    for (int nb = 0; nb < NB; nb++) {
      float4 a = sx[((rg * 4 + 0) * NB + nb) * 32 + lane];
      a = a + sx[((rg * 4 + 1) * NB + nb) * 32 + lane];
      a = a + sx[((rg * 4 + 2) * NB + nb) * 32 + lane];
      a = a + sx[((rg * 4 + 3) * NB + nb) * 32 + lane];
      s[nb][0] = a.x, s[nb][1] = a.y, s[nb][2] = a.z, s[nb][3] = a.w;
    }
    /* Online softmax per row (a row lives in the 4 lanes of a quad). */
    #pragma unroll
    for (int x = 0; x < 2; x++) {
      float mx = -INFINITY;
      #pragma unroll
      for (int nb = 0; nb < NB; nb++)
        #pragma unroll
        for (int e = 0; e < 2; e++) {
          float y = kt + nb * 8 + 2 * t + e <= lim[x] ? s[nb][2 * x + e] * scale2 : -INFINITY;
          s[nb][2 * x + e] = y;
          mx = fmax(mx, y);
        }
      mx = fmax(mx, pa_shfl_xor(mx, 1 EMU_ARG));
      mx = fmax(mx, pa_shfl_xor(mx, 2 EMU_ARG));
      float m_new = fmax(m_run[x], mx), mu = pa_safe_max(m_new);
      float c = native_exp2(m_run[x] - mu), sum = 0.0f;
      #pragma unroll
      for (int nb = 0; nb < NB; nb++)
        #pragma unroll
        for (int e = 0; e < 2; e++) {
          float p = native_exp2(s[nb][2 * x + e] - mu);
          s[nb][2 * x + e] = p;
          sum += p;
        }
      l_run[x] = l_run[x] * c + sum;
      m_run[x] = m_new;
      #pragma unroll
      for (int n = 0; n < NDB; n++) o[n][2 * x] *= c, o[n][2 * x + 1] *= c;
    }
    /* O += P V over this warp's DQ dims; P's C fragments are the A fragments. */
    #pragma unroll
    for (int kk = 0; kk < BN / 16; kk++) {
      uint a0 = pa_pack2(s[2 * kk][0], s[2 * kk][1]), a1 = pa_pack2(s[2 * kk][2], s[2 * kk][3]);
      uint a2 = pa_pack2(s[2 * kk + 1][0], s[2 * kk + 1][1]);
      uint a3 = pa_pack2(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#if LDSM
      /* x4.trans: keys 16 kk.. and 16 kk + 8.., dims 8 n.. and 8 n + 8.. -> b0 b1 of two n-blocks */
      __local const ushort *vl = k_l + (kk * 16 + lane % 8 + 8 * ((lane / 8) & 1)) * KS + qd * DQ + 8 * (lane / 16);
      #pragma unroll
      for (int n = 0; n + 1 < NDB; n += 2) {
        uint b[4];
        pa_ldsm4p(vl + n * 8, b, 1 LDSM_ARG);
        pa_mma(o[n], a0, a1, a2, a3, b[0], b[1] EMU_ARG);
        pa_mma(o[n + 1], a0, a1, a2, a3, b[2], b[3] EMU_ARG);
      }
#if NDB % 2
      { /* DC / 32 odd: the last n-block alone (lanes 0..15 name its rows) */
        uint b[2];
        pa_ldsm2p(vl + (NDB - 1) * 8, b, 1 LDSM_ARG);
        pa_mma(o[NDB - 1], a0, a1, a2, a3, b[0], b[1] EMU_ARG);
      }
#endif
#else
      /* key pairs are a row apart: two 16-bit loads per register */
      __local const ushort *vp = k_l + (kk * 16 + 2 * t) * KS + qd * DQ + g;
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        uint b0 = vp[n * 8] | (uint)vp[n * 8 + KS] << 16;
        uint b1 = vp[n * 8 + 8 * KS] | (uint)vp[n * 8 + 9 * KS] << 16;
        pa_mma(o[n], a0, a1, a2, a3, b0, b1 EMU_ARG);
      }
#endif
    }
  }

  /* Row sums across the quad, then normalise; LSE in natural log. */
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    float ll = l_run[x];
    ll += pa_shfl_xor(ll, 1 EMU_ARG);
    ll += pa_shfl_xor(ll, 2 EMU_ARG);
    if (!rv[x]) continue;
    int i = ri[x], h = rh[x];
    /* no sinks in MLA; one expression keeps m * LN2 + log(l) contracted (fma) */
    float fac = ll > 0.0f ? 1.0f / ll : 0.0f;
    float lse_v = ll > 0.0f ? m_run[x] * LN2 + log(ll) : -INFINITY;
    if (nsplit == 1) {
      long oo = pa_out_row(o_off, 0, o_st, o_sh, b, q_start, i, h) + qd * DQ + 2 * t;
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        STO(__global, out, oo + n * 8, o[n][2 * x] * fac);
        STO(__global, out, oo + n * 8 + 1, o[n][2 * x + 1] * fac);
      }
      if (qd == 0 && t == 0 && (flags & F_LSE)) lse[pa_out_row(l_off, 0, l_st, l_sh, b, q_start, i, h)] = lse_v;
    } else {
      long p = pa_part_row(part_row, split, len_q, hq, i, h);
      __global float *wo = ws + ws_o + p * DC + qd * DQ + 2 * t;
      #pragma unroll
      for (int n = 0; n < NDB; n++) wo[n * 8] = o[n][2 * x] * fac, wo[n * 8 + 1] = o[n][2 * x + 1] * fac;
      if (qd == 0 && t == 0) ws[ws_l + p] = lse_v;
    }
  }
}

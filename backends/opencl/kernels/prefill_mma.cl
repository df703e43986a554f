/* prefill_mma.cl: f16/bf16 attention on NVIDIA tensor cores through inline PTX
 * (mma.sync.aligned.m16n8k16), used only after the context's probes (below)
 * built and produced known results. Two kernels of one name and argument list:
 *
 * PIPE=1 (after the ldmatrix/cp.async probe): WARPS warps x 16 packed rows
 * (BQ 64 or 128) per work-group, BKV keys per step. Q fragments and the O
 * accumulator stay in registers. K and V are staged row-major in local memory
 * (rows padded by 8 halves, so the eight 16-byte rows of an ldmatrix phase hit
 * all 32 banks) by cp.async, each in one buffer with its own commit group: K of
 * tile t+1 lands during tile t's softmax and P V, V of tile t+1 during tile
 * t+1's Q K^T, so global latency hides behind math without a second 35 KB
 * stage (NVIDIA gives a work-group 48 KB). ldmatrix feeds the B fragments (.trans
 * for V, so V needs no transposed store). Softmax in base 2 with the scale
 * folded in; the per-element score rule runs only where a tile needs it (range
 * end, causal edge, or softcap/ALiBi/mask/window), and a warp whose rows are all
 * causally before a tile skips it.
 *
 * PIPE=0 (fallback): 4 warps x 16 rows, BKV 64, 32-bit local fragment loads, V
 * transposed by 16-bit stores, no overlap of loads and math.
 *
 * Fragment layout (PTX ISA, m16n8k16): lane = 4 g + t. A (16x16, row):
 * a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..);
 * B (16x8, col): b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g);
 * C (16x8): c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
 * A row of S lives in the 4 lanes of a quad: row max/sum reduce with shfl.
 *
 * Defines: DQK DV (multiples of 16, <= 128) KV_DT (1 f16, 2 bf16; Q has the
 * same) O_DT PIPE WARPS BKV; PROBE_ONLY builds just the probes. */

/* The mma.sync, cvt, shfl, ldmatrix and cp.async helpers are in ptx.cl,
 * prepended to this program. */

/* 2^x; ex2.approx(-inf) = 0, which masked scores rely on. */
inline float pa_ex2(float x) {
  float y;
  asm volatile("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

/* The .shared-window address of a local array, as ldmatrix and cp.async take
 * it. A __local pointer converted to an integer is that address on NVIDIA's
 * compiler (the probe checks); a generic address, should one appear, is
 * converted. */
inline uint pa_saddr(__local const void *p) {
  ulong a = (ulong)p;
  if (a >> 32) asm volatile("cvta.to.shared.u64 %0, %1;" : "=l"(a) : "l"(a));
  return (uint)a;
}

/* The probe: one warp, A[r][k] = ((r + 2k) % 5) - 2, B[k][n] = ((3k + n) % 7) - 3
 * (exact in f16 and bf16); out[lane * 4 + i] = the lane's C fragment. */
__kernel __attribute__((reqd_work_group_size(32, 1, 1))) void pa_mma_probe(__global float *out) {
  const int lane = get_local_id(0), g = lane / 4, t = lane % 4;
#define PA_A(r, k) ((float)(((r) + 2 * (k)) % 5 - 2))
#define PA_B(k, n) ((float)((3 * (k) + (n)) % 7 - 3))
  uint a0 = pa_pack2(PA_A(g, 2 * t), PA_A(g, 2 * t + 1));
  uint a1 = pa_pack2(PA_A(g + 8, 2 * t), PA_A(g + 8, 2 * t + 1));
  uint a2 = pa_pack2(PA_A(g, 2 * t + 8), PA_A(g, 2 * t + 9));
  uint a3 = pa_pack2(PA_A(g + 8, 2 * t + 8), PA_A(g + 8, 2 * t + 9));
  uint b0 = pa_pack2(PA_B(2 * t, g), PA_B(2 * t + 1, g));
  uint b1 = pa_pack2(PA_B(2 * t + 8, g), PA_B(2 * t + 9, g));
  float c[4] = {0.5f, 0.5f, 0.5f, 0.5f};
  pa_mma(c, a0, a1, a2, a3, b0, b1);
  for (int i = 0; i < 4; i++) out[lane * 4 + i] = c[i];
}

/* The pipeline probe: one warp copies a 16x16 matrix of 16-bit codes
 * (in[r * 16 + c]) into a padded local tile with cp.async (lane 31's chunk
 * zero-filled), then reads it back with ldmatrix x4 and x4.trans, lane l
 * addressing row l % 16, column 8 (l / 16); out[lane * 8 + i] = register i,
 * out[lane * 8 + 4 + i] = register i of the transposed load. */
__kernel __attribute__((reqd_work_group_size(32, 1, 1))) void pa_ldsm_probe(__global const ushort *in,
                                                                            __global uint *out) {
  __local uint4 tile[16 * 24 / 8];
  const int lane = get_local_id(0);
  const uint sa = pa_saddr(tile);
  pa_cp16(sa + ((lane / 2) * 24 + (lane % 2) * 8) * 2, in + lane * 8, lane != 31);
  pa_cp_commit();
  PA_CP_WAIT(0);
  barrier(CLK_LOCAL_MEM_FENCE);
  uint r[4], rt[4];
  const uint a = sa + ((lane % 16) * 24 + (lane / 16) * 8) * 2;
  pa_ldsm4(a, r);
  pa_ldsm4t(a, rt);
  for (int i = 0; i < 4; i++) out[lane * 8 + i] = r[i], out[lane * 8 + 4 + i] = rt[i];
}

#if !PROBE_ONLY

#define O_RAW PA_CAT(PA_RAW_, O_DT)
#define STO(AS, p, i, v) PA_CAT(PA_ST_, O_DT)(AS, p, i, v)
#define LDKV(AS, p, i) PA_CAT(PA_LD_, KV_DT)(AS, p, i)

#define F_LSE 1
#define F_SINKS 4
#define F_ALIBI 8
#define F_MASK 16

/* Q and K/V share KV_DT (f16 or bf16), handled as raw 16-bit words. */
#define Q_RAW ushort
#define KV_RAW ushort

#if PIPE

#define NT (WARPS * 32)
#define KS (DQK + 8) /* local row strides in halves */
#define VS (DV + 8)
#define NKS (DQK / 16) /* k-steps of Q K^T */
#define NB (BKV / 8)   /* n-blocks of S */
#define NDB (DV / 8)   /* n-blocks of O */
#define LOG2E 1.4426950408889634f
#define LN2 0.6931471805599453f

/* Issue the copies of BKV rows (keys kt..) of K or V into local memory at sa:
 * CH 16-byte chunks a row, consecutive threads on consecutive chunks. Keys at
 * or past ke are zeros (V rows must be finite: P is 0 there, 0 * NaN is not).
 * Without 16-byte alignment (kv_vec = 0) the copy goes through registers. */
inline void pa_stage(uint sa, __local ushort *l, int ls, int ch, __global const ushort *src, long base,
                     long sb, long st, long sh, long sp, int b, int hk, int k_start, int kt, int ke,
                     int page_size, __global const int *bt, long bt_off, long bt_sb, long bt_sp,
                     int kv_vec, int tid) {
  /* An opaque copy of the stride keeps the compiler from hoisting the chunk
   * addresses out of the tile loop (16 live 64-bit values, and spills). */
  long st_o;
  asm volatile("mov.b64 %0, %1;" : "=l"(st_o) : "l"(st));
  st = st_o;
  #pragma unroll
  for (int u = 0; u < (BKV * ch + NT - 1) / NT; u++) {
    const int c = tid + u * NT, r = c / ch, x = c - r * ch, j = kt + r;
    if (c >= BKV * ch) break;
    const bool ok = j < ke;
    const int jj = ok ? j : kt;
    long o;
    if (page_size > 0) {
      long page = bt[bt_off + b * bt_sb + (jj / page_size) * bt_sp];
      o = page * sp + (jj % page_size) * st;
    } else {
      o = b * sb + (long)(k_start + jj) * st;
    }
    __global const ushort *p = src + base + o + hk * sh + x * 8;
    if (kv_vec) {
      pa_cp16(sa + (r * ls + x * 8) * 2, p, ok);
    } else {
      uint4 y = (uint4)(0);
      if (ok)
        y = (uint4)(p[0] | (uint)p[1] << 16, p[2] | (uint)p[3] << 16, p[4] | (uint)p[5] << 16,
                    p[6] | (uint)p[7] << 16);
      *(__local uint4 *)(l + r * ls + x * 8) = y;
    }
  }
}

__kernel __attribute__((reqd_work_group_size(NT, 1, 1))) void pa_prefill_mma(PA_ATTENTION_ARGS()) {
  __local uint4 k_w[BKV * KS / 8];
  __local uint4 v_w[BKV * VS / 8];
  __local ushort *k_l = (__local ushort *)k_w, *v_l = (__local ushort *)v_w;
  const uint k_sa = pa_saddr(k_w), v_sa = pa_saddr(v_w);

  const int tid = get_local_id(0), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  __global const pa_work_t *wi = pa_work_item(sched, work_off);
  const int b = wi->b, hk = wi->hk, row0 = wi->row0, rows = wi->rows, split = wi->split;
  const int kb = wi->kv_begin, ke = wi->kv_end;
  __global const pa_req_t *rq = pa_request(sched, req_off, b);
  const int q_start = ragged_q ? rq->q_start : 0, k_start = ragged_k ? rq->k_start : 0;
  const int len_q = rq->len_q, len_k = rq->len_k, nsplit = rq->num_splits, part_row = rq->part_row;
  const int off = len_k - len_q;

  /* This lane's two rows: x = 0 -> warp row g, x = 1 -> g + 8. */
  int ri[2], rh[2], rv[2];
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    int r = warp * 16 + g + 8 * x;
    rv[x] = r < rows;
    int pr = row0 + (rv[x] ? r : 0);
    ri[x] = pr / group;
    rh[x] = hk * group + pr % group;
  }
  /* The warp's causal reach: its rows' diagonals span [dlo, dhi]. */
  const int wr0 = warp * 16, wlast = min(wr0 + 15, rows - 1);
  const int dlo = (row0 + wr0) / group + off, dhi = (row0 + max(wlast, 0)) / group + off;
  const bool wact = wr0 < rows;
  const bool simple = softcap <= 0.0f && !(flags & (F_ALIBI | F_MASK)) && wl < 0 && wr < 0;
  const float scale2 = scale * LOG2E;

  const int ntiles = ke > kb ? (ke - kb + BKV - 1) / BKV : 0;
  if (ntiles > 0)
    pa_stage(k_sa, k_l, KS, DQK / 8, k, k_off, k_sb, k_st, k_sh, k_sp, b, hk, k_start, kb, ke, page_size,
             bt, bt_off, bt_sb, bt_sp, kv_vec, tid);
  pa_cp_commit();
  if (ntiles > 0)
    pa_stage(v_sa, v_l, VS, DV / 8, v, v_off, v_sb, v_st, v_sh, v_sp, b, hk, k_start, kb, ke, page_size,
             bt, bt_off, bt_sb, bt_sp, kv_vec, tid);
  pa_cp_commit();

  /* Q fragments for all k-steps, straight from global (once per item). */
  uint qa[NKS][4];
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    long qo = q_off + b * q_sb + (long)(q_start + ri[x]) * q_st + rh[x] * q_sh;
    #pragma unroll
    for (int s = 0; s < NKS; s++)
      #pragma unroll
      for (int hh = 0; hh < 2; hh++) {
        int d = s * 16 + 2 * t + 8 * hh;
        uint lo = rv[x] ? q[qo + d] : 0, hi = rv[x] ? q[qo + d + 1] : 0;
        qa[s][x + 2 * hh] = lo | (hi << 16);
      }
  }

  /* ldmatrix lane addresses: K as B of S (keys x dims, x4 = two n-blocks by
   * two k-halves), V as B of O through .trans (keys x dims, x4 = two k-halves
   * by two n-blocks). */
  const uint k_ln = k_sa + (((lane & 7) + ((lane >> 4) << 3)) * KS + ((lane >> 3) & 1) * 8) * 2;
  const uint v_ln = v_sa + (((lane & 7) + (((lane >> 3) & 1) << 3)) * VS + (lane >> 4) * 8) * 2;

  float o[NDB][4];
  #pragma unroll
  for (int n = 0; n < NDB; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

  for (int it = 0; it < ntiles; it++) {
    const int kt = kb + it * BKV;
    /* A warp whose rows all lie causally before this tile has nothing here. */
    const bool live = wact && !(causal && kt > dhi);
    PA_CP_WAIT(1); /* this thread's K copies of tile it; V may still fly */
    barrier(CLK_LOCAL_MEM_FENCE);

    /* Opaque per tile, so the 64 fragment addresses (base + constant) are
     * formed at their use instead of hoisted out of the loop into registers. */
    uint k_a, v_a;
    asm volatile("mov.b32 %0, %1;" : "=r"(k_a) : "r"(k_ln));
    asm volatile("mov.b32 %0, %1;" : "=r"(v_a) : "r"(v_ln));
    float s[NB][4];
    if (live) {
      #pragma unroll
      for (int nb = 0; nb < NB; nb++) s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
      #pragma unroll
      for (int ks = 0; ks < NKS; ks++)
        #pragma unroll
        for (int np = 0; np < NB / 2; np++) {
          uint bf[4];
          pa_ldsm4(k_a + (np * 16 * KS + ks * 16) * 2, bf);
          pa_mma(s[2 * np], qa[ks][0], qa[ks][1], qa[ks][2], qa[ks][3], bf[0], bf[1]);
          pa_mma(s[2 * np + 1], qa[ks][0], qa[ks][1], qa[ks][2], qa[ks][3], bf[2], bf[3]);
        }
    }
    PA_CP_WAIT(0); /* V of tile it */
    barrier(CLK_LOCAL_MEM_FENCE); /* V visible; every warp is done with K */
    if (it + 1 < ntiles)
      pa_stage(k_sa, k_l, KS, DQK / 8, k, k_off, k_sb, k_st, k_sh, k_sp, b, hk, k_start, kt + BKV, ke,
               page_size, bt, bt_off, bt_sb, bt_sp, kv_vec, tid);
    pa_cp_commit();

    if (live) {
      /* The score rule in base 2: nothing to mask inside the range and left of
       * every row's diagonal; only the range end and the causal edge without
       * softcap/ALiBi/mask/window; else the whole rule per element. */
      const bool fast = simple && kt + BKV <= ke && (!causal || kt + BKV - 1 <= dlo);
      #pragma unroll
      for (int x = 0; x < 2; x++) {
        const int diag = ri[x] + off, lim = rv[x] ? (causal ? min(ke - 1, diag) : ke - 1) : -1;
        if (fast) {
          #pragma unroll
          for (int nb = 0; nb < NB; nb++) s[nb][2 * x] *= scale2, s[nb][2 * x + 1] *= scale2;
        } else if (simple) {
          #pragma unroll
          for (int nb = 0; nb < NB; nb++)
            #pragma unroll
            for (int e = 0; e < 2; e++) {
              const int j = kt + nb * 8 + 2 * t + e;
              s[nb][2 * x + e] = j <= lim ? s[nb][2 * x + e] * scale2 : -INFINITY;
            }
        } else {
          #pragma unroll
          for (int nb = 0; nb < NB; nb++)
            #pragma unroll
            for (int e = 0; e < 2; e++) {
              const int j = kt + nb * 8 + 2 * t + e;
              bool vis = rv[x] && j < ke && !(causal && j > diag) &&
                         (j < sink_tokens || ((wl < 0 || j >= diag - wl) && (wr < 0 || j <= diag + wr)));
              float y = -INFINITY;
              if (vis) {
                y = s[nb][2 * x + e] * scale;
                if (softcap > 0.0f) y = softcap * tanh(y / softcap);
                if (flags & F_ALIBI) y -= alibi[al_off + rh[x] * al_s] * fabs((float)(diag - j));
                if (flags & F_MASK) y += mask[m_off + b * m_sb + rh[x] * m_sh + ri[x] * m_si + j * m_sj];
                y *= LOG2E;
              }
              s[nb][2 * x + e] = y;
            }
        }
      }
      float mx[2] = {-INFINITY, -INFINITY};
      #pragma unroll
      for (int nb = 0; nb < NB; nb++)
        #pragma unroll
        for (int e = 0; e < 4; e++) mx[e / 2] = fmax(mx[e / 2], s[nb][e]);
      float alpha[2], mu[2];
      #pragma unroll
      for (int x = 0; x < 2; x++) {
        mx[x] = fmax(mx[x], pa_shfl_xor(mx[x], 1));
        mx[x] = fmax(mx[x], pa_shfl_xor(mx[x], 2));
        float m_new = fmax(m_run[x], mx[x]);
        mu[x] = pa_safe_max(m_new);
        alpha[x] = pa_ex2(m_run[x] - mu[x]);
        m_run[x] = m_new;
        l_run[x] *= alpha[x];
      }
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        o[n][0] *= alpha[0], o[n][1] *= alpha[0];
        o[n][2] *= alpha[1], o[n][3] *= alpha[1];
      }
      #pragma unroll
      for (int nb = 0; nb < NB; nb++)
        #pragma unroll
        for (int e = 0; e < 4; e++) {
          float p = pa_ex2(s[nb][e] - mu[e / 2]);
          s[nb][e] = p;
          l_run[e / 2] += p;
        }
      /* O += P V: P's C fragments are the A fragments of the next product. */
      #pragma unroll
      for (int ks = 0; ks < BKV / 16; ks++) {
        uint a0 = pa_pack2(s[2 * ks][0], s[2 * ks][1]), a1 = pa_pack2(s[2 * ks][2], s[2 * ks][3]);
        uint a2 = pa_pack2(s[2 * ks + 1][0], s[2 * ks + 1][1]);
        uint a3 = pa_pack2(s[2 * ks + 1][2], s[2 * ks + 1][3]);
        #pragma unroll
        for (int dn = 0; dn < DV / 16; dn++) {
          uint bf[4];
          pa_ldsm4t(v_a + (ks * 16 * VS + dn * 16) * 2, bf);
          pa_mma(o[2 * dn], a0, a1, a2, a3, bf[0], bf[1]);
          pa_mma(o[2 * dn + 1], a0, a1, a2, a3, bf[2], bf[3]);
        }
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE); /* every warp is done with V */
    if (it + 1 < ntiles)
      pa_stage(v_sa, v_l, VS, DV / 8, v, v_off, v_sb, v_st, v_sh, v_sp, b, hk, k_start, kt + BKV, ke,
               page_size, bt, bt_off, bt_sb, bt_sp, kv_vec, tid);
    pa_cp_commit();
  }

  /* Row sums across the quad, then normalise (sink only when not split). */
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    l_run[x] += pa_shfl_xor(l_run[x], 1);
    l_run[x] += pa_shfl_xor(l_run[x], 2);
  }
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    if (!rv[x]) continue;
    int i = ri[x], h = rh[x];
    float mm = m_run[x] * LN2, ll = l_run[x], fac, lse_v; /* natural log from here */
    PA_ROW_NORM(mm, ll, nsplit == 1 && (flags & F_SINKS), sinks[sk_off + h * sk_s], fac, lse_v);
    if (nsplit == 1) {
      long oo = pa_out_row(o_off, o_sb, o_st, o_sh, b, q_start, i, h);
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        STO(__global, out, oo + n * 8 + 2 * t, o[n][2 * x] * fac);
        STO(__global, out, oo + n * 8 + 2 * t + 1, o[n][2 * x + 1] * fac);
      }
      if (t == 0 && (flags & F_LSE)) lse[pa_out_row(l_off, l_sb, l_st, l_sh, b, q_start, i, h)] = lse_v;
    } else {
      long p = pa_part_row(part_row, split, len_q, hq, i, h);
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        ws[ws_o + p * DV + n * 8 + 2 * t] = o[n][2 * x] * fac;
        ws[ws_o + p * DV + n * 8 + 2 * t + 1] = o[n][2 * x + 1] * fac;
      }
      if (t == 0) ws[ws_l + p] = lse_v;
    }
  }
}

#else /* PIPE = 0 */

#define BQ 64
#define BKV 64
#define NT 128
#define KS (DQK + 8)
#define VS (BKV + 8)
#define NKS (DQK / 16) /* k-steps of Q K^T */
#define NB (BKV / 8)   /* n-blocks of S */
#define NDB (DV / 8)   /* n-blocks of O */

__kernel __attribute__((reqd_work_group_size(NT, 1, 1))) void pa_prefill_mma(PA_ATTENTION_ARGS()) {
  __local uint4 k_w[BKV * KS / 8];
  __local uint4 vt_w[DV * VS / 8];
  __local ushort *k_l = (__local ushort *)k_w, *vt_l = (__local ushort *)vt_w;
  __local long koff_l[BKV], voff_l[BKV];

  const int tid = get_local_id(0), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  __global const pa_work_t *wi = pa_work_item(sched, work_off);
  const int b = wi->b, hk = wi->hk, row0 = wi->row0, rows = wi->rows, split = wi->split;
  const int kb = wi->kv_begin, ke = wi->kv_end;
  __global const pa_req_t *rq = pa_request(sched, req_off, b);
  const int q_start = ragged_q ? rq->q_start : 0, k_start = ragged_k ? rq->k_start : 0;
  const int len_q = rq->len_q, len_k = rq->len_k, nsplit = rq->num_splits, part_row = rq->part_row;
  const int off = len_k - len_q;

  /* This lane's two rows: x = 0 -> warp row g, x = 1 -> g + 8. */
  int ri[2], rh[2], rv[2];
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    int r = warp * 16 + g + 8 * x;
    rv[x] = r < rows;
    int pr = row0 + (rv[x] ? r : 0);
    ri[x] = pr / group;
    rh[x] = hk * group + pr % group;
  }
  /* Q fragments for all k-steps, straight from global (once per item). */
  uint qa[NKS][4];
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    long qo = q_off + b * q_sb + (long)(q_start + ri[x]) * q_st + rh[x] * q_sh;
    #pragma unroll
    for (int s = 0; s < NKS; s++)
      #pragma unroll
      for (int hh = 0; hh < 2; hh++) {
        int d = s * 16 + 2 * t + 8 * hh;
        uint lo = rv[x] ? q[qo + d] : 0, hi = rv[x] ? q[qo + d + 1] : 0;
        qa[s][x + 2 * hh] = lo | (hi << 16);
      }
  }

  float o[NDB][4];
  #pragma unroll
  for (int n = 0; n < NDB; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};

  for (int kt = kb; kt < ke; kt += BKV) {
    for (int c = tid; c < BKV; c += NT) {
      int j = kt + c < ke ? kt + c : kt;
      long ko, vo;
      if (page_size > 0) {
        long page = bt[bt_off + b * bt_sb + (j / page_size) * bt_sp];
        long in = j % page_size;
        ko = page * k_sp + in * k_st;
        vo = page * v_sp + in * v_st;
      } else {
        ko = b * k_sb + (long)(k_start + j) * k_st;
        vo = b * v_sb + (long)(k_start + j) * v_st;
      }
      koff_l[c] = k_off + ko + hk * k_sh;
      voff_l[c] = v_off + vo + hk * v_sh;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    /* K row-major, 8 dims per thread step (consecutive threads: consecutive dims). */
    for (int e = tid; e < BKV * (DQK / 8); e += NT) {
      int c = e / (DQK / 8), d = (e - c * (DQK / 8)) * 8;
      uint4 x = (uint4)(0);
      if (kt + c < ke) {
        if (kv_vec) {
          x = *(__global const uint4 *)(k + koff_l[c] + d);
        } else {
          __global const ushort *p = k + koff_l[c] + d;
          x = (uint4)(p[0] | (uint)p[1] << 16, p[2] | (uint)p[3] << 16, p[4] | (uint)p[5] << 16,
                      p[6] | (uint)p[7] << 16);
        }
      }
      k_w[(c * KS + d) / 8] = x;
    }
    /* V transposed; consecutive threads take consecutive keys so the 16-bit
     * stores of a warp spread over 16 banks. */
    for (int e = tid; e < BKV * (DV / 8); e += NT) {
      int c = e % BKV, d = (e / BKV) * 8;
      uint4 x = (uint4)(0);
      if (kt + c < ke) {
        if (kv_vec) {
          x = *(__global const uint4 *)(v + voff_l[c] + d);
        } else {
          __global const ushort *p = v + voff_l[c] + d;
          x = (uint4)(p[0] | (uint)p[1] << 16, p[2] | (uint)p[3] << 16, p[4] | (uint)p[5] << 16,
                      p[6] | (uint)p[7] << 16);
        }
      }
      vt_l[(d + 0) * VS + c] = (ushort)x.s0, vt_l[(d + 1) * VS + c] = (ushort)(x.s0 >> 16);
      vt_l[(d + 2) * VS + c] = (ushort)x.s1, vt_l[(d + 3) * VS + c] = (ushort)(x.s1 >> 16);
      vt_l[(d + 4) * VS + c] = (ushort)x.s2, vt_l[(d + 5) * VS + c] = (ushort)(x.s2 >> 16);
      vt_l[(d + 6) * VS + c] = (ushort)x.s3, vt_l[(d + 7) * VS + c] = (ushort)(x.s3 >> 16);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* S = Q K^T for this warp's 16 rows x 64 keys. */
    float s[NB][4];
    #pragma unroll
    for (int nb = 0; nb < NB; nb++) {
      s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
      __local const uint *kr = (__local const uint *)(k_l + (nb * 8 + g) * KS + 2 * t);
      #pragma unroll
      for (int ks = 0; ks < NKS; ks++)
        pa_mma(s[nb], qa[ks][0], qa[ks][1], qa[ks][2], qa[ks][3], kr[ks * 8], kr[ks * 8 + 4]);
    }
    /* The score rule, per element; then the online softmax per row. */
    float mx[2] = {-INFINITY, -INFINITY};
    #pragma unroll
    for (int nb = 0; nb < NB; nb++)
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        int x = e / 2, j = kt + nb * 8 + 2 * t + (e & 1), diag = ri[x] + off;
        bool vis = rv[x] && j < ke && !(causal && j > diag) &&
                   (j < sink_tokens || ((wl < 0 || j >= diag - wl) && (wr < 0 || j <= diag + wr)));
        float y = -INFINITY;
        if (vis) {
          y = s[nb][e] * scale;
          if (softcap > 0.0f) y = softcap * tanh(y / softcap);
          if (flags & F_ALIBI) y -= alibi[al_off + rh[x] * al_s] * fabs((float)(diag - j));
          if (flags & F_MASK) y += mask[m_off + b * m_sb + rh[x] * m_sh + ri[x] * m_si + j * m_sj];
        }
        s[nb][e] = y;
        mx[x] = fmax(mx[x], y);
      }
    float alpha[2], mu[2];
    #pragma unroll
    for (int x = 0; x < 2; x++) {
      mx[x] = fmax(mx[x], pa_shfl_xor(mx[x], 1));
      mx[x] = fmax(mx[x], pa_shfl_xor(mx[x], 2));
      float m_new = fmax(m_run[x], mx[x]);
      mu[x] = pa_safe_max(m_new);
      alpha[x] = exp(m_run[x] - mu[x]);
      m_run[x] = m_new;
      l_run[x] *= alpha[x];
    }
    #pragma unroll
    for (int n = 0; n < NDB; n++) {
      o[n][0] *= alpha[0], o[n][1] *= alpha[0];
      o[n][2] *= alpha[1], o[n][3] *= alpha[1];
    }
    #pragma unroll
    for (int nb = 0; nb < NB; nb++)
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        float p = exp(s[nb][e] - mu[e / 2]);
        s[nb][e] = p;
        l_run[e / 2] += p;
      }
    /* O += P V: P's C fragments are the A fragments of the next product. */
    #pragma unroll
    for (int ks = 0; ks < BKV / 16; ks++) {
      uint a0 = pa_pack2(s[2 * ks][0], s[2 * ks][1]), a1 = pa_pack2(s[2 * ks][2], s[2 * ks][3]);
      uint a2 = pa_pack2(s[2 * ks + 1][0], s[2 * ks + 1][1]);
      uint a3 = pa_pack2(s[2 * ks + 1][2], s[2 * ks + 1][3]);
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        __local const uint *vr = (__local const uint *)(vt_l + (n * 8 + g) * VS + ks * 16 + 2 * t);
        pa_mma(o[n], a0, a1, a2, a3, vr[0], vr[4]);
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }

  /* Row sums across the quad, then normalise (sink only when not split). */
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    l_run[x] += pa_shfl_xor(l_run[x], 1);
    l_run[x] += pa_shfl_xor(l_run[x], 2);
  }
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    if (!rv[x]) continue;
    int i = ri[x], h = rh[x];
    float mm = m_run[x], ll = l_run[x], fac, lse_v;
    PA_ROW_NORM(mm, ll, nsplit == 1 && (flags & F_SINKS), sinks[sk_off + h * sk_s], fac, lse_v);
    if (nsplit == 1) {
      long oo = pa_out_row(o_off, o_sb, o_st, o_sh, b, q_start, i, h);
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        STO(__global, out, oo + n * 8 + 2 * t, o[n][2 * x] * fac);
        STO(__global, out, oo + n * 8 + 2 * t + 1, o[n][2 * x + 1] * fac);
      }
      if (t == 0 && (flags & F_LSE)) lse[pa_out_row(l_off, l_sb, l_st, l_sh, b, q_start, i, h)] = lse_v;
    } else {
      long p = pa_part_row(part_row, split, len_q, hq, i, h);
      #pragma unroll
      for (int n = 0; n < NDB; n++) {
        ws[ws_o + p * DV + n * 8 + 2 * t] = o[n][2 * x] * fac;
        ws[ws_o + p * DV + n * 8 + 2 * t + 1] = o[n][2 * x + 1] * fac;
      }
      if (t == 0) ws[ws_l + p] = lse_v;
    }
  }
}
#endif /* PIPE */
#endif /* !PROBE_ONLY */

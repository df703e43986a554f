/* decode_w.cl: pa_decode_w, decode.cl's work item with no barrier in the key
 * loop, for NVIDIA after the inline-PTX probe (NV=1: warp shuffles through shfl.sync) and, for
 * testing its arithmetic anywhere, with the shuffles emulated through local
 * memory (NV=2, slow). No barrier in the key loop: each warp waits on its
 * own loads only.
 *
 * WARPS warps of 32 lanes; a warp holds KW = 32 / DL lane groups, each group
 * DL lanes of 8 dims (as in pa_decode). Group gi takes U = DL / BQ keys per
 * step (keys kb + STEP * s + U * gi + u), so its U x BQ partial dots are DL
 * values: a reduce-scatter over the DL lanes (DL - 1 shuffles) leaves lane li
 * the whole score of (key li / BQ, row li % BQ), which it masks, scales and
 * exponentiates alone; the U x BQ probabilities then reach every lane by
 * indexed shuffles for P V. Each group keeps its own online softmax (base 2,
 * log2(e) folded into the score), merged across groups at the end.
 * K/V arrive through the cp.async ring below (CPA=1), or through registers
 * one step ahead (K loads issued after QK, V loads after P V); block-table
 * entries are read a step before the loads that need them.
 *
 * More warps helped and deeper rings did not (bench/RESULTS.md, OpenCL
 * decode), so the loop is bound by its instruction chain, not by bytes in
 * flight.
 *
 * Defines: as pa_decode without KG, plus WARPS, NV (1 PTX, 2 emulated), NC
 * (1: K/V through ld.global.nc), CPA STAGES CP_WAIT (the ring), PAGE (the
 * page size, optional). Needs BQ <= DL <= 32. */
#define NTW (WARPS * 32)
#define KW (32 / DL)
#define NG (WARPS * KW)
#define U (DL / BQ)
#define STEP (NG * U)
#define PA_LOG2E 1.4426950408889634f
#define PA_LN2 0.6931471805599453f

#if NV == 1 /* pa_shfl_xor, pa_shfl_idx: ptx.cl */
#define SHX(x, m) pa_shfl_xor(x, m)
#define PA_XC 0
#define SHI(x, s) pa_shfl_idx(x, s)
#else
/* Every work-item reaches every shuffle (the step count is uniform over the
 * work-group), so barriers make local memory a shuffle. */
inline float pa_shx_emu(float x, int m, __local float *xc, int t) {
  barrier(CLK_LOCAL_MEM_FENCE);
  xc[t] = x;
  barrier(CLK_LOCAL_MEM_FENCE);
  return xc[t ^ m];
}
inline float pa_shi_emu(float x, int src, __local float *xc, int t) {
  barrier(CLK_LOCAL_MEM_FENCE);
  xc[t] = x;
  barrier(CLK_LOCAL_MEM_FENCE);
  return xc[(t & ~31) | src];
}
#define SHX(x, m) pa_shx_emu(x, m, xc_l, t)
#define PA_XC xc_l
#define SHI(x, s) pa_shi_emu(x, s, xc_l, t)
#endif

#if NC == 1 && KV_FP8
inline raw8 load_kv(__global const KV_RAW *p, long off, int d0, int dlim, int vec) {
  if (vec) {
    uint2 u;
    asm("ld.global.nc.v2.u32 {%0,%1}, [%2];" : "=r"(u.x), "=r"(u.y) : "l"((ulong)(p + off + d0)));
    return u;
  }
  return load_raw(p, off, d0, dlim, vec);
}
#elif NC == 1 && KV_DT != 0
inline raw8 load_kv(__global const KV_RAW *p, long off, int d0, int dlim, int vec) {
  if (vec) {
    uint4 u;
    asm("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w) : "l"((ulong)(p + off + d0)));
    return u;
  }
  return load_raw(p, off, d0, dlim, vec);
}
#else
#define load_kv load_raw
#endif

/* Block-table entries of keys j0 .. j0 + U - 1 (0 past the range or unpaged). */
inline void pa_pages(int *pg, int j0, int ke, __global const int *bt, long bt_row, long bt_sp, int page_size) {
  #pragma unroll
  for (int u = 0; u < U; u++) {
    int j = j0 + u;
    pg[u] = (page_size > 0 && j < ke) ? bt[bt_row + (j / page_size) * bt_sp] : 0;
  }
}
/* Element offset of key j's row: paged through its page, else from the
 * request's first row. */
inline long pa_key_off(int j, int page, int page_size, long sp, long st, long first) {
  return page_size > 0 ? (long)page * sp + (long)(j % page_size) * st : first + (long)j * st;
}

/* CPA=1 (16-bit K/V): K/V go through a ring of STAGES steps in local memory,
 * [stage][K, V][u][work-item] x 16 bytes, filled by cp.async on NVIDIA, so
 * STAGES - 1 steps are in flight without holding registers. Each work-item
 * reads back only what it copied, so waiting on its own copies is enough (no
 * barrier). NV=2 fills the ring with plain loads (tests the indexing). */
#ifndef CPA
#define CPA 0
#endif
#if CPA
inline void pa_stage(__local uint4 *dst, __global const KV_RAW *p, long off, int d0, int dlim, int vec, bool valid) {
#if NV == 1 && VEC_OK
  if (valid && vec) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"((uint)(size_t)dst), "l"((ulong)(p + off + d0))
                 : "memory");
    return;
  }
#endif
  *dst = valid ? load_raw(p, off, d0, dlim, vec) : (uint4)(0);
}
/* Copies of one step into its stage (this work-item's entries; zeros past
 * the range): K at dst[u * NTW], V at dst[(U + u) * NTW]. */
static inline __attribute__((always_inline)) void pa_stage_step(__local uint4 *dst, int j0, const int *pg, int ke, int d0, int vec, int page_size,
                          __global const KV_RAW *k, long k_base, long k_sp, long k_st, long k_first,
                          __global const KV_RAW *v, long v_base, long v_sp, long v_st, long v_first) {
  #pragma unroll
  for (int u = 0; u < U; u++) {
    int j = j0 + u;
    pa_stage(dst + u * NTW, k, k_base + pa_key_off(j, pg[u], page_size, k_sp, k_st, k_first), d0, DQK, vec,
             j < ke && d0 < DQK);
    pa_stage(dst + (U + u) * NTW, v, v_base + pa_key_off(j, pg[u], page_size, v_sp, v_st, v_first), d0, DV, vec,
             j < ke && d0 < DV);
  }
}
#if NV != 1 /* NV=1: pa_cp_commit, PA_CP_WAIT, PA_CP_WAIT_ALL from ptx.cl */
inline void pa_cp_commit(void) {}
#define PA_CP_WAIT(n)
#define PA_CP_WAIT_ALL()
#endif
#endif

/* One level of the reduce-scatter over a lane group: lanes with bit h set
 * keep the upper h of the 2h live entries, the others the lower h, and add
 * what the partner lane (li ^ h) sent. After levels DL/2 .. 1, lane li holds
 * entry li. */
static inline void pa_rs_level(float *sc, const int h, int li, __local float *xc_l, int t) {
  /* a bit mask, not a select: compilers turn a select between two array
   * elements into a select of addresses and move the array to memory */
  uint up = (li & h) ? 0xffffffffu : 0u;
  #pragma unroll
  for (int i = 0; i < h; i++) {
    uint lo = as_uint(sc[i]), hi = as_uint(sc[i + h]);
    float send = as_float((lo & up) | (hi & ~up)), keep = as_float((hi & up) | (lo & ~up));
    sc[i] = keep + SHX(send, h);
  }
}

/* fp8 K/V (KV_DT 4, 5; through registers, CPA=0): the dequantisation
 * scales follow the usual arguments as in attention.cl; K's joins the score
 * scale, V's the output factor. */
#if KV_FP8
#define PA_KV8_ARGS , __global const float *k_scale, long ks_off, long ks_s, __global const float *v_scale, long vs_off, long vs_s
#else
#define PA_KV8_ARGS
#endif

__kernel __attribute__((reqd_work_group_size(NTW, 1, 1))) void pa_decode_w(PA_ATTENTION_ARGS(restrict) PA_KV8_ARGS) {
#if CPA
  /* the ring during the key loop, the groups' outputs after it */
#define RING (STAGES * 2 * U * NTW)
#define RED ((NG * BQ * DV + 3) / 4)
  __local uint4 ring[RING > RED ? RING : RED];
  __local float *red_l = (__local float *)ring;
#else
  __local float red_l[NG * BQ * DV];
#endif
  __local float m_l[NG * BQ], l_l[NG * BQ];
  __local int rowi_l[BQ], rowh_l[BQ];
#if NV != 1
  __local float xc_l[NTW];
#endif

#ifdef PAGE
  page_size = PAGE; /* the plan's page size as a constant: no runtime divisions */
#endif
  const int t = get_local_id(0), lane = t & 31, li = t % DL, gi = t / DL, d0 = li * SL;
  const int gb = lane & ~(DL - 1); /* the group's first lane in the warp */
  const int my_u = li / BQ, my_r = li % BQ;
  __global const pa_work_t *wi = pa_work_item(sched, work_off);
  const int b = wi->b, hk = wi->hk, row0 = wi->row0, rows = wi->rows, split = wi->split;
  const int kb = wi->kv_begin, ke = wi->kv_end;
  __global const pa_req_t *rq = pa_request(sched, req_off, b);
  const int q_start = ragged_q ? rq->q_start : 0, k_start = ragged_k ? rq->k_start : 0;
  const int len_q = rq->len_q, len_k = rq->len_k, nsplit = rq->num_splits, part_row = rq->part_row;
  const int off = len_k - len_q;
#if KV_FP8
  scale *= k_scale[ks_off + hk * ks_s];
  const float v_fac = v_scale[vs_off + hk * vs_s];
#else
  const float v_fac = 1.0f;
#endif

  if (t < BQ) {
    int pr = row0 + (t < rows ? t : 0);
    rowi_l[t] = pr / group;
    rowh_l[t] = hk * group + pr % group;
  }
  barrier(CLK_LOCAL_MEM_FENCE);

  float qv[BQ][SL], acc[BQ][SL], m[BQ], l[BQ];
  #pragma unroll
  for (int r = 0; r < BQ; r++) {
    long qo = q_off + b * q_sb + (long)(q_start + rowi_l[r]) * q_st + rowh_l[r] * q_sh;
    #pragma unroll
    for (int i = 0; i < SL; i++) {
      qv[r][i] = (r < rows && d0 + i < DQK) ? LDQ(__global, q, qo + d0 + i) : 0.0f;
      acc[r][i] = 0.0f;
    }
    m[r] = -INFINITY; /* base-2 units in the loop */
    l[r] = 0.0f;
  }
  /* what lane li scores: row my_r of every step */
  const int my_i = rowi_l[my_r], my_h = rowh_l[my_r], my_diag = my_i + off;
  const float my_slope = (flags & F_ALIBI) ? alibi[al_off + my_h * al_s] : 0.0f;
  const bool my_row = my_r < rows;

  const int nsteps = ke > kb ? (ke - kb + STEP - 1) / STEP : 0;
  const long bt_row = bt_off + b * bt_sb;
  const long k_base = k_off + hk * k_sh, v_base = v_off + hk * v_sh;
  int pg[U]; /* pages of the next step whose loads are issued */
#if !CPA
  raw8 kr[U], vr[U];
#endif

  /* step s, slot u of this group: key kb + STEP * s + U * gi + u */
  const int kg0 = kb + gi * U;
#if CPA
  /* step s -> ring stage s % STAGES; entries past the range are zeros */
  const long k_first = b * k_sb + (long)k_start * k_st, v_first = b * v_sb + (long)k_start * v_st;
#define PA_STAGE_STEP(st_)                                                                              \
  pa_stage_step(ring + (((st_) % STAGES) * 2 * U) * NTW + t, kg0 + (st_) * STEP, pg, ke, d0, kv_vec, \
                page_size, k, k_base, k_sp, k_st, k_first, v, v_base, v_sp, v_st, v_first)
  pa_pages(pg, kg0, ke, bt, bt_row, bt_sp, page_size);
  for (int s0 = 0; s0 < STAGES - 1; s0++) {
    if (s0 < nsteps) {
      PA_STAGE_STEP(s0);
    }
    pa_pages(pg, kg0 + (s0 + 1) * STEP, ke, bt, bt_row, bt_sp, page_size);
    pa_cp_commit();
  }
#else
  pa_pages(pg, kg0, ke, bt, bt_row, bt_sp, page_size);
  #pragma unroll
  for (int u = 0; u < U; u++) {
    kr[u] = vr[u] = (raw8)(0);
    int j = kg0 + u;
    if (j < ke && d0 < DQK) kr[u] = load_kv(k, k_base + pa_key_off(j, pg[u], page_size, k_sp, k_st, b * k_sb + (long)k_start * k_st), d0, DQK, kv_vec);
    if (j < ke && d0 < DV) vr[u] = load_kv(v, v_base + pa_key_off(j, pg[u], page_size, v_sp, v_st, b * v_sb + (long)k_start * v_st), d0, DV, kv_vec);
  }
  pa_pages(pg, kg0 + STEP, ke, bt, bt_row, bt_sp, page_size);
#endif
  for (int s = 0; s < nsteps; s++) {
#if CPA
    /* refill the stage step s - 1 used; then this step's copies must be in */
    if (s + STAGES - 1 < nsteps) {
      PA_STAGE_STEP(s + STAGES - 1);
    }
    pa_pages(pg, kg0 + (s + STAGES) * STEP, ke, bt, bt_row, bt_sp, page_size);
    pa_cp_commit();
    PA_CP_WAIT(CP_WAIT);
    __local const uint4 *kst = ring + ((s % STAGES) * 2 * U) * NTW + t, *vst = kst + U * NTW;
#endif
    /* QK: flat index f = u * BQ + r */
    float sc[DL];
    #pragma unroll
    for (int u = 0; u < U; u++) {
#if CPA
      slice8 ks = to_slice(kst[u * NTW]);
#else
      slice8 ks = to_slice(kr[u]);
#endif
      #pragma unroll
      for (int r = 0; r < BQ; r++) {
        float a = 0.0f;
        #pragma unroll
        for (int i = 0; i < SL; i++) a = fma(qv[r][i], ks.x[i], a);
        sc[u * BQ + r] = a;
      }
    }
#if !CPA
    if (s + 1 < nsteps) {
      #pragma unroll
      for (int u = 0; u < U; u++) {
        int j = kg0 + (s + 1) * STEP + u;
        kr[u] = (raw8)(0);
        if (j < ke && d0 < DQK) kr[u] = load_kv(k, k_base + pa_key_off(j, pg[u], page_size, k_sp, k_st, b * k_sb + (long)k_start * k_st), d0, DQK, kv_vec);
      }
    }
#endif

    /* reduce-scatter over the group: after the step of offset h, a lane with
     * bit h set holds the upper half; lane li ends with entry li */
    pa_rs_level(sc, DL / 2, li, PA_XC, t);
#if DL >= 4
    pa_rs_level(sc, DL / 4, li, PA_XC, t);
#endif
#if DL >= 8
    pa_rs_level(sc, DL / 8, li, PA_XC, t);
#endif
#if DL >= 16
    pa_rs_level(sc, DL / 16, li, PA_XC, t);
#endif
#if DL >= 32
    pa_rs_level(sc, DL / 32, li, PA_XC, t);
#endif

    /* this lane's score, then the row maximum over the group's U keys */
    int j = kg0 + s * STEP + my_u;
    float x = -INFINITY;
    bool vis = my_row && j < ke && !(causal && j > my_diag) &&
               (j < sink_tokens || ((wl < 0 || j >= my_diag - wl) && (wr < 0 || j <= my_diag + wr)));
    if (vis) {
      x = sc[0] * scale;
      if (softcap > 0.0f) x = softcap * tanh(x / softcap);
      if (flags & F_ALIBI) x -= my_slope * fabs((float)(my_diag - j));
      if (flags & F_MASK) x += mask[m_off + b * m_sb + my_h * m_sh + my_i * m_si + j * m_sj];
      x *= PA_LOG2E;
    }
    float mx = x;
    #pragma unroll
    for (int lv = 0; lv < 5; lv++) /* h = BQ, 2 BQ, ..., DL / 2 */
      if ((BQ << lv) < DL) mx = fmax(mx, SHX(mx, BQ << lv));
    float m_old = m[0];
    #pragma unroll
    for (int r = 1; r < BQ; r++) m_old = my_r == r ? m[r] : m_old;
    float m_own = fmax(m_old, mx);
    float p_own = exp2(x - pa_safe_max(m_own));

    /* every lane: the new maxima and all U x BQ probabilities */
    float pa[DL], alpha[BQ];
    #pragma unroll
    for (int r = 0; r < BQ; r++) {
      float mn = SHI(m_own, gb + r);
      alpha[r] = exp2(m[r] - pa_safe_max(mn));
      m[r] = mn;
    }
    #pragma unroll
    for (int f = 0; f < DL; f++) pa[f] = SHI(p_own, gb + f);
    #pragma unroll
    for (int r = 0; r < BQ; r++) {
      float sum = 0.0f;
      #pragma unroll
      for (int u = 0; u < U; u++) sum += pa[u * BQ + r];
      l[r] = l[r] * alpha[r] + sum;
      #pragma unroll
      for (int i = 0; i < SL; i++) acc[r][i] *= alpha[r];
    }
    #pragma unroll
    for (int u = 0; u < U; u++) {
#if CPA
      slice8 vs = to_slice(vst[u * NTW]);
#else
      slice8 vs = to_slice(vr[u]);
#endif
      #pragma unroll
      for (int r = 0; r < BQ; r++)
        #pragma unroll
        for (int i = 0; i < SL; i++) acc[r][i] = fma(pa[u * BQ + r], vs.x[i], acc[r][i]);
    }
#if !CPA
    if (s + 1 < nsteps) {
      #pragma unroll
      for (int u = 0; u < U; u++) {
        int j = kg0 + (s + 1) * STEP + u;
        vr[u] = (raw8)(0);
        if (j < ke && d0 < DV) vr[u] = load_kv(v, v_base + pa_key_off(j, pg[u], page_size, v_sp, v_st, b * v_sb + (long)k_start * v_st), d0, DV, kv_vec);
      }
      pa_pages(pg, kg0 + (s + 2) * STEP, ke, bt, bt_row, bt_sp, page_size);
    }
#endif
  }
#if CPA
  PA_CP_WAIT_ALL();
#undef PA_STAGE_STEP
#endif

  /* Merge the NG group states as pa_decode does (natural log units again). */
  #pragma unroll
  for (int r = 0; r < BQ; r++) m[r] *= PA_LN2;
  if (li == 0)
    #pragma unroll
    for (int r = 0; r < BQ; r++) m_l[gi * BQ + r] = m[r], l_l[gi * BQ + r] = l[r];
  barrier(CLK_LOCAL_MEM_FENCE);
  #pragma unroll
  for (int r = 0; r < BQ; r++) {
    float mm = -INFINITY;
    for (int u = 0; u < NG; u++) mm = fmax(mm, m_l[u * BQ + r]);
    float f = exp(m[r] - pa_safe_max(mm));
    #pragma unroll
    for (int i = 0; i < SL; i++)
      if (d0 + i < DV) red_l[(gi * BQ + r) * DV + d0 + i] = acc[r][i] * f;
  }
  barrier(CLK_LOCAL_MEM_FENCE);

  for (int e = t; e < BQ * DV; e += NTW) {
    int r = e / DV, d = e - r * DV;
    if (r >= rows) continue;
    float mm = -INFINITY, ll = 0.0f;
    for (int u = 0; u < NG; u++) mm = fmax(mm, m_l[u * BQ + r]);
    for (int u = 0; u < NG; u++) ll += l_l[u * BQ + r] * exp(m_l[u * BQ + r] - pa_safe_max(mm));
    float o = 0.0f;
    for (int u = 0; u < NG; u++) o += red_l[(u * BQ + r) * DV + d];
    int i = rowi_l[r], h = rowh_l[r];
    float fac, lse_v;
    PA_ROW_NORM(mm, ll, nsplit == 1 && (flags & F_SINKS), sinks[sk_off + h * sk_s], fac, lse_v);
    fac *= v_fac;
    if (nsplit == 1) {
      STO(__global, out, pa_out_row(o_off, o_sb, o_st, o_sh, b, q_start, i, h) + d, o * fac);
      if (d == 0 && (flags & F_LSE)) lse[pa_out_row(l_off, l_sb, l_st, l_sh, b, q_start, i, h)] = lse_v;
    } else {
      long p = pa_part_row(part_row, split, len_q, hq, i, h);
      ws[ws_o + p * DV + d] = o * fac;
      if (d == 0) ws[ws_l + p] = lse_v;
    }
  }
}

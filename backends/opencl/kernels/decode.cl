/* decode.cl: attention work items with few packed rows (decode, speculative
 * decode: g * len_q <= BQ), where the tile kernel spends its time staging K/V
 * through local memory. Bandwidth-bound, so K and V go straight from global
 * memory into registers, 8 elements (16 or 32 bytes) per thread per key.
 *
 * Thread layout: NT = KG * DL. Lane dl owns dims [8 dl, 8 dl + 8) of Q, K, V
 * and O (Q and the O accumulator live in registers); key group kg owns keys
 * kg + KG * n (n < KPT) of each BKV = KG * KPT key tile. Per tile:
 *   S: each thread loads its keys' K and V slices, dots K with its Q slice
 *      -> partial scores to local;                               barrier
 *   R: partials summed over the DL lanes, scale/softcap/ALiBi/mask/visibility
 *      -> scores to local;                                        barrier
 *   P: each key group runs its own online softmax over its keys and
 *      accumulates P V into its registers (all DL lanes of a group agree).
 * The KG per-group states merge at the end by the merge rule.
 *
 * Defines: DQK DV Q_DT KV_DT O_DT BQ BKV DL KG (MLA unused, same arguments as
 * attention.cl so the host sets both alike). */

#define NT (KG * DL)
#define KPT (BKV / KG)
#define SL 8 /* elements per lane */

#define Q_RAW PA_CAT(PA_RAW_, Q_DT)
#define KV_RAW PA_CAT(PA_RAW_, KV_DT)
#define O_RAW PA_CAT(PA_RAW_, O_DT)
#define LDQ(AS, p, i) PA_CAT(PA_LD_, Q_DT)(AS, p, i)
#define LDKV(AS, p, i) PA_CAT(PA_LD_, KV_DT)(AS, p, i)
#define STO(AS, p, i, v) PA_CAT(PA_ST_, O_DT)(AS, p, i, v)
#define VEC_OK (DQK % SL == 0 && DV % SL == 0)

#define F_LSE 1
#define F_SINKS 4
#define F_ALIBI 8
#define F_MASK 16

/* One lane's 8 elements of a K or V row: raw (as loaded, so 16-bit data keeps
 * half the registers while loads are in flight) and as floats. */
#if KV_DT == 0
typedef float8 raw8;
#else
typedef uint4 raw8;
#endif
typedef struct {
  float x[SL];
} slice8;

inline raw8 load_raw(__global const KV_RAW *p, long off, int d0, int dlim, int vec) {
#if VEC_OK
  if (vec) {
#if KV_DT == 0
    float4 a = *(__global const float4 *)(p + off + d0), b = *(__global const float4 *)(p + off + d0 + 4);
    return (float8)(a, b);
#else
    return *(__global const uint4 *)(p + off + d0);
#endif
  }
#endif
  KV_RAW e[SL];
  #pragma unroll
  for (int i = 0; i < SL; i++) e[i] = d0 + i < dlim ? p[off + d0 + i] : (KV_RAW)0;
#if KV_DT == 0
  return (float8)(e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]);
#else
  return (uint4)(e[0] | (uint)e[1] << 16, e[2] | (uint)e[3] << 16, e[4] | (uint)e[5] << 16,
                 e[6] | (uint)e[7] << 16);
#endif
}

inline slice8 to_slice(raw8 u) {
  slice8 s;
#if KV_DT == 0
  s.x[0] = u.s0, s.x[1] = u.s1, s.x[2] = u.s2, s.x[3] = u.s3;
  s.x[4] = u.s4, s.x[5] = u.s5, s.x[6] = u.s6, s.x[7] = u.s7;
#elif KV_DT == 1
  float8 f = vload_half8(0, (const half *)&u);
  s.x[0] = f.s0, s.x[1] = f.s1, s.x[2] = f.s2, s.x[3] = f.s3;
  s.x[4] = f.s4, s.x[5] = f.s5, s.x[6] = f.s6, s.x[7] = f.s7;
#else
  s.x[0] = as_float(u.s0 << 16), s.x[1] = as_float(u.s0 & 0xffff0000u);
  s.x[2] = as_float(u.s1 << 16), s.x[3] = as_float(u.s1 & 0xffff0000u);
  s.x[4] = as_float(u.s2 << 16), s.x[5] = as_float(u.s2 & 0xffff0000u);
  s.x[6] = as_float(u.s3 << 16), s.x[7] = as_float(u.s3 & 0xffff0000u);
#endif
  return s;
}

#if !defined(WARPS) && !defined(TC)
__kernel __attribute__((reqd_work_group_size(NT, 1, 1))) void pa_decode(
    __global const Q_RAW *q, long q_off, long q_sb, long q_st, long q_sh,
    __global const Q_RAW *q2, long q2_off, long q2_st, long q2_sh,
    __global const KV_RAW *k, long k_off, long k_sb, long k_st, long k_sh, long k_sp,
    __global const KV_RAW *k2, long k2_off, long k2_st, long k2_sp,
    __global const KV_RAW *v, long v_off, long v_sb, long v_st, long v_sh, long v_sp,
    __global O_RAW *out, long o_off, long o_sb, long o_st, long o_sh,
    __global float *lse, long l_off, long l_sb, long l_st, long l_sh,
    __global const int *bt, long bt_off, long bt_sb, long bt_sp,
    __global const float *mask, long m_off, long m_sb, long m_sh, long m_si, long m_sj,
    __global const float *sinks, long sk_off, long sk_s,
    __global const float *alibi, long al_off, long al_s,
    __global float *ws, long ws_o, long ws_l,
    __global const int *sched, int req_off, int work_off,
    int ragged_q, int ragged_k, int page_size, int group, int hq, int kv_vec,
    float scale, float softcap, int causal, int wl, int wr, int sink_tokens, int flags) {
  /* partial scores during the key loop, per-group outputs after it */
  __local float scratch_l[(BKV * BQ * (DL + 1) > KG * BQ * DV) ? BKV * BQ * (DL + 1) : KG * BQ * DV];
  __local float *part_l = scratch_l, *red_l = scratch_l;
  __local float s_l[BQ * BKV];
  __local float m_l[KG * BQ], l_l[KG * BQ];
  __local int rowi_l[BQ], rowh_l[BQ];

  const int t = get_local_id(0), dl = t % DL, kg = t / DL, d0 = dl * SL;
  __global const int *w = sched + work_off + get_group_id(0) * 8;
  const int b = w[0], hk = w[1], row0 = w[2], rows = w[3], split = w[4];
  const int kb = w[5], ke = w[6];
  __global const int *rq = sched + req_off + b * 8;
  const int q_start = ragged_q ? rq[0] : 0, k_start = ragged_k ? rq[1] : 0;
  const int len_q = rq[2], len_k = rq[3], nsplit = rq[4], part_row = rq[6];
  const int off = len_k - len_q;

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
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }

  for (int kt = kb; kt < ke; kt += BKV) {
    /* S: all loads of this thread's keys first (K and V in flight together),
     * then the partial dots. Keys past the range load as zeros. */
    raw8 kr[KPT], vr[KPT];
    #pragma unroll
    for (int n = 0; n < KPT; n++) {
      int c = kg + KG * n, j = kt + c;
      kr[n] = (raw8)(0);
      vr[n] = (raw8)(0);
      if (j < ke) {
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
        if (d0 < DQK) kr[n] = load_raw(k, k_off + ko + hk * k_sh, d0, DQK, kv_vec);
        if (d0 < DV) vr[n] = load_raw(v, v_off + vo + hk * v_sh, d0, DV, kv_vec);
      }
    }
    #pragma unroll
    for (int n = 0; n < KPT; n++) {
      slice8 ks = to_slice(kr[n]);
      float ps[BQ];
      #pragma unroll
      for (int r = 0; r < BQ; r++) {
        ps[r] = 0.0f;
        #pragma unroll
        for (int i = 0; i < SL; i++) ps[r] = fma(qv[r][i], ks.x[i], ps[r]);
      }
      #pragma unroll
      for (int r = 0; r < BQ; r++) part_l[((kg + KG * n) * BQ + r) * (DL + 1) + dl] = ps[r];
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* R: whole scores, masked to -inf where a key is invisible. */
    for (int e = t; e < BKV * BQ; e += NT) {
      int c = e / BQ, r = e - c * BQ, j = kt + c;
      float x = -INFINITY;
      int i = rowi_l[r], h = rowh_l[r], diag = i + off;
      bool vis = r < rows && j < ke && !(causal && j > diag) &&
                 (j < sink_tokens || ((wl < 0 || j >= diag - wl) && (wr < 0 || j <= diag + wr)));
      if (vis) {
        float sum = 0.0f;
        for (int u = 0; u < DL; u++) sum += part_l[e * (DL + 1) + u];
        x = sum * scale;
        if (softcap > 0.0f) x = softcap * tanh(x / softcap);
        if (flags & F_ALIBI) x -= alibi[al_off + h * al_s] * fabs((float)(diag - j));
        if (flags & F_MASK) x += mask[m_off + b * m_sb + h * m_sh + i * m_si + j * m_sj];
      }
      s_l[r * BKV + c] = x;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* P: this key group's online softmax and P V over its KPT keys. */
    float pk[BQ][KPT];
    #pragma unroll
    for (int r = 0; r < BQ; r++) {
      float mx = -INFINITY;
      #pragma unroll
      for (int n = 0; n < KPT; n++) {
        pk[r][n] = s_l[r * BKV + kg + KG * n];
        mx = fmax(mx, pk[r][n]);
      }
      float m_new = fmax(m[r], mx), mu = pa_safe_max(m_new);
      float a = exp(m[r] - mu), sum = 0.0f;
      #pragma unroll
      for (int i = 0; i < SL; i++) acc[r][i] *= a;
      #pragma unroll
      for (int n = 0; n < KPT; n++) {
        pk[r][n] = exp(pk[r][n] - mu);
        sum += pk[r][n];
      }
      l[r] = l[r] * a + sum;
      m[r] = m_new;
    }
    #pragma unroll
    for (int n = 0; n < KPT; n++) {
      slice8 vs = to_slice(vr[n]);
      #pragma unroll
      for (int r = 0; r < BQ; r++)
        #pragma unroll
        for (int i = 0; i < SL; i++) acc[r][i] = fma(pk[r][n], vs.x[i], acc[r][i]);
    }
    /* the next tile's S writes part_l only; its barrier orders this tile's
     * s_l reads before the next R writes */
  }

  /* Merge the KG key-group states: M = max m, L = sum l exp(m - M). */
  if (dl == 0)
    #pragma unroll
    for (int r = 0; r < BQ; r++) m_l[kg * BQ + r] = m[r], l_l[kg * BQ + r] = l[r];
  barrier(CLK_LOCAL_MEM_FENCE);
  #pragma unroll
  for (int r = 0; r < BQ; r++) {
    float mm = -INFINITY;
    for (int u = 0; u < KG; u++) mm = fmax(mm, m_l[u * BQ + r]);
    float f = exp(m[r] - pa_safe_max(mm));
    #pragma unroll
    for (int i = 0; i < SL; i++)
      if (d0 + i < DV) red_l[(kg * BQ + r) * DV + d0 + i] = acc[r][i] * f;
  }
  barrier(CLK_LOCAL_MEM_FENCE);

  for (int e = t; e < BQ * DV; e += NT) {
    int r = e / DV, d = e - r * DV;
    if (r >= rows) continue;
    float mm = -INFINITY, ll = 0.0f;
    for (int u = 0; u < KG; u++) mm = fmax(mm, m_l[u * BQ + r]);
    for (int u = 0; u < KG; u++) ll += l_l[u * BQ + r] * exp(m_l[u * BQ + r] - pa_safe_max(mm));
    float o = 0.0f;
    for (int u = 0; u < KG; u++) o += red_l[(u * BQ + r) * DV + d];
    /* normalise; the sink joins only when the request is not split */
    int i = rowi_l[r], h = rowh_l[r];
    float fac = 0.0f, lse_v = -INFINITY;
    if (nsplit == 1 && (flags & F_SINKS)) {
      float sk = sinks[sk_off + h * sk_s], mx = fmax(mm, sk);
      if (mx != -INFINITY) {
        float l2 = ll * exp(mm - mx) + exp(sk - mx);
        fac = exp(mm - mx) / l2;
        lse_v = mx + log(l2);
      }
    } else if (ll > 0.0f) {
      fac = 1.0f / ll;
      lse_v = mm + log(ll);
    }
    if (nsplit == 1) {
      STO(__global, out, o_off + b * o_sb + (long)(q_start + i) * o_st + h * o_sh + d, o * fac);
      if (d == 0 && (flags & F_LSE)) lse[l_off + b * l_sb + (long)(q_start + i) * l_st + h * l_sh] = lse_v;
    } else {
      long p = part_row + ((long)split * len_q + i) * hq + h;
      ws[ws_o + p * DV + d] = o * fac;
      if (d == 0) ws[ws_l + p] = lse_v;
    }
  }
}
#endif /* !WARPS && !TC */

#ifdef WARPS
/* pa_decode_w: the same work item with no barrier in the key loop, for NVIDIA
 * after the inline-PTX probe (NV=1: warp shuffles through shfl.sync) and, for
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
 * H200, NVIDIA OpenCL, f16 32/8 d128 b64 kv4096 page 16 (2026-11-22 02:22
 * UTC): 4 warps + 2-stage ring 0.498 ms (50.4% of read bandwidth), 2 warps +
 * 4 stages 0.667, 2 warps + 5 stages 0.688, 1 warp + 8 stages 1.087, 4 warps
 * through registers 0.695; pa_decode 0.609. More warps helped and deeper
 * rings did not, so the loop is bound by its instruction chain, not by
 * bytes in flight.
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

#if NC == 1 && KV_DT != 0
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

__kernel __attribute__((reqd_work_group_size(NTW, 1, 1))) void pa_decode_w(
    __global const Q_RAW *q, long q_off, long q_sb, long q_st, long q_sh,
    __global const Q_RAW *q2, long q2_off, long q2_st, long q2_sh,
    __global const KV_RAW *restrict k, long k_off, long k_sb, long k_st, long k_sh, long k_sp,
    __global const KV_RAW *k2, long k2_off, long k2_st, long k2_sp,
    __global const KV_RAW *restrict v, long v_off, long v_sb, long v_st, long v_sh, long v_sp,
    __global O_RAW *out, long o_off, long o_sb, long o_st, long o_sh,
    __global float *lse, long l_off, long l_sb, long l_st, long l_sh,
    __global const int *bt, long bt_off, long bt_sb, long bt_sp,
    __global const float *mask, long m_off, long m_sb, long m_sh, long m_si, long m_sj,
    __global const float *sinks, long sk_off, long sk_s,
    __global const float *alibi, long al_off, long al_s,
    __global float *ws, long ws_o, long ws_l,
    __global const int *sched, int req_off, int work_off,
    int ragged_q, int ragged_k, int page_size, int group, int hq, int kv_vec,
    float scale, float softcap, int causal, int wl, int wr, int sink_tokens, int flags) {
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
  __global const int *w = sched + work_off + get_group_id(0) * 8;
  const int b = w[0], hk = w[1], row0 = w[2], rows = w[3], split = w[4];
  const int kb = w[5], ke = w[6];
  __global const int *rq = sched + req_off + b * 8;
  const int q_start = ragged_q ? rq[0] : 0, k_start = ragged_k ? rq[1] : 0;
  const int len_q = rq[2], len_k = rq[3], nsplit = rq[4], part_row = rq[6];
  const int off = len_k - len_q;

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
    float fac = 0.0f, lse_v = -INFINITY;
    if (nsplit == 1 && (flags & F_SINKS)) {
      float sk = sinks[sk_off + h * sk_s], mx = fmax(mm, sk);
      if (mx != -INFINITY) {
        float l2 = ll * exp(mm - mx) + exp(sk - mx);
        fac = exp(mm - mx) / l2;
        lse_v = mx + log(l2);
      }
    } else if (ll > 0.0f) {
      fac = 1.0f / ll;
      lse_v = mm + log(ll);
    }
    if (nsplit == 1) {
      STO(__global, out, o_off + b * o_sb + (long)(q_start + i) * o_st + h * o_sh + d, o * fac);
      if (d == 0 && (flags & F_LSE)) lse[l_off + b * l_sb + (long)(q_start + i) * l_st + h * l_sh] = lse_v;
    } else {
      long p = part_row + ((long)split * len_q + i) * hq + h;
      ws[ws_o + p * DV + d] = o * fac;
      if (d == 0) ws[ws_l + p] = lse_v;
    }
  }
}
#endif /* WARPS */

#ifdef TC
/* pa_decode_tc: the decode work item on NVIDIA tensor cores (inline PTX
 * mma.sync m16n8k16, ldmatrix, cp.async), for f16/bf16 Q and K/V alike, head
 * dims D = DQK = DV of 64 or 128, up to 16 packed rows (the item's rows are
 * one m16 tile, so each K/V byte is read once). The shape of
 * backends/cuda/decode.cu: TC warps per work-group split the item's keys
 * (warp w takes the 16-key tiles w, w + TC, ...), each with its own ring of
 * STAGES K/V tile pairs in local memory filled by cp.async, its own online
 * softmax (base 2) and no barrier in the loop; the TC states merge at the end.
 * Q A-fragments stay in registers; K B-fragments by ldmatrix, V by
 * ldmatrix.trans; P goes from the S accumulators to A-fragments in registers.
 * NV=2 runs the same code with the PTX emulated in local memory (tests).
 *
 * Fragment layout (PTX ISA, m16n8k16), lane = 4 g + t: A a0 (g, 2t..2t+1),
 * a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..); B b0 (k 2t..2t+1, n g),
 * b1 (k 2t+8.., n g); C c0 (g, 2t), c1 (g, 2t+1), c2 (g+8, 2t), c3 (g+8, 2t+1).
 *
 * Defines: D Q_DT = KV_DT (1 f16, 2 bf16) O_DT TC (warps) NV STAGES CP_WAIT
 * (= STAGES - 1), PAGE (optional). */
#define NTC (TC * 32)
#define KS (D + 8)           /* halves per staged row: ldmatrix rows hit distinct banks */
#define NKK (D / 16)         /* k-steps of Q K^T */
#define NDB (D / 8)          /* n-blocks of O */
#define CHD (D / 8)          /* 16-byte chunks per row */
#define CPL (16 * CHD / 32)  /* chunks per lane per K (or V) tile */
#define TSZ (16 * KS / 8)    /* uint4 per K (or V) tile */
#define WRING (STAGES * 2 * TSZ)
#define PA_LOG2E 1.4426950408889634f
#define PA_LN2 0.6931471805599453f
/* The PTX helpers (NV=2: emulated in local memory, tests only) are in
 * ptx.cl, prepended to this program. The emulated ldmatrix reads relative to
 * the ring. */
#if PA_PTX
#define LDSM_ARG
#else
#define LDSM_ARG , ring_h, emu_l
#endif

/* Element offset of key j's row (paged through its page, else from the
 * request's first row). */
inline long pa_row_off(int j, int page, int page_size, long sp, long st, long first) {
  return page_size > 0 ? (long)page * sp + (long)(j % page_size) * st : first + (long)j * st;
}

/* Starts the copies of this lane's chunks of key tile [kt, kt + 16) into
 * stage dst (K at dst, V at dst + TSZ); zeros past ke. pg[] holds the pages
 * of the lane's keys kt + (lane + 32 c) / CHD. */
static inline __attribute__((always_inline)) void pa_tc_issue(__local uint4 *dst, int kt, int ke, const int *pg, int lane, int page_size, int vec,
                        __global const ushort *k, long k_base, long k_sp, long k_st, long k_first,
                        __global const ushort *v, long v_base, long v_sp, long v_st, long v_first) {
  #pragma unroll
  for (int c = 0; c < CPL; c++) {
    int e = lane + 32 * c, key = e / CHD, d = (e - key * CHD) * 8, j = kt + key;
    int ok = j < ke;
    __local uint4 *to = dst + (key * KS + d) / 8;
    __global const ushort *ks = k + k_base + (ok ? pa_row_off(j, pg[c], page_size, k_sp, k_st, k_first) : 0) + d;
    __global const ushort *vs = v + v_base + (ok ? pa_row_off(j, pg[c], page_size, v_sp, v_st, v_first) : 0) + d;
    if (vec) {
      pa_cp16p(to, ks, ok);
      pa_cp16p(to + TSZ, vs, ok);
    } else {
      to[0] = ok ? (uint4)(ks[0] | (uint)ks[1] << 16, ks[2] | (uint)ks[3] << 16, ks[4] | (uint)ks[5] << 16,
                           ks[6] | (uint)ks[7] << 16)
                 : (uint4)(0);
      to[TSZ] = ok ? (uint4)(vs[0] | (uint)vs[1] << 16, vs[2] | (uint)vs[3] << 16, vs[4] | (uint)vs[5] << 16,
                             vs[6] | (uint)vs[7] << 16)
                   : (uint4)(0);
    }
  }
}
inline void pa_tc_pages(int *pg, int kt, int ke, int lane, __global const int *bt, long bt_row, long bt_sp,
                        int page_size) {
  #pragma unroll
  for (int c = 0; c < CPL; c++) {
    int j = kt + (lane + 32 * c) / CHD;
    pg[c] = (page_size > 0 && j < ke) ? bt[bt_row + (j / page_size) * bt_sp] : 0;
  }
}

__kernel __attribute__((reqd_work_group_size(NTC, 1, 1))) void pa_decode_tc(
    __global const ushort *q, long q_off, long q_sb, long q_st, long q_sh,
    __global const ushort *q2, long q2_off, long q2_st, long q2_sh,
    __global const ushort *k, long k_off, long k_sb, long k_st, long k_sh, long k_sp,
    __global const ushort *k2, long k2_off, long k2_st, long k2_sp,
    __global const ushort *v, long v_off, long v_sb, long v_st, long v_sh, long v_sp,
    __global O_RAW *out, long o_off, long o_sb, long o_st, long o_sh,
    __global float *lse, long l_off, long l_sb, long l_st, long l_sh,
    __global const int *bt, long bt_off, long bt_sb, long bt_sp,
    __global const float *mask, long m_off, long m_sb, long m_sh, long m_si, long m_sj,
    __global const float *sinks, long sk_off, long sk_s,
    __global const float *alibi, long al_off, long al_s,
    __global float *ws, long ws_o, long ws_l,
    __global const int *sched, int req_off, int work_off,
    int ragged_q, int ragged_k, int page_size, int group, int hq, int kv_vec,
    float scale, float softcap, int causal, int wl, int wr, int sink_tokens, int flags) {
  /* the warps' rings during the key loop, their outputs after it */
#define RED4 ((TC * 16 * D + 3) / 4)
  __local uint4 ring[TC * WRING > RED4 ? TC * WRING : RED4];
  __local float *red_l = (__local float *)ring;
  __local float m_l[TC * 16], l_l[TC * 16];
#if NV == 2
  __local float emu_l[TC * 384 + 2 * NTC];
#endif
#ifdef PAGE
  page_size = PAGE;
#endif

  const int tid = get_local_id(0), warp = tid / 32, lane = tid % 32, g = lane / 4, t = lane % 4;
  __global const int *w = sched + work_off + get_group_id(0) * 8;
  const int b = w[0], hk = w[1], row0 = w[2], rows = w[3], split = w[4];
  const int kb = w[5], ke = w[6];
  __global const int *rq = sched + req_off + b * 8;
  const int q_start = ragged_q ? rq[0] : 0, k_start = ragged_k ? rq[1] : 0;
  const int len_q = rq[2], len_k = rq[3], nsplit = rq[4], part_row = rq[6];
  const int off = len_k - len_q;

  /* this lane's rows g (x = 0) and g + 8 (x = 1) */
  int ri[2], rh[2], diag[2];
  bool rv[2];
  float slope[2];
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    int r = g + 8 * x;
    rv[x] = r < rows;
    int pr = row0 + (rv[x] ? r : 0);
    ri[x] = pr / group;
    rh[x] = hk * group + pr % group;
    diag[x] = ri[x] + off;
    slope[x] = (flags & F_ALIBI) ? alibi[al_off + rh[x] * al_s] : 0.0f;
  }
  uint qa[NKK][4];
  #pragma unroll
  for (int kk = 0; kk < NKK; kk++)
    #pragma unroll
    for (int x = 0; x < 2; x++)
      #pragma unroll
      for (int hh = 0; hh < 2; hh++) {
        uint lo = 0, hi = 0;
        if (rv[x]) {
          __global const ushort *p =
              q + q_off + b * q_sb + (long)(q_start + ri[x]) * q_st + rh[x] * q_sh + kk * 16 + 2 * t + 8 * hh;
          lo = p[0], hi = p[1];
        }
        qa[kk][x + 2 * hh] = lo | (hi << 16);
      }

  const int nt = ke > kb ? (ke - kb + 15) / 16 : 0, iters = (nt + TC - 1) / TC;
  const long bt_row = bt_off + b * bt_sb;
  const long k_base = k_off + hk * k_sh, v_base = v_off + hk * v_sh;
  const long k_first = b * k_sb + (long)k_start * k_st, v_first = b * v_sb + (long)k_start * v_st;
  __local uint4 *my_ring = ring + warp * WRING;
  __local const ushort *ring_h = (__local const ushort *)ring;
  int pg[CPL];
  /* iteration it: tile it * TC + warp, keys from kb + 16 (it * TC + warp) */
#define KT(it) (kb + 16 * ((it) * TC + warp))
  pa_tc_pages(pg, KT(0), ke, lane, bt, bt_row, bt_sp, page_size);
  for (int p = 0; p < STAGES - 1; p++) {
    if (p < iters)
      pa_tc_issue(my_ring + p * 2 * TSZ, KT(p), ke, pg, lane, page_size, kv_vec, k, k_base, k_sp, k_st, k_first,
                  v, v_base, v_sp, v_st, v_first);
    pa_tc_pages(pg, KT(p + 1), ke, lane, bt, bt_row, bt_sp, page_size);
    pa_cp_commit();
  }

  float o[NDB][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  #pragma unroll
  for (int n = 0; n < NDB; n++) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  /* ldmatrix lane roles: K rows (lane & 7) + 8 (lane >> 4), chunk (lane >> 3) & 1;
   * V rows (lane & 7) + 8 ((lane >> 3) & 1), chunk lane >> 4 */
  const int k_row = (lane & 7) + ((lane >> 4) << 3), k_ch = (lane >> 3) & 1;
  const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_ch = lane >> 4;

  for (int it = 0; it < iters; it++) {
    PA_WARP_SYNC(); /* every lane is done with the stage refilled next */
    if (it + STAGES - 1 < iters)
      pa_tc_issue(my_ring + ((it + STAGES - 1) % STAGES) * 2 * TSZ, KT(it + STAGES - 1), ke, pg, lane, page_size,
                  kv_vec, k, k_base, k_sp, k_st, k_first, v, v_base, v_sp, v_st, v_first);
    pa_tc_pages(pg, KT(it + STAGES), ke, lane, bt, bt_row, bt_sp, page_size);
    pa_cp_commit();
    PA_CP_WAIT(CP_WAIT);
    PA_WARP_SYNC(); /* the other lanes' copies of this stage are in */
    const int kt = KT(it);
    const int st0 = (int)((my_ring - ring) + (it % STAGES) * 2 * TSZ) * 8; /* halves */
    __local const ushort *kst = ring_h + st0, *vst = kst + TSZ * 8;

    /* S = Q K^T: c of n-block nb covers keys kt + 8 nb .. + 7 */
    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
    #pragma unroll
    for (int kk = 0; kk < NKK; kk++) {
      uint r[4];
      pa_ldsm4p(kst + k_row * KS + kk * 16 + k_ch * 8, r, 0 LDSM_ARG);
      pa_mma(s[0], qa[kk][0], qa[kk][1], qa[kk][2], qa[kk][3], r[0], r[1] EMU_ARG);
      pa_mma(s[1], qa[kk][0], qa[kk][1], qa[kk][2], qa[kk][3], r[2], r[3] EMU_ARG);
    }
    /* scores in base 2, -inf where invisible; the row maxima over the quad */
    float mx[2] = {-INFINITY, -INFINITY};
    #pragma unroll
    for (int nb = 0; nb < 2; nb++)
      #pragma unroll
      for (int e = 0; e < 4; e++) {
        int x = e >> 1, j = kt + 8 * nb + 2 * t + (e & 1);
        bool vis = rv[x] && j < ke && !(causal && j > diag[x]) &&
                   (j < sink_tokens || ((wl < 0 || j >= diag[x] - wl) && (wr < 0 || j <= diag[x] + wr)));
        float y = -INFINITY;
        if (vis) {
          y = s[nb][e] * scale;
          if (softcap > 0.0f) y = softcap * tanh(y / softcap);
          if (flags & F_ALIBI) y -= slope[x] * fabs((float)(diag[x] - j));
          if (flags & F_MASK) y += mask[m_off + b * m_sb + rh[x] * m_sh + ri[x] * m_si + j * m_sj];
          y *= PA_LOG2E;
        }
        s[nb][e] = y;
        mx[x] = fmax(mx[x], y);
      }
    float alpha[2];
    #pragma unroll
    for (int x = 0; x < 2; x++) {
      mx[x] = fmax(mx[x], pa_shfl_xor(mx[x], 1 EMU_ARG));
      mx[x] = fmax(mx[x], pa_shfl_xor(mx[x], 2 EMU_ARG));
      float mn = fmax(m[x], mx[x]), mu = pa_safe_max(mn);
      alpha[x] = exp2(m[x] - mu);
      m[x] = mn;
      l[x] *= alpha[x];
      #pragma unroll
      for (int nb = 0; nb < 2; nb++)
        #pragma unroll
        for (int e = 2 * x; e < 2 * x + 2; e++) {
          s[nb][e] = exp2(s[nb][e] - mu);
          l[x] += s[nb][e]; /* this lane's share; the quad sums at the end */
        }
    }
    #pragma unroll
    for (int n = 0; n < NDB; n++) {
      o[n][0] *= alpha[0], o[n][1] *= alpha[0];
      o[n][2] *= alpha[1], o[n][3] *= alpha[1];
    }
    /* O += P V: P's A-fragments are S's accumulators, packed */
    uint pa[4] = {pa_pack2(s[0][0], s[0][1]), pa_pack2(s[0][2], s[0][3]), pa_pack2(s[1][0], s[1][1]),
                  pa_pack2(s[1][2], s[1][3])};
    #pragma unroll
    for (int jj = 0; jj < NDB / 2; jj++) {
      uint r[4];
      pa_ldsm4p(vst + v_row * KS + jj * 16 + v_ch * 8, r, 1 LDSM_ARG);
      pa_mma(o[2 * jj], pa[0], pa[1], pa[2], pa[3], r[0], r[1] EMU_ARG);
      pa_mma(o[2 * jj + 1], pa[0], pa[1], pa[2], pa[3], r[2], r[3] EMU_ARG);
    }
  }
#undef KT
  PA_CP_WAIT_ALL();
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    l[x] += pa_shfl_xor(l[x], 1 EMU_ARG);
    l[x] += pa_shfl_xor(l[x], 2 EMU_ARG);
    m[x] *= PA_LN2; /* natural log units again */
  }

  /* Merge the TC warp states as pa_decode does (rows g, g + 8 of each lane). */
  if (t == 0)
    #pragma unroll
    for (int x = 0; x < 2; x++) m_l[warp * 16 + g + 8 * x] = m[x], l_l[warp * 16 + g + 8 * x] = l[x];
  barrier(CLK_LOCAL_MEM_FENCE); /* also: every warp is past its ring */
  #pragma unroll
  for (int x = 0; x < 2; x++) {
    int r = g + 8 * x;
    float mm = -INFINITY;
    for (int u = 0; u < TC; u++) mm = fmax(mm, m_l[u * 16 + r]);
    float f = exp(m[x] - pa_safe_max(mm));
    #pragma unroll
    for (int n = 0; n < NDB; n++) {
      red_l[(warp * 16 + r) * D + 8 * n + 2 * t] = o[n][2 * x] * f;
      red_l[(warp * 16 + r) * D + 8 * n + 2 * t + 1] = o[n][2 * x + 1] * f;
    }
  }
  barrier(CLK_LOCAL_MEM_FENCE);

  for (int e = tid; e < 16 * D; e += NTC) {
    int r = e / D, d = e - r * D;
    if (r >= rows) continue;
    float mm = -INFINITY, ll = 0.0f;
    for (int u = 0; u < TC; u++) mm = fmax(mm, m_l[u * 16 + r]);
    for (int u = 0; u < TC; u++) ll += l_l[u * 16 + r] * exp(m_l[u * 16 + r] - pa_safe_max(mm));
    float o_ = 0.0f;
    for (int u = 0; u < TC; u++) o_ += red_l[(u * 16 + r) * D + d];
    int pr = row0 + r, i = pr / group, h = hk * group + pr % group;
    float fac = 0.0f, lse_v = -INFINITY;
    if (nsplit == 1 && (flags & F_SINKS)) {
      float sk = sinks[sk_off + h * sk_s], mx = fmax(mm, sk);
      if (mx != -INFINITY) {
        float l2 = ll * exp(mm - mx) + exp(sk - mx);
        fac = exp(mm - mx) / l2;
        lse_v = mx + log(l2);
      }
    } else if (ll > 0.0f) {
      fac = 1.0f / ll;
      lse_v = mm + log(ll);
    }
    if (nsplit == 1) {
      STO(__global, out, o_off + b * o_sb + (long)(q_start + i) * o_st + h * o_sh + d, o_ * fac);
      if (d == 0 && (flags & F_LSE)) lse[l_off + b * l_sb + (long)(q_start + i) * l_st + h * l_sh] = lse_v;
    } else {
      long p = part_row + ((long)split * len_q + i) * hq + h;
      ws[ws_o + p * D + d] = o_ * fac;
      if (d == 0) ws[ws_l + p] = lse_v;
    }
  }
}
#endif /* TC */

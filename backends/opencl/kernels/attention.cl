/* attention.cl: one work item of the plan per work-group (attention and MLA).
 *
 * Tile shape (host picks it to fit local memory; see tiles.c):
 *   BQ packed GQA rows x BKV keys per step, RG*CG threads. Thread (rg, cg)
 *   owns rows rg + RG*m (m < BQ/RG) and, in the score phase, keys cg + CG*n
 *   (n < BKV/CG), in the output phase dims cg + CG*n (n < ceil(DV/CG)).
 *   Strided ownership keeps local reads broadcast (rows) or consecutive (keys,
 *   dims). Q, K and V live in local memory in their input dtype (16-bit stays
 *   16-bit: twice the tile for the same bytes); scores and probabilities in f32.
 * Per KV tile: key offsets -> K tile -> scores -> (row softmax || V tile) ->
 *   O update; four barriers. The row softmax runs on one thread per row while
 *   the others stream V in.
 * With MLA=1, K = ckv || kpe (two tensors) and V is the first DV columns of the
 *   K tile, so V is never loaded twice.
 *
 * K/V tiles move global -> local in 16-byte vectors when the host says every
 * K/V offset and stride allows it (argument kv_vec), else element by element.
 *
 * Defines: DQK DV Q_DT KV_DT O_DT BQ BKV RG CG MLA. */

#define NT (RG * CG)
#define TM (BQ / RG)
#define TN (BKV / CG)
#define NDV ((DV + CG - 1) / CG)
#define PS (BKV + 1)
#define DMAX (DQK > DV ? DQK : DV)

#define PA_PAD4(d) ((d) | 1)
#define PA_PAD2(d) (((((d) + 1) / 2) | 1) * 2)
#define QS (Q_DT == 0 ? PA_PAD4(DQK) : PA_PAD2(DQK))
#define KS (KV_DT == 0 ? PA_PAD4(DMAX) : KV_DT >= 4 ? (((DMAX + 3) / 4) | 1) * 4 : PA_PAD2(DMAX))

#define Q_RAW PA_CAT(PA_RAW_, Q_DT)
#define KV_RAW PA_CAT(PA_RAW_, KV_DT)
#define O_RAW PA_CAT(PA_RAW_, O_DT)
#define LDQ(AS, p, i) PA_CAT(PA_LD_, Q_DT)(AS, p, i)
#define LDKV(AS, p, i) PA_CAT(PA_LD_, KV_DT)(AS, p, i)
#define STO(AS, p, i, v) PA_CAT(PA_ST_, O_DT)(AS, p, i, v)

/* 16-byte vectors: KVW elements each; usable when the row lengths divide. */
#define KVW (KV_DT == 0 ? 4 : KV_DT >= 4 ? 16 : 8)
#define KV_VEC_OK (DQK % KVW == 0 && DV % KVW == 0)

#define F_LSE 1    /* PA_RETURN_LSE */
#define F_SINKS 4  /* PA_HAS_SINKS */
#define F_ALIBI 8  /* PA_HAS_ALIBI */
#define F_MASK 16  /* PA_HAS_MASK */

__kernel __attribute__((reqd_work_group_size(NT, 1, 1))) void pa_attention(
    PA_ATTENTION_ARGS(), __global const float *ks, long ks_off, long ks_s, /* fp8 K/V: dequantisation scales */
    __global const float *vs, long vs_off, long vs_s) {
  __local Q_RAW q_l[BQ * QS];
  /* uint storage: 4-byte aligned rows (KS is even for 16-bit types) for the
   * vector path's 32-bit stores */
  __local uint kv_w[(BKV * KS * sizeof(KV_RAW) + 3) / 4];
  __local KV_RAW *kv_l = (__local KV_RAW *)kv_w;
  __local float p_l[BQ * PS];
  __local float alpha_l[BQ];
  __local long koff_l[BKV], voff_l[BKV];
  __local long qoff_l[BQ];
#if MLA
  __local long k2off_l[BKV];
  __local long q2off_l[BQ];
#endif
  __local int rowi_l[BQ], rowh_l[BQ];

  const int t = get_local_id(0);
  const int cg = t % CG, rg = t / CG;
  __global const pa_work_t *wi = pa_work_item(sched, work_off);
  const int b = wi->b, hk = wi->hk, row0 = wi->row0, rows = wi->rows, split = wi->split;
  const int kb = wi->kv_begin, ke = wi->kv_end;
  __global const pa_req_t *rq = pa_request(sched, req_off, b);
  const int q_start = ragged_q ? rq->q_start : 0, k_start = ragged_k ? rq->k_start : 0;
  const int len_q = rq->len_q, len_k = rq->len_k, nsplit = rq->num_splits, part_row = rq->part_row;
  const int off = len_k - len_q;
#if KV_DT >= 4
  /* K's scale joins the score scale, V's the output factor */
  const float sc = scale * ks[ks_off + hk * ks_s], v_fac = vs[vs_off + hk * vs_s];
#else
  const float sc = scale, v_fac = 1.0f;
#endif

  for (int r = t; r < BQ; r += NT) {
    int pr = row0 + (r < rows ? r : 0);
    int i = pr / group, h = hk * group + pr % group;
    rowi_l[r] = i;
    rowh_l[r] = h;
    qoff_l[r] = q_off + b * q_sb + (long)(q_start + i) * q_st + h * q_sh;
#if MLA
    q2off_l[r] = q2_off + (long)(q_start + i) * q2_st + h * q2_sh;
#endif
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int e = t; e < BQ * DQK; e += NT) {
    int r = e / DQK, d = e - r * DQK;
    Q_RAW x = 0;
    if (r < rows) {
#if MLA
      x = d < DV ? q[qoff_l[r] + d] : q2[q2off_l[r] + d - DV];
#else
      x = q[qoff_l[r] + d];
#endif
    }
    q_l[r * QS + d] = x;
  }

  float acc[TM][NDV];
  for (int m = 0; m < TM; m++)
    for (int n = 0; n < NDV; n++) acc[m][n] = 0.0f;
  float m_run = -INFINITY, l_run = 0.0f; /* row t's state, for t < BQ */

  for (int kt = kb; kt < ke; kt += BKV) {
    /* A: where this tile's keys live (page lookups once per key). */
    for (int c = t; c < BKV; c += NT) {
      int j = kt + c < ke ? kt + c : kt;
      long ko, vo;
#if MLA
      long k2o;
#endif
      if (page_size > 0) {
        long page = bt[bt_off + b * bt_sb + (j / page_size) * bt_sp];
        long in = j % page_size;
        ko = page * k_sp + in * k_st;
        vo = page * v_sp + in * v_st;
#if MLA
        k2o = k2_off + page * k2_sp + in * k2_st;
#endif
      } else {
        ko = b * k_sb + (long)(k_start + j) * k_st;
        vo = b * v_sb + (long)(k_start + j) * v_st;
#if MLA
        k2o = k2_off + (long)(k_start + j) * k2_st;
#endif
      }
      koff_l[c] = k_off + ko + hk * k_sh;
      voff_l[c] = v_off + vo + hk * v_sh;
#if MLA
      k2off_l[c] = k2o;
#endif
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* B: K tile; keys past the range read as 0 (they are masked below). */
#if KV_VEC_OK
    if (kv_vec) {
      for (int e = t; e < BKV * (DQK / KVW); e += NT) {
        int c = e / (DQK / KVW), d = (e - c * (DQK / KVW)) * KVW;
        uint4 x = (uint4)(0);
        if (kt + c < ke) {
#if MLA
          x = d < DV ? *(__global const uint4 *)(k + koff_l[c] + d)
                     : *(__global const uint4 *)(k2 + k2off_l[c] + d - DV);
#else
          x = *(__global const uint4 *)(k + koff_l[c] + d);
#endif
        }
        __local uint *dst = kv_w + (c * KS + d) * sizeof(KV_RAW) / 4;
        dst[0] = x.s0, dst[1] = x.s1, dst[2] = x.s2, dst[3] = x.s3;
      }
    } else
#endif
    for (int e = t; e < BKV * DQK; e += NT) {
      int c = e / DQK, d = e - c * DQK;
      KV_RAW x = 0;
      if (kt + c < ke) {
#if MLA
        x = d < DV ? k[koff_l[c] + d] : k2[k2off_l[c] + d - DV];
#else
        x = k[koff_l[c] + d];
#endif
      }
      kv_l[c * KS + d] = x;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* C: scores, masked to -inf where a key is invisible. */
    {
      float s[TM][TN];
      for (int m = 0; m < TM; m++)
        for (int n = 0; n < TN; n++) s[m][n] = 0.0f;
      for (int d = 0; d < DQK; d++) {
        float qv[TM], kv[TN];
        for (int m = 0; m < TM; m++) qv[m] = LDQ(__local, q_l, (rg + RG * m) * QS + d);
        for (int n = 0; n < TN; n++) kv[n] = LDKV(__local, kv_l, (cg + CG * n) * KS + d);
        for (int m = 0; m < TM; m++)
          for (int n = 0; n < TN; n++) s[m][n] = fma(qv[m], kv[n], s[m][n]);
      }
      for (int m = 0; m < TM; m++) {
        int r = rg + RG * m, i = rowi_l[r], h = rowh_l[r], diag = i + off;
        for (int n = 0; n < TN; n++) {
          int c = cg + CG * n, j = kt + c;
          float x = -INFINITY;
          bool vis = r < rows && j < ke && !(causal && j > diag) &&
                     (j < sink_tokens ||
                      ((wl < 0 || j >= diag - wl) && (wr < 0 || j <= diag + wr)));
          if (vis) {
            x = s[m][n] * sc;
            if (softcap > 0.0f) x = softcap * tanh(x / softcap);
            if (flags & F_ALIBI) x -= alibi[al_off + h * al_s] * fabs((float)(diag - j));
            if (flags & F_MASK) x += mask[m_off + b * m_sb + h * m_sh + i * m_si + j * m_sj];
          }
          p_l[r * PS + c] = x;
        }
      }
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    /* D: one thread per row runs the online softmax; the rest load V. */
    for (int r = t; r < BQ; r += NT) {
      float mx = -INFINITY;
      for (int c = 0; c < BKV; c++) mx = fmax(mx, p_l[r * PS + c]);
      float m_new = fmax(m_run, mx), mu = pa_safe_max(m_new);
      float a = exp(m_run - mu), sum = 0.0f;
      for (int c = 0; c < BKV; c++) {
        float e = exp(p_l[r * PS + c] - mu);
        p_l[r * PS + c] = e;
        sum += e;
      }
      l_run = l_run * a + sum;
      m_run = m_new;
      alpha_l[r] = a;
    }
#if !MLA
#if KV_VEC_OK
    if (kv_vec) {
      for (int e = t; e < BKV * (DV / KVW); e += NT) {
        int c = e / (DV / KVW), d = (e - c * (DV / KVW)) * KVW;
        uint4 x = kt + c < ke ? *(__global const uint4 *)(v + voff_l[c] + d) : (uint4)(0);
        __local uint *dst = kv_w + (c * KS + d) * sizeof(KV_RAW) / 4;
        dst[0] = x.s0, dst[1] = x.s1, dst[2] = x.s2, dst[3] = x.s3;
      }
    } else
#endif
    for (int e = t; e < BKV * DV; e += NT) {
      int c = e / DV, d = e - c * DV;
      kv_l[c * KS + d] = kt + c < ke ? v[voff_l[c] + d] : (KV_RAW)0;
    }
#endif
    barrier(CLK_LOCAL_MEM_FENCE);

    /* E: O = O * alpha + P V. */
    for (int m = 0; m < TM; m++) {
      float a = alpha_l[rg + RG * m];
      for (int n = 0; n < NDV; n++) acc[m][n] *= a;
    }
    for (int c = 0; c < BKV; c++) {
      float pv[TM], vv[NDV];
      for (int m = 0; m < TM; m++) pv[m] = p_l[(rg + RG * m) * PS + c];
      for (int n = 0; n < NDV; n++) {
        int d = cg + CG * n;
        vv[n] = (DV % CG == 0 || d < DV) ? LDKV(__local, kv_l, c * KS + d) : 0.0f;
      }
      for (int m = 0; m < TM; m++)
        for (int n = 0; n < NDV; n++) acc[m][n] = fma(pv[m], vv[n], acc[m][n]);
    }
    /* The next tile's step A barrier orders these reads before kv_l is reused. */
  }

  /* Final: normalise; the sink joins here only when the request is not split
   * (otherwise the combine adds it once). */
  for (int r = t; r < BQ; r += NT) {
    float fac = 0.0f, lse_v = -INFINITY;
    if (r < rows) {
      int h = rowh_l[r];
      PA_ROW_NORM(m_run, l_run, nsplit == 1 && (flags & F_SINKS), sinks[sk_off + h * sk_s], fac,
                  lse_v);
      int i = rowi_l[r];
      if (nsplit == 1) {
        if (flags & F_LSE) lse[pa_out_row(l_off, l_sb, l_st, l_sh, b, q_start, i, h)] = lse_v;
      } else {
        ws[ws_l + pa_part_row(part_row, split, len_q, hq, i, h)] = lse_v;
      }
    }
    alpha_l[r] = fac * v_fac;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int m = 0; m < TM; m++) {
    int r = rg + RG * m;
    if (r >= rows) continue;
    int i = rowi_l[r], h = rowh_l[r];
    float fac = alpha_l[r];
    if (nsplit == 1) {
      long o = pa_out_row(o_off, o_sb, o_st, o_sh, b, q_start, i, h);
      for (int n = 0; n < NDV; n++) {
        int d = cg + CG * n;
        if (d < DV) STO(__global, out, o + d, acc[m][n] * fac);
      }
    } else {
      long o = ws_o + pa_part_row(part_row, split, len_q, hq, i, h) * (long)DV;
      for (int n = 0; n < NDV; n++) {
        int d = cg + CG * n;
        if (d < DV) ws[o + d] = acc[m][n] * fac;
      }
    }
  }
}

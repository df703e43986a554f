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

__kernel __attribute__((reqd_work_group_size(NT, 1, 1))) void pa_decode(PA_ATTENTION_ARGS()) {
  /* partial scores during the key loop, per-group outputs after it */
  __local float scratch_l[(BKV * BQ * (DL + 1) > KG * BQ * DV) ? BKV * BQ * (DL + 1) : KG * BQ * DV];
  __local float *part_l = scratch_l, *red_l = scratch_l;
  __local float s_l[BQ * BKV];
  __local float m_l[KG * BQ], l_l[KG * BQ];
  __local int rowi_l[BQ], rowh_l[BQ];

  const int t = get_local_id(0), dl = t % DL, kg = t / DL, d0 = dl * SL;
  __global const pa_work_t *wi = pa_work_item(sched, work_off);
  const int b = wi->b, hk = wi->hk, row0 = wi->row0, rows = wi->rows, split = wi->split;
  const int kb = wi->kv_begin, ke = wi->kv_end;
  __global const pa_req_t *rq = pa_request(sched, req_off, b);
  const int q_start = ragged_q ? rq->q_start : 0, k_start = ragged_k ? rq->k_start : 0;
  const int len_q = rq->len_q, len_k = rq->len_k, nsplit = rq->num_splits, part_row = rq->part_row;
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
    float fac, lse_v;
    PA_ROW_NORM(mm, ll, nsplit == 1 && (flags & F_SINKS), sinks[sk_off + h * sk_s], fac, lse_v);
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

/* merge.cl: the merge rule, lse = log(sum_k exp(lse_k)), o = sum_k exp(lse_k - lse) o_k,
 * written once (pa_merge_rows) and used by the split-KV combine and the public
 * merge-state operations. Empty states (lse = -inf) add nothing; all empty gives
 * o = 0, lse = -inf. One work-group per (row, head); threads stride over dims.
 * Defines: V_DT (input states; the combine reads f32 partials), O_DT. */

#define V_RAW PA_CAT(PA_RAW_, V_DT)
#define O_RAW PA_CAT(PA_RAW_, O_DT)
#define LDV(AS, p, i) PA_CAT(PA_LD_, V_DT)(AS, p, i)
#ifndef B_DT
#define B_DT V_DT /* pair: b may differ from a */
#endif
#define B_RAW PA_CAT(PA_RAW_, B_DT)
#define LDB(AS, p, i) PA_CAT(PA_LD_, B_DT)(AS, p, i)
#define STO(AS, p, i, v) PA_CAT(PA_ST_, O_DT)(AS, p, i, v)

/* The merged maximum and denominator of n states at lse[s0 + k * sk]
 * (plus one extra state of value extra, -inf for none). */
inline float pa_merge_max(__global const float *lse, long s0, long sk, int n, float extra) {
  float mx = extra;
  for (int k = 0; k < n; k++) mx = fmax(mx, lse[s0 + k * sk]);
  return mx;
}
inline float pa_merge_sum(__global const float *lse, long s0, long sk, int n, float extra,
                          float mx) {
  float sum = extra == -INFINITY ? 0.0f : exp(extra - mx);
  for (int k = 0; k < n; k++) sum += exp(lse[s0 + k * sk] - mx);
  return sum;
}

/* Split-KV combine of the plan: entry x = (b, i), head y; splits of the request
 * are partial rows part_row + (s * len_q + i) * hq + h in the workspace. */
__kernel void pa_combine(__global const float *ws, long ws_o, long ws_l, int dv,
                         __global const int *sched, int req_off, int comb_off,
                         __global O_RAW *out, long o_off, long o_sb, long o_st, long o_sh,
                         __global float *lse, long l_off, long l_sb, long l_st, long l_sh,
                         __global const float *sinks, long sk_off, long sk_s, int hq, int ragged_q,
                         int flags) {
  const int x = get_group_id(0), h = get_group_id(1), t = get_local_id(0);
  const int b = sched[comb_off + 2 * x], i = sched[comb_off + 2 * x + 1];
  __global const pa_req_t *rq = pa_request(sched, req_off, b);
  const int q_start = ragged_q ? rq->q_start : 0, len_q = rq->len_q, n = rq->num_splits,
            part_row = rq->part_row;
  const long p0 = part_row + (long)i * hq + h, pk = (long)len_q * hq;
  const float sink = (flags & 4) ? sinks[sk_off + h * sk_s] : -INFINITY;
  const float mx = pa_merge_max(ws, ws_l + p0, pk, n, sink);
  const float sum = mx == -INFINITY ? 0.0f : pa_merge_sum(ws, ws_l + p0, pk, n, sink, mx);
  const long o = o_off + b * o_sb + (long)(q_start + i) * o_st + h * o_sh;
  for (int d = t; d < dv; d += get_local_size(0)) {
    float a = 0.0f;
    if (sum > 0.0f) {
      for (int k = 0; k < n; k++)
        a += exp(ws[ws_l + p0 + k * pk] - mx) * ws[ws_o + (p0 + k * pk) * dv + d];
      a /= sum;
    }
    STO(__global, out, o + d, a);
  }
  if (t == 0 && (flags & 1))
    lse[l_off + b * l_sb + (long)(q_start + i) * l_st + h * l_sh] = sum > 0.0f ? mx + log(sum) : -INFINITY;
}

/* Two states a, b -> out. Group (row, head). */
__kernel void pa_merge_pair(__global const V_RAW *a, long a_off, long a_sr, long a_sh,
                            __global const float *la, long la_off, long la_sr, long la_sh,
                            __global const B_RAW *bb, long b_off, long b_sr, long b_sh,
                            __global const float *lb, long lb_off, long lb_sr, long lb_sh,
                            __global O_RAW *out, long o_off, long o_sr, long o_sh,
                            __global float *lo, long lo_off, long lo_sr, long lo_sh, int has_lo,
                            int dim) {
  const long r = get_group_id(0), h = get_group_id(1);
  const int t = get_local_id(0);
  const float sa = la[la_off + r * la_sr + h * la_sh], sb = lb[lb_off + r * lb_sr + h * lb_sh];
  const float mx = fmax(sa, sb);
  float wa = 0.0f, wb = 0.0f, sum = 0.0f;
  if (mx != -INFINITY) {
    wa = exp(sa - mx);
    wb = exp(sb - mx);
    sum = wa + wb;
    wa /= sum;
    wb /= sum;
  }
  const long ao = a_off + r * a_sr + h * a_sh, bo = b_off + r * b_sr + h * b_sh;
  const long oo = o_off + r * o_sr + h * o_sh;
  for (int d = t; d < dim; d += get_local_size(0)) {
    /* an empty state's o is never read: its weight is 0 and o may be garbage */
    float x = 0.0f;
    if (wa > 0.0f) x += wa * LDV(__global, a, ao + d);
    if (wb > 0.0f) x += wb * LDB(__global, bb, bo + d);
    STO(__global, out, oo + d, x);
  }
  if (t == 0 && has_lo) lo[lo_off + r * lo_sr + h * lo_sh] = sum > 0.0f ? mx + log(sum) : -INFINITY;
}

/* Many states per row: state k of row r at v[r * v_sr + k * v_sk + h * v_sh]
 * for k in [indptr[r], indptr[r+1]) when indptr is given (varlen, v_sr = 0),
 * else k in [0, n) (fixed). */
__kernel void pa_merge_list(__global const V_RAW *v, long v_off, long v_sr, long v_sk, long v_sh,
                            __global const float *s, long s_off, long s_sr, long s_sk, long s_sh,
                            __global const int *indptr, long ip_off, int n_fixed,
                            __global O_RAW *out, long o_off, long o_sr, long o_sh,
                            __global float *lo, long lo_off, long lo_sr, long lo_sh, int has_lo,
                            int dim) {
  const long r = get_group_id(0), h = get_group_id(1);
  const int t = get_local_id(0);
  int k0 = 0, n = n_fixed;
  if (n_fixed < 0) {
    k0 = indptr[ip_off + r];
    n = indptr[ip_off + r + 1] - k0;
  }
  const long s0 = s_off + r * s_sr + (long)k0 * s_sk + h * s_sh;
  const long v0 = v_off + r * v_sr + (long)k0 * v_sk + h * v_sh;
  const float mx = pa_merge_max(s, s0, s_sk, n, -INFINITY);
  const float sum = mx == -INFINITY ? 0.0f : pa_merge_sum(s, s0, s_sk, n, -INFINITY, mx);
  const long oo = o_off + r * o_sr + h * o_sh;
  for (int d = t; d < dim; d += get_local_size(0)) {
    float x = 0.0f;
    if (sum > 0.0f) {
      for (int k = 0; k < n; k++) {
        float wk = exp(s[s0 + k * s_sk] - mx);
        if (wk > 0.0f) x += wk * LDV(__global, v, v0 + k * v_sk + d);
      }
      x /= sum;
    }
    STO(__global, out, oo + d, x);
  }
  if (t == 0 && has_lo) lo[lo_off + r * lo_sr + h * lo_sh] = sum > 0.0f ? mx + log(sum) : -INFINITY;
}

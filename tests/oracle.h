/* The float64 oracle: naive attention, MLA, merge and head GEMM, written from
 * the formulas in polyattn.h and sharing no code with the library. All arrays
 * are dense double, one request at a time. */
#ifndef PA_TEST_ORACLE_H
#define PA_TEST_ORACLE_H

#include <stdint.h>

typedef struct oracle_attn {
  int hq, hkv, dqk, dv;
  int causal;
  int window_left, window_right; /* -1: unbounded */
  int sink_tokens;
  double scale; /* already resolved (never 0) */
  double softcap; /* 0: off */
  const double *alibi; /* [hq] or NULL */
  const double *sinks; /* [hq] or NULL */
  /* Dense additive mask of this request or NULL: mask[h' * mask_sh + i *
   * mask_si + j], h' = h when mask_heads == hq, else 0. */
  const double *mask;
  int mask_heads;
  int64_t mask_sh, mask_si;
} oracle_attn;

/* q [sq, hq, dqk], k [skv, hkv, dqk], v [skv, hkv, dv] -> o [sq, hq, dv],
 * lse [sq, hq] (natural log; -inf for a row with nothing visible and no sink,
 * which gets o = 0). */
void oracle_attention(const oracle_attn *p, int sq, int skv, const double *q, const double *k,
                      const double *v, double *o, double *lse);

/* MLA (absorbed): K_j = ckv_j || kpe_j, V_j = ckv_j, one latent head.
 * q_nope [sq, h, dc], q_pe [sq, h, dr], ckv [skv, dc], kpe [skv, dr]
 * -> o [sq, h, dc], lse [sq, h]. */
void oracle_mla(int h, int dc, int dr, double scale, int causal, int sq, int skv,
                const double *q_nope, const double *q_pe, const double *ckv, const double *kpe,
                double *o, double *lse);

/* Merge n states of dimension d: state k has lse[k] and o[k * o_stride + x].
 * out [d], *lse_out; empty states (-inf) contribute nothing; all empty gives
 * out = 0, lse = -inf. */
void oracle_merge(int n, int d, const double *lse, const double *o, int64_t o_stride,
                  double *out, double *lse_out);

/* y[t, h, n] = sum_k x[t, h, k] w[h, k, n]; dense x [t, h, kd], w [h, kd, nd]. */
void oracle_head_gemm(int t, int h, int kd, int nd, const double *x, const double *w,
                      double *y);

#endif

#include "oracle.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The visibility rule of polyattn.h, re-derived here on purpose. */
static int visible(const oracle_attn *p, int64_t i, int64_t j, int64_t off) {
  int64_t diag = i + off;
  if (p->causal && j > diag) return 0;
  if (j < p->sink_tokens) return 1;
  if (p->window_left >= 0 && j < diag - p->window_left) return 0;
  if (p->window_right >= 0 && j > diag + p->window_right) return 0;
  return 1;
}

void oracle_attention(const oracle_attn *p, int sq, int skv, const double *q, const double *k,
                      const double *v, double *o, double *lse) {
  int g = p->hq / p->hkv;
  int64_t off = (int64_t)skv - sq;
  double *s = malloc(sizeof(double) * (size_t)(skv > 0 ? skv : 1));
  for (int i = 0; i < sq; i++) {
    for (int h = 0; h < p->hq; h++) {
      int hk = h / g;
      const double *qi = q + ((int64_t)i * p->hq + h) * p->dqk;
      double m = -INFINITY;
      for (int j = 0; j < skv; j++) {
        s[j] = -INFINITY;
        if (!visible(p, i, j, off)) continue;
        const double *kj = k + ((int64_t)j * p->hkv + hk) * p->dqk;
        double dot = 0;
        for (int d = 0; d < p->dqk; d++) dot += qi[d] * kj[d];
        double x = p->scale * dot;
        if (p->softcap != 0) x = p->softcap * tanh(x / p->softcap);
        if (p->alibi) x -= p->alibi[h] * fabs((double)(i + off - j));
        if (p->mask) x += p->mask[(p->mask_heads > 1 ? h : 0) * p->mask_sh + i * p->mask_si + j];
        s[j] = x;
        if (x > m) m = x;
      }
      double sink = p->sinks ? p->sinks[h] : -INFINITY;
      if (sink > m) m = sink;
      double *oi = o + ((int64_t)i * p->hq + h) * p->dv;
      memset(oi, 0, sizeof(double) * (size_t)p->dv);
      if (m == -INFINITY) { /* nothing visible, no sink */
        lse[(int64_t)i * p->hq + h] = -INFINITY;
        continue;
      }
      double den = sink == -INFINITY ? 0 : exp(sink - m);
      for (int j = 0; j < skv; j++) {
        if (s[j] == -INFINITY) continue;
        double w = exp(s[j] - m);
        den += w;
        const double *vj = v + ((int64_t)j * p->hkv + hk) * p->dv;
        for (int d = 0; d < p->dv; d++) oi[d] += w * vj[d];
      }
      for (int d = 0; d < p->dv; d++) oi[d] /= den;
      lse[(int64_t)i * p->hq + h] = m + log(den);
    }
  }
  free(s);
}

void oracle_mla(int h, int dc, int dr, double scale, int causal, int sq, int skv,
                const double *q_nope, const double *q_pe, const double *ckv, const double *kpe,
                double *o, double *lse) {
  int dk = dc + dr;
  double *q = malloc(sizeof(double) * (size_t)(sq > 0 ? sq : 1) * h * dk);
  double *k = malloc(sizeof(double) * (size_t)(skv > 0 ? skv : 1) * dk);
  for (int i = 0; i < sq; i++)
    for (int hh = 0; hh < h; hh++) {
      double *qi = q + ((int64_t)i * h + hh) * dk;
      memcpy(qi, q_nope + ((int64_t)i * h + hh) * dc, sizeof(double) * (size_t)dc);
      memcpy(qi + dc, q_pe + ((int64_t)i * h + hh) * dr, sizeof(double) * (size_t)dr);
    }
  for (int j = 0; j < skv; j++) {
    memcpy(k + (int64_t)j * dk, ckv + (int64_t)j * dc, sizeof(double) * (size_t)dc);
    memcpy(k + (int64_t)j * dk + dc, kpe + (int64_t)j * dr, sizeof(double) * (size_t)dr);
  }
  oracle_attn p = {.hq = h, .hkv = 1, .dqk = dk, .dv = dc, .causal = causal,
                   .window_left = -1, .window_right = -1, .scale = scale};
  oracle_attention(&p, sq, skv, q, k, ckv, o, lse);
  free(q);
  free(k);
}

void oracle_merge(int n, int d, const double *lse, const double *o, int64_t o_stride,
                  double *out, double *lse_out) {
  double m = -INFINITY;
  for (int k = 0; k < n; k++)
    if (lse[k] > m) m = lse[k];
  for (int x = 0; x < d; x++) out[x] = 0;
  if (m == -INFINITY) {
    *lse_out = -INFINITY;
    return;
  }
  double den = 0;
  for (int k = 0; k < n; k++) den += exp(lse[k] - m);
  for (int k = 0; k < n; k++) {
    if (lse[k] == -INFINITY) continue;
    double w = exp(lse[k] - m) / den;
    for (int x = 0; x < d; x++) out[x] += w * o[k * o_stride + x];
  }
  *lse_out = m + log(den);
}

void oracle_head_gemm(int t, int h, int kd, int nd, const double *x, const double *w,
                      double *y) {
  for (int ti = 0; ti < t; ti++)
    for (int hh = 0; hh < h; hh++)
      for (int n = 0; n < nd; n++) {
        double acc = 0;
        for (int k = 0; k < kd; k++)
          acc += x[((int64_t)ti * h + hh) * kd + k] * w[((int64_t)hh * kd + k) * nd + n];
        y[((int64_t)ti * h + hh) * nd + n] = acc;
      }
}

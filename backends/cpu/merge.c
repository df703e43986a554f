/* Merge states: the rule (used by the attention combine too) and the three
 * modes of pa_merge_launch. */
#include <math.h>
#include <string.h>

#include "cpu.h"

#define CHUNK 256

void pa_cpu_merge_rule(const pa_cpu_kernels *kern, int n, pa_cpu_state_fn get, const void *gctx,
                       float extra_lse, int64_t D, void *out, pa_dtype out_t, float *lse_out) {
  const void *o;
  pa_dtype t;
  float lse, M = extra_lse;
  for (int k = 0; k < n; k++) {
    get(gctx, k, &o, &t, &lse);
    if (lse > M) M = lse;
  }
  float acc[CHUNK], tmp[CHUNK];
  const size_t oes = pa_cpu_esize(out_t);
  if (M == -INFINITY) { /* all empty: O = 0, LSE = -inf */
    memset(acc, 0, sizeof acc);
    for (int64_t d0 = 0; d0 < D; d0 += CHUNK)
      kern->store(out_t, acc, (char *)out + d0 * oes, D - d0 < CHUNK ? D - d0 : CHUNK, 1.0f);
    if (lse_out) *lse_out = -INFINITY;
    return;
  }
  float L = extra_lse > -INFINITY ? expf(extra_lse - M) : 0.0f;
  for (int k = 0; k < n; k++) {
    get(gctx, k, &o, &t, &lse);
    if (lse > -INFINITY) L += expf(lse - M);
  }
  for (int64_t d0 = 0; d0 < D; d0 += CHUNK) {
    int64_t c = D - d0 < CHUNK ? D - d0 : CHUNK;
    memset(acc, 0, (size_t)c * sizeof(float));
    for (int k = 0; k < n; k++) {
      get(gctx, k, &o, &t, &lse);
      if (!(lse > -INFINITY)) continue; /* empty states contribute nothing, even NaN garbage */
      kern->load(t, (const char *)o + d0 * (int64_t)pa_cpu_esize(t), tmp, c, expf(lse - M) / L);
      for (int64_t x = 0; x < c; x++) acc[x] += tmp[x];
    }
    kern->store(out_t, acc, (char *)out + d0 * oes, c, 1.0f);
  }
  if (lse_out) *lse_out = M + logf(L);
}

typedef struct merge_job {
  const pa_merge_launch *m;
  const pa_cpu_kernels *kern;
  const int32_t *indptr;
} merge_job;

typedef struct row_states {
  const merge_job *mj;
  int64_t row, h, first; /* first: varlen's first partial */
} row_states;

static const void *elem(const pa_tensor *t, int64_t e) {
  return pa_tensor_ptr_host(t) + e * (int64_t)pa_cpu_esize(t->dtype);
}

static void get_state(const void *ctx, int k, const void **o, pa_dtype *t, float *lse) {
  const row_states *rs = ctx;
  const pa_merge_launch *m = rs->mj->m;
  const pa_tensor *v, *s;
  int64_t ve, se;
  switch (m->mode) {
  case PA_MERGE_PAIR:
    v = k == 0 ? m->a : m->b;
    s = k == 0 ? m->lse_a : m->lse_b;
    ve = rs->row * v->stride[0] + rs->h * v->stride[1];
    se = rs->row * s->stride[0] + rs->h * s->stride[1];
    break;
  case PA_MERGE_FIXED: /* v [T, N, H, D], s [T, N, H] */
    v = m->v;
    s = m->s;
    ve = rs->row * v->stride[0] + k * v->stride[1] + rs->h * v->stride[2];
    se = rs->row * s->stride[0] + k * s->stride[1] + rs->h * s->stride[2];
    break;
  default: /* varlen: v [P, H, D], s [P, H] */
    v = m->v;
    s = m->s;
    ve = (rs->first + k) * v->stride[0] + rs->h * v->stride[1];
    se = (rs->first + k) * s->stride[0] + rs->h * s->stride[1];
    break;
  }
  *o = elem(v, ve);
  *t = v->dtype;
  *lse = *(const float *)elem(s, se);
}

static void merge_row(void *arg, int64_t row, int tid) {
  const merge_job *mj = arg;
  const pa_merge_launch *m = mj->m;
  (void)tid;
  int n = 2;
  int64_t first = 0;
  if (m->mode == PA_MERGE_FIXED) n = (int)m->states;
  if (m->mode == PA_MERGE_VARLEN) {
    first = mj->indptr[row * m->indptr->stride[0]];
    n = (int)(mj->indptr[(row + 1) * m->indptr->stride[0]] - first);
  }
  for (int64_t h = 0; h < m->heads; h++) {
    row_states rs = {mj, row, h, first};
    float lse;
    void *dst = (void *)elem(m->out, row * m->out->stride[0] + h * m->out->stride[1]);
    pa_cpu_merge_rule(mj->kern, n, get_state, &rs, -INFINITY, m->dim, dst, m->out->dtype, &lse);
    if (m->lse_out && m->lse_out->buf)
      *(float *)elem(m->lse_out, row * m->lse_out->stride[0] + h * m->lse_out->stride[1]) = lse;
  }
}

pa_status pa_cpu_merge(pa_context *ctx, const pa_merge_launch *m) {
  pa_cpu_state *st = pa_cpu(ctx);
  merge_job mj = {m, st->kern, NULL};
  if (m->mode == PA_MERGE_VARLEN)
    mj.indptr = (const int32_t *)(const void *)pa_tensor_ptr_host(m->indptr);
  pa_pool_run(st->pool, m->rows, merge_row, &mj);
  return PA_OK;
}

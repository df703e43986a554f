#include "attn_case.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oracle.h"

#define TRY(x)                                                                                    \
  do {                                                                                            \
    pa_status s_ = (x);                                                                           \
    if (s_ != PA_OK) {                                                                            \
      snprintf(p->msg, sizeof p->msg, "%s: %s (%s)", #x, pa_status_str(s_),                       \
               pa_context_last_error(p->ctx));                                                    \
      return s_;                                                                                  \
    }                                                                                             \
  } while (0)

static int imax(int a, int b) { return a > b ? a : b; }

/* Element offset of query/out row i of request b (head and dim added later). */
static int64_t q_row(const attn_problem *p, const pa_tensor *t, int b, int i) {
  return p->c->layout == AL_PADDED ? (int64_t)b * t->stride[0] + (int64_t)i * t->stride[1]
                                   : (int64_t)(p->qstart[b] + i) * t->stride[0];
}

static int64_t k_row(const attn_problem *p, const tu_tensor *kv, int b, int j) {
  const pa_tensor *t = &kv->t;
  if (p->paged) {
    int ps = p->c->page_size;
    int32_t page = tu_get_i32(&p->bt, (int64_t)b * p->bt.t.stride[0] + j / ps);
    return (int64_t)page * t->stride[0] + (int64_t)(j % ps) * t->stride[1];
  }
  return p->c->layout == AL_PADDED ? (int64_t)b * t->stride[0] + (int64_t)j * t->stride[1]
                                   : (int64_t)(p->kstart[b] + j) * t->stride[0];
}

int64_t attn_out_offset(const attn_problem *p, int b, int i, int h) {
  const pa_tensor *t = &p->out.t;
  return q_row(p, t, b, i) + (int64_t)h * t->stride[t->ndim - 2];
}

int64_t attn_q_offset(const attn_problem *p, int b, int i, int h) {
  const pa_tensor *t = &p->q.t;
  return q_row(p, t, b, i) + (int64_t)h * t->stride[t->ndim - 2];
}

int64_t attn_kv_offset(const attn_problem *p, const tu_tensor *kv, int b, int j, int h) {
  return k_row(p, kv, b, j) + (int64_t)h * kv->t.stride[kv->t.ndim - 2];
}

int64_t attn_lse_offset(const attn_problem *p, int b, int i, int h) {
  const pa_tensor *t = &p->lse.t;
  int64_t row = p->c->layout == AL_PADDED ? (int64_t)b * t->stride[0] + (int64_t)i * t->stride[1]
                                          : (int64_t)(p->qstart[b] + i) * t->stride[0];
  return row + (int64_t)h * t->stride[t->ndim - 1];
}

/* A 3-d ragged [T, H, D] or 4-d padded [B, S, H, D] q/k/v/out tensor. */
static pa_status alloc_rows_dt(attn_problem *p, tu_tensor *x, pa_dtype dt, int64_t tokens,
                               int64_t s, int h, int d);
static pa_status alloc_rows(attn_problem *p, tu_tensor *x, int64_t tokens, int64_t s, int h,
                            int d) {
  return alloc_rows_dt(p, x, p->c->dtype, tokens, s, h, d);
}
static pa_status alloc_rows_dt(attn_problem *p, tu_tensor *x, pa_dtype dt, int64_t tokens,
                               int64_t s, int h, int d) {
  int64_t row = (p->c->opts & AO_STRIDED) ? (int64_t)(h + 2) * d : (int64_t)h * d;
  if (p->c->layout == AL_PADDED) {
    int64_t shape[4] = {p->B, s, h, d}, stride[4] = {s * row, row, d, 1};
    return tu_tensor_alloc(p->ctx, x, dt, 4, shape, stride);
  }
  int64_t shape[3] = {tokens, h, d}, stride[3] = {row, d, 1};
  return tu_tensor_alloc(p->ctx, x, dt, 3, shape, stride);
}

/* Paged cache [pages, page, H, D]; HND stores [pages, H, page, D]. */
static pa_dtype kv_dtype(const attn_case *c) { return c->kv8 ? c->kv8 : c->dtype; }

static pa_status alloc_paged(attn_problem *p, tu_tensor *x, int pages, int h, int d) {
  int ps = p->c->page_size;
  int64_t shape[4] = {pages, ps, h, d};
  if (p->c->opts & AO_HND) {
    int64_t stride[4] = {(int64_t)h * ps * d, d, (int64_t)ps * d, 1};
    return tu_tensor_alloc(p->ctx, x, kv_dtype(p->c), 4, shape, stride);
  }
  return tu_tensor_alloc(p->ctx, x, kv_dtype(p->c), 4, shape, NULL);
}

/* fp8 K/V: a scale per tensor or per KV head, not powers of two (a scale
 * must really multiply), and the dequantised value the oracle sees. */
static double kv_scale_of(const attn_problem *p, const tu_tensor *s, int h) {
  return p->c->kv8 ? tu_get(s, s->t.shape[0] > 1 ? h : 0) : 1.0;
}

pa_status attn_setup(attn_problem *p, pa_context *ctx, const attn_case *c) {
  memset(p, 0, sizeof *p);
  p->c = c;
  p->ctx = ctx;
  p->B = c->batch;
  p->hq = c->hq;
  p->hkv = c->hkv ? c->hkv : c->hq;
  p->dqk = c->dqk;
  p->dv = c->dv ? c->dv : c->dqk;
  p->paged = c->page_size > 0;
  tu_rng rng = tu_rng_seed(tu_hash_str(c->name));

  /* Lengths, slots and starts. */
  int64_t tq = 0, tk = 0;
  p->cu_q[0] = p->cu_k[0] = 0;
  for (int b = 0; b < p->B; b++) {
    p->lq[b] = c->lq[b];
    p->lk[b] = c->lk[b];
    p->sq_max = imax(p->sq_max, c->lq[b]);
    p->sk_max = imax(p->sk_max, c->lk[b]);
    int slot_q = c->lq[b] + (c->layout == AL_GAPS ? 1 + b % 3 : 0);
    int slot_k = c->lk[b] + (c->layout == AL_GAPS ? 2 + b % 2 : 0);
    p->qstart[b] = (int32_t)tq;
    p->kstart[b] = (int32_t)tk;
    p->rowbase[b + 1] = p->rowbase[b] + c->lq[b];
    tq += slot_q;
    tk += slot_k;
    p->cu_q[b + 1] = (int32_t)tq;
    p->cu_k[b + 1] = (int32_t)tk;
  }

  /* q, out (and k, v when not paged). */
  TRY(alloc_rows(p, &p->q, tq, p->sq_max + 1, p->hq, p->dqk));
  TRY(alloc_rows(p, &p->out, tq, p->sq_max + 1, p->hq, p->dv));
  if (!p->paged) {
    TRY(alloc_rows_dt(p, &p->k, kv_dtype(c), tk, p->sk_max + 2, p->hkv, p->dqk));
    TRY(alloc_rows_dt(p, &p->v, kv_dtype(c), tk, p->sk_max + 2, p->hkv, p->dv));
  } else {
    /* Shuffled pages, two never referenced, the block table's spare column
     * pointing at valid pages (a kernel reading it must not crash). */
    int ps = c->page_size, need = 0, max_pages = 1;
    for (int b = 0; b < p->B; b++) {
      int np = (c->lk[b] + ps - 1) / ps;
      need += np;
      max_pages = imax(max_pages, np + 1);
    }
    int pages = need + 2;
    int *perm = malloc(sizeof(int) * (size_t)pages);
    for (int i = 0; i < pages; i++) perm[i] = i;
    for (int i = pages - 1; i > 0; i--) {
      int j = tu_rng_int(&rng, i + 1), t = perm[i];
      perm[i] = perm[j];
      perm[j] = t;
    }
    int64_t bshape[2] = {p->B, max_pages};
    pa_status s = tu_tensor_alloc(ctx, &p->bt, PA_I32, 2, bshape, NULL);
    if (s != PA_OK) {
      free(perm);
      TRY(s);
    }
    for (int b = 0, next = 0; b < p->B; b++) {
      int np = (c->lk[b] + ps - 1) / ps;
      for (int x = 0; x < max_pages; x++)
        tu_set_i32(&p->bt, (int64_t)b * max_pages + x,
                   x < np ? perm[next + x] : tu_rng_int(&rng, pages));
      next += np;
    }
    free(perm);
    TRY(alloc_paged(p, &p->k, pages, p->hkv, p->dqk));
    TRY(alloc_paged(p, &p->v, pages, p->hkv, p->dv));
    TRY(tu_tensor_upload(&p->bt));
  }
  tu_tensor_fill_random(&p->q, &rng, 1.0);
  /* fp8 codes over most of e4m3's range (values to +-8 x the scale) */
  tu_tensor_fill_random(&p->k, &rng, c->kv8 ? 8.0 : 1.0);
  tu_tensor_fill_random(&p->v, &rng, c->kv8 ? 8.0 : 1.0);
  if (c->kv8) {
    int64_t shape[1] = {(c->opts & AO_SCALE_HEAD) ? p->hkv : 1};
    TRY(tu_tensor_alloc(ctx, &p->k_scale, PA_F32, 1, shape, NULL));
    TRY(tu_tensor_alloc(ctx, &p->v_scale, PA_F32, 1, shape, NULL));
    for (int h = 0; h < shape[0]; h++) {
      tu_set(&p->k_scale, h, tu_rng_uniform(&rng, 0.03, 0.2));
      tu_set(&p->v_scale, h, tu_rng_uniform(&rng, 0.05, 0.15));
    }
    TRY(tu_tensor_upload(&p->k_scale));
    TRY(tu_tensor_upload(&p->v_scale));
  }
  tu_tensor_poison(&p->out);
  TRY(tu_tensor_upload(&p->q));
  TRY(tu_tensor_upload(&p->k));
  TRY(tu_tensor_upload(&p->v));
  TRY(tu_tensor_upload(&p->out));

  if (c->opts & AO_LSE) {
    if (c->layout == AL_PADDED) {
      int64_t shape[3] = {p->B, p->sq_max + 1, p->hq};
      TRY(tu_tensor_alloc(ctx, &p->lse, PA_F32, 3, shape, NULL));
    } else {
      int64_t shape[2] = {tq, p->hq};
      TRY(tu_tensor_alloc(ctx, &p->lse, PA_F32, 2, shape, NULL));
    }
    tu_tensor_poison(&p->lse);
    TRY(tu_tensor_upload(&p->lse));
  }
  if (c->opts & AO_SINKS) {
    int64_t shape[1] = {p->hq};
    TRY(tu_tensor_alloc(ctx, &p->sinks, PA_F32, 1, shape, NULL));
    for (int h = 0; h < p->hq; h++) tu_set(&p->sinks, h, tu_rng_uniform(&rng, -1.0, 2.0));
    TRY(tu_tensor_upload(&p->sinks));
  }
  if (c->opts & AO_ALIBI) {
    int64_t shape[1] = {p->hq};
    TRY(tu_tensor_alloc(ctx, &p->alibi, PA_F32, 1, shape, NULL));
    for (int h = 0; h < p->hq; h++) tu_set(&p->alibi, h, pow(2.0, -8.0 * (h + 1) / p->hq));
    TRY(tu_tensor_upload(&p->alibi));
  }
  if (c->opts & (AO_MASK | AO_MASK_PER_HEAD)) {
    p->hm = (c->opts & AO_MASK_PER_HEAD) ? p->hq : 1;
    int64_t shape[4] = {p->B, p->hm, p->sq_max, p->sk_max};
    TRY(tu_tensor_alloc(ctx, &p->mask, PA_F32, 4, shape, NULL));
    int64_t n = (int64_t)p->B * p->hm * p->sq_max * p->sk_max;
    p->mask_d = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t e = 0; e < n; e++) {
      double v = tu_rng_nonzero(&rng, 1.0);
      if ((c->opts & AO_MASK_NEGINF) && tu_rng_int(&rng, 4) == 0) v = -INFINITY;
      tu_set(&p->mask, e, v);
      p->mask_d[e] = tu_get(&p->mask, e);
    }
    TRY(tu_tensor_upload(&p->mask));
  }

  /* desc */
  pa_attention_desc *d = &p->desc;
  pa_attention_desc_init(d, p->hq, p->hkv, p->dqk, c->dtype);
  d->kv_dtype = kv_dtype(c);
  d->head_dim_v = p->dv;
  d->causal = c->causal;
  d->window_left = (c->opts & AO_WINDOW) ? c->wl : -1;
  d->window_right = (c->opts & AO_WINDOW) ? c->wr : -1;
  d->sink_tokens = c->sink_tokens;
  d->scale = c->scale;
  d->softcap = c->softcap;
  d->page_size = c->page_size;
  d->num_splits = c->num_splits;
  d->kv_chunk = c->kv_chunk;
  d->flags = ((c->opts & AO_LSE) ? PA_RETURN_LSE : 0u) |
             ((c->opts & AO_SINKS) ? PA_HAS_SINKS : 0u) |
             ((c->opts & AO_ALIBI) ? PA_HAS_ALIBI : 0u) |
             ((c->opts & (AO_MASK | AO_MASK_PER_HEAD)) ? PA_HAS_MASK : 0u) |
             ((c->opts & AO_DETERMINISTIC) ? PA_DETERMINISTIC : 0u);

  /* batch */
  pa_batch *bt = &p->batch;
  bt->batch_size = p->B;
  switch (c->layout) {
  case AL_RAGGED:
    bt->cu_seqlens_q = p->cu_q;
    if (p->paged) bt->seqlens_k = p->lk;
    else bt->cu_seqlens_k = p->cu_k;
    break;
  case AL_GAPS:
    bt->cu_seqlens_q = p->cu_q;
    bt->seqlens_q = p->lq;
    bt->seqlens_k = p->lk;
    if (!p->paged) bt->cu_seqlens_k = p->cu_k;
    break;
  default: /* AL_PADDED, AL_LENS */
    bt->seqlens_q = p->lq;
    bt->seqlens_k = p->lk;
    break;
  }

  /* args */
  pa_attention_args *a = &p->args;
  a->q = p->q.t;
  a->k = p->k.t;
  a->v = p->v.t;
  a->out = p->out.t;
  if (p->paged) a->block_table = p->bt.t;
  if (c->opts & AO_LSE) a->lse = p->lse.t;
  if (c->opts & AO_SINKS) a->sinks = p->sinks.t;
  if (c->opts & AO_ALIBI) a->alibi_slopes = p->alibi.t;
  if (p->hm) a->mask = p->mask.t;
  if (c->kv8) {
    a->k_scale = p->k_scale.t;
    a->v_scale = p->v_scale.t;
  }
  return PA_OK;
}

void attn_reference(attn_problem *p) {
  const attn_case *c = p->c;
  int64_t rows = p->rowbase[p->B];
  p->o_ref = calloc((size_t)(rows > 0 ? rows : 1) * p->hq * p->dv, sizeof(double));
  p->lse_ref = calloc((size_t)(rows > 0 ? rows : 1) * p->hq, sizeof(double));
  double *sinks = NULL, *alibi = NULL;
  if (c->opts & AO_SINKS) {
    sinks = malloc(sizeof(double) * (size_t)p->hq);
    for (int h = 0; h < p->hq; h++) sinks[h] = tu_get(&p->sinks, h);
  }
  if (c->opts & AO_ALIBI) {
    alibi = malloc(sizeof(double) * (size_t)p->hq);
    for (int h = 0; h < p->hq; h++) alibi[h] = tu_get(&p->alibi, h);
  }
  oracle_attn o = {
      .hq = p->hq, .hkv = p->hkv, .dqk = p->dqk, .dv = p->dv, .causal = c->causal,
      .window_left = p->desc.window_left, .window_right = p->desc.window_right,
      .sink_tokens = c->sink_tokens,
      .scale = c->scale != 0 ? (double)c->scale : 1.0 / sqrt((double)p->dqk),
      .softcap = c->softcap, .alibi = alibi, .sinks = sinks, .mask_heads = p->hm,
      .mask_sh = (int64_t)p->sq_max * p->sk_max, .mask_si = p->sk_max};
  for (int b = 0; b < p->B; b++) {
    int sq = p->lq[b], skv = p->lk[b];
    double *q = malloc(sizeof(double) * (size_t)imax(sq, 1) * p->hq * p->dqk);
    double *k = malloc(sizeof(double) * (size_t)imax(skv, 1) * p->hkv * p->dqk);
    double *v = malloc(sizeof(double) * (size_t)imax(skv, 1) * p->hkv * p->dv);
    const pa_tensor *qt = &p->q.t;
    for (int i = 0; i < sq; i++)
      for (int h = 0; h < p->hq; h++)
        for (int x = 0; x < p->dqk; x++)
          q[((int64_t)i * p->hq + h) * p->dqk + x] =
              tu_get(&p->q, q_row(p, qt, b, i) + h * qt->stride[qt->ndim - 2] + x);
    int hs_k = (int)p->k.t.stride[p->k.t.ndim - 2], hs_v = (int)p->v.t.stride[p->v.t.ndim - 2];
    for (int j = 0; j < skv; j++)
      for (int h = 0; h < p->hkv; h++) {
        const double ks = kv_scale_of(p, &p->k_scale, h), vs = kv_scale_of(p, &p->v_scale, h);
        for (int x = 0; x < p->dqk; x++)
          k[((int64_t)j * p->hkv + h) * p->dqk + x] =
              ks * tu_get(&p->k, k_row(p, &p->k, b, j) + (int64_t)h * hs_k + x);
        for (int x = 0; x < p->dv; x++)
          v[((int64_t)j * p->hkv + h) * p->dv + x] =
              vs * tu_get(&p->v, k_row(p, &p->v, b, j) + (int64_t)h * hs_v + x);
      }
    o.mask = p->hm ? p->mask_d + (int64_t)b * p->hm * p->sq_max * p->sk_max : NULL;
    oracle_attention(&o, sq, skv, q, k, v, p->o_ref + p->rowbase[b] * p->hq * p->dv,
                     p->lse_ref + p->rowbase[b] * p->hq);
    free(q);
    free(k);
    free(v);
  }
  free(sinks);
  free(alibi);
}

pa_status attn_execute(attn_problem *p, const pa_attention_desc *desc, pa_buffer *ws) {
  tu_tensor_poison(&p->out);
  TRY(tu_tensor_upload(&p->out));
  if (p->c->opts & AO_LSE) {
    tu_tensor_poison(&p->lse);
    TRY(tu_tensor_upload(&p->lse));
  }
  pa_plan *plan = NULL;
  TRY(pa_attention_plan(p->ctx, desc ? desc : &p->desc, &p->batch, &plan));
  p->ws_size = pa_plan_workspace_size(plan);
  for (int b = 0; b < p->B; b++) p->splits[b] = pa_plan_num_splits(plan, b);
  pa_status s = pa_attention_run(plan, &p->args, ws);
  if (s != PA_OK)
    snprintf(p->msg, sizeof p->msg, "pa_attention_run: %s (%s)", pa_status_str(s),
             pa_context_last_error(p->ctx));
  pa_plan_destroy(plan);
  if (s != PA_OK) return s;
  TRY(pa_context_synchronize(p->ctx));
  TRY(tu_tensor_download(&p->out));
  if (p->c->opts & AO_LSE) TRY(tu_tensor_download(&p->lse));
  TRY(tu_tensor_download(&p->q));
  TRY(tu_tensor_download(&p->k));
  TRY(tu_tensor_download(&p->v));
  return PA_OK;
}

bool attn_check(attn_problem *p, const char *target, char *why, size_t n) {
  const attn_case *c = p->c;
  tu_tol tol = tu_tolerance(c->dtype);
  tu_err e = {0};
  double lse_err = 0;
  int64_t lse_bad = 0, lse_where = -1;
  /* rel-L2 per request, worst one reported: a global norm would let a
   * large-norm request (one key: O = v) hide the error of a long one. */
  double rel = 0;
  int rel_b = 0;
  for (int b = 0; b < p->B; b++) {
    tu_err eb = {0};
    for (int i = 0; i < p->lq[b]; i++)
      for (int h = 0; h < p->hq; h++) {
        int64_t r = (p->rowbase[b] + i) * p->hq + h, o = attn_out_offset(p, b, i, h);
        for (int x = 0; x < p->dv; x++) {
          double got = tu_get_back(&p->out, o + x), want = p->o_ref[r * p->dv + x];
          tu_err_add(&e, got, want, r * p->dv + x);
          tu_err_add(&eb, got, want, r * p->dv + x);
        }
        if (!(c->opts & AO_LSE)) continue;
        double got = tu_get_back(&p->lse, attn_lse_offset(p, b, i, h)), want = p->lse_ref[r];
        double err = want == -INFINITY ? (got == -INFINITY ? 0 : INFINITY)
                                       : fabs(got - want) / fmax(1.0, fabs(want));
        if (!(err <= tol.lse_abs)) {
          if (lse_bad++ == 0) lse_where = r;
        }
        if (!(err <= lse_err)) lse_err = err;
      }
    double rb = eb.count ? tu_err_rel_l2(&eb) : 0;
    if (!(rb <= rel)) rel = rb, rel_b = b;
  }
  bool guards = tu_guards_intact(&p->out) && (!(c->opts & AO_LSE) || tu_guards_intact(&p->lse));
  /* the kernels must not write their inputs (q/k/v downloaded after the run) */
  bool inputs = tu_unchanged(&p->q) && tu_unchanged(&p->k) && tu_unchanged(&p->v);
  guards = guards && inputs;
  bool ok = rel <= tol.rel_l2 && e.max_abs <= tol.max_abs && e.nonfinite == 0 && lse_bad == 0 &&
            guards;
  if (!ok) {
    int64_t w = e.worst / p->dv, row = w / p->hq;
    int bb = 0;
    while (bb + 1 < p->B && p->rowbase[bb + 1] <= row) bb++;
    snprintf(why, n,
             "[%s] case %s (%s): rel_l2 %.3g (tol %.1g, request %d), max_abs %.3g (tol %.1g) at b=%d i=%lld "
             "h=%lld d=%lld, nonfinite %lld/%lld, lse max err %.3g (tol %.1g, %lld bad, first "
             "row*hq+h=%lld), guards %s",
             target, c->name, pa_dtype_name(c->dtype), rel, tol.rel_l2, rel_b, e.max_abs,
             tol.max_abs, bb, (long long)(row - p->rowbase[bb]), (long long)(w % p->hq),
             (long long)(e.worst % p->dv), (long long)e.nonfinite, (long long)e.count, lse_err,
             tol.lse_abs, (long long)lse_bad, (long long)lse_where,
             !inputs ? "intact, but q/k/v were WRITTEN" : guards ? "intact" : "OVERWRITTEN");
  } else {
    snprintf(why, n, "[%s] case %s: rel_l2 %.3g max_abs %.3g lse %.3g", target, c->name, rel,
             e.max_abs, lse_err);
  }
  return ok;
}

void attn_free(attn_problem *p) {
  tu_tensor *ts[] = {&p->q,  &p->k,     &p->v,    &p->out,     &p->lse,    &p->bt,
                     &p->sinks, &p->alibi, &p->mask, &p->k_scale, &p->v_scale};
  for (int i = 0; i < TU_LEN(ts); i++)
    if (ts[i]->host) tu_tensor_free(ts[i]);
  free(p->mask_d);
  free(p->o_ref);
  free(p->lse_ref);
  p->mask_d = p->o_ref = p->lse_ref = NULL;
}

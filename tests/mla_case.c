#include "mla_case.h"

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

/* Element offset of key j of request b in a paged [pages, page, D] view. */
static int64_t key_row(const mla_problem *p, const pa_tensor *t, int b, int j) {
  int ps = p->c->page_size;
  int32_t page = tu_get_i32(&p->bt, (int64_t)b * p->max_pages + j / ps);
  return (int64_t)page * t->stride[0] + (int64_t)(j % ps) * t->stride[1];
}

pa_status mla_setup(mla_problem *p, pa_context *ctx, const mla_case *c) {
  memset(p, 0, sizeof *p);
  p->c = c;
  p->ctx = ctx;
  p->B = c->batch;
  tu_rng rng = tu_rng_seed(tu_hash_str(c->name));
  int ps = c->page_size, need = 0;
  p->max_pages = 1;
  for (int b = 0; b < p->B; b++) {
    p->cu_q[b + 1] = p->cu_q[b] + c->lq[b];
    int np = (c->lk[b] + ps - 1) / ps;
    need += np;
    if (np + 1 > p->max_pages) p->max_pages = np + 1;
  }
  p->pages = need + 3;
  int64_t T = p->cu_q[p->B];
  int64_t sn[3] = {T, c->h, c->dc}, sp[3] = {T, c->h, c->dr}, sl[2] = {T, c->h};
  TRY(tu_tensor_alloc(ctx, &p->q_nope, c->dtype, 3, sn, NULL));
  TRY(tu_tensor_alloc(ctx, &p->q_pe, c->dtype, 3, sp, NULL));
  TRY(tu_tensor_alloc(ctx, &p->out, c->dtype, 3, sn, NULL));
  if (c->lse) TRY(tu_tensor_alloc(ctx, &p->lse, PA_F32, 2, sl, NULL));
  int64_t ckv_shape[3] = {p->pages, ps, c->dc}, kpe_shape[3] = {p->pages, ps, c->dr};
  const pa_dtype kvt = c->kv8 ? c->kv8 : c->dtype;
  if (c->one_cache) {
    int64_t all[3] = {p->pages, ps, c->dc + c->dr};
    TRY(tu_tensor_alloc(ctx, &p->ckv, kvt, 3, all, NULL));
    int64_t st[3] = {(int64_t)ps * (c->dc + c->dr), c->dc + c->dr, 1};
    p->args.ckv = p->ckv.t;
    tu_tensor_view(&p->ckv, &p->args.ckv, 0, 3, ckv_shape, st);
    tu_tensor_view(&p->ckv, &p->args.kpe, (size_t)c->dc * tu_dtype_size(kvt), 3, kpe_shape,
                   st);
  } else {
    TRY(tu_tensor_alloc(ctx, &p->ckv, kvt, 3, ckv_shape, NULL));
    TRY(tu_tensor_alloc(ctx, &p->kpe, kvt, 3, kpe_shape, NULL));
    p->args.ckv = p->ckv.t;
    p->args.kpe = p->kpe.t;
  }
  int64_t bshape[2] = {p->B, p->max_pages};
  TRY(tu_tensor_alloc(ctx, &p->bt, PA_I32, 2, bshape, NULL));
  int *perm = malloc(sizeof(int) * (size_t)p->pages);
  for (int i = 0; i < p->pages; i++) perm[i] = i;
  for (int i = p->pages - 1; i > 0; i--) {
    int j = tu_rng_int(&rng, i + 1), t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  for (int b = 0, next = 0; b < p->B; b++) {
    int np = (c->lk[b] + ps - 1) / ps;
    for (int x = 0; x < p->max_pages; x++)
      tu_set_i32(&p->bt, (int64_t)b * p->max_pages + x,
                 x < np ? perm[next + x] : tu_rng_int(&rng, p->pages));
    next += np;
  }
  free(perm);
  tu_tensor_fill_random(&p->q_nope, &rng, 1.0);
  tu_tensor_fill_random(&p->q_pe, &rng, 1.0);
  tu_tensor_fill_random(&p->ckv, &rng, c->kv8 ? 8.0 : 1.0);
  if (!c->one_cache) tu_tensor_fill_random(&p->kpe, &rng, c->kv8 ? 8.0 : 1.0);
  if (c->kv8) {
    int64_t one[1] = {1};
    TRY(tu_tensor_alloc(ctx, &p->kv_scale, PA_F32, 1, one, NULL));
    tu_set(&p->kv_scale, 0, 0.1171875 + tu_rng_uniform(&rng, 0.0, 0.01));
    TRY(tu_tensor_upload(&p->kv_scale));
    p->args.kv_scale = p->kv_scale.t;
  }
  tu_tensor_poison(&p->out);
  TRY(tu_tensor_upload(&p->out));
  if (c->lse) {
    tu_tensor_poison(&p->lse);
    TRY(tu_tensor_upload(&p->lse));
  }
  TRY(tu_tensor_upload(&p->q_nope));
  TRY(tu_tensor_upload(&p->q_pe));
  TRY(tu_tensor_upload(&p->ckv));
  if (!c->one_cache) TRY(tu_tensor_upload(&p->kpe));
  TRY(tu_tensor_upload(&p->bt));
  p->args.q_nope = p->q_nope.t;
  p->args.q_pe = p->q_pe.t;
  p->args.block_table = p->bt.t;
  p->args.out = p->out.t;
  if (c->lse) p->args.lse = p->lse.t;

  pa_mla_desc *d = &p->desc;
  d->num_heads = c->h;
  d->head_dim_ckv = c->dc;
  d->head_dim_kpe = c->dr;
  d->q_dtype = d->kv_dtype = d->o_dtype = c->dtype;
  d->kv_dtype = kvt;
  d->page_size = ps;
  d->causal = c->causal;
  d->scale = c->scale;
  d->num_splits = c->num_splits;
  d->flags = c->lse ? PA_RETURN_LSE : 0u;
  p->batch.batch_size = p->B;
  p->batch.cu_seqlens_q = p->cu_q;
  p->batch.seqlens_k = c->lk;
  return PA_OK;
}

/* Reads an element of ckv or kpe through the view the library gets. */
static double cache_get(const mla_problem *p, const pa_tensor *view, int64_t e) {
  const tu_tensor *base = p->c->one_cache || view->buf == p->ckv.buf ? &p->ckv : &p->kpe;
  int64_t rel = (int64_t)(view->offset - base->t.offset) / (int64_t)tu_dtype_size(view->dtype);
  return (p->c->kv8 ? tu_get(&p->kv_scale, 0) : 1.0) * tu_get(base, rel + e);
}

void mla_reference(mla_problem *p) {
  const mla_case *c = p->c;
  int64_t T = p->cu_q[p->B];
  p->o_ref = calloc((size_t)(T > 0 ? T : 1) * c->h * c->dc, sizeof(double));
  p->lse_ref = calloc((size_t)(T > 0 ? T : 1) * c->h, sizeof(double));
  double scale = c->scale != 0 ? (double)c->scale : 1.0 / sqrt((double)(c->dc + c->dr));
  for (int b = 0; b < p->B; b++) {
    int sq = c->lq[b], skv = c->lk[b];
    int64_t t0 = p->cu_q[b];
    double *qn = malloc(sizeof(double) * (size_t)(sq + 1) * c->h * c->dc);
    double *qp = malloc(sizeof(double) * (size_t)(sq + 1) * c->h * c->dr);
    double *ckv = malloc(sizeof(double) * (size_t)(skv + 1) * c->dc);
    double *kpe = malloc(sizeof(double) * (size_t)(skv + 1) * c->dr);
    for (int64_t e = 0; e < (int64_t)sq * c->h * c->dc; e++)
      qn[e] = tu_get(&p->q_nope, t0 * c->h * c->dc + e);
    for (int64_t e = 0; e < (int64_t)sq * c->h * c->dr; e++)
      qp[e] = tu_get(&p->q_pe, t0 * c->h * c->dr + e);
    for (int j = 0; j < skv; j++) {
      int64_t rc = key_row(p, &p->args.ckv, b, j), rp = key_row(p, &p->args.kpe, b, j);
      for (int x = 0; x < c->dc; x++) ckv[(int64_t)j * c->dc + x] = cache_get(p, &p->args.ckv, rc + x);
      for (int x = 0; x < c->dr; x++) kpe[(int64_t)j * c->dr + x] = cache_get(p, &p->args.kpe, rp + x);
    }
    oracle_mla(c->h, c->dc, c->dr, scale, c->causal, sq, skv, qn, qp, ckv, kpe,
               p->o_ref + t0 * c->h * c->dc, p->lse_ref + t0 * c->h);
    free(qn);
    free(qp);
    free(ckv);
    free(kpe);
  }
}

pa_status mla_execute(mla_problem *p) {
  tu_tensor_poison(&p->out);
  TRY(tu_tensor_upload(&p->out));
  if (p->c->lse) {
    tu_tensor_poison(&p->lse);
    TRY(tu_tensor_upload(&p->lse));
  }
  pa_plan *plan = NULL;
  TRY(pa_mla_plan(p->ctx, &p->desc, &p->batch, &plan));
  pa_status s = pa_mla_run(plan, &p->args, NULL);
  if (s != PA_OK)
    snprintf(p->msg, sizeof p->msg, "pa_mla_run: %s (%s)", pa_status_str(s),
             pa_context_last_error(p->ctx));
  pa_plan_destroy(plan);
  if (s != PA_OK) return s;
  TRY(pa_context_synchronize(p->ctx));
  TRY(tu_tensor_download(&p->out));
  if (p->c->lse) TRY(tu_tensor_download(&p->lse));
  return PA_OK;
}

bool mla_check(mla_problem *p, const char *target, char *why, size_t n) {
  const mla_case *c = p->c;
  tu_tol tol = tu_tolerance(c->dtype);
  tu_err e = {0};
  int64_t lse_bad = 0;
  double lse_err = 0, rel = 0; /* rel-L2: worst request */
  for (int b = 0; b < p->B; b++) {
    tu_err eb = {0};
    for (int64_t r = (int64_t)p->cu_q[b] * c->h; r < (int64_t)p->cu_q[b + 1] * c->h; r++) {
      for (int x = 0; x < c->dc; x++) {
        double got = tu_get_back(&p->out, r * c->dc + x), want = p->o_ref[r * c->dc + x];
        tu_err_add(&e, got, want, r * c->dc + x);
        tu_err_add(&eb, got, want, r * c->dc + x);
      }
      if (!c->lse) continue;
      double got = tu_get_back(&p->lse, r), want = p->lse_ref[r];
      double err = want == -INFINITY ? (got == -INFINITY ? 0 : INFINITY)
                                     : fabs(got - want) / fmax(1.0, fabs(want));
      if (!(err <= tol.lse_abs)) lse_bad++;
      if (!(err <= lse_err)) lse_err = err;
    }
    double rb = eb.count ? tu_err_rel_l2(&eb) : 0;
    if (!(rb <= rel)) rel = rb;
  }
  bool guards = tu_guards_intact(&p->out) && (!c->lse || tu_guards_intact(&p->lse));
  bool ok = rel <= tol.rel_l2 && e.max_abs <= tol.max_abs && e.nonfinite == 0 && lse_bad == 0 &&
            guards;
  int64_t w = e.worst / c->dc;
  snprintf(why, n,
           "[%s] mla case %s (%s): rel_l2 %.3g (tol %.1g), max_abs %.3g (tol %.1g) at token %lld "
           "head %lld d %lld, nonfinite %lld/%lld, lse max err %.3g (%lld bad), guards %s",
           target, c->name, pa_dtype_name(c->dtype), rel, tol.rel_l2, e.max_abs, tol.max_abs,
           (long long)(w / c->h), (long long)(w % c->h), (long long)(e.worst % c->dc),
           (long long)e.nonfinite, (long long)e.count, lse_err, (long long)lse_bad,
           guards ? "intact" : "OVERWRITTEN");
  return ok;
}

void mla_free(mla_problem *p) {
  tu_tensor *ts[] = {&p->q_nope, &p->q_pe, &p->ckv, &p->kpe, &p->bt, &p->out, &p->lse, &p->kv_scale};
  for (int i = 0; i < TU_LEN(ts); i++)
    if (ts[i]->host) tu_tensor_free(ts[i]);
  free(p->o_ref);
  free(p->lse_ref);
  p->o_ref = p->lse_ref = NULL;
}

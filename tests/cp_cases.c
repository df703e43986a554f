/* The context-parallel cases shared by the MPI and NCCL test programs:
 * decode over KV shards (contiguous / interleaved, paged / packed, three
 * combines, windows, sink tokens, several causal queries), MLA decode and
 * ring prefill (zig-zag, causal or not, windows, GQA, 192/128, paged K/V
 * shards NHD / HND) equal the float64 oracle on the unsharded inputs; bad
 * inputs fail on every rank with a message naming the field. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_cases.h"
#include "oracle.h"
#include "util.h"

/* Per thread: the NCCL test runs one rank per GPU in one process. */
static _Thread_local int rank, size, failures, checks;
static _Thread_local pa_context *ctx;

#define FAIL(...)                                                                                  \
  do {                                                                                             \
    fprintf(stderr, "rank %d: FAIL ", rank);                                                       \
    fprintf(stderr, __VA_ARGS__);                                                                  \
    fprintf(stderr, "\n");                                                                         \
    failures++;                                                                                    \
  } while (0)

/* ---- device tensors from double arrays ---- */
static pa_buffer *upload(pa_dtype t, const double *x, int64_t n) {
  size_t es = pa_dtype_size(t), bytes = (size_t)(n > 0 ? n : 1) * es;
  unsigned char *h = calloc(1, bytes);
  for (int64_t i = 0; i < n; i++) tu_store(h + i * es, t, x[i]);
  pa_buffer *b = NULL;
  if (pa_buffer_create(ctx, bytes, &b) != PA_OK || pa_buffer_write(b, 0, h, bytes) != PA_OK)
    FAIL("upload of %zu bytes", bytes);
  free(h);
  return b;
}

static pa_buffer *poisoned(size_t bytes) {
  unsigned char *h = malloc(bytes ? bytes : 1);
  memset(h, TU_POISON_BYTE, bytes ? bytes : 1);
  pa_buffer *b = NULL;
  if (pa_buffer_create(ctx, bytes ? bytes : 1, &b) != PA_OK ||
      pa_buffer_write(b, 0, h, bytes ? bytes : 1) != PA_OK)
    FAIL("output buffer");
  free(h);
  return b;
}

static double *download(pa_buffer *b, pa_dtype t, int64_t n) {
  size_t es = pa_dtype_size(t);
  unsigned char *h = malloc((size_t)(n > 0 ? n : 1) * es);
  double *x = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
  if (n && pa_buffer_read(b, 0, h, (size_t)n * es) != PA_OK) FAIL("download");
  for (int64_t i = 0; i < n; i++) x[i] = tu_load(h + i * es, t);
  free(h);
  return x;
}

static pa_tensor tensor(pa_buffer *b, pa_dtype t, int nd, int64_t a, int64_t c, int64_t d) {
  pa_tensor x;
  int64_t shape[3] = {a, c, d};
  pa_tensor_init(&x, b, 0, t, nd, shape);
  return x;
}

static void random_fill(double *x, int64_t n, pa_dtype t, tu_rng *r) {
  for (int64_t i = 0; i < n; i++) x[i] = tu_round(t, tu_rng_nonzero(r, 1.0));
}

/* got [n] (rows of `row` values) vs want; LSE relative to max(1, |lse|).
 * The dtype's usual bounds also hold CP: with f16/bf16 o_dtype the ranks'
 * partials are rounded to it before the f32 merge, one more rounding per
 * partial of at most the unit roundoff (bf16 2^-8, f16 2^-11) relative, so
 * the merged error grows by at most 2^-8 * max |partial| <= 3.9e-3 absolute
 * for bf16 (values in [-1, 1]; bound 5e-2), 4.9e-4 for f16 (bound 1e-2);
 * rel_l2 rose from 2.1e-3 to 2.7e-3 at worst on 2-3 ranks (bf16 bound 1e-2).
 * f32 partials are as before. */
static void compare(const char *name, const char *what, pa_dtype t, const double *got,
                    const double *want, int64_t n, bool is_lse) {
  tu_tol tol = tu_tolerance(t);
  tu_err e = {0};
  double lse_worst = 0;
  for (int64_t i = 0; i < n; i++) {
    if (is_lse) {
      if (isinf(want[i]) || isinf(got[i])) {
        if (got[i] != want[i]) lse_worst = INFINITY;
        continue;
      }
      double d = fabs(got[i] - want[i]) / fmax(1.0, fabs(want[i]));
      if (!(d <= lse_worst)) lse_worst = d;
    } else {
      tu_err_add(&e, got[i], want[i], i);
    }
  }
  checks++;
  if (is_lse) {
    if (!(lse_worst <= tol.lse_abs))
      FAIL("%s: lse error %.3g > %.3g", name, lse_worst, tol.lse_abs);
    return;
  }
  double rel = tu_err_rel_l2(&e);
  if (e.nonfinite || !(rel <= tol.rel_l2) || !(e.max_abs <= tol.max_abs))
    FAIL("%s: %s rel_l2 %.3g (tol %.3g) max_abs %.3g (tol %.3g) nonfinite %lld at %lld", name, what,
         rel, tol.rel_l2, e.max_abs, tol.max_abs, (long long)e.nonfinite, (long long)e.worst);
  else if (rank == 0)
    printf("  %-28s %s rel_l2 %.2e max_abs %.2e\n", name, what, rel, e.max_abs);
}

/* ---- decode ---- */
typedef struct dcase {
  const char *name;
  int B;
  int32_t lq[4], lk[4];
  int hq, hkv, d;
  pa_dtype dt;
  int page; /* 0: packed K */
  pa_cp_shard shard;
  pa_cp_combine combine;
  bool lse, sinks, causal;
  float softcap;
  int bad_out;    /* k > 0: rank (k-1) % size passes out one row short */
  int wl, wr, st; /* window_left/right, sink_tokens (only read when wl or wr is set) */
} dcase;

static void run_decode(pa_cp *cp, const dcase *c) {
  tu_rng rng = tu_rng_seed(tu_hash_str(c->name));
  const int B = c->B, hq = c->hq, hkv = c->hkv, D = c->d, R = size;
  int64_t T = 0, K = 0, cq[5] = {0}, ck[5] = {0};
  for (int b = 0; b < B; b++) {
    cq[b + 1] = cq[b] + c->lq[b];
    ck[b + 1] = ck[b] + c->lk[b];
  }
  T = cq[B];
  K = ck[B];
  double *q = malloc(sizeof(double) * (size_t)(T * hq * D + 1));
  double *k = malloc(sizeof(double) * (size_t)(K * hkv * D + 1));
  double *v = malloc(sizeof(double) * (size_t)(K * hkv * D + 1));
  double sinks[64], *o = calloc((size_t)(T * hq * D + 1), sizeof(double));
  double *l = calloc((size_t)(T * hq + 1), sizeof(double));
  random_fill(q, T * hq * D, c->dt, &rng);
  random_fill(k, K * hkv * D, c->dt, &rng);
  random_fill(v, K * hkv * D, c->dt, &rng);
  for (int h = 0; h < hq; h++) sinks[h] = tu_rng_uniform(&rng, -1, 2);
  const bool win = c->wl || c->wr;
  const int wl = win ? c->wl : -1, wr = win ? c->wr : -1, stk = win ? c->st : 0;
  oracle_attn oa = {hq,         hkv,       D,
                    D,          c->causal, wl,
                    wr,         stk,       1.0 / sqrt(D),
                    c->softcap, NULL,      c->sinks ? sinks : NULL,
                    NULL,       0,         0,
                    0};
  for (int b = 0; b < B; b++)
    oracle_attention(&oa, c->lq[b], c->lk[b], q + cq[b] * hq * D, k + ck[b] * hkv * D,
                     v + ck[b] * hkv * D, o + cq[b] * hq * D, l + cq[b] * hq);

  /* This rank's shard of K/V: owned units in global order. */
  const int unit = c->page ? c->page : 1;
  int32_t lk[4] = {0};
  int64_t npages = 0, maxp = 1;
  for (int b = 0; b < B; b++) {
    lk[b] = pa_cp_shard_len(c->shard, c->lk[b], c->page, rank, R);
    int64_t np = (lk[b] + unit - 1) / unit;
    npages += np;
    if (np > maxp) maxp = np;
  }
  int64_t krows = c->page ? npages * c->page : lk[0] + lk[1] + lk[2] + lk[3];
  double *lkv[2] = {calloc((size_t)(krows * hkv * D + 1), sizeof(double)),
                    calloc((size_t)(krows * hkv * D + 1), sizeof(double))};
  double *bt = calloc((size_t)B * (size_t)maxp + 1, sizeof(double));
  int64_t next_row = 0, next_page = 0;
  for (int b = 0; b < B; b++) {
    int32_t n = (c->lk[b] + unit - 1) / unit, li;
    int64_t base_page = next_page;
    for (int32_t u = 0; u < n; u++) {
      int owner;
      pa_cp_shard_owner(c->shard, u, n, R, &owner, &li);
      if (owner != rank) continue;
      for (int j = u * unit; j < c->lk[b] && j < (u + 1) * unit; j++) {
        int64_t dst = c->page ? (base_page + li) * c->page + (j - u * unit) : next_row + li;
        memcpy(lkv[0] + dst * hkv * D, k + (ck[b] + j) * hkv * D, sizeof(double) * hkv * D);
        memcpy(lkv[1] + dst * hkv * D, v + (ck[b] + j) * hkv * D, sizeof(double) * hkv * D);
      }
      if (c->page) bt[b * maxp + li] = (double)(base_page + li);
    }
    next_page += (lk[b] + unit - 1) / unit;
    next_row += lk[b];
  }

  pa_attention_desc d;
  pa_attention_desc_init(&d, hq, hkv, D, c->dt);
  d.page_size = c->page;
  d.causal = c->causal;
  d.softcap = c->softcap;
  d.window_left = wl;
  d.window_right = wr;
  d.sink_tokens = stk;
  d.flags = (c->lse ? PA_RETURN_LSE : 0) | (c->sinks ? PA_HAS_SINKS : 0);
  pa_batch gb = {B, c->lq, c->lk, NULL, NULL};
  pa_cp_plan *plan = NULL;
  pa_status st = pa_cp_decode_plan(cp, &d, &gb, c->shard, c->combine, &plan);
  if (st != PA_OK) {
    FAIL("%s: plan %s: %s", c->name, pa_status_str(st), pa_cp_last_error(cp));
    goto out;
  }
  const int hs = c->combine == PA_CP_COMBINE_HEADS ? hq / R : hq;
  pa_buffer *bq = upload(c->dt, q, T * hq * D), *bk = upload(c->dt, lkv[0], krows * hkv * D),
            *bv = upload(c->dt, lkv[1], krows * hkv * D), *bb = upload(PA_I32, bt, B * maxp),
            *bs = upload(PA_F32, sinks, hq);
  pa_buffer *bo = poisoned((size_t)(T * hs * D) * pa_dtype_size(c->dt)),
            *bl = poisoned((size_t)(T * hs) * 4);
  pa_attention_args a = {0};
  a.q = tensor(bq, c->dt, 3, T, hq, D);
  if (c->page) {
    int64_t sh[4] = {npages, c->page, hkv, D};
    pa_tensor_init(&a.k, bk, 0, c->dt, 4, sh);
    pa_tensor_init(&a.v, bv, 0, c->dt, 4, sh);
    a.block_table = tensor(bb, PA_I32, 2, B, maxp, 0);
  } else {
    a.k = tensor(bk, c->dt, 3, krows, hkv, D);
    a.v = tensor(bv, c->dt, 3, krows, hkv, D);
  }
  const int bad_rank = c->bad_out > 0 ? (c->bad_out - 1) % R : -1;
  a.out = tensor(bo, c->dt, 3, T - (bad_rank == rank), hs, D);
  if (c->lse) a.lse = tensor(bl, PA_F32, 2, T, hs, 0);
  if (c->sinks) a.sinks = tensor(bs, PA_F32, 1, hq, 0, 0);
  st = pa_cp_decode_run(plan, &a);
  if (st == PA_OK) st = pa_context_synchronize(ctx);
  if (bad_rank >= 0) {
    size_t obytes = (size_t)(T * hs * D) * pa_dtype_size(c->dt);
    unsigned char *h = malloc(obytes + 1);
    bool untouched = pa_buffer_read(bo, 0, h, obytes) == PA_OK;
    for (size_t i = 0; i < obytes; i++) untouched &= h[i] == TU_POISON_BYTE;
    free(h);
    checks++;
    if (st != PA_ERR_INVALID_ARGUMENT || !untouched)
      FAIL("%s: status %s (want PA_ERR_INVALID_ARGUMENT), out untouched %d", c->name,
           pa_status_str(st), untouched);
    else if (rank == bad_rank && !strstr(pa_cp_last_error(cp), "out: "))
      FAIL("%s: message \"%s\" does not name out", c->name, pa_cp_last_error(cp));
    else if (rank == 0)
      printf("  %-28s refused: %s\n", c->name, pa_cp_last_error(cp));
  } else if (st != PA_OK) {
    FAIL("%s: run %s: %s", c->name, pa_status_str(st), pa_cp_last_error(cp));
  } else {
    /* Reference rows of our heads. */
    const int h0 = c->combine == PA_CP_COMBINE_HEADS ? rank * hs : 0;
    double *wo = malloc(sizeof(double) * (size_t)(T * hs * D + 1));
    double *wl = malloc(sizeof(double) * (size_t)(T * hs + 1));
    for (int64_t t = 0; t < T; t++)
      for (int h = 0; h < hs; h++) {
        memcpy(wo + (t * hs + h) * D, o + (t * hq + h0 + h) * D, sizeof(double) * D);
        wl[t * hs + h] = l[t * hq + h0 + h];
      }
    double *go = download(bo, c->dt, T * hs * D);
    compare(c->name, "out", c->dt, go, wo, T * hs * D, false);
    if (c->lse) {
      double *gl = download(bl, PA_F32, T * hs);
      compare(c->name, "lse", c->dt, gl, wl, T * hs, true);
      free(gl);
    }
    free(go);
    free(wo);
    free(wl);
  }
  pa_buffer_destroy(bq);
  pa_buffer_destroy(bk);
  pa_buffer_destroy(bv);
  pa_buffer_destroy(bb);
  pa_buffer_destroy(bs);
  pa_buffer_destroy(bo);
  pa_buffer_destroy(bl);
  pa_cp_plan_destroy(plan);
out:
  free(q), free(k), free(v), free(o), free(l), free(lkv[0]), free(lkv[1]), free(bt);
}

/* ---- MLA decode ---- */
typedef struct mcase {
  const char *name;
  int B;
  int32_t lq[4], lk[4];
  int h, dc, dr;
  pa_dtype dt;
  int page;
  pa_cp_shard shard;
  pa_cp_combine combine;
  bool causal;
} mcase;

static void run_mla_decode(pa_cp *cp, const mcase *c) {
  tu_rng rng = tu_rng_seed(tu_hash_str(c->name));
  const int B = c->B, H = c->h, Dc = c->dc, Dr = c->dr, Dk = Dc + Dr, R = size, P = c->page;
  int64_t cq[5] = {0}, ck[5] = {0};
  for (int b = 0; b < B; b++) {
    cq[b + 1] = cq[b] + c->lq[b];
    ck[b + 1] = ck[b] + c->lk[b];
  }
  const int64_t T = cq[B], K = ck[B];
  /* q = q_nope || q_pe, k = ckv || kpe, v = ckv: the oracle's attention. */
  double *q = malloc(sizeof(double) * (size_t)(T * H * Dk + 1));
  double *k = malloc(sizeof(double) * (size_t)(K * Dk + 1));
  double *v = malloc(sizeof(double) * (size_t)(K * Dc + 1));
  double *o = calloc((size_t)(T * H * Dc + 1), sizeof(double));
  double *l = calloc((size_t)(T * H + 1), sizeof(double));
  random_fill(q, T * H * Dk, c->dt, &rng);
  random_fill(k, K * Dk, c->dt, &rng);
  for (int64_t j = 0; j < K; j++) memcpy(v + j * Dc, k + j * Dk, sizeof(double) * Dc);
  oracle_attn oa = {H, 1,    Dk,   Dc,   c->causal, -1, -1, 0, 1.0 / sqrt(Dk),
                    0, NULL, NULL, NULL, 0,         0,  0};
  for (int b = 0; b < B; b++)
    oracle_attention(&oa, c->lq[b], c->lk[b], q + cq[b] * H * Dk, k + ck[b] * Dk, v + ck[b] * Dc,
                     o + cq[b] * H * Dc, l + cq[b] * H);
  double *qn = malloc(sizeof(double) * (size_t)(T * H * Dc + 1));
  double *qp = malloc(sizeof(double) * (size_t)(T * H * Dr + 1));
  for (int64_t r = 0; r < T * H; r++) {
    memcpy(qn + r * Dc, q + r * Dk, sizeof(double) * Dc);
    memcpy(qp + r * Dr, q + r * Dk + Dc, sizeof(double) * Dr);
  }
  /* This rank's pages. */
  int64_t npages = 0, maxp = 1;
  for (int b = 0; b < B; b++) {
    int64_t np = (pa_cp_shard_len(c->shard, c->lk[b], P, rank, R) + P - 1) / P;
    npages += np;
    if (np > maxp) maxp = np;
  }
  double *ckv = calloc((size_t)(npages * P * Dc + 1), sizeof(double));
  double *kpe = calloc((size_t)(npages * P * Dr + 1), sizeof(double));
  double *bt = calloc((size_t)(B * maxp + 1), sizeof(double));
  int64_t next_page = 0;
  for (int b = 0; b < B; b++) {
    int32_t n = (c->lk[b] + P - 1) / P, li;
    for (int32_t u = 0; u < n; u++) {
      int owner;
      pa_cp_shard_owner(c->shard, u, n, R, &owner, &li);
      if (owner != rank) continue;
      for (int j = u * P; j < c->lk[b] && j < (u + 1) * P; j++) {
        int64_t dst = (next_page + li) * P + (j - u * P);
        memcpy(ckv + dst * Dc, k + (ck[b] + j) * Dk, sizeof(double) * Dc);
        memcpy(kpe + dst * Dr, k + (ck[b] + j) * Dk + Dc, sizeof(double) * Dr);
      }
      bt[b * maxp + li] = (double)(next_page + li);
    }
    next_page += (pa_cp_shard_len(c->shard, c->lk[b], P, rank, R) + P - 1) / P;
  }
  pa_mla_desc d;
  pa_mla_desc_init(&d, H, Dc, Dr, P, c->dt);
  d.causal = c->causal;
  d.flags = PA_RETURN_LSE;
  pa_batch gb = {B, c->lq, c->lk, NULL, NULL};
  pa_cp_plan *plan = NULL;
  pa_status st = pa_cp_mla_decode_plan(cp, &d, &gb, c->shard, c->combine, &plan);
  if (st != PA_OK) {
    FAIL("%s: plan %s: %s", c->name, pa_status_str(st), pa_cp_last_error(cp));
  } else {
    const int hs = c->combine == PA_CP_COMBINE_HEADS ? H / R : H, h0 = hs == H ? 0 : rank * hs;
    pa_buffer *bqn = upload(c->dt, qn, T * H * Dc), *bqp = upload(c->dt, qp, T * H * Dr),
              *bc = upload(c->dt, ckv, npages * P * Dc), *bk = upload(c->dt, kpe, npages * P * Dr),
              *bb = upload(PA_I32, bt, B * maxp);
    pa_buffer *bo = poisoned((size_t)(T * hs * Dc) * pa_dtype_size(c->dt)),
              *bl = poisoned((size_t)(T * hs) * 4);
    pa_mla_args a = {0};
    a.q_nope = tensor(bqn, c->dt, 3, T, H, Dc);
    a.q_pe = tensor(bqp, c->dt, 3, T, H, Dr);
    a.ckv = tensor(bc, c->dt, 3, npages, P, Dc);
    a.kpe = tensor(bk, c->dt, 3, npages, P, Dr);
    a.block_table = tensor(bb, PA_I32, 2, B, maxp, 0);
    a.out = tensor(bo, c->dt, 3, T, hs, Dc);
    a.lse = tensor(bl, PA_F32, 2, T, hs, 0);
    st = pa_cp_mla_decode_run(plan, &a);
    if (st == PA_OK) st = pa_context_synchronize(ctx);
    if (st != PA_OK) {
      FAIL("%s: run %s: %s", c->name, pa_status_str(st), pa_cp_last_error(cp));
    } else {
      double *wo = malloc(sizeof(double) * (size_t)(T * hs * Dc + 1));
      double *wl = malloc(sizeof(double) * (size_t)(T * hs + 1));
      for (int64_t t = 0; t < T; t++)
        for (int h = 0; h < hs; h++) {
          memcpy(wo + (t * hs + h) * Dc, o + (t * H + h0 + h) * Dc, sizeof(double) * Dc);
          wl[t * hs + h] = l[t * H + h0 + h];
        }
      double *go = download(bo, c->dt, T * hs * Dc), *gl = download(bl, PA_F32, T * hs);
      compare(c->name, "out", c->dt, go, wo, T * hs * Dc, false);
      compare(c->name, "lse", c->dt, gl, wl, T * hs, true);
      free(go), free(gl), free(wo), free(wl);
    }
    pa_buffer_destroy(bqn);
    pa_buffer_destroy(bqp);
    pa_buffer_destroy(bc);
    pa_buffer_destroy(bk);
    pa_buffer_destroy(bb);
    pa_buffer_destroy(bo);
    pa_buffer_destroy(bl);
    pa_cp_plan_destroy(plan);
  }
  free(q), free(k), free(v), free(o), free(l), free(qn), free(qp), free(ckv), free(kpe), free(bt);
}

/* ---- ring prefill ---- */
typedef struct pcase {
  const char *name;
  int B;
  int32_t len[4];
  int hq, hkv, dqk, dv;
  pa_dtype dt;
  bool causal, lse, sinks;
  int bad_k_rank; /* >= 0: this rank passes k one row short */
  int wl, wr, st; /* as in dcase */
  int page;       /* > 0: K/V shards paged (pages in reverse order, a NaN page unused) */
  bool hnd;       /* paged HND [P, Hkv, page, D] */
} pcase;

static void run_prefill(pa_cp *cp, const pcase *c) {
  tu_rng rng = tu_rng_seed(tu_hash_str(c->name));
  const int B = c->B, hq = c->hq, hkv = c->hkv, Dq = c->dqk, Dv = c->dv, R = size;
  int64_t cu[5] = {0};
  for (int b = 0; b < B; b++) cu[b + 1] = cu[b] + c->len[b];
  const int64_t N = cu[B];
  double *q = malloc(sizeof(double) * (size_t)(N * hq * Dq + 1));
  double *k = malloc(sizeof(double) * (size_t)(N * hkv * Dq + 1));
  double *v = malloc(sizeof(double) * (size_t)(N * hkv * Dv + 1));
  double *o = calloc((size_t)(N * hq * Dv + 1), sizeof(double));
  double *l = calloc((size_t)(N * hq + 1), sizeof(double)), sinks[64];
  random_fill(q, N * hq * Dq, c->dt, &rng);
  random_fill(k, N * hkv * Dq, c->dt, &rng);
  random_fill(v, N * hkv * Dv, c->dt, &rng);
  for (int h = 0; h < hq; h++) sinks[h] = tu_rng_uniform(&rng, -1, 2);
  const bool win = c->wl || c->wr;
  const int win_l = win ? c->wl : -1, win_r = win ? c->wr : -1, stk = win ? c->st : 0;
  oracle_attn oa = {hq,    hkv,       Dq,
                    Dv,    c->causal, win_l,
                    win_r, stk,       1.0 / sqrt(Dq),
                    0,     NULL,      c->sinks ? sinks : NULL,
                    NULL,  0,         0,
                    0};
  for (int b = 0; b < B; b++)
    oracle_attention(&oa, c->len[b], c->len[b], q + cu[b] * hq * Dq, k + cu[b] * hkv * Dq,
                     v + cu[b] * hkv * Dv, o + cu[b] * hq * Dv, l + cu[b] * hq);

  int32_t ll[4], cs[8], cl[8];
  pa_cp_zigzag_shard(rank, R, B, c->len, ll, cs, cl);
  int64_t T = 0;
  for (int b = 0; b < B; b++) T += ll[b];
  double *lq = malloc(sizeof(double) * (size_t)(T * hq * Dq + 1));
  double *lk = malloc(sizeof(double) * (size_t)(T * hkv * Dq + 1));
  double *lv = malloc(sizeof(double) * (size_t)(T * hkv * Dv + 1));
  double *wo = malloc(sizeof(double) * (size_t)(T * hq * Dv + 1));
  double *wl = malloc(sizeof(double) * (size_t)(T * hq + 1));
  int64_t row = 0;
  for (int b = 0; b < B; b++)
    for (int i = 0; i < 2; i++)
      for (int j = 0; j < cl[2 * b + i]; j++, row++) {
        int64_t g = cu[b] + cs[2 * b + i] + j;
        memcpy(lq + row * hq * Dq, q + g * hq * Dq, sizeof(double) * hq * Dq);
        memcpy(lk + row * hkv * Dq, k + g * hkv * Dq, sizeof(double) * hkv * Dq);
        memcpy(lv + row * hkv * Dv, v + g * hkv * Dv, sizeof(double) * hkv * Dv);
        memcpy(wo + row * hq * Dv, o + g * hq * Dv, sizeof(double) * hq * Dv);
        memcpy(wl + row * hq, l + g * hq, sizeof(double) * hq);
      }

  pa_attention_desc d;
  pa_attention_desc_init(&d, hq, hkv, Dq, c->dt);
  d.head_dim_v = Dv;
  d.causal = c->causal;
  d.window_left = win_l;
  d.window_right = win_r;
  d.sink_tokens = stk;
  d.flags = (c->lse ? PA_RETURN_LSE : 0) | (c->sinks ? PA_HAS_SINKS : 0);
  d.page_size = c->page;
  pa_batch gb = {B, c->len, c->len, NULL, NULL};
  pa_cp_plan *plan = NULL;
  pa_status st = pa_cp_prefill_plan(cp, &d, &gb, &plan);
  if (st != PA_OK) {
    FAIL("%s: plan %s: %s", c->name, pa_status_str(st), pa_cp_last_error(cp));
    goto out;
  }
  /* Paged: request b's local tokens fill pages in reverse pool order (no
   * run of adjacent pages) after a NaN page no request uses; tails NaN. */
  const int P = c->page;
  int64_t npg = 1, maxp = 1;
  for (int b = 0; P && b < B; b++) {
    npg += (ll[b] + P - 1) / P;
    if ((ll[b] + P - 1) / P > maxp) maxp = (ll[b] + P - 1) / P;
  }
  double *bt = malloc(sizeof(double) * (size_t)(B * maxp));
  for (int64_t i = 0; i < B * maxp; i++) bt[i] = -1;
  if (P) {
    double *pk = malloc(sizeof(double) * (size_t)(npg * P * hkv * Dq));
    double *pv = malloc(sizeof(double) * (size_t)(npg * P * hkv * Dv));
    for (int64_t i = 0; i < npg * P * hkv * Dq; i++) pk[i] = NAN;
    for (int64_t i = 0; i < npg * P * hkv * Dv; i++) pv[i] = NAN;
    int64_t r0 = 0, pg = npg - 1;
    for (int b = 0; b < B; b++) {
      for (int64_t j = 0; j < ll[b]; j++) {
        if (j % P == 0) bt[b * maxp + j / P] = (double)pg--;
        const int64_t page = (int64_t)bt[b * maxp + j / P], o = j % P;
        for (int h = 0; h < hkv; h++) {
          const int64_t tk = c->hnd ? (page * hkv + h) * P + o : (page * P + o) * hkv + h;
          memcpy(pk + tk * Dq, lk + ((r0 + j) * hkv + h) * Dq, sizeof(double) * Dq);
          memcpy(pv + tk * Dv, lv + ((r0 + j) * hkv + h) * Dv, sizeof(double) * Dv);
        }
      }
      r0 += ll[b];
    }
    free(lk), free(lv);
    lk = pk, lv = pv;
  }
  const int64_t krows = P ? npg * P : T;
  pa_buffer *bq = upload(c->dt, lq, T * hq * Dq), *bk = upload(c->dt, lk, krows * hkv * Dq),
            *bv = upload(c->dt, lv, krows * hkv * Dv), *bs = upload(PA_F32, sinks, hq),
            *bb = upload(PA_I32, bt, B * maxp);
  size_t obytes = (size_t)(T * hq * Dv) * pa_dtype_size(c->dt);
  pa_buffer *bo = poisoned(obytes), *bl = poisoned((size_t)(T * hq) * 4);
  pa_attention_args a = {0};
  a.q = tensor(bq, c->dt, 3, T, hq, Dq);
  const int bad_rank = c->bad_k_rank >= 0 ? c->bad_k_rank % size : -1;
  a.k = tensor(bk, c->dt, 3, T - (bad_rank == rank), hkv, Dq);
  a.v = tensor(bv, c->dt, 3, T, hkv, Dv);
  if (P) {
    const int64_t shk[4] = {npg, P, hkv, Dq}, shv[4] = {npg, P, hkv, Dv};
    const int64_t sk[4] = {P * hkv * Dq, hkv * Dq, Dq, 1}, sv[4] = {P * hkv * Dv, hkv * Dv, Dv, 1};
    const int64_t hk[4] = {P * hkv * Dq, Dq, P * Dq, 1}, hv[4] = {P * hkv * Dv, Dv, P * Dv, 1};
    pa_tensor_init_strided(&a.k, bk, 0, c->dt, 4, shk, c->hnd ? hk : sk);
    pa_tensor_init_strided(&a.v, bv, 0, c->dt, 4, shv, c->hnd ? hv : sv);
    a.block_table = tensor(bb, PA_I32, 2, B, maxp, 0);
    if (bad_rank == rank) a.block_table.shape[1] = 0; /* one rank's table too narrow */
  }
  a.out = tensor(bo, c->dt, 3, T, hq, Dv);
  if (c->lse) a.lse = tensor(bl, PA_F32, 2, T, hq, 0);
  if (c->sinks) a.sinks = tensor(bs, PA_F32, 1, hq, 0, 0);
  st = pa_cp_prefill_run(plan, &a);
  if (st == PA_OK) st = pa_context_synchronize(ctx);
  if (c->bad_k_rank >= 0) {
    checks++;
    double *go = download(bo, c->dt, T * hq * Dv);
    bool untouched = true;
    unsigned char *h = malloc(obytes + 1);
    pa_buffer_read(bo, 0, h, obytes);
    for (size_t i = 0; i < obytes; i++) untouched &= h[i] == TU_POISON_BYTE;
    free(h);
    free(go);
    if (st != PA_ERR_INVALID_ARGUMENT || !untouched)
      FAIL("%s: status %s (want PA_ERR_INVALID_ARGUMENT), out untouched %d", c->name,
           pa_status_str(st), untouched);
    else if (rank == bad_rank && !strstr(pa_cp_last_error(cp), P ? "block_table" : "k: "))
      FAIL("%s: message \"%s\" does not name %s", c->name, pa_cp_last_error(cp),
           P ? "block_table" : "k");
    else if (rank == 0)
      printf("  %-28s refused: %s\n", c->name, pa_cp_last_error(cp));
  } else if (st != PA_OK) {
    FAIL("%s: run %s: %s", c->name, pa_status_str(st), pa_cp_last_error(cp));
  } else {
    double *go = download(bo, c->dt, T * hq * Dv);
    compare(c->name, "out", c->dt, go, wo, T * hq * Dv, false);
    free(go);
    if (c->lse) {
      double *gl = download(bl, PA_F32, T * hq);
      compare(c->name, "lse", c->dt, gl, wl, T * hq, true);
      free(gl);
    }
  }
  pa_buffer_destroy(bq);
  pa_buffer_destroy(bk);
  pa_buffer_destroy(bv);
  pa_buffer_destroy(bs);
  pa_buffer_destroy(bo);
  pa_buffer_destroy(bl);
  pa_buffer_destroy(bb);
  free(bt);
  pa_cp_plan_destroy(plan);
out:
  free(q), free(k), free(v), free(o), free(l), free(lq), free(lk), free(lv), free(wo), free(wl);
}

/* ---- invalid arguments: every rank fails, messages name the field ---- */
static void expect(pa_cp *cp, const char *name, pa_status got, pa_status want, const char *needle) {
  checks++;
  if (got != want || !strstr(pa_cp_last_error(cp), needle))
    FAIL("%s: got %s \"%s\", want %s with \"%s\"", name, pa_status_str(got), pa_cp_last_error(cp),
         pa_status_str(want), needle);
  else if (rank == 0)
    printf("  %-28s refused: %s\n", name, pa_cp_last_error(cp));
}

static void run_invalid(pa_cp *cp) {
  pa_attention_desc d;
  pa_cp_plan *p = NULL;
  int32_t lq[2] = {1, 1}, lk[2] = {40, 9};
  pa_batch gb = {2, lq, lk, NULL, NULL};
  /* Heads that the communicator size does not divide. */
  pa_attention_desc_init(&d, size + 1, 1, 64, PA_F32);
  expect(cp, "heads vs communicator size",
         pa_cp_decode_plan(cp, &d, &gb, PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_HEADS, &p),
         PA_ERR_INVALID_ARGUMENT, "communicator size");
  /* Ranks that disagree on the global batch (mismatched shards). */
  pa_attention_desc_init(&d, 4, 2, 64, PA_F32);
  int32_t lk_bad[2] = {40, 9 + (rank == size - 1)};
  pa_batch bad = {2, lq, lk_bad, NULL, NULL};
  expect(cp, "mismatched shards",
         pa_cp_decode_plan(cp, &d, &bad, PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_ALLGATHER, &p),
         PA_ERR_INVALID_ARGUMENT, "ranks disagree");
  /* A different head count on one rank. */
  pa_attention_desc_init(&d, rank == 1 ? 8 : 4, 2, 64, PA_F32);
  pa_batch pb = {2, lk, lk, NULL, NULL};
  expect(cp, "mismatched desc", pa_cp_prefill_plan(cp, &d, &pb, &p), PA_ERR_INVALID_ARGUMENT,
         "num_q_heads");
  /* Masks that CP does not take are refused by name; bad windows too. */
  pa_attention_desc_init(&d, 4, 2, 64, PA_F32);
  d.flags = PA_HAS_ALIBI;
  expect(cp, "decode alibi",
         pa_cp_decode_plan(cp, &d, &gb, PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, &p),
         PA_ERR_UNSUPPORTED, "desc.flags=0x8");
  d.flags = PA_HAS_MASK;
  expect(cp, "prefill dense mask", pa_cp_prefill_plan(cp, &d, &pb, &p), PA_ERR_UNSUPPORTED,
         "desc.flags=0x10");
  pa_attention_desc_init(&d, 4, 2, 64, PA_F32);
  d.window_left = -3;
  expect(cp, "decode window -3",
         pa_cp_decode_plan(cp, &d, &gb, PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, &p),
         PA_ERR_INVALID_ARGUMENT, "window_left=-3");
  expect(cp, "prefill window -3", pa_cp_prefill_plan(cp, &d, &pb, &p), PA_ERR_INVALID_ARGUMENT,
         "window_left=-3");
  pa_attention_desc_init(&d, 4, 2, 64, PA_F32);
  d.causal = 2;
  expect(cp, "decode causal 2",
         pa_cp_decode_plan(cp, &d, &gb, PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, &p),
         PA_ERR_INVALID_ARGUMENT, "desc.causal=2");
  pa_mla_desc md;
  pa_mla_desc_init(&md, 4, 64, 16, 0, PA_F32);
  expect(cp, "mla decode page_size 0",
         pa_cp_mla_decode_plan(cp, &md, &gb, PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, &p),
         PA_ERR_INVALID_ARGUMENT, "desc.page_size=0");
  pa_attention_desc_init(&d, 4, 2, 64, PA_F32);
  int32_t lk2[2] = {40, 10};
  pa_batch pb2 = {2, lk, lk2, NULL, NULL};
  expect(cp, "prefill q/k lengths", pa_cp_prefill_plan(cp, &d, &pb2, &p), PA_ERR_UNSUPPORTED,
         "seqlens_k[1]=10");
  if (p) FAIL("a refused plan was returned");
}

int cp_cases_run(pa_context *c, pa_cp *cp, bool quick, int *n_checks) {
  ctx = c;
  rank = pa_cp_rank(cp);
  size = pa_cp_size(cp);
  failures = checks = 0;
  /* clang-format off */
  static const dcase dec[] = {
      {"dec paged contig allgather", 3, {1, 1, 1}, {37, 0, 130}, 8, 2, 64, PA_F32, 16,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, true, false, true, 0, 0, 0, 0, 0},
      {"dec paged inter heads_gather", 3, {1, 1, 1}, {5, 200, 64}, 12, 2, 64, PA_F16, 16,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_HEADS_GATHER, true, false, false, 0, 0, 0, 0, 0},
      {"dec paged inter heads bf16", 2, {1, 1}, {77, 3}, 12, 4, 128, PA_BF16, 8,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_HEADS, true, true, false, 30.f, 0, 0, 0, 0},
      {"dec packed contig mtp", 2, {3, 2}, {50, 9}, 6, 6, 80, PA_F32, 0,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, true, true, false, 0, 0, 0, 0, 0},
      {"dec packed inter heads f16", 4, {1, 1, 1, 1}, {1, 2, 33, 0}, 6, 1, 64, PA_F16, 0,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_HEADS, false, false, false, 0, 0, 0, 0, 0},
      {"dec bad out, allgather", 2, {1, 1}, {40, 9}, 4, 2, 64, PA_F32, 16,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, true, false, false, 0, 2, 0, 0, 0},
      {"dec bad out, heads_gather", 2, {1, 1}, {40, 9}, 6, 2, 64, PA_F32, 16,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_HEADS_GATHER, true, false, false, 0, 1, 0, 0, 0},
      /* Windows (wl, wr, sink tokens; 0, 0 = none): keys are global; shards
       * wholly outside the window, or empty, see nothing. wl/wr -1 is written
       * as -1 here, so a case with only one side sets the other to -1. */
      {"dec win paged contig", 3, {1, 1, 1}, {70, 9, 200}, 4, 2, 64, PA_F32, 16,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, true, false, true, 0, 0, 20, -1, 0},
      {"dec win paged inter sinks", 2, {1, 1}, {150, 40}, 6, 2, 64, PA_BF16, 8,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_HEADS_GATHER, true, true, true, 0, 0, 13, -1, 4},
      {"dec win packed inter", 3, {1, 1, 1}, {0, 31, 64}, 6, 3, 64, PA_F16, 0,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_HEADS, true, false, false, 0, 0, 6, -1, 2},
      /* Several causal queries (MTP / speculative): bottom-right over the
       * global keys, with and without a window. */
      {"dec mtp causal paged contig", 3, {4, 2, 3}, {53, 3, 100}, 4, 1, 64, PA_F32, 8,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, true, true, true, 0, 0, 0, 0, 0},
      {"dec mtp causal paged inter", 2, {3, 5}, {90, 17}, 12, 2, 128, PA_BF16, 16,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_HEADS, true, false, true, 20.f, 0, 0, 0, 0},
      {"dec mtp causal packed contig", 2, {5, 1}, {5, 41}, 6, 2, 64, PA_F16, 0,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_HEADS_GATHER, true, false, true, 0, 0, 0, 0, 0},
      {"dec mtp win paged inter", 2, {4, 3}, {120, 30}, 4, 2, 64, PA_F32, 8,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_ALLGATHER, true, true, true, 0, 0, 11, -1, 3},
      {"dec mtp win both sides", 2, {4, 2}, {61, 24}, 4, 4, 64, PA_F32, 16,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, true, false, false, 0, 0, 9, 2, 1},
      /* bf16 partials through the all-gather (the GPU case: 4/1 GQA, d128),
       * and bf16 pieces merged into the f32 running state (MTP + window). */
      {"dec paged allgather bf16", 2, {1, 1}, {300, 45}, 8, 2, 128, PA_BF16, 16,
       PA_CP_SHARD_CONTIGUOUS, PA_CP_COMBINE_ALLGATHER, true, false, true, 0, 0, 0, 0, 0},
      {"dec mtp win allgather bf16", 2, {3, 1}, {140, 60}, 8, 2, 128, PA_BF16, 16,
       PA_CP_SHARD_INTERLEAVED, PA_CP_COMBINE_ALLGATHER, true, true, true, 0, 0, 24, -1, 2},
  };
  static const pcase pre[] = {
      {"ring causal f32 gqa", 2, {37, 5}, 4, 2, 64, 64, PA_F32, true, true, false, -1, 0, 0, 0, 0, false},
      {"ring causal f16 gqa4", 1, {100}, 8, 2, 64, 64, PA_F16, true, true, false, -1, 0, 0, 0, 0, false},
      {"ring full bf16", 3, {23, 0, 40}, 4, 1, 64, 64, PA_BF16, false, true, false, -1, 0, 0, 0, 0, false},
      {"ring causal mla 192/128", 1, {50}, 4, 4, 192, 128, PA_BF16, true, true, false, -1, 0, 0, 0, 0, false},
      {"ring causal sinks f32", 2, {3, 29}, 2, 2, 40, 40, PA_F32, true, true, true, -1, 0, 0, 0, 0, false},
      {"ring bad k rows", 1, {30}, 2, 2, 64, 64, PA_F32, true, false, false, 1, 0, 0, 0, 0, false},
      /* Windows over global positions: chunk pairs outside the band are
       * skipped, short requests leave ranks with empty chunks. */
      {"ring win causal gqa", 2, {90, 7}, 4, 2, 64, 64, PA_F32, true, true, false, -1, 10, -1, 0, 0, false},
      {"ring win causal sink tokens", 1, {120}, 4, 1, 64, 64, PA_BF16, true, true, true, -1, 17, -1,
       4, 0, false},
      {"ring win both sides f16", 3, {64, 33, 2}, 4, 2, 64, 64, PA_F16, false, true, false, -1, 9, 5, 0, 0, false},
      {"ring win mla 192/128", 1, {80}, 4, 4, 192, 128, PA_BF16, true, true, false, -1, 12, -1, 2, 0, false},
      /* Paged K/V shards (chunked prefill over a paged cache): NHD and HND
       * pools, partial last pages, empty local requests, windows. */
      {"ring paged causal nhd", 3, {37, 0, 61}, 4, 2, 64, 64, PA_F32, true, true, false, -1, 0, 0, 0,
       8, false},
      {"ring paged full hnd bf16", 2, {50, 9}, 4, 2, 64, 64, PA_BF16, false, true, false, -1, 0, 0,
       0, 16, true},
      {"ring paged win mla 192/128", 1, {70}, 4, 4, 192, 128, PA_F16, true, true, true, -1, 11, -1,
       2, 4, false},
      {"ring paged empty shard", 2, {2, 1}, 2, 1, 32, 32, PA_F32, true, true, false, -1, 0, 0, 0, 4, true},
      {"ring paged bad table", 1, {30}, 2, 2, 64, 64, PA_F32, true, false, false, 1, 0, 0, 0, 8,
       true},
      /* bf16 step states merged into the f32 running state, GQA d128 */
      {"ring causal bf16 gqa d128", 2, {96, 21}, 8, 2, 128, 128, PA_BF16, true, true, false, -1, 0,
       0, 0, 0, false},
  };
  /* clang-format on */
  static const mcase mla[] = {
      {"mla dec contig allgather",
       3,
       {1, 1, 1},
       {70, 0, 33},
       8,
       128,
       32,
       PA_BF16,
       16,
       PA_CP_SHARD_CONTIGUOUS,
       PA_CP_COMBINE_ALLGATHER,
       false},
      {"mla dec inter mtp causal",
       2,
       {3, 2},
       {50, 4},
       6,
       64,
       32,
       PA_F32,
       8,
       PA_CP_SHARD_INTERLEAVED,
       PA_CP_COMBINE_HEADS_GATHER,
       true},
      {"mla dec contig mtp heads",
       2,
       {4, 1},
       {40, 17},
       6,
       96,
       16,
       PA_F16,
       4,
       PA_CP_SHARD_CONTIGUOUS,
       PA_CP_COMBINE_HEADS,
       true},
  };
  /* quick: every transport operation (all-gather, all-to-all, 2-D copies,
   * ring exchange) with few kernel variants (a cold PoCL cache compiles each
   * variant on every rank). */
  static const bool dec_quick[] = {1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0},
                    pre_quick[] = {1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
  _Static_assert(TU_LEN(dec_quick) == TU_LEN(dec) && TU_LEN(pre_quick) == TU_LEN(pre),
                 "one quick flag per case");
  /* A bad run on one rank leaves NCCL peers waiting (documented): MPI only. */
  bool agree = strcmp(pa_cp_transport(cp), "mpi") == 0;
  for (int i = 0; i < TU_LEN(dec); i++)
    if ((!quick || dec_quick[i]) && (!dec[i].bad_out || agree)) run_decode(cp, &dec[i]);
  for (int i = 0; i < TU_LEN(pre); i++)
    if ((pre[i].bad_k_rank < 0 || agree) && (!quick || pre_quick[i])) run_prefill(cp, &pre[i]);
  for (int i = 0; i < TU_LEN(mla); i++)
    if (!quick) run_mla_decode(cp, &mla[i]);
  if (size > 1) run_invalid(cp); /* they need ranks that disagree */
  /* PA_CP_RANDOM=n: n random windowed / MTP decode and ring cases (not in
   * CI; the same draws on every rank). */
  const int nrand = getenv("PA_CP_RANDOM") ? atoi(getenv("PA_CP_RANDOM")) : 0;
  for (int it = 0; it < nrand; it++) {
    tu_rng g = tu_rng_seed(0x5eed + (uint64_t)it);
#define RI(lo, hi) ((int)tu_rng_uniform(&g, (lo), (hi) + 1))
    static _Thread_local char nd[64], np[64];
    snprintf(nd, sizeof nd, "rand dec %d", it);
    dcase dc = {nd,
                RI(1, 3),
                {0},
                {0},
                4,
                2,
                32,
                PA_F32,
                RI(0, 2) * 8,
                RI(0, 1) ? PA_CP_SHARD_INTERLEAVED : PA_CP_SHARD_CONTIGUOUS,
                PA_CP_COMBINE_ALLGATHER,
                true,
                RI(0, 1),
                RI(0, 1),
                0,
                0,
                0,
                0,
                0};
    for (int b = 0; b < dc.B; b++) dc.lq[b] = RI(0, 5), dc.lk[b] = RI(0, 120);
    if (RI(0, 2)) {
      dc.wl = RI(-1, 40), dc.wr = RI(-1, 6), dc.st = RI(0, 6);
      if (dc.wl == 0 && dc.wr == 0) dc.wl = -1; /* 0, 0 means no window here */
    }
    static const pa_dtype dts[] = {PA_F32, PA_F16, PA_BF16}; /* the partials' dtype too */
    dc.dt = dts[RI(0, 2)];
    run_decode(cp, &dc);
    snprintf(np, sizeof np, "rand ring %d", it);
    pcase pc = {np,   RI(1, 3), {0}, 4, 2, 32, 32, PA_F32, RI(0, 1),
                true, RI(0, 1), -1,  0, 0, 0,  0,  false};
    for (int b = 0; b < pc.B; b++) pc.len[b] = RI(0, 90);
    pc.page = RI(0, 2) * 4, pc.hnd = RI(0, 1);
    if (RI(0, 3)) {
      pc.wl = RI(-1, 30), pc.wr = pc.causal ? -1 : RI(-1, 8), pc.st = RI(0, 6);
      if (pc.wl == 0 && pc.wr == 0) pc.wl = -1;
    }
    pc.dt = dts[RI(0, 2)];
    run_prefill(cp, &pc);
#undef RI
  }

  *n_checks = checks;
  return failures;
}

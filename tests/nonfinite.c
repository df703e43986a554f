/* Non-finite input (polyattn.h, "Non-finite values"), on every target:
 *  - NaN / +inf / -inf in every element of q, k, v that no request uses
 *    (padding, slot gaps, strided gaps, page tails, unreferenced pages) leave
 *    the result exact;
 *  - a NaN or inf in a used element spoils at most the rows the header says
 *    (its query row; its request and KV head group; its head for sinks and
 *    ALiBi slopes; its row for the mask), every other row stays exact;
 *  - sinks of -inf are the same as no sinks;
 *  - merge: empty states (LSE -inf) with NaN outputs contribute nothing.
 * Outputs are poisoned and guarded as everywhere (util.h): nothing is written
 * outside them, and the inputs are never written. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"
#include "oracle.h"

static const double bad_values[3] = {NAN, INFINITY, -INFINITY};

/* Every element of x's extent outside `used` gets NaN, +inf or -inf in turn. */
static void spoil_unused(tu_tensor *x, const unsigned char *used) {
  size_t n = x->extent_bytes / tu_dtype_size(x->t.dtype);
  for (size_t e = 0; e < n; e++)
    if (!used[e]) tu_set(x, (int64_t)e, bad_values[e % 3]);
}

static unsigned char *mark(const tu_tensor *x) {
  size_t n = x->extent_bytes / tu_dtype_size(x->t.dtype);
  return calloc(n ? n : 1, 1);
}

/* Which rows the injected values may spoil: request b, query i, head h. */
typedef bool (*spoiled_fn)(const attn_problem *p, int b, int i, int h, const int *arg);

static bool none_spoiled(const attn_problem *p, int b, int i, int h, const int *arg) {
  (void)p, (void)b, (void)i, (void)h, (void)arg;
  return false;
}

/* Compares every row that is not spoiled with the reference (tolerances of
 * util.c), checks guards and untouched inputs; logs how many rows it skipped. */
static void check_rows(attn_problem *p, const char *target, const char *what, spoiled_fn spoiled,
                       const int *arg) {
  tu_tol tol = tu_tolerance(p->c->dtype);
  int64_t kept = 0, skipped = 0, lse_bad = 0;
  double worst_rel = 0;
  tu_err all = {0};
  for (int b = 0; b < p->B; b++) {
    tu_err eb = {0};
    for (int i = 0; i < p->lq[b]; i++)
      for (int h = 0; h < p->hq; h++) {
        if (spoiled(p, b, i, h, arg)) {
          skipped++;
          continue;
        }
        kept++;
        int64_t r = (p->rowbase[b] + i) * p->hq + h, o = attn_out_offset(p, b, i, h);
        for (int x = 0; x < p->dv; x++) {
          double got = tu_get_back(&p->out, o + x), want = p->o_ref[r * p->dv + x];
          tu_err_add(&all, got, want, r * p->dv + x);
          tu_err_add(&eb, got, want, r * p->dv + x);
        }
        if (!(p->c->opts & AO_LSE)) continue;
        double got = tu_get_back(&p->lse, attn_lse_offset(p, b, i, h)), want = p->lse_ref[r];
        double err = want == -INFINITY ? (got == -INFINITY ? 0 : INFINITY)
                                       : fabs(got - want) / fmax(1.0, fabs(want));
        if (!(err <= tol.lse_abs)) lse_bad++;
      }
    double rb = eb.count ? tu_err_rel_l2(&eb) : 0;
    if (!(rb <= worst_rel)) worst_rel = rb;
  }
  bool guards = tu_guards_intact(&p->out) && (!(p->c->opts & AO_LSE) || tu_guards_intact(&p->lse));
  bool inputs = tu_unchanged(&p->q) && tu_unchanged(&p->k) && tu_unchanged(&p->v);
  bool ok = worst_rel <= tol.rel_l2 && all.max_abs <= tol.max_abs && all.nonfinite == 0 &&
            lse_bad == 0 && guards && inputs;
  cr_expect(ok,
            "[%s] %s (%s): %lld rows kept, %lld spoiled; rel_l2 %.3g (tol %.1g) max_abs %.3g, "
            "nonfinite %lld, lse bad %lld, guards %s, inputs %s",
            target, what, p->c->name, (long long)kept, (long long)skipped, worst_rel, tol.rel_l2,
            all.max_abs, (long long)all.nonfinite, (long long)lse_bad,
            guards ? "intact" : "OVERWRITTEN", inputs ? "intact" : "WRITTEN");
  if (ok)
    cr_log_info("[%s] %s (%s): %lld rows exact, %lld spoiled, rel_l2 %.3g", target, what,
                p->c->name, (long long)kept, (long long)skipped, worst_rel);
}

/* Sets up a case or fails the test with the library's message. */
static void setup(attn_problem *p, pa_context *ctx, const attn_case *c) {
  pa_status s = attn_setup(p, ctx, c);
  cr_assert(s == PA_OK, "setup %s: %s", c->name, p->msg);
}

static void run_or_fail(attn_problem *p, const char *target) {
  pa_status s = attn_execute(p, NULL, NULL);
  cr_assert(s == PA_OK, "[%s] %s: %s", target, p->c->name, p->msg);
}

/* clang-format off */
/* Shapes of cross_backend.c (their kernels are compiled already). */
static const attn_case outside_cases[] = {
  {.name = "padded",       .batch = 3, .lq = {7, 1, 3}, .lk = {113, 7, 203}, .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_F32, .causal = 1, .layout = AL_PADDED, .opts = AO_LSE},
  {.name = "gaps",         .batch = 3, .lq = {7, 1, 5}, .lk = {113, 203, 1}, .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_F32, .causal = 1, .layout = AL_GAPS, .opts = AO_LSE},
  {.name = "gaps_paged",   .batch = 2, .lq = {3, 2},    .lk = {40, 17},      .hq = 2, .hkv = 2, .dqk = 64,  .dtype = PA_BF16,.causal = 1, .layout = AL_GAPS, .page_size = 16, .opts = AO_LSE},
  {.name = "pg16",         .batch = 3, .lq = {1, 1, 1}, .lk = {203, 1, 1025},.hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16, .page_size = 16},
  {.name = "pg256_edges",  .batch = 4, .lq = {1, 1, 2, 1}, .lk = {256, 512, 255, 257}, .hq = 4, .hkv = 1, .dqk = 64, .dtype = PA_F16, .causal = 1, .page_size = 256, .opts = AO_LSE},
  {.name = "strided_ragged", .batch = 2, .lq = {7, 1}, .lk = {113, 203},     .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1, .opts = AO_LSE | AO_STRIDED},
  {.name = "empty_paged",  .batch = 3, .lq = {1, 1, 0}, .lk = {0, 17, 9},    .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F16, .page_size = 16, .opts = AO_LSE},
};
static const attn_case inside_cases[] = {
  {.name = "g7_f16_paged", .batch = 2, .lq = {3, 1},     .lk = {203, 7},     .hq = 14, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1, .page_size = 64, .opts = AO_LSE},
  {.name = "p203_ragged3", .batch = 3, .lq = {203, 7, 1}, .lk = {203, 7, 1}, .hq = 2, .hkv = 1, .dqk = 128, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "decode_f32",   .batch = 3, .lq = {1, 1, 1},  .lk = {1025, 203, 7}, .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F32, .page_size = 64, .opts = AO_LSE},
};
static const attn_case sinks_cases[] = {
  {.name = "sinks_decode",  .batch = 2, .lq = {1, 1}, .lk = {203, 1}, .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F32, .opts = AO_LSE | AO_SINKS},
  {.name = "sinks_empty",   .batch = 2, .lq = {3, 1}, .lk = {0, 5},   .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE | AO_SINKS},
  {.name = "sinks_prefill", .batch = 1, .lq = {113},  .lk = {113},    .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE | AO_SINKS},
};
static const attn_case mask_case =
  {.name = "mask_heads", .batch = 1, .lq = {5}, .lk = {33}, .hq = 3, .hkv = 1, .dqk = 80, .dtype = PA_F32, .opts = AO_LSE | AO_MASK_PER_HEAD};
static const attn_case alibi_case =
  {.name = "alibi_causal", .batch = 1, .lq = {113}, .lk = {113}, .hq = 4, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE | AO_ALIBI};
/* clang-format on */

/* Unused elements of q, k and v hold NaN/inf: nothing changes. */
static void outside(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int c = 0; c < TU_LEN(outside_cases); c++) {
    attn_problem p;
    setup(&p, ctx, &outside_cases[c]);
    unsigned char *uq = mark(&p.q), *uk = mark(&p.k), *uv = mark(&p.v);
    for (int b = 0; b < p.B; b++) {
      for (int i = 0; i < p.lq[b]; i++)
        for (int h = 0; h < p.hq; h++) memset(uq + attn_q_offset(&p, b, i, h), 1, (size_t)p.dqk);
      for (int j = 0; j < p.lk[b]; j++)
        for (int h = 0; h < p.hkv; h++) {
          memset(uk + attn_kv_offset(&p, &p.k, b, j, h), 1, (size_t)p.dqk);
          memset(uv + attn_kv_offset(&p, &p.v, b, j, h), 1, (size_t)p.dv);
        }
    }
    spoil_unused(&p.q, uq);
    spoil_unused(&p.k, uk);
    spoil_unused(&p.v, uv);
    free(uq), free(uk), free(uv);
    cr_assert(tu_tensor_upload(&p.q) == PA_OK && tu_tensor_upload(&p.k) == PA_OK &&
              tu_tensor_upload(&p.v) == PA_OK);
    attn_reference(&p);
    run_or_fail(&p, target);
    check_rows(&p, target, "NaN/inf in every unused q/k/v element", none_spoiled, NULL);
    attn_free(&p);
  }
  pa_context_destroy(ctx);
}

/* arg: {b, i, h} of the poisoned query row */
static bool query_row(const attn_problem *p, int b, int i, int h, const int *a) {
  (void)p;
  return b == a[0] && i == a[1] && h == a[2];
}
/* arg: {b, kv head}: every row of that request whose head reads that KV head */
static bool kv_group(const attn_problem *p, int b, int i, int h, const int *a) {
  (void)i;
  return b == a[0] && h / (p->hq / p->hkv) == a[1];
}

/* One NaN in a query row; then an inf in K and a NaN in V of visible keys. */
static void inside(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int c = 0; c < TU_LEN(inside_cases); c++) {
    const attn_case *ac = &inside_cases[c];
    attn_problem p;
    setup(&p, ctx, ac);
    attn_reference(&p); /* of the clean inputs */
    int b = ac->batch - 1, qa[3] = {b, ac->lq[b] - 1, p.hq - 1};
    tu_set(&p.q, attn_q_offset(&p, qa[0], qa[1], qa[2]) + p.dqk / 2, NAN);
    cr_assert(tu_tensor_upload(&p.q) == PA_OK);
    run_or_fail(&p, target);
    check_rows(&p, target, "NaN in one query row", query_row, qa);
    attn_free(&p);

    setup(&p, ctx, ac);
    attn_reference(&p);
    int ka[2] = {0, p.hkv - 1};
    tu_set(&p.k, attn_kv_offset(&p, &p.k, 0, 0, ka[1]), INFINITY);
    tu_set(&p.v, attn_kv_offset(&p, &p.v, 0, p.lk[0] - 1, ka[1]) + p.dv - 1, NAN);
    cr_assert(tu_tensor_upload(&p.k) == PA_OK && tu_tensor_upload(&p.v) == PA_OK);
    run_or_fail(&p, target);
    check_rows(&p, target, "inf in K, NaN in V of request 0", kv_group, ka);
    attn_free(&p);
  }
  pa_context_destroy(ctx);
}

/* arg: {h} */
static bool head(const attn_problem *p, int b, int i, int h, const int *a) {
  (void)p, (void)b, (void)i;
  return h == a[0];
}

/* Sinks of -inf are no sinks (empty rows included: O = 0, LSE = -inf); a NaN
 * sink spoils its head only. */
static void sinks(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int c = 0; c < TU_LEN(sinks_cases); c++) {
    attn_problem p;
    setup(&p, ctx, &sinks_cases[c]);
    for (int h = 0; h < p.hq; h++) tu_set(&p.sinks, h, -INFINITY);
    cr_assert(tu_tensor_upload(&p.sinks) == PA_OK);
    attn_reference(&p);
    run_or_fail(&p, target);
    check_rows(&p, target, "every sink -inf", none_spoiled, NULL);
    attn_free(&p);

    setup(&p, ctx, &sinks_cases[c]);
    attn_reference(&p);
    int ha[1] = {p.hq - 1};
    tu_set(&p.sinks, ha[0], NAN);
    cr_assert(tu_tensor_upload(&p.sinks) == PA_OK);
    run_or_fail(&p, target);
    check_rows(&p, target, "NaN sink of the last head", head, ha);
    attn_free(&p);
  }
  pa_context_destroy(ctx);
}

/* arg: {i0, h0, i1, h1}: the two poisoned mask rows (request 0) */
static bool mask_rows(const attn_problem *p, int b, int i, int h, const int *a) {
  (void)p, (void)b;
  return (i == a[0] && h == a[1]) || (i == a[2] && h == a[3]);
}

/* NaN and +inf mask entries spoil their rows; a NaN ALiBi slope its head. */
static void mask_alibi(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  attn_problem p;
  setup(&p, ctx, &mask_case);
  attn_reference(&p);
  int ma[4] = {1, 0, p.lq[0] - 1, p.hq - 1};
  int64_t row = (int64_t)p.sq_max * p.sk_max;
  tu_set(&p.mask, (int64_t)ma[1] * row + (int64_t)ma[0] * p.sk_max + 3, NAN);
  tu_set(&p.mask, (int64_t)ma[3] * row + (int64_t)ma[2] * p.sk_max + p.lk[0] - 1, INFINITY);
  cr_assert(tu_tensor_upload(&p.mask) == PA_OK);
  run_or_fail(&p, target);
  check_rows(&p, target, "NaN and +inf mask entries", mask_rows, ma);
  attn_free(&p);

  setup(&p, ctx, &alibi_case);
  attn_reference(&p);
  int ha[1] = {1};
  tu_set(&p.alibi, ha[0], NAN);
  cr_assert(tu_tensor_upload(&p.alibi) == PA_OK);
  run_or_fail(&p, target);
  check_rows(&p, target, "NaN ALiBi slope of head 1", head, ha);
  attn_free(&p);
  pa_context_destroy(ctx);
}

/* Merge of T rows x H heads x D: state a is empty (LSE -inf) in every other
 * row and its O there holds NaN/inf; the result is state b exactly there. */
static void merge_empty(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  const int T = 6, H = 3, D = 64;
  tu_rng rng = tu_rng_seed(tu_hash_str("merge_empty"));
  tu_tensor a, b, la, lb, out, lo;
  int64_t so[3] = {T, H, D}, sl[2] = {T, H};
  cr_assert(tu_tensor_alloc(ctx, &a, PA_F32, 3, so, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &b, PA_F32, 3, so, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &out, PA_F32, 3, so, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &la, PA_F32, 2, sl, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &lb, PA_F32, 2, sl, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &lo, PA_F32, 2, sl, NULL) == PA_OK);
  tu_tensor_fill_random(&a, &rng, 1.0);
  tu_tensor_fill_random(&b, &rng, 1.0);
  double o_ref[6 * 3 * 64], lse_ref[6 * 3];
  for (int r = 0; r < T * H; r++) {
    bool empty = (r / H) % 2 == 0;
    double l[2] = {empty ? -INFINITY : tu_rng_uniform(&rng, -4, 4), tu_rng_uniform(&rng, -4, 4)};
    tu_set(&la, r, l[0]);
    tu_set(&lb, r, l[1]);
    double o2[2 * 64];
    for (int x = 0; x < D; x++) {
      if (empty) tu_set(&a, (int64_t)r * D + x, bad_values[x % 3]);
      o2[x] = empty ? 0 : tu_get(&a, (int64_t)r * D + x);
      o2[D + x] = tu_get(&b, (int64_t)r * D + x);
    }
    oracle_merge(2, D, l, o2, D, o_ref + (int64_t)r * D, &lse_ref[r]);
  }
  tu_tensor_poison(&out);
  tu_tensor_poison(&lo);
  tu_tensor *ts[] = {&a, &b, &la, &lb, &out, &lo};
  for (int i = 0; i < 6; i++) cr_assert(tu_tensor_upload(ts[i]) == PA_OK);
  pa_status s = pa_merge_state_pair(ctx, &a.t, &la.t, &b.t, &lb.t, &out.t, &lo.t);
  cr_assert(s == PA_OK, "[%s] merge: %s (%s)", target, pa_status_str(s),
            pa_context_last_error(ctx));
  cr_assert(pa_context_synchronize(ctx) == PA_OK);
  cr_assert(tu_tensor_download(&out) == PA_OK && tu_tensor_download(&lo) == PA_OK);
  tu_err e = {0};
  int64_t lse_bad = 0;
  for (int r = 0; r < T * H; r++) {
    for (int x = 0; x < D; x++)
      tu_err_add(&e, tu_get_back(&out, (int64_t)r * D + x), o_ref[r * D + x], r * D + x);
    if (!(fabs(tu_get_back(&lo, r) - lse_ref[r]) <= 1e-5 * fmax(1.0, fabs(lse_ref[r])))) lse_bad++;
  }
  bool ok = tu_err_rel_l2(&e) <= 1e-5 && e.nonfinite == 0 && lse_bad == 0 &&
            tu_guards_intact(&out) && tu_guards_intact(&lo);
  cr_expect(ok, "[%s] merge with empty NaN states: rel_l2 %.3g nonfinite %lld lse bad %lld", target,
            tu_err_rel_l2(&e), (long long)e.nonfinite, (long long)lse_bad);
  for (int i = 0; i < 6; i++) tu_tensor_free(ts[i]);
  pa_context_destroy(ctx);
}

#define ON(tgt)                                                                                    \
  Test(tgt, outside, .timeout = 120) { outside(#tgt); }                                            \
  Test(tgt, inside, .timeout = 120) { inside(#tgt); }                                              \
  Test(tgt, sinks, .timeout = 120) { sinks(#tgt); }                                                \
  Test(tgt, mask_alibi, .timeout = 120) { mask_alibi(#tgt); }                                      \
  Test(tgt, merge_empty, .timeout = 120) { merge_empty(#tgt); }

ON(cpu_scalar)
ON(cpu_avx2)
ON(cpu_avx512)
ON(cpu_neon)
ON(cpu_avx512bf16)
ON(cuda)
ON(opencl)

/* Merge states (pair, fixed N, varlen) on every target, against the float64
 * oracle, including empty (-inf) states and rows where every state is empty
 * (O = 0, LSE = -inf), and pairs of mixed dtypes. Outputs are poisoned and
 * guarded. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "oracle.h"
#include "util.h"

/* LSE of a state: mostly finite in [-4, 4], some empty. */
static double random_lse(tu_rng *r, int empty_one_in) {
  return tu_rng_int(r, empty_one_in) == 0 ? -INFINITY : tu_rng_uniform(r, -4.0, 4.0);
}

/* Compares out [R, H, D] and lse [R, H] (when lse != NULL) with the reference. */
static void check_merge(const char *what, const tu_tensor *out, const tu_tensor *lse,
                        const double *o_ref, const double *lse_ref, int64_t R, int H, int D) {
  tu_tol tol = tu_tolerance(out->t.dtype);
  tu_err e = {0};
  int64_t lse_bad = 0;
  double lse_err = 0;
  for (int64_t r = 0; r < R * H; r++) {
    for (int x = 0; x < D; x++)
      tu_err_add(&e, tu_get_back(out, r * D + x), o_ref[r * D + x], r * D + x);
    if (!lse) continue;
    double got = tu_get_back(lse, r), want = lse_ref[r];
    double err = want == -INFINITY ? (got == -INFINITY ? 0 : INFINITY)
                                   : fabs(got - want) / fmax(1.0, fabs(want));
    if (!(err <= 1e-5)) lse_bad++; /* f32 LSE math on f32 inputs */
    if (!(err <= lse_err)) lse_err = err;
  }
  double rel = tu_err_rel_l2(&e);
  bool guards = tu_guards_intact(out) && (!lse || tu_guards_intact(lse));
  bool ok =
      rel <= tol.rel_l2 && e.max_abs <= tol.max_abs && e.nonfinite == 0 && lse_bad == 0 && guards;
  cr_expect(ok,
            "%s (%s): rel_l2 %.3g (tol %.1g) max_abs %.3g at row %lld head %lld, nonfinite %lld, "
            "lse err %.3g (%lld bad), guards %s",
            what, pa_dtype_name(out->t.dtype), rel, tol.rel_l2, e.max_abs,
            (long long)(e.worst / D / H), (long long)(e.worst / D % H), (long long)e.nonfinite,
            lse_err, (long long)lse_bad, guards ? "intact" : "OVERWRITTEN");
  if (ok)
    cr_log_info("%s (%s): rel_l2 %.3g max_abs %.3g lse %.3g", what, pa_dtype_name(out->t.dtype),
                rel, e.max_abs, lse_err);
}

static void alloc_or_fail(pa_context *ctx, tu_tensor *x, pa_dtype dt, int nd, int64_t a, int64_t b,
                          int64_t c, int64_t d) {
  int64_t shape[4] = {a, b, c, d};
  pa_status s = tu_tensor_alloc(ctx, x, dt, nd, shape, NULL);
  cr_assert(s == PA_OK, "alloc: %s", pa_status_str(s));
}

/* a in da, b in db, out in dout: mixed dtypes are what context parallelism
 * does (f32 running state + an f16/bf16 step state). */
static void merge_pair_dt(const char *target, pa_dtype da, pa_dtype db, pa_dtype dout, int T, int H,
                          int D, bool want_lse) {
  pa_context *ctx = tu_open_or_skip(target);
  char what[128], mixed[48] = "";
  if (da != dout || db != dout)
    snprintf(mixed, sizeof mixed, " %s+%s", pa_dtype_name(da), pa_dtype_name(db));
  snprintf(what, sizeof what, "[%s] pair%s T%d H%d D%d%s", target, mixed, T, H, D,
           want_lse ? "" : " no-lse");
  tu_rng rng = tu_rng_seed(tu_hash_str(what));
  tu_tensor a, b, la, lb, out, lo;
  alloc_or_fail(ctx, &a, da, 3, T, H, D, 0);
  alloc_or_fail(ctx, &b, db, 3, T, H, D, 0);
  alloc_or_fail(ctx, &out, dout, 3, T, H, D, 0);
  alloc_or_fail(ctx, &la, PA_F32, 2, T, H, 0, 0);
  alloc_or_fail(ctx, &lb, PA_F32, 2, T, H, 0, 0);
  alloc_or_fail(ctx, &lo, PA_F32, 2, T, H, 0, 0);
  tu_tensor_fill_random(&a, &rng, 1.0);
  tu_tensor_fill_random(&b, &rng, 1.0);
  for (int64_t r = 0; r < (int64_t)T * H; r++) {
    tu_set(&la, r, random_lse(&rng, 5));
    tu_set(&lb, r, random_lse(&rng, 5));
  }
  /* Row 0: a empty; row 1: b empty; row 2: both empty (every head). */
  for (int h = 0; h < H; h++) {
    if (T > 0) tu_set(&la, h, -INFINITY);
    if (T > 1) tu_set(&lb, H + h, -INFINITY);
    if (T > 2) tu_set(&la, 2 * H + h, -INFINITY), tu_set(&lb, 2 * H + h, -INFINITY);
  }
  tu_tensor_poison(&out);
  tu_tensor_poison(&lo);
  tu_tensor *all[] = {&a, &b, &la, &lb, &out, &lo};
  for (int i = 0; i < TU_LEN(all); i++) cr_assert(tu_tensor_upload(all[i]) == PA_OK, "upload");

  pa_tensor lse_out = lo.t;
  if (!want_lse) lse_out.buf = NULL;
  pa_status s = pa_merge_state_pair(ctx, &a.t, &la.t, &b.t, &lb.t, &out.t, &lse_out);
  cr_assert(s == PA_OK, "%s: pa_merge_state_pair: %s (%s)", what, pa_status_str(s),
            pa_context_last_error(ctx));
  cr_assert(pa_context_synchronize(ctx) == PA_OK, "sync");
  cr_assert(tu_tensor_download(&out) == PA_OK && tu_tensor_download(&lo) == PA_OK, "download");

  double *o_ref = malloc(sizeof(double) * (size_t)T * H * D),
         *l_ref = malloc(sizeof(double) * (size_t)T * H);
  double *st = malloc(sizeof(double) * 2 * (size_t)D);
  for (int64_t r = 0; r < (int64_t)T * H; r++) {
    for (int x = 0; x < D; x++) st[x] = tu_get(&a, r * D + x), st[D + x] = tu_get(&b, r * D + x);
    double ls[2] = {tu_get(&la, r), tu_get(&lb, r)};
    oracle_merge(2, D, ls, st, D, o_ref + r * D, l_ref + r);
  }
  check_merge(what, &out, want_lse ? &lo : NULL, o_ref, l_ref, T, H, D);
  if (!want_lse)
    cr_expect(tu_unchanged(&lo), "%s: lse_out written although its buf was NULL", what);
  free(o_ref);
  free(l_ref);
  free(st);
  for (int i = 0; i < TU_LEN(all); i++) tu_tensor_free(all[i]);
  pa_context_destroy(ctx);
}

static void merge_pair(const char *target, pa_dtype dt, int T, int H, int D, bool want_lse) {
  merge_pair_dt(target, dt, dt, dt, T, H, D, want_lse);
}

static void merge_fixed(const char *target, pa_dtype dt, int T, int N, int H, int D) {
  pa_context *ctx = tu_open_or_skip(target);
  char what[128];
  snprintf(what, sizeof what, "[%s] fixed T%d N%d H%d D%d", target, T, N, H, D);
  tu_rng rng = tu_rng_seed(tu_hash_str(what));
  tu_tensor v, s, out, lo;
  alloc_or_fail(ctx, &v, dt, 4, T, N, H, D);
  alloc_or_fail(ctx, &s, PA_F32, 3, T, N, H, 0);
  alloc_or_fail(ctx, &out, dt, 3, T, H, D, 0);
  alloc_or_fail(ctx, &lo, PA_F32, 2, T, H, 0, 0);
  tu_tensor_fill_random(&v, &rng, 1.0);
  for (int64_t e = 0; e < (int64_t)T * N * H; e++) tu_set(&s, e, random_lse(&rng, 4));
  for (int k = 0; k < N; k++) /* token 1: every state empty */
    for (int h = 0; h < H; h++) tu_set(&s, ((int64_t)1 * N + k) * H + h, -INFINITY);
  tu_tensor_poison(&out);
  tu_tensor_poison(&lo);
  tu_tensor *all[] = {&v, &s, &out, &lo};
  for (int i = 0; i < TU_LEN(all); i++) cr_assert(tu_tensor_upload(all[i]) == PA_OK, "upload");
  pa_status st = pa_merge_states(ctx, &v.t, &s.t, &out.t, &lo.t);
  cr_assert(st == PA_OK, "%s: pa_merge_states: %s (%s)", what, pa_status_str(st),
            pa_context_last_error(ctx));
  cr_assert(pa_context_synchronize(ctx) == PA_OK, "sync");
  cr_assert(tu_tensor_download(&out) == PA_OK && tu_tensor_download(&lo) == PA_OK, "download");
  double *o_ref = malloc(sizeof(double) * (size_t)T * H * D),
         *l_ref = malloc(sizeof(double) * (size_t)T * H);
  double *states = malloc(sizeof(double) * (size_t)N * D), *ls = malloc(sizeof(double) * (size_t)N);
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      for (int k = 0; k < N; k++) {
        int64_t row = ((int64_t)t * N + k) * H + h;
        ls[k] = tu_get(&s, row);
        for (int x = 0; x < D; x++) states[(int64_t)k * D + x] = tu_get(&v, row * D + x);
      }
      int64_t r = (int64_t)t * H + h;
      oracle_merge(N, D, ls, states, D, o_ref + r * D, l_ref + r);
    }
  check_merge(what, &out, &lo, o_ref, l_ref, T, H, D);
  free(o_ref);
  free(l_ref);
  free(states);
  free(ls);
  for (int i = 0; i < TU_LEN(all); i++) tu_tensor_free(all[i]);
  pa_context_destroy(ctx);
}

static void merge_varlen(const char *target, pa_dtype dt, int H, int D) {
  /* Rows with 3, 0, 1, 7, 2, 0, 5 partials: empty rows give O = 0, LSE = -inf. */
  static const int counts[] = {3, 0, 1, 7, 2, 0, 5};
  const int R = TU_LEN(counts);
  int32_t indptr[TU_LEN(counts) + 1] = {0};
  for (int r = 0; r < R; r++) indptr[r + 1] = indptr[r] + counts[r];
  const int P = indptr[R];
  pa_context *ctx = tu_open_or_skip(target);
  char what[128];
  snprintf(what, sizeof what, "[%s] varlen R%d P%d H%d D%d", target, R, P, H, D);
  tu_rng rng = tu_rng_seed(tu_hash_str(what));
  tu_tensor v, s, ip, out, lo;
  alloc_or_fail(ctx, &v, dt, 3, P, H, D, 0);
  alloc_or_fail(ctx, &s, PA_F32, 2, P, H, 0, 0);
  alloc_or_fail(ctx, &ip, PA_I32, 1, R + 1, 0, 0, 0);
  alloc_or_fail(ctx, &out, dt, 3, R, H, D, 0);
  alloc_or_fail(ctx, &lo, PA_F32, 2, R, H, 0, 0);
  tu_tensor_fill_random(&v, &rng, 1.0);
  for (int64_t e = 0; e < (int64_t)P * H; e++) tu_set(&s, e, random_lse(&rng, 4));
  for (int r = 0; r <= R; r++) tu_set_i32(&ip, r, indptr[r]);
  tu_tensor_poison(&out);
  tu_tensor_poison(&lo);
  tu_tensor *all[] = {&v, &s, &ip, &out, &lo};
  for (int i = 0; i < TU_LEN(all); i++) cr_assert(tu_tensor_upload(all[i]) == PA_OK, "upload");
  pa_status st = pa_merge_states_varlen(ctx, &v.t, &s.t, &ip.t, &out.t, &lo.t);
  cr_assert(st == PA_OK, "%s: pa_merge_states_varlen: %s (%s)", what, pa_status_str(st),
            pa_context_last_error(ctx));
  cr_assert(pa_context_synchronize(ctx) == PA_OK, "sync");
  cr_assert(tu_tensor_download(&out) == PA_OK && tu_tensor_download(&lo) == PA_OK, "download");
  double *o_ref = malloc(sizeof(double) * (size_t)R * H * D),
         *l_ref = malloc(sizeof(double) * (size_t)R * H);
  double *states = malloc(sizeof(double) * (size_t)(P + 1) * D),
         *ls = malloc(sizeof(double) * (size_t)(P + 1));
  for (int r = 0; r < R; r++)
    for (int h = 0; h < H; h++) {
      int n = counts[r];
      for (int k = 0; k < n; k++) {
        int64_t row = (int64_t)(indptr[r] + k) * H + h;
        ls[k] = tu_get(&s, row);
        for (int x = 0; x < D; x++) states[(int64_t)k * D + x] = tu_get(&v, row * D + x);
      }
      int64_t o = (int64_t)r * H + h;
      oracle_merge(n, D, ls, states, D, o_ref + o * D, l_ref + o);
    }
  check_merge(what, &out, &lo, o_ref, l_ref, R, H, D);
  free(o_ref);
  free(l_ref);
  free(states);
  free(ls);
  for (int i = 0; i < TU_LEN(all); i++) tu_tensor_free(all[i]);
  pa_context_destroy(ctx);
}

#define MERGE_TESTS(tgt)                                                                           \
  Test(tgt, pair_f32) { merge_pair(#tgt, PA_F32, 7, 3, 128, true); }                               \
  Test(tgt, pair_f16_d59) { merge_pair(#tgt, PA_F16, 5, 4, 59, true); }                            \
  Test(tgt, pair_bf16_no_lse) { merge_pair(#tgt, PA_BF16, 9, 2, 512, false); }                     \
  Test(tgt, pair_bf16_into_f32) {                                                                  \
    merge_pair_dt(#tgt, PA_BF16, PA_BF16, PA_F32, 6, 4, 128, true);                                \
  }                                                                                                \
  Test(tgt, pair_f32_f16_into_f16) {                                                               \
    merge_pair_dt(#tgt, PA_F32, PA_F16, PA_F16, 5, 3, 96, true);                                   \
  }                                                                                                \
  Test(tgt, fixed_f32) { merge_fixed(#tgt, PA_F32, 5, 7, 3, 128); }                                \
  Test(tgt, fixed_bf16) { merge_fixed(#tgt, PA_BF16, 3, 2, 8, 64); }                               \
  Test(tgt, varlen_f32) { merge_varlen(#tgt, PA_F32, 4, 128); }                                    \
  Test(tgt, varlen_f16_d80) { merge_varlen(#tgt, PA_F16, 3, 80); }

MERGE_TESTS(cpu_scalar)
MERGE_TESTS(cpu_avx2)
MERGE_TESTS(cpu_avx512)
MERGE_TESTS(cpu_neon)
MERGE_TESTS(cpu_avx512bf16)
MERGE_TESTS(cuda)
MERGE_TESTS(opencl)

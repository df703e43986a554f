/* pa_head_gemm (the per-head GEMMs around MLA) on every target against the
 * float64 oracle: query absorption (K 128 -> N 512), output projection (512
 * -> 128), an odd shape, plain and transposed weights, f32/f16/bf16. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "oracle.h"
#include "util.h"

static void head_gemm_case(const char *target, pa_dtype dt, int T, int H, int K, int N,
                           bool transposed) {
  pa_context *ctx = tu_open_or_skip(target);
  char what[128];
  snprintf(what, sizeof what, "[%s] head_gemm T%d H%d K%d N%d %s %s", target, T, H, K, N,
           pa_dtype_name(dt), transposed ? "w^T" : "w");
  tu_rng rng = tu_rng_seed(tu_hash_str(what));
  tu_tensor x, w, y;
  int64_t xs[3] = {T, H, K}, ys[3] = {T, H, N};
  cr_assert(tu_tensor_alloc(ctx, &x, dt, 3, xs, NULL) == PA_OK, "alloc x");
  cr_assert(tu_tensor_alloc(ctx, &y, dt, 3, ys, NULL) == PA_OK, "alloc y");
  /* Transposed: stored [H, N, K], seen as [H, K, N] with strides (N*K, 1, K). */
  int64_t ws[3] = {H, K, N}, wst[3] = {(int64_t)N * K, 1, K};
  cr_assert(tu_tensor_alloc(ctx, &w, dt, 3, ws, transposed ? wst : NULL) == PA_OK, "alloc w");
  tu_tensor_fill_random(&x, &rng, 1.0);
  tu_tensor_fill_random(&w, &rng, 1.0 / sqrt((double)K)); /* keeps |y| ~ 1 */
  tu_tensor_poison(&y);
  cr_assert(tu_tensor_upload(&x) == PA_OK && tu_tensor_upload(&w) == PA_OK &&
                tu_tensor_upload(&y) == PA_OK,
            "upload");
  pa_status s = pa_head_gemm(ctx, &x.t, &w.t, &y.t);
  cr_assert(s == PA_OK, "%s: %s (%s)", what, pa_status_str(s), pa_context_last_error(ctx));
  cr_assert(pa_context_synchronize(ctx) == PA_OK, "sync");
  cr_assert(tu_tensor_download(&y) == PA_OK, "download");

  double *xd = malloc(sizeof(double) * (size_t)T * H * K), *wd = malloc(sizeof(double) * (size_t)H * K * N);
  double *yd = malloc(sizeof(double) * (size_t)T * H * N);
  for (int64_t e = 0; e < (int64_t)T * H * K; e++) xd[e] = tu_get(&x, e);
  for (int h = 0; h < H; h++)
    for (int k = 0; k < K; k++)
      for (int n = 0; n < N; n++)
        wd[((int64_t)h * K + k) * N + n] =
            tu_get(&w, h * w.t.stride[0] + k * w.t.stride[1] + n * w.t.stride[2]);
  oracle_head_gemm(T, H, K, N, xd, wd, yd);
  tu_tol tol = tu_tolerance(dt);
  tu_err e = {0};
  for (int64_t i = 0; i < (int64_t)T * H * N; i++) tu_err_add(&e, tu_get_back(&y, i), yd[i], i);
  double rel = tu_err_rel_l2(&e);
  bool guards = tu_guards_intact(&y);
  bool ok = rel <= tol.rel_l2 && e.max_abs <= tol.max_abs && e.nonfinite == 0 && guards;
  cr_expect(ok, "%s: rel_l2 %.3g (tol %.1g) max_abs %.3g (tol %.1g) at %lld, nonfinite %lld, guards %s",
            what, rel, tol.rel_l2, e.max_abs, tol.max_abs, (long long)e.worst,
            (long long)e.nonfinite, guards ? "intact" : "OVERWRITTEN");
  if (ok) cr_log_info("%s: rel_l2 %.3g max_abs %.3g", what, rel, e.max_abs);
  free(xd);
  free(wd);
  free(yd);
  tu_tensor_free(&x);
  tu_tensor_free(&w);
  tu_tensor_free(&y);
  pa_context_destroy(ctx);
}

#define GEMM_TESTS(tgt)                                                                           \
  Test(tgt, absorb_f32) { head_gemm_case(#tgt, PA_F32, 3, 4, 128, 512, false); }                  \
  Test(tgt, absorb_bf16_wt) { head_gemm_case(#tgt, PA_BF16, 3, 4, 128, 512, true); }              \
  Test(tgt, absorb_f16) { head_gemm_case(#tgt, PA_F16, 2, 8, 128, 512, false); }                  \
  Test(tgt, out_proj_f32_wt) { head_gemm_case(#tgt, PA_F32, 2, 4, 512, 128, true); }              \
  Test(tgt, out_proj_bf16) { head_gemm_case(#tgt, PA_BF16, 5, 2, 512, 128, false); }              \
  Test(tgt, odd_f16_wt) { head_gemm_case(#tgt, PA_F16, 5, 3, 59, 77, true); }                     \
  Test(tgt, odd_f32) { head_gemm_case(#tgt, PA_F32, 7, 1, 111, 33, false); }

GEMM_TESTS(cpu_scalar)
GEMM_TESTS(cpu_avx2)
GEMM_TESTS(cpu_avx512)
GEMM_TESTS(cpu_neon)
GEMM_TESTS(cpu_avx512bf16)
GEMM_TESTS(cuda)
GEMM_TESTS(opencl)

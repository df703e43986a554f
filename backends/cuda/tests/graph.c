/* A planned run captured in a CUDA graph and replayed with new inputs: run
 * must not allocate, synchronise or read host memory, so the replay with new
 * data must match a float64 reference. Split KV (so combine is captured too),
 * on the generic kernel (f32), the tensor-core decode kernel (bf16) and a
 * prefill (40 queries per request, not causal) with cuda.prefill=ws (the TMA
 * kernel on sm_90, its tensor maps built while capturing). */
#include <criterion/criterion.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "polyattn.h"

enum { B = 3, HQ = 8, HKV = 2, D = 128 };
static const int32_t kLens[B] = {300, 1000, 77};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
  rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
  return (double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}
static uint16_t to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
static float from_bf16(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* Values as the device sees them (rounded to dtype), and the raw bytes. */
static void fill(pa_dtype t, double *vals, void *raw, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    float f = (float)urand();
    if (t == PA_BF16) {
      ((uint16_t *)raw)[i] = to_bf16(f);
      vals[i] = from_bf16(((uint16_t *)raw)[i]);
    } else {
      ((float *)raw)[i] = f;
      vals[i] = f;
    }
  }
}

/* sq queries per request, each seeing every key of its request. */
static void reference(int sq, const double *q, const double *k, const double *v, double *o) {
  int64_t k0 = 0;
  const double scale = 1.0 / sqrt((double)D);
  for (int bi = 0; bi < B * sq; ++bi) {
    const int b = bi / sq;
    if (bi % sq == 0 && b > 0) k0 += kLens[b - 1];
    for (int h = 0; h < HQ; ++h) {
      int hk = h / (HQ / HKV);
      double *s = malloc(sizeof(double) * (size_t)kLens[b]), m = -INFINITY, l = 0;
      for (int j = 0; j < kLens[b]; ++j) {
        double dot = 0;
        for (int d = 0; d < D; ++d)
          dot += q[((int64_t)bi * HQ + h) * D + d] * k[((k0 + j) * HKV + hk) * D + d];
        s[j] = dot * scale;
        m = fmax(m, s[j]);
      }
      for (int d = 0; d < D; ++d) o[((int64_t)bi * HQ + h) * D + d] = 0;
      for (int j = 0; j < kLens[b]; ++j) {
        double p = exp(s[j] - m);
        l += p;
        for (int d = 0; d < D; ++d)
          o[((int64_t)bi * HQ + h) * D + d] += p * v[((k0 + j) * HKV + hk) * D + d];
      }
      for (int d = 0; d < D; ++d) o[((int64_t)bi * HQ + h) * D + d] /= l;
      free(s);
    }
  }
}

static void run_graph_case(pa_dtype t, double tol, int sq, const char *options) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    cr_skip_test("no CUDA device");
  }
  cudaStream_t stream;
  cr_assert_eq(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), cudaSuccess);
  pa_context_desc cd = {PA_BACKEND_CUDA, 0, stream, 0, NULL, options};
  pa_context *ctx = NULL;
  cr_assert_eq(pa_context_create(&cd, &ctx), PA_OK);

  int64_t tk = 0;
  int32_t lq[B];
  for (int b = 0; b < B; ++b) tk += kLens[b], lq[b] = sq;
  pa_attention_desc desc;
  pa_attention_desc_init(&desc, HQ, HKV, D, t);
  desc.num_splits = 4;
  pa_batch batch = {B, lq, kLens, NULL, NULL};
  pa_plan *plan = NULL;
  cr_assert_eq(pa_attention_plan(ctx, &desc, &batch, &plan), PA_OK, "%s",
               pa_context_last_error(ctx));
  cr_assert_gt(pa_plan_num_splits(plan, 1), 1, "the case must split to capture the combine");

  const size_t es = pa_dtype_size(t), nq = (size_t)B * sq * HQ * D, nk = (size_t)tk * HKV * D;
  pa_buffer *bq, *bk, *bv, *bo, *ws = NULL;
  cr_assert_eq(pa_buffer_create(ctx, nq * es, &bq), PA_OK);
  cr_assert_eq(pa_buffer_create(ctx, nk * es, &bk), PA_OK);
  cr_assert_eq(pa_buffer_create(ctx, nk * es, &bv), PA_OK);
  cr_assert_eq(pa_buffer_create(ctx, nq * es, &bo), PA_OK);
  size_t wsz = pa_plan_workspace_size(plan);
  if (wsz) cr_assert_eq(pa_buffer_create(ctx, wsz, &ws), PA_OK);

  pa_attention_args args;
  memset(&args, 0, sizeof args);
  int64_t qs[3] = {B * sq, HQ, D}, ks[3] = {tk, HKV, D};
  pa_tensor_init(&args.q, bq, 0, t, 3, qs);
  pa_tensor_init(&args.out, bo, 0, t, 3, qs);
  pa_tensor_init(&args.k, bk, 0, t, 3, ks);
  pa_tensor_init(&args.v, bv, 0, t, 3, ks);

  cudaGraph_t graph;
  cudaGraphExec_t exec;
  cr_assert_eq(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  pa_status st = pa_attention_run(plan, &args, ws);
  cr_assert_eq(cudaStreamEndCapture(stream, &graph), cudaSuccess);
  cr_assert_eq(st, PA_OK, "%s", pa_context_last_error(ctx));
  cr_assert_eq(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);

  double *q = malloc(sizeof(double) * nq), *k = malloc(sizeof(double) * nk),
         *v = malloc(sizeof(double) * nk), *o = malloc(sizeof(double) * nq);
  char *raw = malloc(nk * 4), *got = malloc(nq * 4);
  for (int rep = 0; rep < 2; ++rep) { /* new inputs each replay */
    fill(t, q, raw, nq);
    cr_assert_eq(pa_buffer_write(bq, 0, raw, nq * es), PA_OK);
    fill(t, k, raw, nk);
    cr_assert_eq(pa_buffer_write(bk, 0, raw, nk * es), PA_OK);
    fill(t, v, raw, nk);
    cr_assert_eq(pa_buffer_write(bv, 0, raw, nk * es), PA_OK);
    memset(got, 0xff, nq * es); /* poison (NaN) */
    cr_assert_eq(pa_buffer_write(bo, 0, got, nq * es), PA_OK);
    cr_assert_eq(cudaGraphLaunch(exec, stream), cudaSuccess);
    cr_assert_eq(cudaStreamSynchronize(stream), cudaSuccess);
    cr_assert_eq(pa_buffer_read(bo, 0, got, nq * es), PA_OK);
    reference(sq, q, k, v, o);
    double num = 0, den = 0;
    for (size_t i = 0; i < nq; ++i) {
      double g = t == PA_BF16 ? from_bf16(((uint16_t *)got)[i]) : ((float *)got)[i];
      cr_assert(isfinite(g), "replay %d: out[%zu] = %g", rep, i, g);
      num += (g - o[i]) * (g - o[i]);
      den += o[i] * o[i];
    }
    cr_assert_lt(sqrt(num / den), tol, "replay %d: rel L2 %g", rep, sqrt(num / den));
  }
  free(q), free(k), free(v), free(o), free(raw), free(got);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  pa_buffer_destroy(bq), pa_buffer_destroy(bk), pa_buffer_destroy(bv), pa_buffer_destroy(bo);
  pa_buffer_destroy(ws);
  pa_plan_destroy(plan);
  pa_context_destroy(ctx);
  cudaStreamDestroy(stream);
}

Test(cuda_graph, replay_generic_f32) { run_graph_case(PA_F32, 1e-5, 1, NULL); }
Test(cuda_graph, replay_decode_bf16) { run_graph_case(PA_BF16, 1e-2, 1, NULL); }
Test(cuda_graph, replay_prefill_ws_bf16) { run_graph_case(PA_BF16, 1e-2, 40, "cuda.prefill=ws"); }

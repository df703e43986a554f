/* A program outside polyattn, built against it by CMake, pkg-config or meson
 * (tests/consumers/run.sh): one decode query over two keys on the CPU backend,
 * checked against the softmax written out by hand. Exit 0 on success. */
#include <math.h>
#include <polyattn.h>
#include <stdio.h>
#ifdef PA_CONSUMER_CUDA /* CMake's polyattn::cuda: the interop header compiles */
#include <polyattn_cuda.h>
#endif
#ifdef PA_CONSUMER_OPENCL /* polyattn::opencl */
#include <polyattn_opencl.h>
#endif

#define CHECK(call)                                                                                \
  do {                                                                                             \
    pa_status s_ = (call);                                                                         \
    if (s_ != PA_OK) {                                                                             \
      fprintf(stderr, "%s: %s (%s)\n", #call, pa_status_str(s_),                                   \
              ctx ? pa_context_last_error(ctx) : "");                                              \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

int main(void) {
  pa_context *ctx = NULL;
#ifdef PA_CONSUMER_OPENCL /* an interop function resolves at link time */
  int (*has_mma)(const pa_context *) = pa_opencl_has_mma;
  if (!has_mma) return 1;
#endif
  pa_context_desc cd = {PA_BACKEND_CPU, -1, NULL, 1, NULL};
  CHECK(pa_context_create(&cd, &ctx));

  /* 1 request, 1 query, 2 keys, 1 head, d = 2, scale 1. */
  const float q[2] = {1, 0}, k[4] = {1, 0, 0, 1}, v[4] = {1, 2, 3, 4};
  pa_buffer *qb, *kb, *vb, *ob;
  CHECK(pa_buffer_create(ctx, sizeof q, &qb));
  CHECK(pa_buffer_create(ctx, sizeof k, &kb));
  CHECK(pa_buffer_create(ctx, sizeof v, &vb));
  CHECK(pa_buffer_create(ctx, sizeof q, &ob));
  CHECK(pa_buffer_write(qb, 0, q, sizeof q));
  CHECK(pa_buffer_write(kb, 0, k, sizeof k));
  CHECK(pa_buffer_write(vb, 0, v, sizeof v));

  pa_attention_desc d;
  pa_attention_desc_init(&d, 1, 1, 2, PA_F32);
  d.scale = 1.0f;
  int32_t sq = 1, sk = 2;
  pa_batch batch = {1, &sq, &sk, NULL, NULL};
  pa_plan *plan;
  CHECK(pa_attention_plan(ctx, &d, &batch, &plan));
  pa_attention_args a = {0};
  const int64_t qs[3] = {1, 1, 2}, ks[3] = {2, 1, 2};
  CHECK(pa_tensor_init(&a.q, qb, 0, PA_F32, 3, qs));
  CHECK(pa_tensor_init(&a.k, kb, 0, PA_F32, 3, ks));
  CHECK(pa_tensor_init(&a.v, vb, 0, PA_F32, 3, ks));
  CHECK(pa_tensor_init(&a.out, ob, 0, PA_F32, 3, qs));
  CHECK(pa_attention_run(plan, &a, NULL));
  CHECK(pa_context_synchronize(ctx));
  float o[2];
  CHECK(pa_buffer_read(ob, 0, o, sizeof o));

  /* scores 1 and 0: weights e/(e+1), 1/(e+1) */
  double p0 = exp(1.0) / (exp(1.0) + 1.0), want0 = p0 * 1 + (1 - p0) * 3,
         want1 = p0 * 2 + (1 - p0) * 4;
  int ok = fabs(o[0] - want0) < 1e-5 && fabs(o[1] - want1) < 1e-5;
  int major;
  pa_version(&major, NULL, NULL);
  printf("polyattn %d.x consumer: out = (%.6f, %.6f), expected (%.6f, %.6f): %s\n", major, o[0],
         o[1], want0, want1, ok ? "ok" : "WRONG");
  pa_plan_destroy(plan);
  pa_buffer_destroy(qb);
  pa_buffer_destroy(kb);
  pa_buffer_destroy(vb);
  pa_buffer_destroy(ob);
  pa_context_destroy(ctx);
  return ok ? 0 : 1;
}

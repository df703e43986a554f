/* The unfused prefill baseline of issue 4, on OpenCL: S = scale * Q K^T with
 * CLBlast strided-batched SGEMM, a row softmax kernel (causal, bottom-right),
 * O = P V with SGEMM again. f32 throughout (CLBlast's half path needs
 * cl_khr_fp16, which NVIDIA's driver lacks). Heads go in chunks so S fits in
 * one allocation. The fused kernels are measured against this, as a ratio. */
#ifdef PA_HAVE_OPENCL
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "opencl_util.h"
#include <clblast_c.h>

/* One work-group per row; S rows of skv floats, the row's query index within
 * its request is row % sq. Keys j > i + (skv - sq) are masked when causal. */
static const char *softmax_src =
    "__kernel void softmax_rows(__global float *S, int sq, int skv, int causal) {\n"
    "  __local float red[256];\n"
    "  size_t row = get_group_id(0), l = get_local_id(0), n = get_local_size(0);\n"
    "  int i = (int)(row % (size_t)sq), last = causal ? i + skv - sq : skv - 1;\n"
    "  __global float *s = S + row * (size_t)skv;\n"
    "  float m = -INFINITY;\n"
    "  for (int j = (int)l; j <= last && j < skv; j += (int)n) m = fmax(m, s[j]);\n"
    "  red[l] = m; barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  for (size_t w = n / 2; w > 0; w /= 2) {\n"
    "    if (l < w) red[l] = fmax(red[l], red[l + w]);\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  }\n"
    "  m = red[0]; barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  float sum = 0.0f;\n"
    "  for (int j = (int)l; j < skv; j += (int)n) {\n"
    "    float p = (j <= last && m > -INFINITY) ? exp(s[j] - m) : 0.0f;\n"
    "    s[j] = p; sum += p;\n"
    "  }\n"
    "  red[l] = sum; barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  for (size_t w = n / 2; w > 0; w /= 2) {\n"
    "    if (l < w) red[l] += red[l + w];\n"
    "    barrier(CLK_LOCAL_MEM_FENCE);\n"
    "  }\n"
    "  float inv = red[0] > 0.0f ? 1.0f / red[0] : 0.0f;\n"
    "  for (int j = (int)l; j < skv; j += (int)n) s[j] *= inv;\n"
    "}\n";

double bench_opencl_unfused_prefill(pa_context *ctx, const bench_shape *s, int iters, char *err,
                                    size_t nerr) {
  if (s->hq != s->hkv) {
    snprintf(err, nerr, "baseline covers hq == hkv only");
    return -1;
  }
  if (s->window >= 0) {
    snprintf(err, nerr, "baseline has no sliding window");
    return -1;
  }
  bench_cl b;
  if (bench_cl_from_ctx(ctx, &b, err, nerr) != PA_OK) return -1;
  double result = -1;
  cl_int e = CL_SUCCESS;
  cl_mem Q = NULL, K = NULL, V = NULL, O = NULL, S = NULL;
  cl_program prog = NULL;
  cl_kernel k = NULL;
  double *ts = NULL;
  cl_ulong maxalloc = 0;
  clGetDeviceInfo(b.dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);

  size_t H = (size_t)s->hq, D = (size_t)s->d, Dv = (size_t)s->dv, sq = (size_t)s->sq,
         skv = (size_t)s->skv, B = (size_t)s->b;
  size_t per_head = sq * skv * 4, chunk = H;
  while (chunk > 1 && per_head * chunk > maxalloc / 2) chunk /= 2;
  if (per_head > maxalloc) {
    snprintf(err, nerr, "S of one head (%zu MiB) exceeds the device's max allocation",
             per_head >> 20);
    goto done;
  }
  Q = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, B * sq * H * D * 4, NULL, &e);
  if (e == CL_SUCCESS) K = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, B * skv * H * D * 4, NULL, &e);
  if (e == CL_SUCCESS) V = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, B * skv * H * Dv * 4, NULL, &e);
  if (e == CL_SUCCESS) O = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, B * sq * H * Dv * 4, NULL, &e);
  if (e == CL_SUCCESS) S = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, per_head * chunk, NULL, &e);
  if (e != CL_SUCCESS) {
    snprintf(err, nerr, "clCreateBuffer: %d", (int)e);
    goto done;
  }
  float v = 0.01f;
  clEnqueueFillBuffer(b.q, Q, &v, 4, 0, B * sq * H * D * 4, 0, NULL, NULL);
  clEnqueueFillBuffer(b.q, K, &v, 4, 0, B * skv * H * D * 4, 0, NULL, NULL);
  clEnqueueFillBuffer(b.q, V, &v, 4, 0, B * skv * H * Dv * 4, 0, NULL, NULL);
  if (!(prog = bench_cl_build(&b, softmax_src, err, nerr))) goto done;
  k = clCreateKernel(prog, "softmax_rows", &e);
  if (e != CL_SUCCESS) {
    snprintf(err, nerr, "clCreateKernel: %d", (int)e);
    goto done;
  }
  size_t wg = 256, maxwg = 0;
  clGetKernelWorkGroupInfo(k, b.dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof maxwg, &maxwg, NULL);
  while (wg > maxwg && wg > 1) wg /= 2;
  cl_int isq = (cl_int)sq, iskv = (cl_int)skv, icausal = s->causal;
  clSetKernelArg(k, 0, sizeof S, &S);
  clSetKernelArg(k, 1, sizeof isq, &isq);
  clSetKernelArg(k, 2, sizeof iskv, &iskv);
  clSetKernelArg(k, 3, sizeof icausal, &icausal);
  float scale = 1.0f / sqrtf((float)D);

  int n = iters > 0 ? iters : 5;
  ts = calloc((size_t)n, sizeof(double));
  if (!ts) goto done;
  for (int it = 0; it < n + 1; it++) { /* it = 0 warms up (CLBlast builds its kernels) */
    clFinish(b.q);
    double t0 = bench_now();
    for (size_t bi = 0; bi < B && e == CL_SUCCESS; bi++)
      for (size_t h0 = 0; h0 < H; h0 += chunk) {
        size_t hc = H - h0 < chunk ? H - h0 : chunk;
        CLBlastStatusCode cs = CLBlastSgemmStridedBatched(
            CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, sq, skv, D, scale, Q,
            (bi * sq * H + h0) * D, H * D, D, K, (bi * skv * H + h0) * D, H * D, D, 0.0f, S, 0, skv,
            sq * skv, hc, &b.q, NULL);
        size_t rows = hc * sq, gsz = rows * wg;
        if (cs == CLBlastSuccess)
          e = clEnqueueNDRangeKernel(b.q, k, 1, NULL, &gsz, &wg, 0, NULL, NULL);
        if (cs == CLBlastSuccess && e == CL_SUCCESS)
          cs = CLBlastSgemmStridedBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo,
                                          CLBlastTransposeNo, sq, Dv, skv, 1.0f, S, 0, skv,
                                          sq * skv, V, (bi * skv * H + h0) * Dv, H * Dv, Dv, 0.0f,
                                          O, (bi * sq * H + h0) * Dv, H * Dv, Dv, hc, &b.q, NULL);
        if (cs != CLBlastSuccess || e != CL_SUCCESS) {
          snprintf(err, nerr, "CLBlast %d / OpenCL %d", (int)cs, (int)e);
          goto done;
        }
      }
    clFinish(b.q);
    if (it > 0) ts[it - 1] = bench_now() - t0;
  }
  /* median, as for the fused runs (insertion sort: n is small) */
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && ts[j] < ts[j - 1]; j--) {
      double t = ts[j];
      ts[j] = ts[j - 1];
      ts[j - 1] = t;
    }
  result = n % 2 ? ts[n / 2] : 0.5 * (ts[n / 2 - 1] + ts[n / 2]);
done:
  free(ts);
  if (k) clReleaseKernel(k);
  if (prog) clReleaseProgram(prog);
  cl_mem mems[] = {Q, K, V, O, S};
  for (int i = 0; i < 5; i++)
    if (mems[i]) clReleaseMemObject(mems[i]);
  bench_cl_release(&b);
  return result;
}
#endif

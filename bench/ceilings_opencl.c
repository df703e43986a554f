/* OpenCL ceilings, on the device behind the bench's context (found through a
 * cl_mem of it): copy bandwidth (clEnqueueCopyBuffer, read + write counted),
 * read bandwidth (a float4 read kernel), f32 FMA throughput (a kernel of
 * independent fma chains) and CLBlast SGEMM. Timed with profiling events. */
#ifdef PA_HAVE_OPENCL
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "opencl_util.h" /* before clblast_c.h: it sets the OpenCL target version */
#include <clblast_c.h>

static const char *ceiling_src =
    "/* GPUs: grid-stride, so neighbouring work-items read neighbouring words. */\n"
    "__kernel void rd(__global const float4 *p, ulong n, __global float *out) {\n"
    "  size_t g = get_global_id(0), s = get_global_size(0);\n"
    "  float4 a = (float4)(0.0f);\n"
    "  for (size_t i = g; i < n; i += s) a += p[i];\n"
    "  if (a.x == 1234.5f) out[g] = a.y + a.z + a.w; /* never true; keeps the loads */\n"
    "}\n"
    "/* CPUs: one contiguous slice per work-item, so each core streams. */\n"
    "__kernel void rd_chunk(__global const float4 *p, ulong n, __global float *out) {\n"
    "  size_t g = get_global_id(0), s = get_global_size(0), per = n / s;\n"
    "  float4 a = (float4)(0.0f), b = a;\n"
    "  __global const float4 *q = p + g * per;\n"
    "  for (size_t i = 0; i + 1 < per; i += 2) { a += q[i]; b += q[i + 1]; }\n"
    "  a += b;\n"
    "  if (a.x == 1234.5f) out[g] = a.y + a.z + a.w;\n"
    "}\n"
    "__kernel void fm(int iters, float m, __global float *out) {\n"
    "  /* 8 independent bounded chains (m < 1, c small): no overflow, no folding */\n"
    "  float c = 1e-3f;\n"
    "  float4 a0 = (float4)(get_global_id(0) & 7), a1 = a0 + 1.0f, a2 = a0 + 2.0f, a3 = a0 + "
    "3.0f;\n"
    "  float4 a4 = a0 + 4.0f, a5 = a0 + 5.0f, a6 = a0 + 6.0f, a7 = a0 + 7.0f;\n"
    "  for (int i = 0; i < iters; i++) {\n"
    "    a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);\n"
    "    a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);\n"
    "  }\n"
    "  float4 s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;\n"
    "  out[get_global_id(0)] = s.x + s.y + s.z + s.w;\n"
    "}\n";

pa_status bench_cl_from_ctx(pa_context *ctx, bench_cl *b, char *err, size_t nerr) {
  memset(b, 0, sizeof *b);
  pa_buffer *probe = NULL;
  pa_status st = pa_buffer_create(ctx, 256, &probe);
  if (st != PA_OK) {
    snprintf(err, nerr, "no probe buffer");
    return st;
  }
  cl_mem m = (cl_mem)pa_buffer_native(probe);
  cl_int e = clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof b->ctx, &b->ctx, NULL);
  if (e == CL_SUCCESS) e = clRetainContext(b->ctx);
  if (e == CL_SUCCESS)
    e = clGetContextInfo(b->ctx, CL_CONTEXT_DEVICES, sizeof b->dev, &b->dev, NULL);
  if (e == CL_SUCCESS) b->q = clCreateCommandQueue(b->ctx, b->dev, CL_QUEUE_PROFILING_ENABLE, &e);
  pa_buffer_destroy(probe);
  if (e != CL_SUCCESS) {
    snprintf(err, nerr, "OpenCL setup error %d", (int)e);
    bench_cl_release(b);
    return PA_ERR_BACKEND;
  }
  return PA_OK;
}

void bench_cl_release(bench_cl *b) {
  if (b->q) clReleaseCommandQueue(b->q);
  if (b->ctx) clReleaseContext(b->ctx);
  memset(b, 0, sizeof *b);
}

double bench_cl_event_ms(cl_event ev) {
  cl_ulong t0 = 0, t1 = 0;
  clWaitForEvents(1, &ev);
  clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
  clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
  clReleaseEvent(ev);
  return (double)(t1 - t0) * 1e-6;
}

cl_program bench_cl_build(bench_cl *b, const char *src, char *err, size_t nerr) {
  cl_int e;
  cl_program p = clCreateProgramWithSource(b->ctx, 1, &src, NULL, &e);
  if (e != CL_SUCCESS) {
    snprintf(err, nerr, "clCreateProgramWithSource: %d", (int)e);
    return NULL;
  }
  e = clBuildProgram(p, 1, &b->dev, "", NULL, NULL);
  if (e != CL_SUCCESS) {
    size_t n = 0;
    clGetProgramBuildInfo(p, b->dev, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *log = malloc(n + 1);
    if (log) {
      clGetProgramBuildInfo(p, b->dev, CL_PROGRAM_BUILD_LOG, n, log, NULL);
      log[n] = 0;
    }
    snprintf(err, nerr, "clBuildProgram %d: %.200s", (int)e, log ? log : "");
    free(log);
    clReleaseProgram(p);
    return NULL;
  }
  return p;
}

void bench_ceilings_opencl(pa_context *ctx, bench_ceilings *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->bw_what, sizeof c->bw_what, "read kernel");
  bench_cl b;
  if (bench_cl_from_ctx(ctx, &b, c->note, sizeof c->note) != PA_OK) return;
  cl_int e = CL_SUCCESS;
  cl_mem src = NULL, dst = NULL, out = NULL, A = NULL, B = NULL, C = NULL;
  cl_program prog = NULL;
  cl_kernel krd = NULL, kfm = NULL;
  cl_ulong maxalloc = 0;
  cl_uint cus = 1;
  cl_device_type type = 0;
  clGetDeviceInfo(b.dev, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  int is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
  clGetDeviceInfo(b.dev, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof maxalloc, &maxalloc, NULL);
  clGetDeviceInfo(b.dev, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cus, &cus, NULL);
  size_t bytes = (size_t)512 << 20;
  while (bytes > maxalloc && bytes > ((size_t)16 << 20)) bytes /= 2;

  src = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
  if (e == CL_SUCCESS) dst = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
  if (e == CL_SUCCESS) out = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, (size_t)1 << 24, NULL, &e);
  if (e != CL_SUCCESS) {
    snprintf(c->note, sizeof c->note, "clCreateBuffer: %d", (int)e);
    goto done;
  }
  float zero = 0.0f;
  clEnqueueFillBuffer(b.q, src, &zero, sizeof zero, 0, bytes, 0, NULL, NULL);
  clFinish(b.q);

  double best = 1e30;
  for (int r = 0; r < 6; r++) {
    cl_event ev;
    if ((e = clEnqueueCopyBuffer(b.q, src, dst, 0, 0, bytes, 0, NULL, &ev)) != CL_SUCCESS) break;
    double ms = bench_cl_event_ms(ev);
    if (r > 0 && ms < best) best = ms;
  }
  if (best < 1e30) c->copy_bw = 2.0 * (double)bytes / (best * 1e-3);

  if (!(prog = bench_cl_build(&b, ceiling_src, c->note, sizeof c->note))) goto done;
  krd = clCreateKernel(prog, is_cpu ? "rd_chunk" : "rd", &e);
  if (e == CL_SUCCESS) kfm = clCreateKernel(prog, "fm", &e);
  if (e != CL_SUCCESS) goto done;

  /* read: enough work-items to keep every unit's memory pipes busy */
  cl_ulong n4 = bytes / 16;
  size_t gsz = is_cpu ? (size_t)cus * 4 : (size_t)cus * 2048;
  if (gsz > (1u << 22)) gsz = 1u << 22;
  clSetKernelArg(krd, 0, sizeof src, &src);
  clSetKernelArg(krd, 1, sizeof n4, &n4);
  clSetKernelArg(krd, 2, sizeof out, &out);
  best = 1e30;
  for (int r = 0; r < 6; r++) {
    cl_event ev;
    if ((e = clEnqueueNDRangeKernel(b.q, krd, 1, NULL, &gsz, NULL, 0, NULL, &ev)) != CL_SUCCESS)
      break;
    double ms = bench_cl_event_ms(ev);
    if (r > 0 && ms < best) best = ms;
  }
  if (best < 1e30) c->read_bw = (double)bytes / (best * 1e-3);
  c->bw = c->read_bw;

  /* FMA: 8 chains x float4 per work-item; calibrate to >= 20 ms. */
  cl_int iters = 256;
  float m = 0.999f;
  size_t fsz = (size_t)cus * 1024;
  if (fsz > (1u << 22)) fsz = 1u << 22;
  clSetKernelArg(kfm, 1, sizeof m, &m);
  clSetKernelArg(kfm, 2, sizeof out, &out);
  best = 1e30;
  for (int r = 0; r < 12; r++) {
    clSetKernelArg(kfm, 0, sizeof iters, &iters);
    cl_event ev;
    if ((e = clEnqueueNDRangeKernel(b.q, kfm, 1, NULL, &fsz, NULL, 0, NULL, &ev)) != CL_SUCCESS)
      break;
    double ms = bench_cl_event_ms(ev);
    if (ms < 20 && iters < (1 << 24)) {
      iters *= 4;
      continue;
    }
    double fl = (double)fsz * iters * 8 * 4 * 2 / (ms * 1e-3);
    if (fl > c->flops) c->flops = fl;
  }
  snprintf(c->flops_what, sizeof c->flops_what, "f32 FMA kernel (%u CUs)", cus);

  /* CLBlast SGEMM, square, sized to the device. */
  size_t n = is_cpu ? 2048 : 4096;
  while ((size_t)n * n * 4 * 3 > maxalloc * 3 / 2 && n > 512) n /= 2;
  A = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, n * n * 4, NULL, &e);
  if (e == CL_SUCCESS) B = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, n * n * 4, NULL, &e);
  if (e == CL_SUCCESS) C = clCreateBuffer(b.ctx, CL_MEM_READ_WRITE, n * n * 4, NULL, &e);
  if (e == CL_SUCCESS) {
    /* random inputs: constant ones would draw less power and flatter the GEMM */
    float *h = malloc(n * n * 4);
    unsigned x = 7u;
    for (size_t i = 0; h && i < n * n; i++) {
      x = x * 1664525u + 1013904223u;
      h[i] = (float)(x >> 8) / 8388608.0f - 1.0f;
    }
    if (h) {
      clEnqueueWriteBuffer(b.q, A, CL_TRUE, 0, n * n * 4, h, 0, NULL, NULL);
      clEnqueueWriteBuffer(b.q, B, CL_TRUE, 0, n * n * 4, h, 0, NULL, NULL);
    }
    free(h);
    best = 1e30;
    clFinish(b.q);
    for (int r = 0; r < 4; r++) {
      /* wall clock to clFinish: CLBlast's event covers only its last kernel */
      double t0 = bench_now();
      CLBlastStatusCode s =
          CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, n, n, n, 1.0f,
                       A, 0, n, B, 0, n, 0.0f, C, 0, n, &b.q, NULL);
      if (s != CLBlastSuccess) {
        snprintf(c->note, sizeof c->note, "CLBlastSgemm: %d", (int)s);
        break;
      }
      clFinish(b.q);
      double ms = (bench_now() - t0) * 1e3;
      if (r > 0 && ms < best) best = ms; /* r = 0 includes CLBlast's kernel build */
    }
    if (best < 1e30) c->gemm_flops = 2.0 * (double)n * n * n / (best * 1e-3);
  }
  if (!c->note[0])
    snprintf(c->note, sizeof c->note, "copy/read over %zu MiB; SGEMM %zu^3", bytes >> 20, n);
done:
  if (krd) clReleaseKernel(krd);
  if (kfm) clReleaseKernel(kfm);
  if (prog) clReleaseProgram(prog);
  cl_mem mems[] = {src, dst, out, A, B, C};
  for (int i = 0; i < 6; i++)
    if (mems[i]) clReleaseMemObject(mems[i]);
  bench_cl_release(&b);
}
#endif

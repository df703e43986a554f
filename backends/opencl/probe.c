/* The tensor-core probe: on NVIDIA, kernels/prefill_mma.cl's pa_mma_probe (one
 * mma.sync m16n8k16 in inline PTX) must build and produce the known product,
 * per 16-bit type, before any plan takes the mma kernel. Any failure (another
 * vendor, a driver without inline PTX, a wrong result) leaves the portable
 * kernels in charge. opencl.ptx=0 skips the probe. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_backend.h"

static bool probe_one(pa_context *ctx, pa_dtype dt) {
  pa_cl_state *st = pa_cl(ctx);
  char defs[96];
  snprintf(defs, sizeof defs, "-DPROBE_ONLY=1 -DKV_DT=%d -DDQK=16 -DDV=16 -DO_DT=0", (int)dt);
  cl_kernel k;
  if (pa_cl_kernel(ctx, "prefill_mma.cl", defs, "pa_mma_probe", &k) != PA_OK) {
    pa_log(2, "opencl: mma.sync probe (%s) did not build: %.300s", pa_dtype_name(dt), ctx->err);
    ctx->err[0] = 0;
    return false;
  }
  cl_int e;
  cl_mem out = clCreateBuffer(st->context, CL_MEM_READ_WRITE, 128 * sizeof(float), NULL, &e);
  if (e != CL_SUCCESS) return false;
  float got[128] = {0};
  size_t n = 32;
  pthread_mutex_lock(&st->lock);
  e = clSetKernelArg(k, 0, sizeof out, &out);
  if (e == CL_SUCCESS) e = clEnqueueNDRangeKernel(st->queue, k, 1, NULL, &n, &n, 0, NULL, NULL);
  pthread_mutex_unlock(&st->lock);
  if (e == CL_SUCCESS) e = clEnqueueReadBuffer(st->queue, out, CL_TRUE, 0, sizeof got, got, 0, NULL, NULL);
  clReleaseMemObject(out);
  if (e != CL_SUCCESS) {
    pa_log(2, "opencl: mma.sync probe (%s) did not run: %s", pa_dtype_name(dt), pa_cl_error_name(e));
    return false;
  }
  for (int lane = 0; lane < 32; lane++)
    for (int i = 0; i < 4; i++) {
      int r = lane / 4 + 8 * (i / 2), c = 2 * (lane % 4) + (i & 1);
      double want = 0.5;
      for (int kk = 0; kk < 16; kk++) want += (double)((r + 2 * kk) % 5 - 2) * ((3 * kk + c) % 7 - 3);
      if (fabs(got[lane * 4 + i] - want) > 1e-6) {
        pa_log(2, "opencl: mma.sync probe (%s) gave C[%d][%d]=%g, want %g", pa_dtype_name(dt), r, c,
               (double)got[lane * 4 + i], want);
        return false;
      }
    }
  return true;
}

/* kernels/prefill_mma.cl's pa_ldsm_probe: cp.async into local memory through
 * the address pa_saddr forms, then ldmatrix x4 and x4.trans must read back the
 * known 16x16 matrix (codes r * 16 + c + 1, the last chunk zero-filled). */
static bool probe_ldsm(pa_context *ctx) {
  pa_cl_state *st = pa_cl(ctx);
  cl_kernel k;
  if (pa_cl_kernel(ctx, "prefill_mma.cl", "-DPROBE_ONLY=1 -DKV_DT=1 -DDQK=16 -DDV=16 -DO_DT=0", "pa_ldsm_probe",
                   &k) != PA_OK) {
    pa_log(2, "opencl: ldmatrix/cp.async probe did not build: %.300s", ctx->err);
    ctx->err[0] = 0;
    return false;
  }
  cl_ushort in[256];
  for (int i = 0; i < 256; i++) in[i] = (cl_ushort)(i + 1);
  cl_int e, e2;
  cl_mem src = clCreateBuffer(st->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof in, in, &e);
  cl_mem out = clCreateBuffer(st->context, CL_MEM_READ_WRITE, 256 * sizeof(cl_uint), NULL, &e2);
  cl_uint got[256] = {0};
  if (e == CL_SUCCESS && e2 == CL_SUCCESS) {
    size_t n = 32;
    pthread_mutex_lock(&st->lock);
    e = clSetKernelArg(k, 0, sizeof src, &src);
    if (e == CL_SUCCESS) e = clSetKernelArg(k, 1, sizeof out, &out);
    if (e == CL_SUCCESS) e = clEnqueueNDRangeKernel(st->queue, k, 1, NULL, &n, &n, 0, NULL, NULL);
    pthread_mutex_unlock(&st->lock);
    if (e == CL_SUCCESS) e = clEnqueueReadBuffer(st->queue, out, CL_TRUE, 0, sizeof got, got, 0, NULL, NULL);
  } else if (e == CL_SUCCESS) {
    e = e2;
  }
  if (src) clReleaseMemObject(src);
  if (out) clReleaseMemObject(out);
  if (e != CL_SUCCESS) {
    pa_log(2, "opencl: ldmatrix/cp.async probe did not run: %s", pa_cl_error_name(e));
    return false;
  }
  for (int lane = 0; lane < 32; lane++)
    for (int i = 0; i < 8; i++) {
      /* matrix i % 4 of the x4: rows 8 (i & 1) + .., columns 8 ((i & 3) >> 1) + .. */
      int rb = 8 * (i & 1), cb = 8 * ((i & 3) >> 1), g = lane / 4, t = lane % 4;
      cl_uint want = 0;
      for (int h = 0; h < 2; h++) {
        int r = i < 4 ? rb + g : rb + 2 * t + h, c = i < 4 ? cb + 2 * t + h : cb + g;
        cl_uint code = r == 15 && c >= 8 ? 0 : (cl_uint)(r * 16 + c + 1);
        want |= code << (16 * h);
      }
      if (got[lane * 8 + i] != want) {
        pa_log(2, "opencl: ldmatrix/cp.async probe: lane %d register %d = 0x%08x, want 0x%08x", lane, i,
               got[lane * 8 + i], want);
        return false;
      }
    }
  return true;
}

pa_status pa_cl_probe_mma(pa_context *ctx) {
  pa_cl_state *st = pa_cl(ctx);
  st->mma_ok = st->mma_bf16_ok = st->ldsm_ok = false;
  if (!ctx->cfg.opencl_ptx) return PA_OK;
  char vendor[128] = "";
  clGetDeviceInfo(st->device, CL_DEVICE_VENDOR, sizeof vendor - 1, vendor, NULL);
  if (!strstr(vendor, "NVIDIA")) return PA_OK;
  st->mma_ok = probe_one(ctx, PA_F16);
  st->mma_bf16_ok = st->mma_ok && probe_one(ctx, PA_BF16);
  st->ldsm_ok = st->mma_ok && probe_ldsm(ctx);
  pa_log(2, "opencl: mma.sync probe %s, bf16 %s, ldmatrix/cp.async %s", st->mma_ok ? "ok" : "failed",
         st->mma_bf16_ok ? "ok" : "failed", st->ldsm_ok ? "ok" : "failed");
  return PA_OK;
}

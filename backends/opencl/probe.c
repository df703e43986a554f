/* The tensor-core probe: on NVIDIA, kernels/prefill_mma.cl's pa_mma_probe (one
 * mma.sync m16n8k16 in inline PTX) must build and produce the known product,
 * per 16-bit type, before any plan takes the mma kernel. Any failure (another
 * vendor, a driver without inline PTX, a wrong result) leaves the portable
 * kernels in charge. PA_OPENCL_NO_MMA=1 skips the probe. */
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

pa_status pa_cl_probe_mma(pa_context *ctx) {
  pa_cl_state *st = pa_cl(ctx);
  st->mma_ok = st->mma_bf16_ok = false;
  const char *off = getenv("PA_OPENCL_NO_MMA");
  if (off && *off && strcmp(off, "0")) return PA_OK;
  char vendor[128] = "";
  clGetDeviceInfo(st->device, CL_DEVICE_VENDOR, sizeof vendor - 1, vendor, NULL);
  if (!strstr(vendor, "NVIDIA")) return PA_OK;
  st->mma_ok = probe_one(ctx, PA_F16);
  st->mma_bf16_ok = st->mma_ok && probe_one(ctx, PA_BF16);
  return PA_OK;
}

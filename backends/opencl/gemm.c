/* Per-head GEMM around MLA, y[t, h, :] = x[t, h, :] @ w[h, :, :]: CLBlast's
 * strided-batched SGEMM for f32 (batch = head), kernels/gemm.cl for 16-bit
 * dtypes (CLBlast's half GEMM needs cl_khr_fp16, which NVIDIA does not offer)
 * and as the fallback when CLBlast declines the shape or the device. */
#include <stdio.h>

#include <clblast_c.h>

#include "cl_backend.h"

static pa_status own_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w, pa_tensor *y) {
  pa_cl_state *st = pa_cl(ctx);
  char defs[96];
  snprintf(defs, sizeof defs, "-DX_DT=%d -DW_DT=%d -DY_DT=%d", (int)x->dtype, (int)w->dtype, (int)y->dtype);
  cl_kernel k;
  pa_status s = pa_cl_kernel(ctx, "gemm.cl", defs, "pa_head_gemm", &k);
  if (s != PA_OK) return s;
  int64_t T = x->shape[0], H = x->shape[1], K = x->shape[2], N = w->shape[2];
  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = k};
  pa_cl_arg_mem(&g, x->buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(x));
  pa_cl_arg_long(&g, x->stride[0]), pa_cl_arg_long(&g, x->stride[1]);
  pa_cl_arg_mem(&g, w->buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(w));
  pa_cl_arg_long(&g, w->stride[0]), pa_cl_arg_long(&g, w->stride[1]), pa_cl_arg_long(&g, w->stride[2]);
  pa_cl_arg_mem(&g, y->buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(y));
  pa_cl_arg_long(&g, y->stride[0]), pa_cl_arg_long(&g, y->stride[1]);
  pa_cl_arg_int(&g, (int)T), pa_cl_arg_int(&g, (int)K), pa_cl_arg_int(&g, (int)N);
  if (g.err != CL_SUCCESS) {
    s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: gemm argument %u: %s (%d)", g.bad,
                pa_cl_error_name(g.err), (int)g.err);
  } else {
    size_t local[3] = {16, 16, 1};
    size_t global[3] = {(size_t)((N + 63) / 64) * 16, (size_t)((T + 63) / 64) * 16, (size_t)H};
    cl_int e = clEnqueueNDRangeKernel(st->queue, k, 3, NULL, global, local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, "enqueue pa_head_gemm");
  }
  pthread_mutex_unlock(&st->lock);
  return s;
}

pa_status pa_cl_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w, pa_tensor *y) {
  if (x->dtype == PA_F32 && w->dtype == PA_F32 && y->dtype == PA_F32 && x->stride[2] == 1 &&
      y->stride[2] == 1) {
    size_t T = (size_t)x->shape[0], H = (size_t)x->shape[1], K = (size_t)x->shape[2];
    size_t N = (size_t)w->shape[2];
    /* Row-major: A = x[:, h, :] (T x K, ld = x.stride[0]), B = w[h] (K x N, or
     * its transpose when the K stride is 1), C = y[:, h, :]. */
    bool wt = w->stride[2] != 1;
    CLBlastStatusCode c = CLBlastSgemmStridedBatched(
        CLBlastLayoutRowMajor, CLBlastTransposeNo, wt ? CLBlastTransposeYes : CLBlastTransposeNo,
        T, N, K, 1.0f, (cl_mem)x->buf->handle, (size_t)pa_cl_elem_off(x), (size_t)x->stride[0],
        (size_t)x->stride[1], (cl_mem)w->buf->handle, (size_t)pa_cl_elem_off(w),
        (size_t)(wt ? w->stride[2] : w->stride[1]), (size_t)w->stride[0], 0.0f,
        (cl_mem)y->buf->handle, (size_t)pa_cl_elem_off(y), (size_t)y->stride[0], (size_t)y->stride[1],
        H, &pa_cl(ctx)->queue, NULL);
    if (c == CLBlastSuccess) return PA_OK;
    pa_log(1, "opencl: CLBlastSgemmStridedBatched returned %d; using the polyattn GEMM kernel", (int)c);
  }
  return own_gemm(ctx, x, w, y);
}

/* Per-head GEMM around MLA (absorption, output projection) through cuBLAS:
 * y[t, h, :] = x[t, h, :] @ w[h, :, :], one strided-batched call over heads.
 * cuBLAS is column-major, so it computes Y_h^T (N x T) = W_h^T (N x K) X_h^T. */
#include "state.h"

static cudaDataType cu_type(pa_dtype t) {
  return t == PA_F16 ? CUDA_R_16F : t == PA_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

pa_status pa_cuda_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w,
                            pa_tensor *y) {
  pa_cuda_state *s = pa_cuda_st(ctx);
  const int64_t T = x->shape[0], H = x->shape[1], K = x->shape[2], N = w->shape[2];
  if (x->dtype != w->dtype || x->dtype == PA_I32 || y->dtype == PA_I32 ||
      (y->dtype != x->dtype && y->dtype != PA_F32))
    return pa_fail(ctx, PA_ERR_UNSUPPORTED,
                   "cuda head_gemm: x.dtype=%s w.dtype=%s y.dtype=%s (x and w must match; y "
                   "the same or f32)",
                   pa_dtype_name(x->dtype), pa_dtype_name(w->dtype), pa_dtype_name(y->dtype));
  if ((x->stride[2] != 1 && K > 1) || (y->stride[2] != 1 && N > 1) ||
      (w->stride[2] != 1 && w->stride[1] != 1))
    return pa_fail(ctx, PA_ERR_UNSUPPORTED,
                   "cuda head_gemm: x.stride[2]=%lld y.stride[2]=%lld must be 1 and w.stride[1]=%lld "
                   "or w.stride[2]=%lld must be 1",
                   (long long)x->stride[2], (long long)y->stride[2], (long long)w->stride[1],
                   (long long)w->stride[2]);
  if (T == 0 || H == 0 || N == 0) return PA_OK;
  const int w_rowmajor = w->stride[2] == 1;
  const int64_t ldw = w_rowmajor ? w->stride[1] : w->stride[2];
  const float one = 1.f, zero = 0.f;
  cudaError_t ce = cudaSetDevice(s->device);
  if (ce != cudaSuccess) return pa_cuda_fail(ctx, ce, "cudaSetDevice");
  cublasStatus_t st = cublasGemmStridedBatchedEx(
      s->blas, w_rowmajor ? CUBLAS_OP_N : CUBLAS_OP_T, CUBLAS_OP_N, (int)N, (int)T, (int)K, &one,
      (const char *)w->buf->handle + w->offset, cu_type(w->dtype), (int)(ldw > 0 ? ldw : N),
      w->stride[0], (const char *)x->buf->handle + x->offset, cu_type(x->dtype),
      (int)x->stride[0], x->stride[1], &zero, (char *)y->buf->handle + y->offset,
      cu_type(y->dtype), (int)y->stride[0], y->stride[1], (int)H, CUBLAS_COMPUTE_32F,
      CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS)
    return pa_fail(ctx, PA_ERR_BACKEND,
                   "cuda head_gemm: cublasGemmStridedBatchedEx: %s (T=%lld H=%lld K=%lld N=%lld)",
                   cublasGetStatusName(st), (long long)T, (long long)H, (long long)K,
                   (long long)N);
  return PA_OK;
}

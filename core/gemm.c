/* pa_head_gemm: the per-head GEMMs around MLA (query absorption, output
 * projection). */
#include "tensor.h"

pa_status pa_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w, pa_tensor *y) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!x || !w || !y) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "x, w and y must not be NULL");
  pa_status st = pa_tensor_check(ctx, "x", x, PA_ANY_FLOAT, 3, NULL);
  if (st != PA_OK) return st;
  int64_t T = x->shape[0], H = x->shape[1], K = x->shape[2];
  if (!w->buf || w->ndim != 3)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "w must be a 3-d tensor [H, K, N]");
  /* A transposed weight ([H, N, K] in memory) is checked through its transpose. */
  pa_tensor wt = *w;
  if (w->stride[2] != 1 && w->stride[1] == 1) {
    wt.shape[1] = w->shape[2], wt.shape[2] = w->shape[1];
    wt.stride[1] = w->stride[2], wt.stride[2] = 1;
  }
  if ((st = pa_tensor_check(ctx, "w", &wt, x->dtype, 3, NULL)) != PA_OK) return st;
  if (w->shape[0] != H || w->shape[1] != K)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "w.shape=[%lld,%lld,..] but x gives [H=%lld,K=%lld]",
                   (long long)w->shape[0], (long long)w->shape[1], (long long)H, (long long)K);
  int64_t N = w->shape[2];
  int64_t wy[3] = {T, H, N};
  if (y->buf && y->dtype != x->dtype && y->dtype != PA_F32)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "y.dtype=%s but x.dtype=%s: y must be %s or f32",
                   pa_dtype_name(y->dtype), pa_dtype_name(x->dtype), pa_dtype_name(x->dtype));
  if ((st = pa_tensor_check(ctx, "y", y, PA_ANY_FLOAT, 3, wy)) != PA_OK ||
      (st = pa_output_check(ctx, "y", y)) != PA_OK)
    return st;
  const pa_named outs[] = {{y, "y"}}, ins[] = {{x, "x"}, {w, "w"}};
  if ((st = pa_check_apart(ctx, outs, 1, ins, 2)) != PA_OK) return st;
  if (!T || !H || !N) return PA_OK;
  if (!ctx->ops->head_gemm)
    return pa_fail(ctx, PA_ERR_UNSUPPORTED, "backend %s has no head_gemm", ctx->ops->name);
  return ctx->ops->head_gemm(ctx, x, w, y);
}

/* pa_merge_*: validation of the three merge forms, then the backend. */
#include "plan.h"
#include "tensor.h"

static pa_status dispatch(pa_context *ctx, const pa_merge_launch *m) {
  if (!ctx->ops->merge)
    return pa_fail(ctx, PA_ERR_UNSUPPORTED, "backend %s has no merge", ctx->ops->name);
  return ctx->ops->merge(ctx, m);
}

/* A merge also defines lse_out, so a head dim of 0 would still owe it values;
 * no caller needs that, so it is refused rather than half-done. */
static pa_status check_dim(pa_context *ctx, const char *name, int64_t d) {
  return d >= 1 ? PA_OK
                : pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s: head dim=%lld, must be at least 1", name,
                          (long long)d);
}

static pa_status check_out(pa_context *ctx, pa_tensor *out, pa_tensor *lse_out, int64_t rows,
                           int64_t heads, int64_t dim) {
  int64_t wo[3] = {rows, heads, dim}, wl[2] = {rows, heads};
  pa_status st = pa_tensor_check(ctx, "out", out, PA_ANY_FLOAT, 3, wo);
  if (st == PA_OK) st = pa_output_check(ctx, "out", out);
  if (st == PA_OK && lse_out && lse_out->buf) {
    st = pa_tensor_check(ctx, "lse_out", lse_out, PA_F32, 2, wl);
    if (st == PA_OK) st = pa_output_check(ctx, "lse_out", lse_out);
  }
  return st;
}

/* out and lse_out apart from each other and from the n inputs. */
static pa_status check_apart(pa_context *ctx, const pa_tensor *out, const pa_tensor *lse_out,
                             const pa_named *ins, int n) {
  const pa_named outs[] = {{out, "out"}, {lse_out, "lse_out"}};
  return pa_check_apart(ctx, outs, 2, ins, n);
}

pa_status pa_merge_state_pair(pa_context *ctx, const pa_tensor *a, const pa_tensor *lse_a,
                              const pa_tensor *b, const pa_tensor *lse_b, pa_tensor *out,
                              pa_tensor *lse_out) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!a || !lse_a || !b || !lse_b || !out)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "a, lse_a, b, lse_b and out must not be NULL");
  pa_status st = pa_tensor_check(ctx, "a", a, PA_ANY_FLOAT, 3, NULL);
  if (st != PA_OK) return st;
  int64_t T = a->shape[0], H = a->shape[1], D = a->shape[2];
  if ((st = check_dim(ctx, "a.shape[2]", D)) != PA_OK) return st;
  int64_t w3[3] = {T, H, D}, w2[2] = {T, H};
  if ((st = pa_tensor_check(ctx, "b", b, PA_ANY_FLOAT, 3, w3)) != PA_OK ||
      (st = pa_tensor_check(ctx, "lse_a", lse_a, PA_F32, 2, w2)) != PA_OK ||
      (st = pa_tensor_check(ctx, "lse_b", lse_b, PA_F32, 2, w2)) != PA_OK ||
      (st = check_out(ctx, out, lse_out, T, H, D)) != PA_OK)
    return st;
  const pa_named ins[] = {{a, "a"}, {lse_a, "lse_a"}, {b, "b"}, {lse_b, "lse_b"}};
  if ((st = check_apart(ctx, out, lse_out, ins, 4)) != PA_OK) return st;
  pa_merge_launch m = {.mode = PA_MERGE_PAIR, .rows = T, .heads = H, .dim = D, .states = 2,
                       .a = a, .lse_a = lse_a, .b = b, .lse_b = lse_b, .out = out,
                       .lse_out = lse_out};
  return T && H ? dispatch(ctx, &m) : PA_OK;
}

pa_status pa_merge_states(pa_context *ctx, const pa_tensor *v, const pa_tensor *s, pa_tensor *out,
                          pa_tensor *lse_out) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!v || !s || !out) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "v, s and out must not be NULL");
  pa_status st = pa_tensor_check(ctx, "v", v, PA_ANY_FLOAT, 4, NULL);
  if (st != PA_OK) return st;
  int64_t T = v->shape[0], N = v->shape[1], H = v->shape[2], D = v->shape[3];
  if ((st = check_dim(ctx, "v.shape[3]", D)) != PA_OK) return st;
  int64_t ws[3] = {T, N, H};
  if ((st = pa_tensor_check(ctx, "s", s, PA_F32, 3, ws)) != PA_OK ||
      (st = check_out(ctx, out, lse_out, T, H, D)) != PA_OK ||
      (st = check_apart(ctx, out, lse_out, (pa_named[]){{v, "v"}, {s, "s"}}, 2)) != PA_OK)
    return st;
  pa_merge_launch m = {.mode = PA_MERGE_FIXED, .rows = T, .heads = H, .dim = D, .states = N,
                       .v = v, .s = s, .out = out, .lse_out = lse_out};
  return T && H ? dispatch(ctx, &m) : PA_OK;
}

pa_status pa_merge_states_varlen(pa_context *ctx, const pa_tensor *v, const pa_tensor *s,
                                 const pa_tensor *indptr, pa_tensor *out, pa_tensor *lse_out) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!v || !s || !indptr || !out)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "v, s, indptr and out must not be NULL");
  pa_status st = pa_tensor_check(ctx, "v", v, PA_ANY_FLOAT, 3, NULL);
  if (st != PA_OK) return st;
  int64_t P = v->shape[0], H = v->shape[1], D = v->shape[2];
  if ((st = check_dim(ctx, "v.shape[2]", D)) != PA_OK) return st;
  int64_t ws[2] = {P, H};
  if ((st = pa_tensor_check(ctx, "s", s, PA_F32, 2, ws)) != PA_OK ||
      (st = pa_tensor_check(ctx, "indptr", indptr, PA_I32, 1, NULL)) != PA_OK)
    return st;
  if (indptr->shape[0] < 1)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "indptr.shape[0]=0: needs rows + 1 entries");
  int64_t R = indptr->shape[0] - 1;
  if ((st = check_out(ctx, out, lse_out, R, H, D)) != PA_OK ||
      (st = check_apart(ctx, out, lse_out,
                        (pa_named[]){{v, "v"}, {s, "s"}, {indptr, "indptr"}}, 3)) != PA_OK)
    return st;
  if (ctx->props.host_memory) { /* host-visible: check what we can */
    const int32_t *ip = (const int32_t *)pa_tensor_ptr_host(indptr);
    int64_t st0 = indptr->stride[0];
    for (int64_t r = 0; r <= R; r++) {
      int32_t x = ip[r * st0];
      if (x < 0 || x > P || (r > 0 && x < ip[(r - 1) * st0]))
        return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                       "indptr[%lld]=%d: must be non-decreasing within 0..%lld", (long long)r, x,
                       (long long)P);
    }
  }
  pa_merge_launch m = {.mode = PA_MERGE_VARLEN, .rows = R, .heads = H, .dim = D,
                       .v = v, .s = s, .indptr = indptr, .out = out, .lse_out = lse_out};
  return R && H ? dispatch(ctx, &m) : PA_OK;
}

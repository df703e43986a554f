/* pa_kv_append / pa_mla_append: validation, then one backend call. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "tensor.h"

static bool is_float(pa_dtype t) { return t == PA_F32 || t == PA_F16 || t == PA_BF16; }

/* Two outputs in one buffer may interleave without sharing an element (MLA's
 * ckv and kpe views of one [.., Dc + Dr] cache): true when a and b have the
 * same outer strides, their rows sit in disjoint byte windows, and distinct
 * rows of either are further apart than both windows together span. */
static bool interleaved_apart(const pa_tensor *a, const pa_tensor *b) {
  const int n = a->ndim;
  if (a->buf != b->buf || b->ndim != n || a->dtype != b->dtype) return false;
  for (int i = 0; i < n - 1; i++)
    if (a->stride[i] != b->stride[i]) return false;
  const int64_t es = (int64_t)pa_dtype_size(a->dtype);
  const int64_t a0 = (int64_t)a->offset, a1 = a0 + a->shape[n - 1] * es;
  const int64_t b0 = (int64_t)b->offset, b1 = b0 + b->shape[n - 1] * es;
  if (a0 < b1 && b0 < a1) return false;
  const int64_t width = (a1 > b1 ? a1 : b1) - (a0 < b0 ? a0 : b0);
  /* smallest distance between two distinct rows: outer dims by stride, each
   * stride minus what the smaller ones can span */
  int dims[PA_MAX_DIMS], m = 0;
  for (int i = 0; i < n - 1; i++)
    if (a->shape[i] > 1) dims[m++] = i;
  for (int x = 1; x < m; x++)
    for (int y = x; y > 0 && a->stride[dims[y]] < a->stride[dims[y - 1]]; y--) {
      int t = dims[y];
      dims[y] = dims[y - 1], dims[y - 1] = t;
    }
  int64_t below = 0;
  for (int k = 0; k < m; k++) {
    const int64_t s = a->stride[dims[k]];
    if ((s - below) * es < width) return false;
    below += (a->shape[dims[k]] - 1) * s;
  }
  return true;
}

typedef struct stream_in {
  const char *src_name, *cache_name, *scale_name;
  const pa_tensor *src, *cache, *scale;
} stream_in;

/* Checks both streams (src [T, H, D] or, heads == 0, [T, D]; cache [P, ps,
 * H, D] or [P, ps, D]) and the slot map; fills the launch. */
static pa_status check(pa_context *ctx, const stream_in *in, const pa_tensor *slots, int mla,
                       pa_append_launch *L) {
  pa_status st;
  memset(L, 0, sizeof *L);
  const int sd = mla ? 2 : 3, cd = mla ? 3 : 4;
  const pa_tensor *k = in[0].src, *kc = in[0].cache;
  if ((st = pa_tensor_check(ctx, in[0].src_name, k, PA_ANY_FLOAT, sd, NULL)) != PA_OK) return st;
  const int64_t T = k->shape[0], H = mla ? 1 : k->shape[1];
  if (!kc->buf) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.buf is NULL", in[0].cache_name);
  const pa_dtype cdt = kc->dtype;
  if (!is_float(cdt) && !pa_dtype_is_fp8(cdt))
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "%s.dtype=%s (%d) is not f32, f16, bf16, e4m3 or e5m2", in[0].cache_name,
                   pa_dtype_name(cdt), (int)cdt);
  if ((st = pa_tensor_check(ctx, in[0].cache_name, kc, cdt, cd, NULL)) != PA_OK) return st;
  const int64_t P = kc->shape[0], ps = kc->shape[1];
  if (ps < 1)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.shape[1]=%lld: the page size must be >= 1",
                   in[0].cache_name, (long long)ps);
  for (int i = 0; i < 2; i++) {
    const stream_in *s = &in[i];
    const int64_t D = s->src->shape[sd - 1];
    int64_t ws[3] = {T, mla ? D : H, D}, wc[4] = {P, ps, mla ? D : H, D};
    if (!mla) ws[2] = PA_ANY, wc[3] = PA_ANY;
    if (i == 0) ws[sd - 1] = PA_ANY;
    if ((st = pa_tensor_check(ctx, s->src_name, s->src, PA_ANY_FLOAT, sd, ws)) != PA_OK) return st;
    const int64_t Ds = s->src->shape[sd - 1];
    if (mla)
      wc[2] = Ds;
    else
      wc[3] = Ds;
    if ((st = pa_tensor_check(ctx, s->cache_name, s->cache, cdt, cd, wc)) != PA_OK) return st;
    if ((st = pa_output_check(ctx, s->cache_name, s->cache)) != PA_OK) return st;
    if (s->scale_name &&
        (st = pa_check_kv_scale(ctx, s->scale_name, s->scale, cdt, (int)H)) != PA_OK)
      return st;
    pa_append_stream *o = &L->s[i];
    o->src = s->src;
    o->cache = s->cache;
    o->scale = pa_dtype_is_fp8(cdt) ? s->scale : NULL;
    o->dim = Ds;
    o->src_t = s->src->stride[0];
    o->src_h = mla ? 0 : s->src->stride[1];
    o->c_page = s->cache->stride[0];
    o->c_slot = s->cache->stride[1];
    o->c_h = mla ? 0 : s->cache->stride[2];
    o->scale_h = o->scale && o->scale->shape[0] > 1 ? o->scale->stride[0] : 0;
  }
  int64_t wsl[1] = {T};
  if ((st = pa_tensor_check(ctx, "slot_mapping", slots, PA_I32, 1, wsl)) != PA_OK) return st;
  if (P > INT32_MAX / ps + 1)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "%s: %lld pages of %lld slots exceed the i32 slot range", in[0].cache_name,
                   (long long)P, (long long)ps);
  /* outputs apart from every input and from each other */
  const pa_named outs[2] = {{in[0].cache, in[0].cache_name}, {in[1].cache, in[1].cache_name}};
  const pa_named ins[5] = {{in[0].src, in[0].src_name},
                           {in[1].src, in[1].src_name},
                           {slots, "slot_mapping"},
                           {L->s[0].scale, in[0].scale_name ? in[0].scale_name : "kv_scale"},
                           {L->s[1].scale, in[1].scale_name ? in[1].scale_name : "kv_scale"}};
  if (!interleaved_apart(in[0].cache, in[1].cache)) {
    if ((st = pa_check_apart(ctx, outs, 2, ins, 5)) != PA_OK) return st;
  } else {
    if ((st = pa_check_apart(ctx, outs, 1, ins, 5)) != PA_OK ||
        (st = pa_check_apart(ctx, outs + 1, 1, ins, 5)) != PA_OK)
      return st;
  }
  /* A host-visible map (CPU) is checked now; a device one is not read by the
   * host: the kernels skip slots outside the cache. */
  if (ctx->kind == PA_BACKEND_CPU) {
    const int32_t *m = (const int32_t *)(const void *)pa_tensor_ptr_host(slots);
    for (int64_t t = 0; t < T; t++) {
      int32_t v = m[t * slots->stride[0]];
      if (v < -1 || (int64_t)v >= P * ps)
        return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                       "slot_mapping[%lld]=%d is outside -1..%lld (%lld pages of %lld)",
                       (long long)t, v, (long long)(P * ps - 1), (long long)P, (long long)ps);
    }
  }
  L->slots = slots;
  L->tokens = T;
  L->heads = H;
  L->page_size = ps;
  L->num_pages = P;
  L->slot_s = slots->stride[0];
  return PA_OK;
}

static pa_status launch(pa_context *ctx, const pa_append_launch *L) {
  if (L->tokens == 0) return PA_OK;
  if (!ctx->ops->append)
    return pa_fail(ctx, PA_ERR_UNSUPPORTED, "backend %s has no append", ctx->ops->name);
  return ctx->ops->append(ctx, L);
}

pa_status pa_kv_append(pa_context *ctx, const pa_kv_append_args *a) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!a) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "args is NULL");
  const stream_in in[2] = {{"k", "k_cache", "k_scale", &a->k, &a->k_cache, &a->k_scale},
                           {"v", "v_cache", "v_scale", &a->v, &a->v_cache, &a->v_scale}};
  if (a->v_cache.buf && a->k_cache.buf && a->v_cache.dtype != a->k_cache.dtype)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "v_cache.dtype=%s but k_cache.dtype=%s",
                   pa_dtype_name(a->v_cache.dtype), pa_dtype_name(a->k_cache.dtype));
  pa_append_launch L;
  pa_status st = check(ctx, in, &a->slot_mapping, 0, &L);
  return st != PA_OK ? st : launch(ctx, &L);
}

pa_status pa_mla_append(pa_context *ctx, const pa_mla_append_args *a) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  if (!a) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "args is NULL");
  const stream_in in[2] = {{"ckv", "ckv_cache", "kv_scale", &a->ckv, &a->ckv_cache, &a->kv_scale},
                           {"kpe", "kpe_cache", NULL, &a->kpe, &a->kpe_cache, &a->kv_scale}};
  if (a->kpe_cache.buf && a->ckv_cache.buf && a->kpe_cache.dtype != a->ckv_cache.dtype)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "kpe_cache.dtype=%s but ckv_cache.dtype=%s",
                   pa_dtype_name(a->kpe_cache.dtype), pa_dtype_name(a->ckv_cache.dtype));
  pa_append_launch L;
  pa_status st = check(ctx, in, &a->slot_mapping, 1, &L);
  return st != PA_OK ? st : launch(ctx, &L);
}

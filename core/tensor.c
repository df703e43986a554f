#include <string.h>

#include "tensor.h"

pa_status pa_tensor_init(pa_tensor *t, pa_buffer *buf, size_t offset, pa_dtype dtype, int ndim,
                         const int64_t *shape) {
  if (!t) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "tensor is NULL");
  if (ndim < 1 || ndim > PA_MAX_DIMS || !shape)
    return pa_fail(buf ? buf->ctx : NULL, PA_ERR_INVALID_ARGUMENT,
                   "ndim=%d must be 1..%d with a shape", ndim, PA_MAX_DIMS);
  if (pa_dtype_size(dtype) == 0)
    return pa_fail(buf ? buf->ctx : NULL, PA_ERR_INVALID_ARGUMENT, "dtype=%d is unknown",
                   (int)dtype);
  memset(t, 0, sizeof *t);
  t->buf = buf;
  t->offset = offset;
  t->dtype = dtype;
  t->ndim = ndim;
  int64_t s = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    t->shape[i] = shape[i];
    t->stride[i] = s;
    if (shape[i] < 0 || __builtin_mul_overflow(s, shape[i] > 0 ? shape[i] : 1, &s))
      return pa_fail(buf ? buf->ctx : NULL, PA_ERR_INVALID_ARGUMENT,
                     "shape[%d]=%lld is negative or the size overflows", i, (long long)shape[i]);
  }
  return PA_OK;
}

pa_status pa_tensor_init_strided(pa_tensor *t, pa_buffer *buf, size_t offset, pa_dtype dtype,
                                 int ndim, const int64_t *shape, const int64_t *stride) {
  pa_context *ctx = buf ? buf->ctx : NULL;
  if (!t) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "tensor is NULL");
  if (!stride) return pa_tensor_init(t, buf, offset, dtype, ndim, shape);
  if (ndim < 1 || ndim > PA_MAX_DIMS || !shape)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "ndim=%d must be 1..%d with a shape", ndim,
                   PA_MAX_DIMS);
  size_t es = pa_dtype_size(dtype);
  if (!es) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "dtype=%d is unknown", (int)dtype);
  if (offset % es)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "offset=%zu bytes is not a multiple of the %s element size %zu (offset is "
                   "in bytes, strides in elements)",
                   offset, pa_dtype_name(dtype), es);
  pa_tensor v = {.buf = buf, .offset = offset, .dtype = dtype, .ndim = ndim};
  int64_t last = 0; /* highest element offset */
  bool empty = false;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0 || stride[i] < 0)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "shape[%d]=%lld stride[%d]=%lld: negative", i,
                     (long long)shape[i], i, (long long)stride[i]);
    v.shape[i] = shape[i];
    v.stride[i] = stride[i];
    int64_t term;
    if (shape[i] == 0)
      empty = true;
    else if (__builtin_mul_overflow(shape[i] - 1, stride[i], &term) ||
             __builtin_add_overflow(last, term, &last))
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "shape[%d] x stride[%d] overflows", i, i);
  }
  uint64_t bytes;
  if (buf && !empty &&
      (__builtin_mul_overflow((uint64_t)last + 1, (uint64_t)es, &bytes) || offset > buf->size ||
       bytes > buf->size - offset))
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "offset=%zu bytes + extent=%llu elements of %zu bytes exceeds the buffer's "
                   "size=%zu",
                   offset, (unsigned long long)last + 1, es, buf->size);
  *t = v;
  return PA_OK;
}

bool pa_tensor_span(const pa_tensor *t, size_t *lo, size_t *hi) {
  int64_t last = 0;
  for (int i = 0; i < t->ndim; i++) {
    if (t->shape[i] == 0) return false;
    last += (t->shape[i] - 1) * t->stride[i];
  }
  *lo = t->offset;
  *hi = t->offset + (size_t)(last + 1) * pa_dtype_size(t->dtype);
  return true;
}

bool pa_tensor_overlap(const pa_tensor *a, const pa_tensor *b) {
  size_t alo, ahi, blo, bhi;
  if (!a->buf || a->buf != b->buf) return false;
  if (!pa_tensor_span(a, &alo, &ahi) || !pa_tensor_span(b, &blo, &bhi)) return false;
  return alo < bhi && blo < ahi;
}

pa_status pa_output_check(pa_context *ctx, const char *name, const pa_tensor *t) {
  int dims[PA_MAX_DIMS], n = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] > 1) dims[n++] = i;
  for (int a = 1; a < n; a++) /* insertion sort by stride */
    for (int b = a; b > 0 && t->stride[dims[b]] < t->stride[dims[b - 1]]; b--) {
      int x = dims[b];
      dims[b] = dims[b - 1], dims[b - 1] = x;
    }
  int64_t span = 0; /* highest offset reached by the dims seen so far */
  for (int k = 0; k < n; k++) {
    int i = dims[k];
    if (t->stride[i] <= span)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                     "%s.stride[%d]=%lld makes elements of the output share memory", name, i,
                     (long long)t->stride[i]);
    span += (t->shape[i] - 1) * t->stride[i];
  }
  return PA_OK;
}

static bool used(const pa_named *n) { return n->t && n->t->buf; }

pa_status pa_check_apart(pa_context *ctx, const pa_named *outs, int n_outs, const pa_named *ins,
                         int n_ins) {
  for (int o = 0; o < n_outs; o++) {
    if (!used(&outs[o])) continue;
    for (int i = 0; i < n_ins; i++)
      if (used(&ins[i]) && pa_tensor_overlap(outs[o].t, ins[i].t))
        return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s overlaps %s in memory", outs[o].name,
                       ins[i].name);
    for (int p = o + 1; p < n_outs; p++)
      if (used(&outs[p]) && pa_tensor_overlap(outs[o].t, outs[p].t))
        return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s overlaps %s in memory", outs[p].name,
                       outs[o].name);
  }
  return PA_OK;
}

static bool dtype_ok(pa_dtype have, pa_dtype want) {
  if (want == PA_ANY_FLOAT) return have == PA_F32 || have == PA_F16 || have == PA_BF16;
  return have == want;
}

pa_status pa_tensor_check(pa_context *ctx, const char *name, const pa_tensor *t, pa_dtype dtype,
                          int ndim, const int64_t *want) {
  if (!t) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s is NULL", name);
  if (!t->buf) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.buf is NULL", name);
  if (t->buf->ctx != ctx)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.buf belongs to another context", name);
  size_t es = pa_dtype_size(t->dtype);
  if (!es || !dtype_ok(t->dtype, dtype))
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.dtype=%s (%d) but %s expected", name,
                   pa_dtype_name(t->dtype), (int)t->dtype,
                   dtype == PA_ANY_FLOAT ? "f32, f16 or bf16" : pa_dtype_name(dtype));
  if (t->ndim != ndim)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.ndim=%d but %d expected", name, t->ndim, ndim);
  for (int i = 0; i < ndim; i++) {
    if (t->shape[i] < 0)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.shape[%d]=%lld is negative", name, i,
                     (long long)t->shape[i]);
    if (want && want[i] != PA_ANY && t->shape[i] != want[i])
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.shape[%d]=%lld but %lld expected", name, i,
                     (long long)t->shape[i], (long long)want[i]);
    if (t->stride[i] < 0)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.stride[%d]=%lld is negative", name, i,
                     (long long)t->stride[i]);
  }
  if (t->shape[ndim - 1] > 1 && t->stride[ndim - 1] != 1)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "%s.stride[%d]=%lld: the last dimension must be contiguous (stride 1)", name,
                   ndim - 1, (long long)t->stride[ndim - 1]);
  if (t->offset % es)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.offset=%zu is not a multiple of %zu bytes",
                   name, t->offset, es);
  /* Highest element offset, in checked arithmetic. */
  int64_t last = 0;
  for (int i = 0; i < ndim; i++) {
    if (t->shape[i] == 0) return PA_OK; /* empty: touches nothing */
    int64_t term;
    if (__builtin_mul_overflow(t->shape[i] - 1, t->stride[i], &term) ||
        __builtin_add_overflow(last, term, &last))
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s: shape x stride overflows", name);
  }
  uint64_t bytes;
  if (__builtin_mul_overflow((uint64_t)last + 1, (uint64_t)es, &bytes) ||
      t->offset > t->buf->size || bytes > t->buf->size - t->offset)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "%s: offset=%zu + extent=%llu bytes exceeds its buffer's size=%zu", name,
                   t->offset, (unsigned long long)bytes, t->buf->size);
  return PA_OK;
}

pa_status pa_tensor_check2(pa_context *ctx, const char *name, const pa_tensor *t, pa_dtype dtype,
                           int ndim_a, const int64_t *want_a, int ndim_b, const int64_t *want_b) {
  if (t && t->ndim == ndim_b) return pa_tensor_check(ctx, name, t, dtype, ndim_b, want_b);
  if (t && t->ndim != ndim_a)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.ndim=%d but %d or %d expected", name, t->ndim,
                   ndim_a, ndim_b);
  return pa_tensor_check(ctx, name, t, dtype, ndim_a, want_a);
}

pa_status pa_check_kv_scale(pa_context *ctx, const char *name, const pa_tensor *t,
                            pa_dtype kv_dtype, int hkv) {
  if (!pa_dtype_is_fp8(kv_dtype)) {
    if (t->buf)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                     "%s is set but the cache dtype is %s: scales are for e4m3/e5m2 only", name,
                     pa_dtype_name(kv_dtype));
    return PA_OK;
  }
  if (!t->buf)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.buf is NULL but the cache dtype is %s", name,
                   pa_dtype_name(kv_dtype));
  pa_status st = pa_tensor_check(ctx, name, t, PA_F32, 1, NULL);
  if (st != PA_OK) return st;
  if (t->shape[0] != 1 && t->shape[0] != hkv)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s.shape[0]=%lld must be 1 or num_kv_heads=%d",
                   name, (long long)t->shape[0], hkv);
  return PA_OK;
}

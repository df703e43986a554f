/* Contexts (a backend + device + queue) and buffers. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "fault.h"
#include "registry.h"

void pa_context_desc_init(pa_context_desc *d) {
  if (!d) return;
  memset(d, 0, sizeof *d);
  d->backend = PA_BACKEND_AUTO;
  d->device = -1;
}

pa_status pa_context_create(const pa_context_desc *desc, pa_context **out) {
  if (!out) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  pa_context_desc d;
  pa_context_desc_init(&d);
  if (desc) d = *desc;
  if (d.backend < PA_BACKEND_AUTO || d.backend > PA_BACKEND_OPENCL)
    return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "desc.backend=%d is not a pa_backend",
                   (int)d.backend);
  if (d.num_threads < 0)
    return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "desc.num_threads=%d must be >= 0",
                   d.num_threads);
  if (d.backend == PA_BACKEND_AUTO) d.backend = pa_backend_auto();
  const pa_backend_ops *ops = pa_backend_find(d.backend);
  if (!ops)
    return pa_fail(NULL, PA_ERR_UNSUPPORTED, "backend %s is not compiled into this polyattn",
                   pa_backend_name(d.backend));
  if (ops->abi_version != PA_BACKEND_ABI)
    return pa_fail(NULL, PA_ERR_BACKEND, "backend %s has ABI %d, core expects %d", ops->name,
                   ops->abi_version, PA_BACKEND_ABI);

  pa_context *ctx = PA_FAULT_OR(calloc(1, sizeof *ctx));
  if (!ctx) return pa_fail(NULL, PA_ERR_OUT_OF_MEMORY, "context of %zu bytes", sizeof *ctx);
  ctx->ops = ops;
  ctx->kind = d.backend;
  ctx->device = d.device;
  ctx->info.backend = d.backend;
  pa_status st = ops->create(ctx, d.device, &d, &ctx->state);
  if (st != PA_OK) {
    /* The backend's message is the useful one: in the log, and pa_last_error
     * has it (a backend that failed without pa_fail gets a generic one). */
    pa_log(1, "context on %s failed: %s", ops->name, ctx->err);
    if (!ctx->err[0]) pa_fail(NULL, st, "context on %s (device=%d) failed", ops->name, d.device);
    free(ctx);
    return st;
  }
  if (ctx->device < 0) ctx->device = 0; /* a backend that did not say: its first device */
  pa_device_props *p = &ctx->props;
  if (p->compute_units < 1) p->compute_units = 1;
  if (p->slots_per_unit < 1) p->slots_per_unit = 1;
  if (p->min_kv_per_split < 1) p->min_kv_per_split = 256;
  if (p->max_splits < 1) p->max_splits = 64;
  pa_log(2, "context: backend=%s device=%d (%s) units=%d %s", ops->name, ctx->device,
         ctx->info.name, p->compute_units, ctx->info.features);
  *out = ctx;
  return PA_OK;
}

void pa_context_destroy(pa_context *ctx) {
  if (!ctx) return;
  ctx->ops->destroy(ctx);
  free(ctx);
}

pa_backend pa_context_backend(const pa_context *ctx) { return ctx ? ctx->kind : PA_BACKEND_AUTO; }

pa_status pa_context_info(const pa_context *ctx, pa_device_info *info) {
  if (!ctx || !info) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx or info is NULL");
  *info = ctx->info;
  return PA_OK;
}

const char *pa_context_last_error(const pa_context *ctx) { return ctx ? ctx->err : ""; }

pa_status pa_context_synchronize(pa_context *ctx) {
  if (!ctx) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is NULL");
  return ctx->ops->synchronize ? ctx->ops->synchronize(ctx) : PA_OK;
}

pa_status pa_buffer_create(pa_context *ctx, size_t bytes, pa_buffer **out) {
  if (!ctx || !out) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "ctx or out is NULL");
  *out = NULL;
  if (bytes == 0) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "bytes=0: empty buffer");
  pa_buffer *b = PA_FAULT_OR(calloc(1, sizeof *b));
  if (!b) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "buffer header");
  pa_status st = ctx->ops->buf_alloc(ctx, bytes, &b->handle);
  if (st != PA_OK) {
    free(b);
    return st;
  }
  b->ctx = ctx;
  b->size = bytes;
  b->owned = true;
  *out = b;
  return PA_OK;
}

pa_status pa_buffer_wrap(pa_context *ctx, void *native, size_t bytes, pa_buffer **out) {
  if (!ctx || !out) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "ctx or out is NULL");
  *out = NULL;
  if (!native) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "native is NULL");
  if (bytes == 0) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "bytes=0: empty buffer");
  pa_buffer *b = PA_FAULT_OR(calloc(1, sizeof *b));
  if (!b) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "buffer header");
  b->handle = native;
  if (ctx->ops->buf_wrap) {
    pa_status st = ctx->ops->buf_wrap(ctx, native, bytes, &b->handle);
    if (st != PA_OK) {
      free(b);
      return st;
    }
  }
  b->ctx = ctx;
  b->size = bytes;
  b->owned = false;
  *out = b;
  return PA_OK;
}

void pa_buffer_destroy(pa_buffer *buf) {
  if (!buf) return;
  pa_context *ctx = buf->ctx;
  if (buf->owned)
    ctx->ops->buf_free(ctx, buf->handle);
  else if (ctx->ops->buf_unwrap)
    ctx->ops->buf_unwrap(ctx, buf->handle);
  free(buf);
}

size_t pa_buffer_size(const pa_buffer *buf) { return buf ? buf->size : 0; }
void *pa_buffer_native(const pa_buffer *buf) { return buf ? buf->handle : NULL; }

static pa_status check_range(const pa_buffer *buf, size_t offset, const void *p, size_t bytes,
                             const char *what) {
  if (!buf) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "%s: buf is NULL", what);
  if (!p && bytes)
    return pa_fail(buf->ctx, PA_ERR_INVALID_ARGUMENT, "%s: host pointer is NULL", what);
  if (offset > buf->size || bytes > buf->size - offset)
    return pa_fail(buf->ctx, PA_ERR_INVALID_ARGUMENT,
                   "%s: offset=%zu + bytes=%zu exceeds the buffer's size=%zu", what, offset, bytes,
                   buf->size);
  return PA_OK;
}

pa_status pa_buffer_write(pa_buffer *buf, size_t offset, const void *src, size_t bytes) {
  pa_status st = check_range(buf, offset, src, bytes, "pa_buffer_write");
  if (st != PA_OK || bytes == 0) return st;
  return buf->ctx->ops->buf_write(buf->ctx, buf->handle, offset, src, bytes);
}

pa_status pa_buffer_read(const pa_buffer *buf, size_t offset, void *dst, size_t bytes) {
  pa_status st = check_range(buf, offset, dst, bytes, "pa_buffer_read");
  if (st != PA_OK || bytes == 0) return st;
  return buf->ctx->ops->buf_read(buf->ctx, buf->handle, offset, dst, bytes);
}

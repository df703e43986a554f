/* Helpers shared by the libFuzzer harnesses of tests/fuzz: bytes -> small
 * integers, and tensors each in their own buffer sized exactly as their
 * shape, strides and offset claim, so ASan sees any access past them. */
#ifndef PA_FUZZ_UTIL_H
#define PA_FUZZ_UTIL_H
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "polyattn.h"

typedef struct bytes {
  const uint8_t *p;
  size_t n;
} bytes;

/* The next byte mod range; 0 once the bytes run out. */
static inline unsigned take(bytes *b, unsigned range) {
  if (!b->n || range <= 1) return 0;
  unsigned v = b->p[0];
  b->p++, b->n--;
  return v % range;
}

/* One CPU context for the whole run (single-threaded: deterministic). */
static inline pa_context *fuzz_ctx(void) {
  static pa_context *ctx;
  if (!ctx) {
    pa_context_desc cd = {.backend = PA_BACKEND_CPU, .device = -1, .num_threads = 1};
    if (pa_context_create(&cd, &ctx) != PA_OK) abort();
  }
  return ctx;
}

/* A dtype, mostly dt, sometimes any of the six (fp8 included) or an unknown one. */
static inline pa_dtype fuzz_dtype(bytes *b, pa_dtype dt) {
  return take(b, 16) == 0 ? (pa_dtype)take(b, 7) : dt;
}

/* Element values: zeros, raw bytes (NaN, inf, huge) or small numbers. */
static void fill(bytes *b, uint8_t *host, size_t n, pa_dtype dt) {
  unsigned mode = take(b, 3), seed = take(b, 256) * 2654435761u + 1;
  if (mode == 0) return;
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    host[i] = (uint8_t)(seed >> 16);
  }
  if (mode == 1) return;
  size_t es = pa_dtype_size(dt);
  static const uint16_t f16[8] = {0x0000, 0x3c00, 0xb800, 0x3800, 0x4000, 0xc200, 0x3400, 0x8000};
  for (size_t i = 0; es && i + es <= n; i += es) {
    float v = (float)((int)(host[i] % 17) - 8) / 4.0f;
    uint32_t u;
    memcpy(&u, &v, 4);
    uint16_t h = f16[host[i] & 7];
    uint16_t bf = (uint16_t)(u >> 16);
    int32_t iv = (int32_t)(host[i] % 8) - 1;
    switch (dt) {
    case PA_F32: memcpy(host + i, &v, 4); break;
    case PA_F16: memcpy(host + i, &h, 2); break;
    case PA_BF16: memcpy(host + i, &bf, 2); break;
    case PA_I32: memcpy(host + i, &iv, 4); break;
    default: host[i] = pa_fp8_encode(dt, v); break;
    }
  }
}

/* A tensor of ndim dims in its own buffer, shape[i] from the bytes around
 * want[i] (mostly what validation expects, sometimes off), contiguous or with
 * a padded row stride, at a small offset; dtype mostly dt. NULL buf when the
 * sizes are too large. */
static void make(pa_context *ctx, bytes *b, pa_tensor *t, pa_dtype dt, int ndim,
                 const int64_t *want) {
  memset(t, 0, sizeof *t);
  t->dtype = fuzz_dtype(b, dt);
  t->ndim = take(b, 32) == 0 ? (int)take(b, 5) : ndim;
  int64_t stride = 1;
  for (int i = t->ndim - 1; i >= 0; i--) {
    int64_t s = i < ndim ? want[i] : 1;
    if (take(b, 24) == 0) s += (int64_t)take(b, 3) - 1;
    t->shape[i] = s < 0 ? 0 : s;
    t->stride[i] = stride + (i == t->ndim - 1 ? 0 : take(b, 4) == 0 ? take(b, 3) : 0);
    stride = t->stride[i] * (t->shape[i] > 0 ? t->shape[i] : 1);
  }
  size_t es = pa_dtype_size(t->dtype) ? pa_dtype_size(t->dtype) : 4, last = 0;
  for (int i = 0; i < t->ndim; i++)
    if (t->shape[i] > 0) last += (size_t)(t->shape[i] - 1) * (size_t)t->stride[i];
  t->offset = es * take(b, 3);
  size_t need = t->offset + (last + 1) * es;
  pa_buffer *buf = NULL;
  if (need < (64u << 20) && pa_buffer_create(ctx, need, &buf) == PA_OK) {
    uint8_t *host = calloc(1, need);
    if (host) {
      fill(b, host + t->offset, need - t->offset, t->dtype);
      pa_buffer_write(buf, 0, host, need);
      free(host);
    }
  }
  t->buf = buf;
}

/* Swaps dims i and j of a view (e.g. HND pages seen as NHD, a transposed weight). */
static inline void swap_dims(pa_tensor *t, int i, int j) {
  if (i >= t->ndim || j >= t->ndim) return;
  int64_t s = t->shape[i], st = t->stride[i];
  t->shape[i] = t->shape[j], t->stride[i] = t->stride[j];
  t->shape[j] = s, t->stride[j] = st;
}

/* Writes n int32 values into t when it is the contiguous i32 [n] (or [r, n/r])
 * view the caller asked for; otherwise its zeros stay. */
static inline void put_i32(pa_tensor *t, const int32_t *v, int64_t n) {
  if (!t->buf || t->dtype != PA_I32 || t->ndim < 1 || n <= 0) return;
  int64_t count = 1;
  for (int i = 0; i < t->ndim; i++) count *= t->shape[i];
  if (count != n || t->stride[t->ndim - 1] != 1) return;
  for (int i = t->ndim - 2; i >= 0; i--)
    if (t->stride[i] != t->shape[i + 1] * t->stride[i + 1]) return;
  pa_buffer_write(t->buf, t->offset, v, (size_t)n * sizeof *v);
}

static inline void destroy_all(pa_tensor *const *ts, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (ts[i]) pa_buffer_destroy(ts[i]->buf);
}
#endif

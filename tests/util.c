#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- random numbers ---- */

tu_rng tu_rng_seed(uint64_t seed) {
  tu_rng r = {seed ^ 0x9E3779B97F4A7C15ull};
  return r;
}

uint64_t tu_rng_next(tu_rng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double tu_rng_uniform(tu_rng *r, double lo, double hi) {
  double u = (double)(tu_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
  return lo + (hi - lo) * u;
}

double tu_rng_nonzero(tu_rng *r, double a) {
  double v = tu_rng_uniform(r, -a, a);
  if (fabs(v) < 1e-3 * a) v = v < 0 ? -1e-3 * a - fabs(v) : 1e-3 * a + fabs(v);
  return v;
}

int tu_rng_int(tu_rng *r, int n) { return (int)(tu_rng_next(r) % (uint64_t)n); }

uint64_t tu_hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* ---- dtypes ---- */

uint16_t tu_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  int exp = (int)((x >> 23) & 0xff);
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0));
  int e = exp - 127 + 15;
  if (e >= 31) return (uint16_t)(sign | 0x7c00u);
  if (e <= 0) {
    /* half subnormal: value = h * 2^-24, so h = mant24 >> (14 - e) */
    if (e < -10) return (uint16_t)sign;
    mant |= 0x800000u;
    int shift = 14 - e;
    uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) h++;
    return (uint16_t)(sign | h);
  }
  uint32_t h = ((uint32_t)e << 10) | (mant >> 13), rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry into exp is right */
  return (uint16_t)(sign | h);
}

float tu_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  int exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  float f;
  if (exp == 0) {
    f = ldexpf((float)mant, -24);
    return sign ? -f : f;
  }
  uint32_t x = exp == 31 ? (sign | 0x7f800000u | (mant << 13))
                         : (sign | ((uint32_t)(exp + 112) << 23) | (mant << 13));
  memcpy(&f, &x, 4);
  return f;
}

uint16_t tu_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet NaN */
  x += 0x7fffu + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

float tu_bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

/* fp8 from the formats' definitions, in double (no bit tricks, unlike the
 * library): e4m3 bias 7, 3 mantissa bits, NaN at S.1111.111, no inf; e5m2
 * bias 15, 2 mantissa bits, exponent 31 = inf / NaN. */
double tu_fp8_decode(pa_dtype t, uint8_t c) {
  const int e4 = t == PA_FP8_E4M3, mbits = e4 ? 3 : 2, bias = e4 ? 7 : 15;
  const int e = (c & 0x7f) >> mbits, m = c & ((1 << mbits) - 1);
  const double sign = (c & 0x80) ? -1.0 : 1.0;
  if (e4 && (c & 0x7f) == 0x7f) return sign * NAN;
  if (!e4 && e == 31) return m ? sign * NAN : sign * INFINITY;
  if (e == 0) return sign * ldexp((double)m, 1 - bias - mbits);
  return sign * ldexp(1.0 + (double)m / (1 << mbits), e - bias);
}

/* Nearest code by a search over the (monotone) positive codes, ties to the
 * even code; beyond the largest finite code (and inf) saturate; NaN 0x7f. */
uint8_t tu_fp8_encode(pa_dtype t, float x) {
  const int maxc = t == PA_FP8_E4M3 ? 0x7e : 0x7b;
  if (isnan(x)) return 0x7f;
  const uint8_t sign = signbit(x) ? 0x80 : 0;
  const double a = fabs((double)x);
  int lo = 0, hi = maxc; /* largest code with value <= a */
  if (a >= tu_fp8_decode(t, (uint8_t)maxc)) return (uint8_t)(sign | maxc);
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (tu_fp8_decode(t, (uint8_t)mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  const double below = tu_fp8_decode(t, (uint8_t)lo), above = tu_fp8_decode(t, (uint8_t)(lo + 1));
  int c = lo;
  if (a - below > above - a || (a - below == above - a && (lo & 1))) c = lo + 1;
  return (uint8_t)(sign | c);
}

size_t tu_dtype_size(pa_dtype t) {
  switch (t) {
  case PA_F32: return 4;
  case PA_F16: return 2;
  case PA_BF16: return 2;
  case PA_I32: return 4;
  case PA_FP8_E4M3: return 1;
  case PA_FP8_E5M2: return 1;
  }
  return 0;
}

void tu_store(void *p, pa_dtype t, double v) {
  switch (t) {
  case PA_F32: {
    float f = (float)v;
    memcpy(p, &f, 4);
    break;
  }
  case PA_F16: {
    uint16_t h = tu_f32_to_f16((float)v);
    memcpy(p, &h, 2);
    break;
  }
  case PA_BF16: {
    uint16_t h = tu_f32_to_bf16((float)v);
    memcpy(p, &h, 2);
    break;
  }
  case PA_I32: {
    int32_t i = (int32_t)v;
    memcpy(p, &i, 4);
    break;
  }
  case PA_FP8_E4M3:
  case PA_FP8_E5M2: *(uint8_t *)p = tu_fp8_encode(t, (float)v); break;
  }
}

double tu_load(const void *p, pa_dtype t) {
  switch (t) {
  case PA_F32: {
    float f;
    memcpy(&f, p, 4);
    return f;
  }
  case PA_F16: {
    uint16_t h;
    memcpy(&h, p, 2);
    return tu_f16_to_f32(h);
  }
  case PA_BF16: {
    uint16_t h;
    memcpy(&h, p, 2);
    return tu_bf16_to_f32(h);
  }
  case PA_I32: {
    int32_t i;
    memcpy(&i, p, 4);
    return i;
  }
  case PA_FP8_E4M3:
  case PA_FP8_E5M2: return tu_fp8_decode(t, *(const uint8_t *)p);
  }
  return NAN;
}

double tu_round(pa_dtype t, double v) {
  unsigned char b[4];
  tu_store(b, t, v);
  return tu_load(b, t);
}

/* ---- tensors ---- */

pa_status tu_tensor_alloc(pa_context *ctx, tu_tensor *x, pa_dtype dtype, int ndim,
                          const int64_t *shape, const int64_t *stride) {
  memset(x, 0, sizeof *x);
  x->t.dtype = dtype;
  x->t.ndim = ndim;
  int64_t last = 0, empty = 0, contig = 1;
  for (int i = ndim - 1; i >= 0; i--) {
    x->t.shape[i] = shape[i];
    x->t.stride[i] = stride ? stride[i] : contig;
    contig *= shape[i] > 0 ? shape[i] : 1;
    if (shape[i] == 0) empty = 1;
    if (shape[i] > 0) last += (shape[i] - 1) * x->t.stride[i];
  }
  size_t es = tu_dtype_size(dtype);
  x->extent_bytes = empty ? 0 : (size_t)(last + 1) * es;
  x->t.offset = TU_GUARD_BYTES;
  x->bytes = x->extent_bytes + 2 * TU_GUARD_BYTES;
  x->host = malloc(x->bytes);
  x->back = malloc(x->bytes);
  if (!x->host || !x->back) return PA_ERR_OUT_OF_MEMORY;
  memset(x->host, TU_GUARD_BYTE, x->bytes);
  memset(x->back, 0, x->bytes);
  pa_status s = pa_buffer_create(ctx, x->bytes, &x->buf);
  x->t.buf = x->buf;
  return s;
}

void tu_tensor_view(const tu_tensor *base, pa_tensor *out, size_t byte_offset, int ndim,
                    const int64_t *shape, const int64_t *stride) {
  memset(out, 0, sizeof *out);
  out->buf = base->buf;
  out->offset = base->t.offset + byte_offset;
  out->dtype = base->t.dtype;
  out->ndim = ndim;
  for (int i = 0; i < ndim; i++) {
    out->shape[i] = shape[i];
    out->stride[i] = stride[i];
  }
}

void tu_tensor_free(tu_tensor *x) {
  pa_buffer_destroy(x->buf);
  free(x->host);
  free(x->back);
  memset(x, 0, sizeof *x);
}

void tu_tensor_fill_random(tu_tensor *x, tu_rng *r, double a) {
  size_t es = tu_dtype_size(x->t.dtype);
  for (size_t o = 0; o < x->extent_bytes; o += es)
    tu_store(x->host + x->t.offset + o, x->t.dtype, tu_rng_nonzero(r, a));
}

void tu_tensor_poison(tu_tensor *x) {
  memset(x->host + x->t.offset, TU_POISON_BYTE, x->extent_bytes);
}

pa_status tu_tensor_upload(tu_tensor *x) { return pa_buffer_write(x->buf, 0, x->host, x->bytes); }

pa_status tu_tensor_download(tu_tensor *x) {
  return pa_buffer_read(x->buf, 0, x->back, x->bytes);
}

double tu_get(const tu_tensor *x, int64_t e) {
  return tu_load(x->host + x->t.offset + (size_t)e * tu_dtype_size(x->t.dtype), x->t.dtype);
}

double tu_get_back(const tu_tensor *x, int64_t e) {
  return tu_load(x->back + x->t.offset + (size_t)e * tu_dtype_size(x->t.dtype), x->t.dtype);
}

void tu_set(tu_tensor *x, int64_t e, double v) {
  tu_store(x->host + x->t.offset + (size_t)e * tu_dtype_size(x->t.dtype), x->t.dtype, v);
}

int32_t tu_get_i32(const tu_tensor *x, int64_t e) {
  int32_t v;
  memcpy(&v, x->host + x->t.offset + (size_t)e * 4, 4);
  return v;
}

void tu_set_i32(tu_tensor *x, int64_t e, int32_t v) {
  memcpy(x->host + x->t.offset + (size_t)e * 4, &v, 4);
}

bool tu_guards_intact(const tu_tensor *x) {
  for (size_t i = 0; i < x->t.offset; i++)
    if (x->back[i] != TU_GUARD_BYTE) return false;
  for (size_t i = x->t.offset + x->extent_bytes; i < x->bytes; i++)
    if (x->back[i] != TU_GUARD_BYTE) return false;
  return true;
}

bool tu_unchanged(const tu_tensor *x) { return memcmp(x->host, x->back, x->bytes) == 0; }

bool tu_is_poison(const tu_tensor *x, int64_t e) {
  size_t es = tu_dtype_size(x->t.dtype);
  const unsigned char *p = x->back + x->t.offset + (size_t)e * es;
  for (size_t i = 0; i < es; i++)
    if (p[i] != TU_POISON_BYTE) return false;
  return true;
}

/* ---- metrics ---- */

void tu_err_add(tu_err *e, double got, double want, int64_t index) {
  e->count++;
  if (!isfinite(got)) {
    e->nonfinite++;
    if (e->nonfinite == 1) e->worst = index;
    e->max_abs = INFINITY;
    return;
  }
  double d = got - want;
  e->sum_d2 += d * d;
  e->sum_r2 += want * want;
  if (fabs(d) > e->max_abs) {
    e->max_abs = fabs(d);
    e->worst = index;
  }
}

double tu_err_rel_l2(const tu_err *e) {
  if (e->nonfinite) return INFINITY;
  return e->sum_r2 > 0 ? sqrt(e->sum_d2 / e->sum_r2) : sqrt(e->sum_d2);
}

tu_tol tu_tolerance(pa_dtype t) {
  /* rel-L2 from DESIGN.md. Outputs are convex combinations of inputs in
   * [-1, 1], so max-abs is an absolute bound; LSE error is relative to
   * max(1, |lse|). f32 rel-L2 is 1e-5 (see cross_backend.c for the cases
   * whose long sums need more). */
  switch (t) {
  case PA_F16: return (tu_tol){2e-3, 1e-2, 2e-3};
  case PA_BF16: return (tu_tol){1e-2, 5e-2, 1e-2};
  default: return (tu_tol){1e-5, 1e-4, 1e-4};
  }
}

/* ---- targets ---- */

static const tu_target targets[] = {
    {"cpu_scalar", PA_BACKEND_CPU, "scalar"}, {"cpu_avx2", PA_BACKEND_CPU, "avx2"},
    {"cpu_avx512", PA_BACKEND_CPU, "avx512"}, {"cpu_neon", PA_BACKEND_CPU, "neon"},
    {"cuda", PA_BACKEND_CUDA, NULL},          {"opencl", PA_BACKEND_OPENCL, NULL},
    {"cpu_avx512bf16", PA_BACKEND_CPU, "avx512bf16"},
};

const tu_target *tu_target_find(const char *name) {
  for (int i = 0; i < TU_LEN(targets); i++)
    if (strcmp(targets[i].name, name) == 0) return &targets[i];
  return NULL;
}

static const char *cache_dir(void) {
  const char *d = getenv("PA_TEST_CACHE_DIR");
  if (d && *d && mkdir(d, 0755) != 0 && errno != EEXIST) return NULL;
  return d && *d ? d : NULL;
}

pa_context *tu_open_or_skip(const char *target_name) {
  const tu_target *t = tu_target_find(target_name);
  cr_assert(t != NULL, "unknown target %s", target_name);
  if (!pa_backend_compiled(t->backend))
    cr_skip_test("%s: backend %s not compiled in", t->name, pa_backend_name(t->backend));
  int n = 0;
  pa_status s = pa_device_count(t->backend, &n);
  if (s != PA_OK || n == 0)
    cr_skip_test("%s: no %s device (pa_device_count: %s, count %d)", t->name,
                 pa_backend_name(t->backend), pa_status_str(s), n);
  if (t->isa) setenv("PA_CPU_ISA", t->isa, 1);
  pa_context_desc d = {.backend = t->backend, .device = -1, .cache_dir = cache_dir()};
  pa_context *ctx = NULL;
  s = pa_context_create(&d, &ctx);
  if (s == PA_ERR_UNSUPPORTED && t->isa)
    cr_skip_test("%s: ISA %s not available on this host", t->name, t->isa);
  if (s == PA_ERR_NO_DEVICE) cr_skip_test("%s: no device (context creation)", t->name);
  cr_assert(s == PA_OK && ctx, "%s: pa_context_create failed: %s", t->name, pa_status_str(s));
  pa_device_info info;
  if (pa_context_info(ctx, &info) == PA_OK)
    cr_log_info("%s: device \"%s\", %d units, features \"%s\"", t->name, info.name,
                info.compute_units, info.features);
  return ctx;
}

pa_context *tu_open_cpu(void) {
  unsetenv("PA_CPU_ISA");
  pa_context_desc d = {.backend = PA_BACKEND_CPU, .device = -1};
  pa_context *ctx = NULL;
  pa_status s = pa_context_create(&d, &ctx);
  cr_assert(s == PA_OK && ctx, "CPU pa_context_create failed: %s", pa_status_str(s));
  return ctx;
}

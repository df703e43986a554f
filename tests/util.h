/* Test utilities: seeded inputs, our own f16/bf16 conversion, tensors with a
 * host image of their whole buffer (guard bands + poisoned outputs), error
 * metrics, and opening a (backend, isa) target or skipping visibly. */
#ifndef PA_TEST_UTIL_H
#define PA_TEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "polyattn.h"

#define TU_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* ---- random numbers (splitmix64): fixed seeds, reproducible everywhere ---- */
typedef struct tu_rng {
  uint64_t s;
} tu_rng;
tu_rng tu_rng_seed(uint64_t seed);
uint64_t tu_rng_next(tu_rng *r);
double tu_rng_uniform(tu_rng *r, double lo, double hi); /* [lo, hi) */
/* Uniform in [-a, a] but never within 1e-3 * a of zero: a zero input hides
 * a missing term. */
double tu_rng_nonzero(tu_rng *r, double a);
int tu_rng_int(tu_rng *r, int n); /* [0, n) */
uint64_t tu_hash_str(const char *s);

/* ---- dtype conversion, written here (not the library's) ---- */
uint16_t tu_f32_to_f16(float f); /* round to nearest even, with subnormals */
float tu_f16_to_f32(uint16_t h);
uint16_t tu_f32_to_bf16(float f); /* round to nearest even */
float tu_bf16_to_f32(uint16_t h);
size_t tu_dtype_size(pa_dtype t);
/* fp8 (e4m3, e5m2) from the formats' definitions: exact decode; encode to
 * nearest, ties to even, saturating, NaN -> 0x7f (polyattn.h's rules). */
double tu_fp8_decode(pa_dtype t, uint8_t code);
uint8_t tu_fp8_encode(pa_dtype t, float x);
/* Rounds v to what dtype t can hold (what the device will see). */
double tu_round(pa_dtype t, double v);
void tu_store(void *p, pa_dtype t, double v);
double tu_load(const void *p, pa_dtype t);

/* ---- tensors with guard bands ----
 * The buffer is [guard | tensor extent | guard]; the tensor starts at byte
 * offset `guard`. host is our image of the whole buffer (what we uploaded);
 * back is what we read back. Guard bytes hold TU_GUARD_BYTE; poisoned output
 * elements hold TU_POISON_BYTE in every byte (a NaN in f32, f16 and bf16). */
#define TU_GUARD_BYTES 256
#define TU_GUARD_BYTE 0xA5
#define TU_POISON_BYTE 0xFF

typedef struct tu_tensor {
  pa_tensor t;
  pa_buffer *buf;
  size_t bytes;        /* whole buffer */
  size_t extent_bytes; /* from t.offset to one past the last element */
  unsigned char *host;
  unsigned char *back;
} tu_tensor;

/* stride NULL: contiguous. Returns PA_OK or the failing status. */
pa_status tu_tensor_alloc(pa_context *ctx, tu_tensor *x, pa_dtype dtype, int ndim,
                          const int64_t *shape, const int64_t *stride);
/* A second view into the same buffer (no ownership). */
void tu_tensor_view(const tu_tensor *base, pa_tensor *out, size_t byte_offset, int ndim,
                    const int64_t *shape, const int64_t *stride);
void tu_tensor_free(tu_tensor *x);
/* Every element of the extent (gaps of strided views too) set to a random
 * non-zero value of magnitude <= a, rounded to the dtype. */
void tu_tensor_fill_random(tu_tensor *x, tu_rng *r, double a);
void tu_tensor_poison(tu_tensor *x); /* extent = poison bytes */
pa_status tu_tensor_upload(tu_tensor *x);
pa_status tu_tensor_download(tu_tensor *x);
/* Element at linear element offset e (relative to the tensor start). */
double tu_get(const tu_tensor *x, int64_t e);      /* from host */
double tu_get_back(const tu_tensor *x, int64_t e); /* from back */
void tu_set(tu_tensor *x, int64_t e, double v);
int32_t tu_get_i32(const tu_tensor *x, int64_t e);
void tu_set_i32(tu_tensor *x, int64_t e, int32_t v);
/* Guard bands intact in back (after a download). */
bool tu_guards_intact(const tu_tensor *x);
/* Every byte of the extent in back still equals host (nothing written). */
bool tu_unchanged(const tu_tensor *x);
/* Element e of back still holds the poison pattern. */
bool tu_is_poison(const tu_tensor *x, int64_t e);

/* ---- error metrics ---- */
typedef struct tu_err {
  double sum_d2, sum_r2; /* squared difference, squared reference */
  double max_abs;
  int64_t count, nonfinite; /* nonfinite: NaN/inf where the reference is finite */
  int64_t worst;            /* index of the max-abs element */
} tu_err;
void tu_err_add(tu_err *e, double got, double want, int64_t index);
/* ||d|| / ||ref||; when ||ref|| == 0, ||d|| itself. */
double tu_err_rel_l2(const tu_err *e);

typedef struct tu_tol {
  double rel_l2, max_abs, lse_abs;
} tu_tol;
/* DESIGN.md tolerances for output dtype t. */
tu_tol tu_tolerance(pa_dtype t);

/* ---- targets: every backend and CPU ISA the suite runs on ---- */
typedef struct tu_target {
  const char *name; /* "cpu_avx2", "cuda", ... (also the Criterion suite name) */
  pa_backend backend;
  const char *isa; /* PA_CPU_ISA value for the CPU, else NULL */
} tu_target;
const tu_target *tu_target_find(const char *name);
/* Opens a context on the target or ends the test with cr_skip_test (backend
 * not compiled, no device, ISA not on this host); any other failure fails the
 * test. Sets PA_CPU_ISA before creation (each test runs in its own process). */
pa_context *tu_open_or_skip(const char *target_name);
/* A CPU context on the host's default ISA (for validation tests). */
pa_context *tu_open_cpu(void);

#endif

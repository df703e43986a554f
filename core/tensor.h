/* Tensor checks shared by every validator. */
#ifndef PA_CORE_TENSOR_H
#define PA_CORE_TENSOR_H
#include "backend.h"

#define PA_ANY_FLOAT ((pa_dtype)-1) /* f32, f16 or bf16 */
#define PA_ANY (-1)                 /* a shape entry that is not checked */

/* Checks that `name` is a usable view: a buffer of ctx, the dtype (or any
 * float), ndim, each shape[i] == want[i] where want[i] != PA_ANY, strides >= 0,
 * the last dimension contiguous, the offset aligned to the element size, and
 * every element inside the buffer (all sizes in checked arithmetic). */
pa_status pa_tensor_check(pa_context *ctx, const char *name, const pa_tensor *t, pa_dtype dtype,
                          int ndim, const int64_t *want);

/* Like pa_tensor_check, but `name` may have either ndim_a or ndim_b dims,
 * checked against want_a / want_b. */
pa_status pa_tensor_check2(pa_context *ctx, const char *name, const pa_tensor *t, pa_dtype dtype,
                           int ndim_a, const int64_t *want_a, int ndim_b, const int64_t *want_b);

/* Whether two views may overlap in memory (same buffer and intersecting byte
 * ranges); used to refuse outputs that alias inputs. */
bool pa_tensor_overlap(const pa_tensor *a, const pa_tensor *b);

/* An output must give every element its own address (no stride 0 over a
 * dimension of size > 1, no interleaved dimensions), or parallel writes race. */
pa_status pa_output_check(pa_context *ctx, const char *name, const pa_tensor *t);

/* A tensor with the name messages use for it. */
typedef struct pa_named {
  const pa_tensor *t;
  const char *name;
} pa_named;

/* Refuses outputs that overlap an input or each other. Entries whose tensor
 * (or its buffer) is NULL are unused and skipped. */
pa_status pa_check_apart(pa_context *ctx, const pa_named *outs, int n_outs, const pa_named *ins,
                         int n_ins);

/* fp8 dequantisation scales: for an fp8 kv_dtype, `name` must be an f32
 * [1] or [hkv] view; for any other dtype it must be absent (buf NULL). */
pa_status pa_check_kv_scale(pa_context *ctx, const char *name, const pa_tensor *t,
                            pa_dtype kv_dtype, int hkv);

/* Byte range [*lo, *hi) a view touches; false for an empty view. */
bool pa_tensor_span(const pa_tensor *t, size_t *lo, size_t *hi);
#endif

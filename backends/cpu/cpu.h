/* Shared internals of the CPU backend (not seen outside backends/cpu). */
#ifndef PA_CPU_H
#define PA_CPU_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "isa.h"
#include "kernels.h"
#include "pool.h"

/* Keys per KV block: one block's K (or V) rows stay in L1 for d <= 128 f32
 * while every row group of the q tile passes over them. Split boundaries
 * are aligned to it (kv_align), so a block never straddles two splits. */
#define PA_CPU_BLOCK_KV 64
/* Packed query rows per work item: the K/V block is reused by this many rows. */
#define PA_CPU_Q_TILE 64

/* Units the split policy sees (cpu.c): results are bitwise the same for
 * every thread count up to this (above it, within each power of two). */
#define PA_CPU_SPLIT_UNITS 16

/* Items of at most this many packed rows (decode) run in groups of up to
 * PA_CPU_GROUP_MAX KV heads in lockstep (attention.c, run_group). */
#define PA_CPU_GROUP_ROWS 16
#define PA_CPU_GROUP_MAX 16

/* A plan's head groups (plan->backend_data): group i is the work items
 * items[first[i] .. first[i] + size[i]), in the order they run (by
 * (request, KV head) run, heaviest first; attention.c, by_rank). */
typedef struct pa_cpu_groups {
  int count, max_heads;
  int32_t *first, *size, *items;
} pa_cpu_groups;
/* Builds them at plan_ready for attention with Hkv > 1 (groups of one item
 * where nothing groups); leaves backend_data NULL otherwise. */
pa_status pa_cpu_plan_groups(pa_context *ctx, pa_plan *plan);

typedef struct pa_cpu_state {
  pa_pool *pool;
  pa_cpu_isa isa;
  const pa_cpu_kernels *kern;
  int threads;
  size_t scratch_bytes; /* per thread, multiple of 64 */
  unsigned char *scratch;
} pa_cpu_state;

static inline pa_cpu_state *pa_cpu(const pa_context *ctx) { return (pa_cpu_state *)ctx->state; }

/* Grows the per-thread scratch to at least bytes (called at plan time). */
pa_status pa_cpu_reserve(pa_context *ctx, size_t bytes);
static inline void *pa_cpu_scratch(const pa_cpu_state *st, int tid) {
  return st->scratch + (size_t)tid * st->scratch_bytes;
}
/* Scratch one thread needs for an attention/MLA plan. */
size_t pa_cpu_attention_scratch(const pa_plan *plan);

static inline size_t pa_cpu_esize(pa_dtype t) {
  return t == PA_F32 || t == PA_I32 ? 4 : pa_dtype_is_fp8(t) ? 1 : 2;
}

/* The merge rule, written once: states k < n come from get(); extra_lse is
 * one more state with O = 0 (a sink logit), -inf for none. Writes D values
 * of dtype out_t to out and the merged LSE to *lse_out (if non-NULL). */
typedef void (*pa_cpu_state_fn)(const void *ctx, int k, const void **o, pa_dtype *t, float *lse);
void pa_cpu_merge_rule(const pa_cpu_kernels *kern, int n, pa_cpu_state_fn get, const void *gctx,
                       float extra_lse, int64_t D, void *out, pa_dtype out_t, float *lse_out);

/* The shared driver of attention and MLA: one or two Q/K segments (MLA:
 * nope and pe parts), V, outputs. */
typedef struct pa_cpu_att_io {
  int nseg;
  const pa_tensor *q[2], *k[2], *v, *out, *lse;
  const pa_tensor *block_table, *sinks, *alibi, *mask; /* NULL when absent */
  const pa_tensor *k_scale, *v_scale; /* fp8 K/V only, else NULL */
} pa_cpu_att_io;
pa_status pa_cpu_run_attention(pa_context *ctx, const pa_plan *plan, const pa_cpu_att_io *io,
                               pa_buffer *ws);

pa_status pa_cpu_attention(pa_context *ctx, const pa_plan *plan, const pa_attention_args *args,
                           pa_buffer *ws);
pa_status pa_cpu_mla(pa_context *ctx, const pa_plan *plan, const pa_mla_args *args, pa_buffer *ws);
pa_status pa_cpu_merge(pa_context *ctx, const pa_merge_launch *m);
pa_status pa_cpu_append(pa_context *ctx, const pa_append_launch *L);
pa_status pa_cpu_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w, pa_tensor *y);

#endif

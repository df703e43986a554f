/* The one meeting point of core and backends: the vtable every backend fills
 * in, and the plan it executes. Core never includes a backend header; a
 * backend includes only this file (and polyattn.h through it). */
#ifndef PA_BACKEND_H
#define PA_BACKEND_H

#include <stdarg.h>
#include <stdbool.h>

#include "config.h"
#include "polyattn.h"

#define PA_BACKEND_ABI 1
#define PA_ERR_MSG_LEN 4096

/* What the planner needs to know of a device. */
typedef struct pa_device_props {
  int compute_units;    /* SMs, CUs, CPU threads */
  int slots_per_unit;   /* work items one unit runs at once (GPU occupancy; CPU 1) */
  int min_kv_per_split; /* fewer keys per split than this is not worth a combine */
  int max_splits;       /* cap on KV splits per request */
  int host_memory;      /* buffers are host memory: core can check indices in them */
} pa_device_props;

struct pa_context {
  const struct pa_backend_ops *ops;
  void *state; /* the backend's own */
  pa_backend kind;
  int device;
  pa_device_info info;
  pa_device_props props;
  pa_config cfg; /* read once at creation, before the backend's create */
  char err[PA_ERR_MSG_LEN];
};

struct pa_buffer {
  pa_context *ctx;
  void *handle; /* host pointer (CPU), CUdeviceptr (CUDA), cl_mem (OpenCL) */
  size_t size;
  bool owned;
};

/* Sets ctx's last-error message (printf-style) and returns s: one-line checks,
 * `return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "q.shape[2]=%lld ...", ...)`.
 * ctx may be NULL (the message then goes to the log only). */
pa_status pa_fail(pa_context *ctx, pa_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* A note through the user's log callback (or stderr when PA_LOG is set). */
void pa_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ------------------------------------------------------------------------ */
/* The plan: all host decisions for one batch, executed by a backend.         */
/*
 * GQA packing: the g = Hq / Hkv query heads that share KV head hk are rows of
 * one tile. Packed row r of (request b, KV head hk) is query token i = r / g
 * of b and query head h = hk * g + r % g. MLA is the case Hkv = 1, g = H.
 *
 * Splits: request b's keys [0, len_k) are cut into num_splits chunks of
 * kv_chunk keys. With one split, a work item writes out/lse directly. With
 * more, split s of (token i, head h) writes its partial state to workspace row
 *   p = part_row + (s * len_q + i) * Hq + h
 * (O: f32 [Dv] at ws_o + p * Dv; LSE: f32 at ws_lse + p), and the combine
 * step merges the num_splits partial rows of each (token i, head h) of each
 * request listed in the combine list.
 */

/* One request as kernels see it; int32 so the array uploads as is. */
typedef struct pa_req {
  int32_t q_start;    /* first token in ragged q/out/lse (ignored for 4-d views) */
  int32_t k_start;    /* first key in ragged contiguous k/v (ignored for 4-d, paged) */
  int32_t len_q, len_k;
  int32_t num_splits; /* >= 1 */
  int32_t kv_chunk;   /* keys per split */
  int32_t part_row;   /* first partial row in the workspace; -1 if num_splits == 1 */
  int32_t reserved;
} pa_req;

/* One unit of kernel work: packed rows [row0, row0 + rows) of (b, hk) against
 * keys [kv_begin, kv_end), already clipped to what the mask can make visible
 * (the kernel still applies the mask per element; the range may be empty,
 * then the item writes O = 0, LSE = -inf). The list is in run order
 * (core/schedule.c). group: the first item of a head group holds the
 * group's item count (1 where nothing groups), the group's other items 0. */
typedef struct pa_work {
  int32_t b, hk, row0, rows, split, kv_begin, kv_end, group;
} pa_work;

/* One token of a split request whose partials must be merged (all Hq heads). */
typedef struct pa_combine {
  int32_t b, i;
} pa_combine;

typedef enum pa_op { PA_OP_ATTENTION = 0, PA_OP_MLA = 1 } pa_op;

/* The kernel a backend's select picked for a plan, once, fallbacks included;
 * the launchers run exactly this. The fields above `variant` are what core
 * needs to build the schedule. */
typedef struct pa_kernel_choice {
  int q_tile_rows;   /* packed rows per work item */
  int kv_align;      /* split boundaries are multiples of this */
  const char *name;  /* the kernel function that runs, for PA_LOG and the bench;
                      * valid while the plan lives (may point into variant) */
  int kv_heads_per_item; /* KV heads the backend runs together as one unit of
                          * parallelism (0 or 1: one); the split policy counts
                          * natural parallelism in such units */
  int item_overhead;     /* run order: a work item's fixed cost, in keys */
  int head_group_rows;   /* > 0: items of at most this many rows run in groups of
                          * up to head_group_max KV heads (the list in head
                          * groups, core/schedule.c); 0: no grouping */
  int head_group_max;
  int slots_per_unit;    /* > 0: work items per compute unit in a wave, for the
                          * split rule, in place of the context's (a memory-bound
                          * kernel keeps several items per unit busy) */
  int balance_splits;    /* 1: auto splits cut the batch's keys into one chunk
                          * for all requests when that balances the units
                          * better (core/split.h, pa_balance_chunk) */
  int split_overhead;    /* its cost of a split item (partials, combine), keys */
  void *variant;         /* the backend's typed variant (malloc'd by select, or
                          * NULL); core frees it with free() with the plan */
} pa_kernel_choice;

/* What plan_ready hands back: the backend's per-plan state (device
 * schedules, counters, built kernels), freed by free_fn with the plan. */
typedef struct pa_plan_state {
  void *data;
  void (*free_fn)(void *data);
} pa_plan_state;

struct pa_plan {
  pa_context *ctx;
  pa_op op;
  pa_attention_desc desc; /* for MLA: Hq = H, Hkv = 1, Dqk = Dc + Dr, Dv = Dc */
  pa_mla_desc mla;        /* valid when op == PA_OP_MLA */
  float scale;            /* resolved (never 0) */
  int group;              /* g = Hq / Hkv */
  int batch_size;
  bool ragged_q_host;     /* batch gave cu_seqlens_q */
  int32_t max_len_q, max_len_k;
  int64_t total_q;        /* sum of len_q; for padded batches the sum of used lengths */
  int64_t min_q_tokens;   /* q/out must hold at least this many tokens (ragged) */
  int64_t min_k_tokens;   /* same for ragged contiguous k/v */

  pa_req *reqs;           /* [batch_size] host copies of the schedule */
  pa_work *work;
  int num_work;
  pa_combine *combine;
  int num_combine;

  int64_t part_rows;      /* partial rows in the workspace */
  size_t ws_o_offset, ws_lse_offset, ws_size; /* bytes */
  pa_buffer *own_ws;      /* used when run gets workspace == NULL */

  pa_kernel_choice choice;
  pa_buffer *schedule;    /* device copy: reqs | work | combine */
  size_t sched_req_off, sched_work_off, sched_combine_off; /* bytes */

  void *backend_data;     /* the backend's per-plan state, freed below */
  void (*backend_free)(void *backend_data);
};

/* Merge states, as core hands it over after validation. */
typedef enum pa_merge_mode { PA_MERGE_PAIR = 0, PA_MERGE_FIXED = 1, PA_MERGE_VARLEN = 2 } pa_merge_mode;
typedef struct pa_merge_launch {
  pa_merge_mode mode;
  int64_t rows, heads, dim; /* output [rows, heads, dim] */
  int64_t states;           /* PA_MERGE_FIXED: N */
  const pa_tensor *a, *lse_a, *b, *lse_b; /* pair */
  const pa_tensor *v, *s, *indptr;        /* fixed [T, N, H, D] / varlen [P, H, D] */
  pa_tensor *out, *lse_out;               /* lse_out->buf may be NULL */
} pa_merge_launch;

/* A paged-cache append as core hands it over after validation (core/append.c):
 * two streams (K and V, or ckv and kpe) share one slot map. Token t of a
 * stream goes to cache element page * c_page + off * c_slot + h * c_h + x for
 * slot = slots[t * slot_s] >= 0, page = slot / page_size, off = slot %
 * page_size; src element t * src_t + h * src_h + x. Strides in elements of
 * the tensor's own dtype; MLA streams have heads = 1. scale is NULL unless
 * the cache is fp8 (then scale_h is 0 for one scale, 1 for one per head). */
typedef struct pa_append_stream {
  const pa_tensor *src, *cache, *scale;
  int64_t dim, src_t, src_h, c_page, c_slot, c_h, scale_h;
} pa_append_stream;
typedef struct pa_append_launch {
  pa_append_stream s[2];
  const pa_tensor *slots;
  int64_t tokens, heads, page_size, num_pages, slot_s;
} pa_append_launch;

typedef struct pa_backend_ops {
  int abi_version; /* PA_BACKEND_ABI */
  pa_backend kind;
  const char *name;

  pa_status (*device_count)(int *count);
  pa_status (*device_info)(int device, pa_device_info *info);
  /* Creates the backend state for device (native_queue borrowed when
   * non-NULL); fills ctx->info and ctx->props. */
  pa_status (*create)(pa_context *ctx, int device, const pa_context_desc *desc, void **state);
  void (*destroy)(pa_context *ctx);

  pa_status (*buf_alloc)(pa_context *ctx, size_t bytes, void **handle);
  void (*buf_free)(pa_context *ctx, void *handle);
  /* NULL: the native value is the handle. */
  pa_status (*buf_wrap)(pa_context *ctx, void *native, size_t bytes, void **handle);
  void (*buf_unwrap)(pa_context *ctx, void *handle); /* NULL: nothing to release */
  pa_status (*buf_write)(pa_context *ctx, void *handle, size_t off, const void *src, size_t n);
  pa_status (*buf_read)(pa_context *ctx, void *handle, size_t off, void *dst, size_t n);

  /* The selector: fills *choice for the plan (desc, group, lengths set; no
   * work list yet) or returns PA_ERR_UNSUPPORTED with a message. Under
   * PA_DETERMINISTIC the choice must not depend on the batch's lengths, so a
   * request gets the same arithmetic whatever else is in the batch. */
  pa_status (*select)(pa_context *ctx, const pa_plan *plan, pa_kernel_choice *choice);
  /* Optional: called once the plan is complete (work list uploaded); returns
   * the backend's per-plan state, never changes the plan. */
  pa_status (*plan_ready)(pa_context *ctx, const pa_plan *plan, pa_plan_state *state);

  /* Enqueue; arguments are validated; ws has at least plan->ws_size bytes. */
  pa_status (*attention)(pa_context *ctx, const pa_plan *plan, const pa_attention_args *args,
                         pa_buffer *ws);
  pa_status (*mla)(pa_context *ctx, const pa_plan *plan, const pa_mla_args *args, pa_buffer *ws);
  pa_status (*merge)(pa_context *ctx, const pa_merge_launch *m);
  pa_status (*head_gemm)(pa_context *ctx, const pa_tensor *x, const pa_tensor *w, pa_tensor *y);
  pa_status (*synchronize)(pa_context *ctx);
  /* Optional (NULL: PA_ERR_UNSUPPORTED): pa_kv_append / pa_mla_append. */
  pa_status (*append)(pa_context *ctx, const pa_append_launch *a);
} pa_backend_ops;

/* Backends compiled in (registry in core/registry.c). */
extern const pa_backend_ops pa_cpu_backend;
#ifdef PA_HAVE_CUDA
extern const pa_backend_ops pa_cuda_backend;
#endif
#ifdef PA_HAVE_OPENCL
extern const pa_backend_ops pa_opencl_backend;
#endif

/* fp8 (core/fp8.c): exact decode tables by code, and the reference encode
 * (pa_fp8_encode, polyattn.h) every backend's conversion matches. */
extern const float pa_fp8_e4m3_table[256], pa_fp8_e5m2_table[256];
static inline bool pa_dtype_is_fp8(pa_dtype t) { return t == PA_FP8_E4M3 || t == PA_FP8_E5M2; }

/* Small shared helpers for backends. */
static inline char *pa_tensor_ptr_host(const pa_tensor *t) {
  return (char *)t->buf->handle + t->offset;
}

/* Element offset of a row of an attention tensor (q/out/k/v ragged or padded):
 * 3-d [T, H, D]: (start + i) * stride[0]; 4-d [B, S, H, D]: b * stride[0] + i * stride[1].
 * Returned with the head stride and the dim stride (always 1 for our tensors). */
static inline int64_t pa_row_offset(const pa_tensor *t, int32_t b, int32_t start, int64_t i) {
  return t->ndim == 4 ? (int64_t)b * t->stride[0] + i * t->stride[1]
                      : ((int64_t)start + i) * t->stride[0];
}
static inline int64_t pa_head_stride(const pa_tensor *t) { return t->stride[t->ndim - 2]; }

/* Same for lse ([T, H] or [B, S, H]). */
static inline int64_t pa_lse_offset(const pa_tensor *t, int32_t b, int32_t start, int64_t i,
                                    int h) {
  return (t->ndim == 3 ? (int64_t)b * t->stride[0] + i * t->stride[1]
                       : ((int64_t)start + i) * t->stride[0]) +
         (int64_t)h * t->stride[t->ndim - 1];
}

/* Element offset of key j of request b (head/dim strides added by the caller):
 * paged [P, page, H, D]: page = block_table[b, j / page_size]; else as a row. */
static inline int64_t pa_key_offset(const pa_tensor *kv, const int32_t *block_table,
                                    int64_t bt_stride0, int64_t bt_stride1, int page_size,
                                    int32_t b, int32_t k_start, int64_t j) {
  if (page_size > 0) {
    int32_t page = block_table[(int64_t)b * bt_stride0 + (j / page_size) * bt_stride1];
    return (int64_t)page * kv->stride[0] + (j % page_size) * kv->stride[1];
  }
  return pa_row_offset(kv, b, k_start, j);
}

/* The visibility rule of polyattn.h, written once for host code. */
static inline bool pa_visible(const pa_attention_desc *d, int64_t i, int64_t j, int64_t off) {
  int64_t diag = i + off;
  if (d->causal && j > diag) return false;
  if (j < d->sink_tokens) return true;
  if (d->window_left >= 0 && j < diag - d->window_left) return false;
  if (d->window_right >= 0 && j > diag + d->window_right) return false;
  return true;
}

#endif /* PA_BACKEND_H */

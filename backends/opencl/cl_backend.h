/* Internal declarations of the OpenCL backend (never included outside
 * backends/opencl/ except by include/polyattn_opencl.h's implementation). */
#ifndef PA_CL_BACKEND_H
#define PA_CL_BACKEND_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>
#include <pthread.h>

#include "backend.h"

typedef struct pa_cl_entry pa_cl_entry; /* one compiled program and its kernels */
typedef struct pa_cl_named pa_cl_named; /* (file, defines, kernel) -> kernel, looked up first */

typedef struct pa_cl_state {
  cl_platform_id platform;
  cl_device_id device;
  cl_context context;
  cl_command_queue queue;
  bool own_queue;
  bool is_cpu;
  bool mma_ok;             /* inline-PTX mma.sync probe passed (f16) */
  bool mma_bf16_ok;        /* and its bf16 form */
  bool ldsm_ok;            /* and the cp.async/ldmatrix probe: the pipelined mma kernel */
  size_t local_mem;        /* CL_DEVICE_LOCAL_MEM_SIZE */
  size_t max_wg;           /* CL_DEVICE_MAX_WORK_GROUP_SIZE */
  char device_key[512];    /* device, driver and platform versions: disk cache key */
  char *cache_dir;         /* NULL: memory only */
  pthread_mutex_t lock;    /* program cache and kernel arguments */
  pa_cl_entry *programs;
  pa_cl_named *named;      /* lets repeat calls skip reading and hashing the sources */
} pa_cl_state;

static inline pa_cl_state *pa_cl(const pa_context *ctx) { return (pa_cl_state *)ctx->state; }
static inline cl_mem pa_cl_mem(const pa_buffer *b) { return b ? (cl_mem)b->handle : NULL; }

/* "CL_OUT_OF_RESOURCES" etc.; "CL_UNKNOWN_ERROR" for others. */
const char *pa_cl_error_name(cl_int err);
/* pa_fail(ctx, PA_ERR_BACKEND, "<what>: <name> (<code>)"). */
pa_status pa_cl_fail(pa_context *ctx, cl_int err, const char *what);

/* The text of kernels/<name>: from dir (dev.opencl.kernel_dir) when not empty,
 * else the copy embedded at build time. *owned is set when the caller must free it. */
const char *pa_cl_source(const char *dir, const char *name, bool *owned);

/* Kernel `kernel` of program common.cl + `file` built with `defines` for the
 * context's device; compiled once per (device, source hash, options), cached
 * in memory and, with a cache_dir, on disk. The kernel is owned by the cache;
 * callers set its arguments and enqueue it under state->lock. */
pa_status pa_cl_kernel(pa_context *ctx, const char *file, const char *defines, const char *kernel,
                       cl_kernel *out);
void pa_cl_cache_free(pa_cl_state *st);

/* Argument setting: `n` counts up, the first failure is kept. */
typedef struct pa_cl_args {
  cl_kernel k;
  cl_uint n;
  cl_int err;
  cl_uint bad; /* index of the first failing argument */
} pa_cl_args;
void pa_cl_arg(pa_cl_args *a, size_t size, const void *value);
void pa_cl_arg_mem(pa_cl_args *a, const pa_buffer *b);
void pa_cl_arg_long(pa_cl_args *a, int64_t v);
void pa_cl_arg_int(pa_cl_args *a, int v);
void pa_cl_arg_float(pa_cl_args *a, float v);

/* Element offset of a tensor (its byte offset / element size). */
static inline int64_t pa_cl_elem_off(const pa_tensor *t) {
  size_t es = pa_dtype_size(t->dtype);
  return es ? (int64_t)(t->offset / es) : 0;
}

/* Strides of a ragged [T, H (, D)] or padded [B, S, H (, D)] tensor as (per
 * request, per token, per head); last_dims is 1 with a D dimension, else 0. */
void pa_cl_row_strides(const pa_tensor *t, int64_t *sb, int64_t *st, int64_t *sh, int last_dims);

/* An fp8 scale tensor (f32 [1] or [Hkv]) as (buffer, element offset,
 * per-head stride: 0 for one scale); NULL: three zero arguments. */
void pa_cl_scale_args(pa_cl_args *g, const pa_tensor *s);

/* A tensor as a kernel takes it: buffer, element offset, up to four strides
 * (how many, and which, is the argument list's business). */
typedef struct pa_cl_view {
  const pa_buffer *buf; /* NULL: absent (the kernel does not read it) */
  int64_t off;
  int64_t s[4];
} pa_cl_view;

/* common.cl's PA_ATTENTION_ARGS by name; zero-initialised fields are absent
 * views and zero scalars. Strides per view in kernel order: q (batch, token,
 * head), q2 (token, head), k and v (batch, token, head, page), k2 (token,
 * page), out and lse (batch, token, head), bt (batch, page), mask (batch,
 * head, i, j), sinks and alibi (head). */
typedef struct pa_cl_attention_argv {
  pa_cl_view q, q2, k, k2, v, out, lse, bt, mask, sinks, alibi;
  int ragged_q, ragged_k, page_size, group, hq, kv_vec;
  float scale, softcap;
  int causal, wl, wr, sink_tokens, flags;
} pa_cl_attention_argv;

/* Sets PA_ATTENTION_ARGS (PA_SCHED_ARGS included) from *c and the plan. */
void pa_cl_attention_args(pa_cl_args *g, const pa_plan *plan, pa_buffer *ws,
                          const pa_cl_attention_argv *c);
/* Sets PA_SCHED_ARGS: the plan's workspace offsets and schedule. */
void pa_cl_sched_args(pa_cl_args *g, const pa_plan *plan, pa_buffer *ws);

/* Whether a tensor's rows can move in 16-byte vectors: its element offset and
 * every stride but the last are multiples of 16 bytes' worth of elements. */
static inline bool pa_cl_vec_ok(const pa_tensor *t) {
  size_t es = pa_dtype_size(t->dtype);
  if (!t->buf || !es || t->offset % 16) return false;
  int64_t w = 16 / (int64_t)es;
  for (int i = 0; i + 1 < t->ndim; i++)
    if (t->stride[i] % w) return false;
  return true;
}

/* The kernel families a plan can run (one kernel function each). */
typedef enum pa_cl_family {
  PA_CL_TILE,        /* attention.cl pa_attention: any shape, any device (MLA=1 for MLA) */
  PA_CL_DECODE,      /* decode.cl pa_decode: few packed rows, any device */
  PA_CL_DECODE_W,    /* decode_w.cl pa_decode_w: no barrier in the key loop (warp shuffles) */
  PA_CL_PREFILL_MMA, /* prefill_mma.cl pa_prefill_mma: tensor cores */
  PA_CL_MLA_MMA,     /* mla_mma.cl pa_mla_mma: tensor cores */
} pa_cl_family;

/* The variant a plan runs (pa_kernel_choice.variant), chosen and built once in
 * pa_cl_select, fallbacks included; the run functions launch exactly this. */
typedef struct pa_cl_variant {
  pa_cl_family family;
  int bq, bkv;        /* packed rows per work item; keys per tile (the split alignment) */
  int rg, cg;         /* TILE: work-item rows x columns */
  int kg;             /* DECODE: key groups */
  int warps;          /* DECODE_W, PREFILL_MMA (pipelined), MLA_MMA (4 per 16 rows) */
  int stages;         /* DECODE_W: cp.async ring stages (0: K/V through registers) */
  bool emu;           /* DECODE_W, MLA_MMA: PTX helpers emulated in OpenCL C */
  bool pipe;          /* PREFILL_MMA: the pipelined kernel (else PIPE=0, 64 rows) */
  bool pf, ldsm, cpa; /* MLA_MMA: key prefetch, ldmatrix B fragments, cp.async stages */
  int maxreg;         /* MLA_MMA: register cap (0: none) */
  cl_kernel kernel;   /* owned by the program cache */
  size_t threads;     /* work-group size */
  char name[64];      /* opencl.<kernel function>.<shape>, reported by the plan */
} pa_cl_variant;

static inline const pa_cl_variant *pa_cl_variant_of(const pa_plan *plan) {
  return (const pa_cl_variant *)plan->choice.variant;
}

/* Per-plan state from plan_ready: the split-KV combine kernel (owned by the
 * cache), NULL when no request is split. */
typedef struct pa_cl_plan {
  cl_kernel combine;
} pa_cl_plan;

/* Dim lanes (8 dims each) of kernels/decode.cl for these head dims. */
int pa_cl_decode_lanes(int dqk, int dv);

/* Operations (one file each). */
pa_status pa_cl_select(pa_context *ctx, const pa_plan *plan, pa_kernel_choice *choice);
pa_status pa_cl_plan_ready(pa_context *ctx, const pa_plan *plan, pa_plan_state *state);
pa_status pa_cl_attention(pa_context *ctx, const pa_plan *plan, const pa_attention_args *args,
                          pa_buffer *ws);
pa_status pa_cl_mla(pa_context *ctx, const pa_plan *plan, const pa_mla_args *args, pa_buffer *ws);
pa_status pa_cl_merge(pa_context *ctx, const pa_merge_launch *m);
pa_status pa_cl_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w, pa_tensor *y);
pa_status pa_cl_append(pa_context *ctx, const pa_append_launch *L);
/* MLA on tensor cores (mla.c): after the mma probe, fills *v with the built
 * kernel, or with its 16-row attention.cl fallback where mla_mma.cl does not
 * build; false when the kernel does not apply (the caller picks a tile). */
bool pa_cl_mla_mma_variant(pa_context *ctx, const pa_plan *plan, pa_cl_variant *v);
/* Builds attention.cl for a TILE variant (sets kernel, threads, name). */
pa_status pa_cl_build_tile(pa_context *ctx, const pa_plan *plan, pa_cl_variant *v);
/* Split-KV combine shared by attention and MLA (merge.c). */
pa_status pa_cl_combine(pa_context *ctx, const pa_plan *plan, cl_kernel k, const pa_tensor *out,
                        const pa_tensor *lse, const pa_tensor *sinks, pa_buffer *ws);

#endif

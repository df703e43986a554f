/* polyattn: fused attention kernels for LLM inference, one C API over CUDA,
 * OpenCL and a SIMD CPU backend.
 *
 * Conventions
 * - Every function returns pa_status; results come back through out-pointers.
 * - pa_<noun>_create / pa_<noun>_destroy; destroy accepts NULL.
 * - Strides are in elements, offsets in bytes. Tensors are row-major views
 *   with explicit strides; the last dimension must be contiguous unless a
 *   function says otherwise.
 * - Work is enqueued on the context's queue (CUDA stream, OpenCL queue, or run
 *   at once on the CPU). Run functions never allocate and never wait for the
 *   device; pa_context_synchronize() does.
 * - On failure the context's last-error message names the field and values;
 *   outputs are left untouched when validation fails.
 * - Lifetimes: plans and buffers borrow their context; destroy them before it.
 *   A plan borrows nothing of the pa_batch it was made from.
 * - Threads: a context and everything made from it are used by one thread at
 *   a time (contexts are independent of each other). Call
 *   pa_set_log_callback before any other function.
 * - A plan's runs are ordered on its context's queue; a plan may keep state
 *   on the device between runs (CUDA split decode keeps merge counters), so
 *   copies of one captured CUDA graph must not replay concurrently on
 *   different streams: make a plan per concurrent stream.
 */
#ifndef POLYATTN_H
#define POLYATTN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PA_VERSION_MAJOR 0
#define PA_VERSION_MINOR 1
#define PA_VERSION_PATCH 0
#define PA_VERSION_STRING "0.1.0"

#if defined(_WIN32) && defined(PA_BUILDING_DLL)
#define PA_API __declspec(dllexport)
#elif defined(__GNUC__)
#define PA_API __attribute__((visibility("default")))
#else
#define PA_API
#endif

/* ------------------------------------------------------------------------ */
/* Status and version                                                        */

typedef enum pa_status {
  PA_OK = 0,
  PA_ERR_INVALID_ARGUMENT = -1,
  PA_ERR_UNSUPPORTED = -2,
  PA_ERR_OUT_OF_MEMORY = -3,
  PA_ERR_NO_DEVICE = -4,
  PA_ERR_BACKEND = -5,
  PA_ERR_WORKSPACE_TOO_SMALL = -6,
} pa_status;

/* A static string such as "PA_ERR_INVALID_ARGUMENT"; never NULL. */
PA_API const char *pa_status_str(pa_status s);
/* Fills any non-NULL pointer with the library's (not the header's) version. */
PA_API void pa_version(int *major, int *minor, int *patch);

/* Logging: one-time notes (a shape taking a generic kernel, a chosen ISA).
 * Off by default; with PA_LOG set in the environment notes go to stderr.
 * level: 0 error, 1 warning, 2 info, 3 debug. fn NULL restores the default. */
typedef void (*pa_log_fn)(int level, const char *message, void *user);
PA_API void pa_set_log_callback(pa_log_fn fn, void *user);

/* ------------------------------------------------------------------------ */
/* Backends, devices, contexts                                               */

typedef enum pa_backend {
  PA_BACKEND_AUTO = 0, /* CUDA, then OpenCL GPU, then CPU; PA_BACKEND env overrides */
  PA_BACKEND_CPU = 1,
  PA_BACKEND_CUDA = 2,
  PA_BACKEND_OPENCL = 3,
} pa_backend;

typedef enum pa_dtype {
  PA_F32 = 0,
  PA_F16 = 1,
  PA_BF16 = 2,
  PA_I32 = 3,
} pa_dtype;

PA_API size_t pa_dtype_size(pa_dtype t);        /* 0 for an unknown dtype */
PA_API const char *pa_dtype_name(pa_dtype t);   /* "f32", "f16", ... */
PA_API const char *pa_backend_name(pa_backend b); /* "cpu", "cuda", ... */

/* Whether the backend was compiled in (not whether a device is present). */
PA_API int pa_backend_compiled(pa_backend b);
/* Number of devices the backend sees now (0 if none or not compiled). */
PA_API pa_status pa_device_count(pa_backend b, int *count);

typedef struct pa_device_info {
  char name[128];
  pa_backend backend;
  int compute_units;      /* SMs, CUs, CPU threads */
  int64_t global_mem;     /* bytes */
  int64_t shared_mem;     /* bytes of fast local memory per block/group */
  char features[128];     /* e.g. "sm_90", "avx512", "fp16 mma probe ok" */
} pa_device_info;

PA_API pa_status pa_device_get_info(pa_backend b, int device, pa_device_info *info);

typedef struct pa_context pa_context; /* one device + one queue/stream */
typedef struct pa_buffer pa_buffer;   /* memory on a context's device */
typedef struct pa_plan pa_plan;       /* host work done once for one batch */

typedef struct pa_context_desc {
  pa_backend backend;  /* PA_BACKEND_AUTO picks the best present */
  int device;          /* index within the backend; -1: default (env override) */
  void *native_queue;  /* borrowed cudaStream_t / cl_command_queue; NULL: own one */
  int num_threads;     /* CPU: 0 = all cores */
  const char *cache_dir; /* OpenCL/NVRTC program cache on disk; NULL: memory only */
  const char *options;   /* "key=value,..." (README: Configuration); beats the environment */
} pa_context_desc;

/* desc NULL: defaults (auto backend, default device). Caller owns *out. */
PA_API pa_status pa_context_create(const pa_context_desc *desc, pa_context **out);
PA_API void pa_context_destroy(pa_context *ctx);
PA_API pa_backend pa_context_backend(const pa_context *ctx);
PA_API pa_status pa_context_info(const pa_context *ctx, pa_device_info *info);
/* The message of the last failure on this context ("" if none); owned by ctx,
 * valid until the next call on it. */
PA_API const char *pa_context_last_error(const pa_context *ctx);
/* Blocks until all work enqueued on the context's queue has finished. */
PA_API pa_status pa_context_synchronize(pa_context *ctx);

/* Buffers. Device memory on GPUs, aligned host memory on the CPU backend. */
PA_API pa_status pa_buffer_create(pa_context *ctx, size_t bytes, pa_buffer **out);
/* Wraps memory the caller owns: a host pointer (CPU), a device pointer (CUDA),
 * a cl_mem (OpenCL). The caller keeps ownership; bytes is its usable size. */
PA_API pa_status pa_buffer_wrap(pa_context *ctx, void *native, size_t bytes, pa_buffer **out);
PA_API void pa_buffer_destroy(pa_buffer *buf);
PA_API size_t pa_buffer_size(const pa_buffer *buf);
/* Blocking copies between host memory and a buffer (ordered after queued work). */
PA_API pa_status pa_buffer_write(pa_buffer *buf, size_t offset, const void *src, size_t bytes);
PA_API pa_status pa_buffer_read(const pa_buffer *buf, size_t offset, void *dst, size_t bytes);
/* The native handle: host pointer, CUdeviceptr, or cl_mem. */
PA_API void *pa_buffer_native(const pa_buffer *buf);

#define PA_MAX_DIMS 4

/* A strided view into a buffer. Strides in elements; offset in bytes. */
typedef struct pa_tensor {
  pa_buffer *buf;
  size_t offset;
  pa_dtype dtype;
  int ndim;
  int64_t shape[PA_MAX_DIMS];
  int64_t stride[PA_MAX_DIMS];
} pa_tensor;

/* Fills t as a contiguous row-major view of shape[0..ndim). */
PA_API pa_status pa_tensor_init(pa_tensor *t, pa_buffer *buf, size_t offset, pa_dtype dtype,
                                int ndim, const int64_t *shape);

/* ------------------------------------------------------------------------ */
/* Attention                                                                  */
/*
 * For query i and key j of one request (sq queries, skv keys, off = skv - sq):
 *   s = scale * q_i . k_j;  s = softcap ? softcap * tanh(s / softcap) : s;
 *   s -= alibi_slope[h] * |i + off - j|;  s += mask[b, h, i, j];
 * key j is visible iff
 *   (!causal || j <= i + off) &&
 *   (j < sink_tokens || ((window_left < 0 || j >= i + off - window_left) &&
 *                        (window_right < 0 || j <= i + off + window_right)))
 * O_i = sum_j p_ij v_j with p = exp(s - m) / (sum_j exp(s_j - m) + exp(sink[h] - m)).
 * LSE_i = log of that denominator (natural log, f32, sink included).
 * A row with no visible key (and no sink) gives O = 0, LSE = -inf.
 *
 * Layouts (the tensor's ndim tells which):
 *   q, out     [T, Hq, D]  ragged: request b's tokens start at the batch's q start
 *              [B, S, Hq, D] padded: request b's token i at [b, i]
 *   k, v       ragged  [Tk, Hkv, D]  or padded [B, Sk, Hkv, D]  (page_size == 0)
 *              paged   [num_pages, page_size, Hkv, D], any strides (NHD or HND)
 *   lse        q's layout without the last dimension: [T, Hq] or [B, S, Hq]
 */

enum {
  PA_RETURN_LSE = 1u << 0,     /* write args.lse */
  PA_DETERMINISTIC = 1u << 1,  /* fixed-size KV chunks: output independent of batch */
  PA_HAS_SINKS = 1u << 2,      /* args.sinks: per q-head logit in the denominator */
  PA_HAS_ALIBI = 1u << 3,      /* args.alibi_slopes: per q-head slope */
  PA_HAS_MASK = 1u << 4,       /* args.mask: additive [B, Hm, Sq, Sk], Hm 1 or Hq */
};

typedef struct pa_attention_desc {
  int num_q_heads, num_kv_heads; /* num_q_heads % num_kv_heads == 0 */
  int head_dim_qk, head_dim_v;   /* 1..256 each */
  pa_dtype q_dtype, kv_dtype, o_dtype;
  int causal;                    /* bottom-right aligned */
  int window_left, window_right; /* -1: unbounded */
  int sink_tokens;               /* first keys kept visible by the window */
  float scale;                   /* 0: 1/sqrt(head_dim_qk) */
  float softcap;                 /* 0: off */
  int page_size;                 /* 0: contiguous K/V; else paged */
  int num_splits;                /* KV splits per request: 0 auto, 1 none, n max */
  int kv_chunk;                  /* PA_DETERMINISTIC chunk in tokens; 0: default */
  unsigned flags;                /* PA_RETURN_LSE | ... */
} pa_attention_desc;

/* Fills a desc with defaults: no mask, windows -1, scale/softcap 0, auto splits. */
PA_API void pa_attention_desc_init(pa_attention_desc *d, int num_q_heads, int num_kv_heads,
                                   int head_dim, pa_dtype dtype);

/* The batch as the host knows it. Either lengths (seqlens_*), starts
 * (cu_seqlens_*, B+1 entries, lengths = differences), or both: then the
 * seqlens are the used lengths within each start's slot (padded/seqused). All
 * borrowed; copied by the plan. For padded (4-d) tensors only lengths matter. */
typedef struct pa_batch {
  int batch_size;
  const int32_t *seqlens_q, *seqlens_k;
  const int32_t *cu_seqlens_q, *cu_seqlens_k;
} pa_batch;

typedef struct pa_attention_args {
  pa_tensor q, k, v, out;
  pa_tensor block_table; /* paged: i32 [B, max_pages] */
  pa_tensor lse;         /* PA_RETURN_LSE: f32 */
  pa_tensor sinks;       /* PA_HAS_SINKS: f32 [Hq] */
  pa_tensor alibi_slopes;/* PA_HAS_ALIBI: f32 [Hq] */
  pa_tensor mask;        /* PA_HAS_MASK: f32 [B, Hm, Sq_max, Sk_max] */
} pa_attention_args;

/* Host work for one batch: validation, GQA grouping, splits, schedule upload.
 * Caller owns *out; the plan borrows ctx. */
PA_API pa_status pa_attention_plan(pa_context *ctx, const pa_attention_desc *desc,
                                   const pa_batch *batch, pa_plan **out);
/* Bytes of workspace run needs (0 when no request is split). The plan also
 * owns a workspace of that size, used when run gets workspace == NULL; a
 * caller's workspace must not be the buffer of any tensor of the run. */
PA_API size_t pa_plan_workspace_size(const pa_plan *plan);
/* Number of KV splits chosen for request b (for tests and tuning). */
PA_API int pa_plan_num_splits(const pa_plan *plan, int b);
/* The kernel the plan runs, e.g. "cuda.prefill_wgmma" (owned by the plan). */
PA_API const char *pa_plan_kernel_name(const pa_plan *plan);
PA_API void pa_plan_destroy(pa_plan *plan);
/* Enqueues the attention. workspace may be NULL when the size is 0. */
PA_API pa_status pa_attention_run(pa_plan *plan, const pa_attention_args *args,
                                  pa_buffer *workspace);

/* ------------------------------------------------------------------------ */
/* MLA decode (absorbed DeepSeek latent attention)                           */
/*
 * K_j = ckv_j || kpe_j, V_j = ckv_j, one latent head shared by all q heads:
 *   s = scale * (q_nope . ckv_j + q_pe . kpe_j); O = softmax(s) V.
 * q_nope [T, H, Dc], q_pe [T, H, Dr], out [T, H, Dc], lse [T, H];
 * ckv [num_pages, page_size, Dc], kpe [num_pages, page_size, Dr] (strides
 * free, so one [.., Dc+Dr] cache works as two views); block_table [B, P].
 * With several query tokens per request (MTP), causal applies bottom-right.
 */
typedef struct pa_mla_desc {
  int num_heads;
  int head_dim_ckv, head_dim_kpe; /* 512, 64 in DeepSeek V2/V3; ckv <= 512, ckv + kpe <= 576 */
  pa_dtype q_dtype, kv_dtype, o_dtype;
  int page_size;
  int causal;
  float scale;        /* 0: 1/sqrt(head_dim_ckv + head_dim_kpe) */
  int num_splits;     /* 0 auto, 1 none */
  int kv_chunk;       /* deterministic chunk, 0 default */
  unsigned flags;     /* PA_RETURN_LSE, PA_DETERMINISTIC */
} pa_mla_desc;

typedef struct pa_mla_args {
  pa_tensor q_nope, q_pe, ckv, kpe, block_table, out, lse;
} pa_mla_args;

PA_API pa_status pa_mla_plan(pa_context *ctx, const pa_mla_desc *desc, const pa_batch *batch,
                             pa_plan **out);
PA_API pa_status pa_mla_run(pa_plan *plan, const pa_mla_args *args, pa_buffer *workspace);

/* Per-head GEMM around MLA: y[t, h, :] = x[t, h, :] @ w[h, :, :].
 * Query absorption: x = q_nope [T, H, 128], w = W_UK [H, 128, 512].
 * Output projection: x = o [T, H, 512], w = W_UV [H, 512, 128].
 * x [T, H, K], w [H, K, N] (either of its last two strides may be 1, so a
 * transposed weight works), y [T, H, N]; w has x's dtype, y has x's dtype
 * or f32; accumulation f32. */
PA_API pa_status pa_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w,
                              pa_tensor *y);

/* ------------------------------------------------------------------------ */
/* Merge states                                                              */
/*
 * Combine partial attention results by their LSE (natural log):
 *   lse = log(sum_k exp(lse_k)),  o = sum_k exp(lse_k - lse) o_k.
 * Empty states (lse = -inf) contribute nothing; all empty gives o = 0,
 * lse = -inf. The head dim D must be at least 1.
 */

/* Two states: a, b, out [T, H, D]; lse_a, lse_b, lse_out f32 [T, H].
 * lse_out may have buf NULL to skip it. */
PA_API pa_status pa_merge_state_pair(pa_context *ctx, const pa_tensor *a, const pa_tensor *lse_a,
                                     const pa_tensor *b, const pa_tensor *lse_b, pa_tensor *out,
                                     pa_tensor *lse_out);

/* Fixed count: v [T, N, H, D], s f32 [T, N, H] -> out [T, H, D], lse_out [T, H]. */
PA_API pa_status pa_merge_states(pa_context *ctx, const pa_tensor *v, const pa_tensor *s,
                                 pa_tensor *out, pa_tensor *lse_out);

/* Variable count: v [P, H, D], s f32 [P, H]; row r merges partials
 * indptr[r] .. indptr[r+1]-1 (indptr: i32 [R+1] in a buffer of ctx) into
 * out [R, H, D], lse_out [R, H]. */
PA_API pa_status pa_merge_states_varlen(pa_context *ctx, const pa_tensor *v, const pa_tensor *s,
                                        const pa_tensor *indptr, pa_tensor *out,
                                        pa_tensor *lse_out);

#ifdef __cplusplus
}
#endif
#endif /* POLYATTN_H */

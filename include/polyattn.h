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
 * - On failure the context's last-error message names the field and values
 *   (pa_context_last_error; pa_last_error for calls without a context);
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

/* The message of the last failed call on this thread, with or without a
 * context ("" if none yet): where the reason for a failed pa_context_create,
 * pa_device_* or a call given a NULL context is found. Thread-local, owned by
 * the library, valid until the next failure on this thread; successful calls
 * do not clear it, so read it only right after a call returned an error. */
PA_API const char *pa_last_error(void);

/* Logging: one-time notes (a shape taking a generic kernel, a chosen ISA).
 * Off by default; with PA_LOG set in the environment notes go to stderr.
 * level: 0 error, 1 warning, 2 info, 3 debug. fn NULL restores the default.
 * Process-wide and thread-safe: it may be called while other threads log;
 * once it returns the previous callback is never called again. Calls to fn
 * are serialised under a library lock: fn must not call polyattn. */
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
  PA_FP8_E4M3 = 4, /* KV caches only: 1-4-3, bias 7, max 448, no inf, NaN = S.1111.111 */
  PA_FP8_E5M2 = 5, /* KV caches only: 1-5-2, bias 15, max 57344, inf and NaN as IEEE */
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

/* Fill it with pa_context_desc_init, then change what you need: device 0 is
 * an explicit index (the backend's first device, bypassing PA_CUDA_DEVICE /
 * PA_OPENCL_DEVICE and OpenCL's first-GPU choice), so a zeroed desc is not
 * the default one. 0 keeps that meaning because it is the index callers
 * most often name; making it mean "default" would silently change their
 * device. */
typedef struct pa_context_desc {
  pa_backend backend;  /* PA_BACKEND_AUTO picks the best present */
  int device;          /* index within the backend; -1: default (env override) */
  void *native_queue;  /* borrowed cudaStream_t / cl_command_queue; NULL: own one */
  int num_threads;     /* CPU: 0 = all cores */
  const char *cache_dir; /* OpenCL/NVRTC program cache on disk; NULL: memory only */
} pa_context_desc;

/* The defaults: auto backend, device -1 (default), own queue, all threads,
 * no disk cache. The same as passing desc NULL to pa_context_create. */
PA_API void pa_context_desc_init(pa_context_desc *d);

/* desc NULL: defaults (pa_context_desc_init). Caller owns *out. On failure
 * *out is NULL and pa_last_error() says why. */
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

/* Fills t as a contiguous row-major view of shape[0..ndim). offset in bytes. */
PA_API pa_status pa_tensor_init(pa_tensor *t, pa_buffer *buf, size_t offset, pa_dtype dtype,
                                int ndim, const int64_t *shape);
/* Fills t as a strided view: offset in BYTES from the buffer's start (a
 * multiple of the element size), stride[i] in ELEMENTS (>= 0; NULL:
 * contiguous). Checks that every element lies inside buf (when buf is not
 * NULL) in overflow-checked arithmetic; t is written only on success. The
 * operations check the rest (e.g. last dimension contiguous). Examples, for
 * a dtype of `es` bytes:
 *   packed QKV [T, Hq + 2 Hkv, D]: q = shape {T, Hq, D}, stride
 *     {(Hq + 2 Hkv) D, D, 1}, offset 0; k the same with shape {T, Hkv, D},
 *     offset Hq D es; v offset (Hq + Hkv) D es.
 *   HND pages [P, Hkv, page, D] seen as the paged [P, page, Hkv, D]: shape
 *     {P, page, Hkv, D}, stride {Hkv page D, D, page D, 1}.
 *   states [T, 2, H, D] (two partials per token): a = shape {T, H, D},
 *     stride {2 H D, D, 1}, offset 0; b the same at offset H D es. */
PA_API pa_status pa_tensor_init_strided(pa_tensor *t, pa_buffer *buf, size_t offset,
                                        pa_dtype dtype, int ndim, const int64_t *shape,
                                        const int64_t *stride);

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
 * Non-finite values. desc.scale and desc.softcap must be finite (else
 * PA_ERR_INVALID_ARGUMENT); tensors are not scanned. Elements no request uses
 * (padding, slot gaps, strided gaps, page slots at or past seqlens_k, pages
 * the block table does not reach) are never read into a result: NaN or inf
 * there changes nothing. A mask entry of -inf hides its key; a sink of -inf is
 * no sink. Any other NaN or inf spoils (unspecified O and LSE, usually NaN)
 * only: in q[t, h] the row (t, h); in k or v of a used key of request b and
 * KV head g every row of request b whose head reads g (visible or not); in
 * mask[b, h', i, j] the row(s) (b, i, h' or every head); in sinks[h] or
 * alibi_slopes[h] the rows of head h. Every other row is exact, nothing
 * outside out and lse is written, and no backend traps or stalls on them.
 * Merges: a state with LSE -inf contributes nothing, whatever its O holds.
 *
 * Layouts (the tensor's ndim tells which):
 *   q, out     [T, Hq, D]  ragged: request b's tokens start at the batch's q start
 *              [B, S, Hq, D] padded: request b's token i at [b, i]
 *   k, v       ragged  [Tk, Hkv, D]  or padded [B, Sk, Hkv, D]  (page_size == 0)
 *              paged   [num_pages, page_size, Hkv, D], any strides (NHD or HND)
 *   lse        q's layout without the last dimension: [T, Hq] or [B, S, Hq]
 *
 * What is read and written (every backend; tested in tests/api_rules.c):
 * - Only the used rows are written: out and lse rows of queries i >= the
 *   request's used length (padded tails, gaps between ragged slots) and of
 *   tokens no request covers keep their contents.
 * - Only used keys are read: K/V rows j >= the used length (padded tails,
 *   gaps), the tail slots of a request's last page, and pages no request
 *   references may hold anything, NaN and Inf included; so may q rows that
 *   are not used.
 * - block_table entries past a request's ceil(seqlens_k / page_size) pages
 *   are never read and may hold any value (-1 is customary).
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

/* The batch as the host knows it (host arrays, borrowed, copied by the
 * plan). Name the fields when filling it: {.batch_size = B, .seqlens_k = ..}.
 * For each of q and k, give lengths, starts or both (not neither):
 *   lengths only  ragged tensors: requests packed back to back from row 0;
 *   starts only   request b is rows cu[b] .. cu[b+1]-1 (length = difference);
 *   both          request b starts at row cu[b] and uses its first
 *                 seqlens[b] <= cu[b+1] - cu[b] rows; the rest of its slot
 *                 is unused (FlashAttention-3's seqused: no repacking).
 * Starts place rows only in ragged (3-d) q/out and contiguous k/v. Padded
 * (4-d) tensors put request b at [b, 0 .. length) and paged K/V are found
 * through block_table: for those, starts serve only to give lengths. */
typedef struct pa_batch {
  int batch_size; /* B: requests, 0 .. 2^24 */
  /* used query tokens of request b, >= 0 (B entries); NULL: from cu_seqlens_q */
  const int32_t *seqlens_q;
  /* used keys of request b (cached + new), >= 0 (B entries); NULL: from
   * cu_seqlens_k */
  const int32_t *seqlens_k;
  /* first row of request b in q/out (B + 1 entries, cu[0] >= 0,
   * non-decreasing; the tensor covers up to max(start + length)); or NULL */
  const int32_t *cu_seqlens_q;
  /* first row of request b in contiguous k/v (B + 1 entries, as above); or NULL */
  const int32_t *cu_seqlens_k;
} pa_batch;

typedef struct pa_attention_args {
  pa_tensor q, k, v, out;
  pa_tensor block_table; /* paged: i32 [B, max_pages] */
  pa_tensor lse;         /* PA_RETURN_LSE: f32 */
  pa_tensor sinks;       /* PA_HAS_SINKS: f32 [Hq] */
  pa_tensor alibi_slopes;/* PA_HAS_ALIBI: f32 [Hq] */
  pa_tensor mask;        /* PA_HAS_MASK: f32 [B, Hm, Sq_max, Sk_max] */
  pa_tensor k_scale, v_scale; /* fp8 K/V only (see "fp8 KV caches"): f32 [1] or [Hkv] */
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
 * The batch is read as for attention (seqlens_k required) and so are the
 * rules on used rows: out/lse rows outside the used lengths are not
 * written; ckv/kpe page tails, unreferenced pages and spare block_table
 * entries are never read (NaN, -1: anything goes).
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

/* Fills a desc with defaults (scale 0, no causal, auto splits, no flags). */
PA_API void pa_mla_desc_init(pa_mla_desc *d, int num_heads, int head_dim_ckv, int head_dim_kpe,
                             int page_size, pa_dtype dtype);

typedef struct pa_mla_args {
  pa_tensor q_nope, q_pe, ckv, kpe, block_table, out, lse;
  pa_tensor kv_scale; /* fp8 ckv/kpe only: f32 [1], dequantises both */
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
/* fp8 KV caches and the paged-cache append                                  */
/*
 * K/V (attention) and ckv/kpe (MLA) may be PA_FP8_E4M3 or PA_FP8_E5M2 (OCP
 * fp8 formats); q, out and every other tensor stay f32/f16/bf16. The value
 * of a stored code c is scale * decode(c), with the dequantisation scale an
 * f32 tensor: shape [1] (one per tensor, vLLM's k_scale / v_scale) or
 * [Hkv] (one per KV head; MLA has one latent head, so [1]). Accumulation is
 * f32. A scale is required for fp8 K/V and refused for other dtypes.
 *
 * Conversions are the same bit for bit on every backend:
 * - decode is exact (every code is an f32); NaN codes give a NaN (of the
 *   code's sign); e5m2's infinities give infinities.
 * - encode (append: x / scale, then the code) rounds to nearest even and
 *   saturates: every finite value beyond the largest code (448 for e4m3,
 *   57344 for e5m2) and +-inf become +-that largest code; NaN becomes the
 *   code 0x7f (a NaN in both formats); -0 keeps its sign.
 */
PA_API float pa_fp8_decode(pa_dtype t, uint8_t code); /* NaN for a non-fp8 t */
PA_API uint8_t pa_fp8_encode(pa_dtype t, float x);    /* 0 for a non-fp8 t */

/* pa_kv_append: writes T new tokens' keys and values into paged caches:
 *   k_cache[slot / page_size, slot % page_size, h, :] = convert(k[t, h, :])
 * for slot = slot_mapping[t] (page * page_size + offset, vLLM's
 * convention; -1 skips the token), likewise v. k, v [T, Hkv, Dk] / [T, Hkv,
 * Dv] in f32/f16/bf16 (rows may be strided, as in a packed QKV); caches
 * [num_pages, page_size, Hkv, D] with any strides (NHD or HND), of k's
 * dtype (copied, or converted between f32/f16/bf16 with rounding to nearest
 * even) or fp8 (k / k_scale[h] encoded as above; k_scale f32 [1] or [Hkv]).
 * Slots of a host-visible slot_mapping (CPU backend) are checked: one
 * outside [-1, num_pages * page_size) fails the call before anything is
 * written. On a device the map is not read by the host: such a slot is
 * skipped there, as -1 is. Two tokens with the same slot: either may win
 * (a caller's error, not checked). Enqueued like every run; the caller
 * keeps ownership of everything. */
typedef struct pa_kv_append_args {
  pa_tensor k, v;               /* [T, Hkv, Dk], [T, Hkv, Dv] */
  pa_tensor slot_mapping;       /* i32 [T] */
  pa_tensor k_cache, v_cache;   /* [num_pages, page_size, Hkv, Dk / Dv] */
  pa_tensor k_scale, v_scale;   /* fp8 caches only: f32 [1] or [Hkv] */
} pa_kv_append_args;
PA_API pa_status pa_kv_append(pa_context *ctx, const pa_kv_append_args *args);

/* pa_mla_append: the same for MLA's latent cache: ckv [T, Dc] and kpe
 * [T, Dr] into ckv_cache [num_pages, page_size, Dc] and kpe_cache
 * [num_pages, page_size, Dr] (two views of one [.., Dc + Dr] cache work);
 * fp8 caches take kv_scale f32 [1] for both. */
typedef struct pa_mla_append_args {
  pa_tensor ckv, kpe, slot_mapping, ckv_cache, kpe_cache, kv_scale;
} pa_mla_append_args;
PA_API pa_status pa_mla_append(pa_context *ctx, const pa_mla_append_args *args);

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

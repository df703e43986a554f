/* pa-bench cases: presets (the issue floors first), inputs, honest FLOP and
 * byte counts, and the timing loop. Only the public API is used. */
#define _GNU_SOURCE /* sysconf(_SC_LEVEL3_CACHE_SIZE) */
#include <math.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

#define F32 PA_F32
#define F16 PA_F16
#define BF16 PA_BF16
#define E4M3 PA_FP8_E4M3

/* kind, label, dtype, kv_dtype, b, hq, hkv, d, dv, dr, sq, skv, page, causal, window, splits */
static const bench_shape cpu_presets[] = {
    {BENCH_PREFILL, "prefill", F32, F32, 1, 8, 8, 128, 128, 0, 2048, 2048, 0, 1, -1, 0},
    {BENCH_DECODE, "decode", BF16, BF16, 1, 32, 8, 128, 128, 0, 1, 8192, 16, 0, -1, 0},
    {BENCH_DECODE, "decode-e4m3", BF16, E4M3, 1, 32, 8, 128, 128, 0, 1, 8192, 16, 0, -1, 0},
    {BENCH_MLA, "mla", BF16, BF16, 1, 128, 1, 512, 512, 64, 1, 4096, 64, 0, -1, 0},
    {BENCH_MERGE, "merge", F32, F32, 1024, 32, 0, 128, 128, 0, 0, 0, 0, 0, -1, 4},
    {BENCH_GEMM, "gemm-absorb", F32, F32, 0, 128, 0, 128, 512, 0, 64, 0, 0, 0, -1, 0},
    {BENCH_APPEND, "append", BF16, E4M3, 4096, 0, 8, 128, 128, 0, 0, 0, 16, 0, -1, 0},
};
static const bench_shape cuda_presets[] = {
    {BENCH_PREFILL, "prefill", BF16, BF16, 4, 16, 16, 128, 128, 0, 4096, 4096, 0, 1, -1, 0},
    {BENCH_PREFILL, "prefill-gqa", BF16, BF16, 4, 32, 8, 128, 128, 0, 4096, 4096, 0, 1, -1, 0},
    {BENCH_PREFILL, "prefill-gqa-e4m3", BF16, E4M3, 4, 32, 8, 128, 128, 0, 4096, 4096, 0, 1, -1, 0},
    /* issue 10: long non-causal, d64, d256, MLA prefill 192/128, chunked prefill
     * (512 new queries over a paged prefix of 8192, page 16) */
    {BENCH_PREFILL, "prefill-long", BF16, BF16, 1, 16, 16, 128, 128, 0, 16384, 16384, 0, 0, -1, 0},
    {BENCH_PREFILL, "prefill-d64", BF16, BF16, 8, 16, 16, 64, 64, 0, 2048, 2048, 0, 1, -1, 0},
    {BENCH_PREFILL, "prefill-d256", BF16, BF16, 2, 16, 16, 256, 256, 0, 8192, 8192, 0, 1, -1, 0},
    {BENCH_PREFILL, "prefill-mla", BF16, BF16, 1, 128, 128, 192, 128, 0, 4096, 4096, 0, 1, -1, 0},
    {BENCH_PREFILL, "prefill-chunk", BF16, BF16, 8, 32, 8, 128, 128, 0, 512, 8192, 16, 1, -1, 0},
    {BENCH_PREFILL, "prefill-ragged", BF16, BF16, 16, 32, 8, 128, 128, 0, 4000, 4000, 0, 1, -1, 0},
    {BENCH_DECODE, "decode", BF16, BF16, 64, 32, 8, 128, 128, 0, 1, 4096, 16, 0, -1, 0},
    {BENCH_DECODE, "decode-long", BF16, BF16, 1, 32, 8, 128, 128, 0, 1, 32768, 16, 0, -1, 0},
    {BENCH_DECODE, "decode-b16", BF16, BF16, 16, 32, 8, 128, 128, 0, 1, 8192, 16, 0, -1, 0},
    {BENCH_DECODE, "decode-e4m3", BF16, E4M3, 64, 32, 8, 128, 128, 0, 1, 4096, 16, 0, -1, 0},
    {BENCH_DECODE, "decode-long-e4m3", BF16, E4M3, 1, 32, 8, 128, 128, 0, 1, 32768, 16, 0, -1, 0},
    {BENCH_MLA, "mla", BF16, BF16, 64, 128, 1, 512, 512, 64, 1, 4096, 64, 0, -1, 0},
    {BENCH_MLA, "mla-e4m3", BF16, E4M3, 64, 128, 1, 512, 512, 64, 1, 4096, 64, 0, -1, 0},
    {BENCH_MLA, "mla-b128", BF16, BF16, 128, 128, 1, 512, 512, 64, 1, 8192, 64, 0, -1, 0},
    {BENCH_MLA, "mla-long", BF16, BF16, 1, 128, 1, 512, 512, 64, 1, 32768, 64, 0, -1, 0},
    {BENCH_MLA, "mla-long-e4m3", BF16, E4M3, 1, 128, 1, 512, 512, 64, 1, 32768, 64, 0, -1, 0},
    {BENCH_MLA, "mla-b8", BF16, BF16, 8, 128, 1, 512, 512, 64, 1, 16384, 64, 0, -1, 0},
    {BENCH_MLA, "mla-mtp2", BF16, BF16, 64, 128, 1, 512, 512, 64, 2, 4096, 64, 1, -1, 0},
    {BENCH_MLA, "mla-h16", BF16, BF16, 128, 16, 1, 512, 512, 64, 1, 4096, 64, 0, -1, 0},
    {BENCH_MLA, "mla-ragged", BF16, BF16, 32, 128, 1, 512, 512, 64, 1, 8192, 64, 0, -1, 0},
    {BENCH_MERGE, "merge", F32, F32, 4096, 32, 0, 128, 128, 0, 0, 0, 0, 0, -1, 4},
    {BENCH_GEMM, "gemm-absorb", BF16, BF16, 0, 128, 0, 128, 512, 0, 256, 0, 0, 0, -1, 0},
    {BENCH_APPEND, "append", BF16, E4M3, 4096, 0, 8, 128, 128, 0, 0, 0, 16, 0, -1, 0},
};
static const bench_shape opencl_presets[] = {
    {BENCH_PREFILL, "prefill", F16, F16, 4, 16, 16, 128, 128, 0, 4096, 4096, 0, 1, -1, 0},
    {BENCH_DECODE, "decode", F16, F16, 64, 32, 8, 128, 128, 0, 1, 4096, 16, 0, -1, 0},
    {BENCH_DECODE, "decode-e4m3", F16, E4M3, 64, 32, 8, 128, 128, 0, 1, 4096, 16, 0, -1, 0},
    {BENCH_MLA, "mla", F16, F16, 64, 128, 1, 512, 512, 64, 1, 4096, 64, 0, -1, 0},
    {BENCH_MERGE, "merge", F32, F32, 4096, 32, 0, 128, 128, 0, 0, 0, 0, 0, -1, 4},
    {BENCH_GEMM, "gemm-absorb", F16, F16, 0, 128, 0, 128, 512, 0, 256, 0, 0, 0, -1, 0},
    {BENCH_APPEND, "append", F16, E4M3, 4096, 0, 8, 128, 128, 0, 0, 0, 16, 0, -1, 0},
};

/* Ragged presets: the shortest request (the longest is the shape's skv). */
static const struct {
  const char *label;
  int skv_min;
} ragged_presets[] = {{"mla-ragged", 1024}};

int bench_skv_min(const bench_shape *s) {
  for (size_t i = 0; i < sizeof ragged_presets / sizeof ragged_presets[0]; i++)
    if (s->label && !strcmp(s->label, ragged_presets[i].label))
      return ragged_presets[i].skv_min < s->skv ? ragged_presets[i].skv_min : 0;
  return 0;
}

static const char *kind_names[BENCH_NUM_KINDS] = {"prefill", "decode", "mla",
                                                   "merge",   "gemm",   "append"};

const char *bench_kind_name(bench_kind k) { return kind_names[k]; }

int bench_kind_parse(const char *s, bench_kind *k) {
  for (int i = 0; i < BENCH_NUM_KINDS; i++)
    if (!strcmp(s, kind_names[i])) {
      *k = (bench_kind)i;
      return 1;
    }
  return 0;
}

int bench_presets(bench_kind k, pa_backend backend, const bench_shape **out) {
  const bench_shape *tab = cpu_presets;
  int n = (int)(sizeof cpu_presets / sizeof cpu_presets[0]);
  if (backend == PA_BACKEND_CUDA) {
    tab = cuda_presets;
    n = (int)(sizeof cuda_presets / sizeof cuda_presets[0]);
  } else if (backend == PA_BACKEND_OPENCL) {
    tab = opencl_presets;
    n = (int)(sizeof opencl_presets / sizeof opencl_presets[0]);
  }
  int first = -1, count = 0;
  for (int i = 0; i < n; i++)
    if (tab[i].kind == k) {
      if (first < 0) first = i;
      count++;
    }
  *out = first >= 0 ? &tab[first] : NULL; /* presets of one kind are adjacent */
  return count;
}

void bench_shape_str(const bench_shape *s, char *buf, size_t n, char *key, size_t nkey) {
  const char *dt = pa_dtype_name(s->dtype), *kv = pa_dtype_name(s->kv_dtype);
  switch (s->kind) {
  case BENCH_PREFILL:
  case BENCH_DECODE: {
    char win[32] = "";
    if (s->window >= 0) snprintf(win, sizeof win, " win%d", s->window);
    char dvs[16] = "";
    if (s->dv != s->d) snprintf(dvs, sizeof dvs, "/%d", s->dv);
    char pg[16] = "";
    if (s->page > 0) snprintf(pg, sizeof pg, " pg%d", s->page);
    char rg[16] = "";
    if (bench_ragged_seed(s)) snprintf(rg, sizeof rg, " r%d", bench_ragged_seed(s));
    snprintf(buf, n, "%s/%s b%d h%d/%d d%d%s q%d kv%d%s%s%s%s", dt, kv, s->b, s->hq, s->hkv, s->d,
             dvs, s->sq, s->skv, pg, s->causal ? " causal" : "", win, rg);
    /* page and splits are not in the key: the math is the same without them */
    snprintf(key, nkey, "attn %s kv%s b%d hq%d hkv%d d%d dv%d sq%d skv%d c%d w%d%s", dt, kv, s->b,
             s->hq, s->hkv, s->d, s->dv, s->sq, s->skv, s->causal, s->window, rg);
    break;
  }
  case BENCH_MLA: {
    char kvs[32];
    if (bench_skv_min(s) > 0)
      snprintf(kvs, sizeof kvs, "%d..%d", bench_skv_min(s), s->skv);
    else
      snprintf(kvs, sizeof kvs, "%d", s->skv);
    snprintf(buf, n, "%s/%s b%d h%d dc%d dr%d q%d kv%s pg%d", dt, kv, s->b, s->hq, s->d, s->dr,
             s->sq, kvs, s->page);
    snprintf(key, nkey, "mla %s kv%s b%d h%d dc%d dr%d sq%d skv%s", dt, kv, s->b, s->hq, s->d,
             s->dr, s->sq, kvs);
    break;
  }
  case BENCH_APPEND:
    snprintf(buf, n, "%s->%s t%d hkv%d d%d pg%d", dt, kv, s->b, s->hkv, s->d, s->page);
    snprintf(key, nkey, "append %s kv%s t%d hkv%d d%d dv%d", dt, kv, s->b, s->hkv, s->d, s->dv);
    break;
  case BENCH_MERGE:
    snprintf(buf, n, "%s rows%d h%d d%d states%d", dt, s->b, s->hq, s->d, s->splits);
    snprintf(key, nkey, "merge %s rows%d h%d d%d n%d", dt, s->b, s->hq, s->d, s->splits);
    break;
  default:
    snprintf(buf, n, "%s t%d h%d k%d n%d", dt, s->sq, s->hq, s->d, s->dv);
    snprintf(key, nkey, "gemm %s t%d h%d k%d n%d", dt, s->sq, s->hq, s->d, s->dv);
    break;
  }
}

/* ------------------------------------------------------------------------ */
/* Host data: uniform values, converted exactly (round to nearest even).       */

static uint16_t f32_to_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static uint16_t f32_to_f16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0));
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to inf */
  if (a < 0x38800000u) {                                   /* subnormal or zero in f16 */
    float v;
    memcpy(&v, &a, 4);
    return (uint16_t)(sign | (uint32_t)lrintf(v * 16777216.0f)); /* 2^24 = 1/ulp */
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u; /* rebias 127 -> 15 */
  return (uint16_t)(sign | (r >> 13));
}

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* n elements of dtype, uniform in [-scale, scale); caller frees. */
static void *host_random(pa_dtype dt, size_t n, uint64_t seed, float scale) {
  size_t es = pa_dtype_size(dt);
  unsigned char *p = malloc(n * es + 1);
  if (!p) return NULL;
  for (size_t i = 0; i < n; i++) {
    float v = ((float)(rng_next(&seed) >> 40) / 16777216.0f * 2.0f - 1.0f) * scale;
    if (dt == PA_F32)
      memcpy(p + i * 4, &v, 4);
    else if (dt == PA_FP8_E4M3 || dt == PA_FP8_E5M2)
      p[i] = pa_fp8_encode(dt, v);
    else {
      uint16_t h = dt == PA_F16 ? f32_to_f16(v) : f32_to_bf16(v);
      memcpy(p + i * 2, &h, 2);
    }
  }
  return p;
}

/* ------------------------------------------------------------------------ */
/* One input set: buffers the case rotates through so caches do not flatter it. */

#define MAX_TENSORS 8
#define MAX_SETS 64

typedef struct tspec {
  pa_dtype dt;
  int ndim;
  int64_t shape[4];
  int random; /* 1: fill with random values; 0: leave (outputs) */
  float scale;
} tspec;

typedef struct bench_case {
  pa_context *ctx;
  int nt;
  tspec spec[MAX_TENSORS];
  int sets;
  pa_buffer *buf[MAX_SETS][MAX_TENSORS];
  pa_tensor t[MAX_SETS][MAX_TENSORS];
  /* shared across sets */
  pa_buffer *block_table, *ws, *indptr;
  pa_tensor bt;
  pa_buffer *kv_scale_buf; /* fp8 K/V: one dequantisation scale (1.0) */
  pa_tensor kv_scale;
  pa_buffer *slots_buf; /* append: the slot map (a shuffled permutation) */
  pa_tensor slots;
  pa_plan *plan;
  const bench_shape *s;
} bench_case;

static size_t tspec_count(const tspec *t) {
  size_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= (size_t)t->shape[i];
  return n;
}

static size_t tspec_bytes(const tspec *t) { return tspec_count(t) * pa_dtype_size(t->dt); }

static pa_status fail(bench_result *r, pa_status st, const char *what, pa_context *ctx) {
  r->status = st;
  snprintf(r->error, sizeof r->error, "%s: %s%s%s", what, pa_status_str(st), ctx ? ": " : "",
           ctx ? pa_context_last_error(ctx) : "");
  return st;
}

/* Allocates `sets` copies of every tensor and writes the same random data into each. */
static pa_status alloc_sets(bench_case *c, bench_result *r) {
  for (int k = 0; k < c->nt; k++) {
    size_t bytes = tspec_bytes(&c->spec[k]);
    void *host = c->spec[k].random ? host_random(c->spec[k].dt, tspec_count(&c->spec[k]),
                                                 1234u + (uint64_t)k, c->spec[k].scale)
                                   : NULL;
    if (c->spec[k].random && !host) return fail(r, PA_ERR_OUT_OF_MEMORY, "host data", NULL);
    for (int s = 0; s < c->sets; s++) {
      pa_status st = pa_buffer_create(c->ctx, bytes ? bytes : 1, &c->buf[s][k]);
      if (st != PA_OK) {
        free(host);
        return fail(r, st, "pa_buffer_create", c->ctx);
      }
      if (host) pa_buffer_write(c->buf[s][k], 0, host, bytes);
      pa_tensor_init(&c->t[s][k], c->buf[s][k], 0, c->spec[k].dt, c->spec[k].ndim,
                     c->spec[k].shape);
    }
    free(host);
  }
  return PA_OK;
}

static void free_case(bench_case *c) {
  for (int s = 0; s < MAX_SETS; s++)
    for (int k = 0; k < MAX_TENSORS; k++) pa_buffer_destroy(c->buf[s][k]);
  pa_buffer_destroy(c->block_table);
  pa_buffer_destroy(c->kv_scale_buf);
  pa_buffer_destroy(c->slots_buf);
  pa_buffer_destroy(c->ws);
  pa_buffer_destroy(c->indptr);
  pa_plan_destroy(c->plan);
}

/* Sets to rotate through: enough that one pass exceeds twice the largest cache
 * (host LLC on the CPU, 256 MiB on GPUs, more than any L2), at most 1 GiB. */
static int choose_sets(const bench_opts *o, size_t set_bytes) {
  if (o->rotate > 0) return o->rotate < MAX_SETS ? o->rotate : MAX_SETS;
  size_t target = (size_t)256 << 20;
  if (o->backend == PA_BACKEND_CPU) {
    long llc = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    llc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    target = llc > 0 ? 2 * (size_t)llc : (size_t)64 << 20;
    if (target > ((size_t)1 << 30)) target = (size_t)1 << 30;
  }
  size_t n = set_bytes ? (target + set_bytes - 1) / set_bytes : 1;
  if (n * set_bytes > ((size_t)1 << 30) && n > 1) n = ((size_t)1 << 30) / set_bytes;
  if (n < 1) n = 1;
  return n > MAX_SETS ? MAX_SETS : (int)n;
}

/* ------------------------------------------------------------------------ */
/* Counting: visible (query, key) pairs of one request under the mask rule.    */

static void visible_pairs(const bench_shape *s, int64_t sq, int64_t skv, double *pairs,
                          int64_t *key_lo, int64_t *key_hi) {
  int64_t off = skv - sq, lo_all = skv, hi_all = -1;
  double p = 0;
  for (int64_t i = 0; i < sq; i++) {
    int64_t lo = 0, hi = skv - 1, diag = i + off;
    if (s->causal && hi > diag) hi = diag;
    if (s->window >= 0 && lo < diag - s->window) lo = diag - s->window;
    if (hi >= lo) {
      p += (double)(hi - lo + 1);
      if (lo < lo_all) lo_all = lo;
      if (hi > hi_all) hi_all = hi;
    }
  }
  *pairs = p;
  *key_lo = lo_all;
  *key_hi = hi_all;
}

/* ------------------------------------------------------------------------ */
/* Per-kind setup and run.                                                     */

enum { T_Q, T_K, T_V, T_O };            /* attention */
enum { M_QN, M_QP, M_CKV, M_KPE, M_O }; /* mla */

static pa_status run_one(bench_case *c, int set) {
  const bench_shape *s = c->s;
  pa_tensor *t = c->t[set];
  switch (s->kind) {
  case BENCH_PREFILL:
  case BENCH_DECODE: {
    pa_attention_args a;
    memset(&a, 0, sizeof a);
    a.q = t[T_Q];
    a.k = t[T_K];
    a.v = t[T_V];
    a.out = t[T_O];
    if (s->page > 0) a.block_table = c->bt;
    if (c->kv_scale_buf) a.k_scale = a.v_scale = c->kv_scale;
    return pa_attention_run(c->plan, &a, c->ws);
  }
  case BENCH_MLA: {
    pa_mla_args a;
    memset(&a, 0, sizeof a);
    a.q_nope = t[M_QN];
    a.q_pe = t[M_QP];
    a.ckv = t[M_CKV];
    a.kpe = t[M_KPE];
    a.out = t[M_O];
    a.block_table = c->bt;
    if (c->kv_scale_buf) a.kv_scale = c->kv_scale;
    return pa_mla_run(c->plan, &a, c->ws);
  }
  case BENCH_MERGE: {
    pa_tensor lse_out = t[3];
    return pa_merge_states(c->ctx, &t[0], &t[1], &t[2], &lse_out);
  }
  case BENCH_APPEND: {
    pa_kv_append_args a;
    memset(&a, 0, sizeof a);
    a.k = t[0], a.v = t[1], a.k_cache = t[2], a.v_cache = t[3];
    a.slot_mapping = c->slots;
    if (c->kv_scale_buf) a.k_scale = a.v_scale = c->kv_scale;
    return pa_kv_append(c->ctx, &a);
  }
  default: return pa_head_gemm(c->ctx, &t[0], &t[1], &t[2]);
  }
}

/* fp8 K/V need a scale tensor: one f32 1.0 (the codes hold values in [-1, 1]). */
static pa_status make_kv_scale(bench_case *c, bench_result *r, pa_dtype kv) {
  if (kv != PA_FP8_E4M3 && kv != PA_FP8_E5M2) return PA_OK;
  const float one = 1.0f;
  const int64_t shape[1] = {1};
  pa_status st = pa_buffer_create(c->ctx, sizeof one, &c->kv_scale_buf);
  if (st == PA_OK) st = pa_buffer_write(c->kv_scale_buf, 0, &one, sizeof one);
  if (st == PA_OK) st = pa_tensor_init(&c->kv_scale, c->kv_scale_buf, 0, PA_F32, 1, shape);
  return st == PA_OK ? PA_OK : fail(r, st, "kv scale", c->ctx);
}

static pa_status make_block_table(bench_case *c, bench_result *r, int b, int64_t ppr) {
  int64_t np = (int64_t)b * ppr;
  int32_t *bt = malloc((size_t)(np > 0 ? np : 1) * sizeof(int32_t));
  if (!bt) return fail(r, PA_ERR_OUT_OF_MEMORY, "block table", NULL);
  /* pages handed out in a shuffled order, as a serving engine's allocator would */
  uint64_t seed = 99;
  for (int64_t i = 0; i < np; i++) bt[i] = (int32_t)i;
  for (int64_t i = np - 1; i > 0; i--) {
    int64_t j = (int64_t)(rng_next(&seed) % (uint64_t)(i + 1));
    int32_t tmp = bt[i];
    bt[i] = bt[j];
    bt[j] = tmp;
  }
  size_t bytes = (size_t)(np > 0 ? np : 1) * sizeof(int32_t);
  pa_status st = pa_buffer_create(c->ctx, bytes, &c->block_table);
  if (st == PA_OK) st = pa_buffer_write(c->block_table, 0, bt, bytes);
  free(bt);
  if (st != PA_OK) return fail(r, st, "block table", c->ctx);
  int64_t shape[2] = {b, ppr};
  pa_tensor_init(&c->bt, c->block_table, 0, PA_I32, 2, shape);
  return PA_OK;
}

int bench_ragged_seed(const bench_shape *s) {
  return s->kind == BENCH_PREFILL && s->label && !strcmp(s->label, "prefill-ragged") ? 7 : 0;
}

int bench_ragged_len(int seed, int i) {
  uint64_t x = (uint64_t)seed;
  for (int k = 0; k <= i; k++) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return 100 + (int)((x >> 33) % 3901u);
}

/* Every request of a case has sq queries and skv keys (a ragged preset: its
 * drawn lengths); caller frees both. */
static bool uniform_lengths(const bench_shape *s, int32_t **lq, int32_t **lk) {
  *lq = malloc((size_t)s->b * sizeof(int32_t));
  *lk = malloc((size_t)s->b * sizeof(int32_t));
  if (!*lq || !*lk) {
    free(*lq);
    free(*lk);
    return false;
  }
  const int lo = bench_skv_min(s);
  const int seed = bench_ragged_seed(s);
  uint32_t x = 12345u; /* ragged: the same lengths in every run */
  for (int i = 0; i < s->b; i++) {
    (*lq)[i] = seed ? bench_ragged_len(seed, i) : s->sq;
    (*lk)[i] = seed ? bench_ragged_len(seed, i) : s->skv;
    if (lo > 0) {
      x = x * 1664525u + 1013904223u;
      (*lk)[i] = lo + (int32_t)((x >> 8) % (uint32_t)(s->skv - lo + 1));
    }
  }
  return true;
}

static pa_status setup_attention(bench_case *c, const bench_opts *o, const bench_shape *s,
                                 bench_result *r) {
  int64_t tq = (int64_t)s->b * s->sq, tk = (int64_t)s->b * s->skv;
  int64_t ppr = s->page > 0 ? (s->skv + s->page - 1) / s->page : 0;
  const int seed = bench_ragged_seed(s);
  if (seed) { /* contiguous ragged batch: the drawn lengths' tokens */
    tq = tk = 0;
    for (int i = 0; i < s->b; i++) tq = tk += bench_ragged_len(seed, i);
  }
  c->nt = 4;
  c->spec[T_Q] = (tspec){s->dtype, 3, {tq, s->hq, s->d, 0}, 1, 1.0f};
  if (s->page > 0) {
    int64_t np = (int64_t)s->b * ppr;
    c->spec[T_K] = (tspec){s->kv_dtype, 4, {np, s->page, s->hkv, s->d}, 1, 1.0f};
    c->spec[T_V] = (tspec){s->kv_dtype, 4, {np, s->page, s->hkv, s->dv}, 1, 1.0f};
  } else {
    c->spec[T_K] = (tspec){s->kv_dtype, 3, {tk, s->hkv, s->d, 0}, 1, 1.0f};
    c->spec[T_V] = (tspec){s->kv_dtype, 3, {tk, s->hkv, s->dv, 0}, 1, 1.0f};
  }
  c->spec[T_O] = (tspec){s->dtype, 3, {tq, s->hq, s->dv, 0}, 0, 0};
  size_t set_bytes = 0;
  for (int k = 0; k < c->nt; k++) set_bytes += tspec_bytes(&c->spec[k]);
  c->sets = choose_sets(o, set_bytes);
  pa_status st = alloc_sets(c, r);
  if (st != PA_OK) return st;
  if (s->page > 0 && (st = make_block_table(c, r, s->b, ppr)) != PA_OK) return st;
  if ((st = make_kv_scale(c, r, s->kv_dtype)) != PA_OK) return st;

  pa_attention_desc d;
  pa_attention_desc_init(&d, s->hq, s->hkv, s->d, s->dtype);
  d.head_dim_v = s->dv;
  d.kv_dtype = s->kv_dtype;
  d.causal = s->causal;
  d.window_left = s->window;
  d.page_size = s->page;
  d.num_splits = s->splits;
  int32_t *lq, *lk;
  if (!uniform_lengths(s, &lq, &lk)) return fail(r, PA_ERR_OUT_OF_MEMORY, "seqlens", NULL);
  pa_batch batch = {s->b, lq, lk, NULL, NULL};
  st = pa_attention_plan(c->ctx, &d, &batch, &c->plan);
  free(lq);
  free(lk);
  if (st != PA_OK) return fail(r, st, "pa_attention_plan", c->ctx);

  double pairs = 0, keys = 0;
  for (int i = 0; i < (seed ? s->b : 1); i++) {
    int len = seed ? bench_ragged_len(seed, i) : 0;
    double pr;
    int64_t lo, hi;
    visible_pairs(s, len ? len : s->sq, len ? len : s->skv, &pr, &lo, &hi);
    pairs += pr;
    keys += hi >= lo ? (double)(hi - lo + 1) : 0;
  }
  const double per = seed ? 1.0 : (double)s->b; /* ragged: sums over requests */
  r->flops = per * s->hq * pairs * 2.0 * (s->d + s->dv);
  r->bytes = (double)tq * s->hq * (s->d + s->dv) * (double)pa_dtype_size(s->dtype) +
             per * keys * s->hkv * (s->d + s->dv) * (double)pa_dtype_size(s->kv_dtype);
  return PA_OK;
}

static pa_status setup_mla(bench_case *c, const bench_opts *o, const bench_shape *s,
                           bench_result *r) {
  int64_t tq = (int64_t)s->b * s->sq;
  int64_t ppr = (s->skv + s->page - 1) / (s->page > 0 ? s->page : 1), np = (int64_t)s->b * ppr;
  c->nt = 5;
  c->spec[M_QN] = (tspec){s->dtype, 3, {tq, s->hq, s->d, 0}, 1, 1.0f};
  c->spec[M_QP] = (tspec){s->dtype, 3, {tq, s->hq, s->dr, 0}, 1, 1.0f};
  c->spec[M_CKV] = (tspec){s->kv_dtype, 3, {np, s->page, s->d, 0}, 1, 1.0f};
  c->spec[M_KPE] = (tspec){s->kv_dtype, 3, {np, s->page, s->dr, 0}, 1, 1.0f};
  c->spec[M_O] = (tspec){s->dtype, 3, {tq, s->hq, s->d, 0}, 0, 0};
  size_t set_bytes = 0;
  for (int k = 0; k < c->nt; k++) set_bytes += tspec_bytes(&c->spec[k]);
  c->sets = choose_sets(o, set_bytes);
  pa_status st = alloc_sets(c, r);
  if (st != PA_OK || (st = make_block_table(c, r, s->b, ppr)) != PA_OK) return st;
  if ((st = make_kv_scale(c, r, s->kv_dtype)) != PA_OK) return st;

  pa_mla_desc d;
  memset(&d, 0, sizeof d);
  d.num_heads = s->hq;
  d.head_dim_ckv = s->d;
  d.head_dim_kpe = s->dr;
  d.q_dtype = d.o_dtype = s->dtype;
  d.kv_dtype = s->kv_dtype;
  d.page_size = s->page;
  d.causal = s->sq > 1;
  d.num_splits = s->splits;
  int32_t *lq, *lk;
  if (!uniform_lengths(s, &lq, &lk)) return fail(r, PA_ERR_OUT_OF_MEMORY, "seqlens", NULL);
  pa_batch batch = {s->b, lq, lk, NULL, NULL};
  st = pa_mla_plan(c->ctx, &d, &batch, &c->plan);
  bench_shape causal = *s;
  causal.causal = s->sq > 1;
  causal.window = -1;
  double pairs = 0, keys = 0; /* summed over the requests (ragged) */
  for (int i = 0; i < s->b; i++) {
    double p;
    int64_t lo, hi;
    visible_pairs(&causal, s->sq, lk[i], &p, &lo, &hi);
    pairs += p;
    keys += lk[i];
  }
  free(lq);
  free(lk);
  if (st != PA_OK) return fail(r, st, "pa_mla_plan", c->ctx);
  r->flops = (double)s->hq * pairs * 2.0 * (s->d + s->dr + s->d);
  r->bytes = (double)tq * s->hq * (s->d + s->dr + s->d) * (double)pa_dtype_size(s->dtype) +
             keys * (s->d + s->dr) * (double)pa_dtype_size(s->kv_dtype);
  return PA_OK;
}

static pa_status setup_merge(bench_case *c, const bench_opts *o, const bench_shape *s,
                             bench_result *r) {
  int64_t T = s->b, N = s->splits > 0 ? s->splits : 2, H = s->hq, D = s->d;
  c->nt = 4;
  c->spec[0] = (tspec){s->dtype, 4, {T, N, H, D}, 1, 1.0f};
  c->spec[1] = (tspec){PA_F32, 3, {T, N, H, 0}, 1, 4.0f};
  c->spec[2] = (tspec){s->dtype, 3, {T, H, D, 0}, 0, 0};
  c->spec[3] = (tspec){PA_F32, 2, {T, H, 0, 0}, 0, 0};
  size_t set_bytes = 0;
  for (int k = 0; k < c->nt; k++) set_bytes += tspec_bytes(&c->spec[k]);
  c->sets = choose_sets(o, set_bytes);
  pa_status st = alloc_sets(c, r);
  if (st != PA_OK) return st;
  double es = (double)pa_dtype_size(s->dtype);
  r->flops = (double)T * N * H * D * 2.0;
  r->bytes = (double)T * N * H * (D * es + 4) + (double)T * H * (D * es + 4);
  return PA_OK;
}

/* T new tokens into caches of exactly T slots, in a shuffled order (an
 * engine's free pages); bytes: the tokens read, the cache rows written. */
static pa_status setup_append(bench_case *c, const bench_opts *o, const bench_shape *s,
                              bench_result *r) {
  const int64_t T = s->b, H = s->hkv, ps = s->page > 0 ? s->page : 16, P = (T + ps - 1) / ps;
  c->nt = 4;
  c->spec[0] = (tspec){s->dtype, 3, {T, H, s->d, 0}, 1, 1.0f};
  c->spec[1] = (tspec){s->dtype, 3, {T, H, s->dv, 0}, 1, 1.0f};
  c->spec[2] = (tspec){s->kv_dtype, 4, {P, ps, H, s->d}, 0, 0};
  c->spec[3] = (tspec){s->kv_dtype, 4, {P, ps, H, s->dv}, 0, 0};
  size_t set_bytes = 0;
  for (int k = 0; k < c->nt; k++) set_bytes += tspec_bytes(&c->spec[k]);
  c->sets = choose_sets(o, set_bytes);
  pa_status st = alloc_sets(c, r);
  if (st != PA_OK || (st = make_kv_scale(c, r, s->kv_dtype)) != PA_OK) return st;
  int32_t *map = malloc((size_t)(T > 0 ? T : 1) * sizeof(int32_t));
  if (!map) return fail(r, PA_ERR_OUT_OF_MEMORY, "slot map", NULL);
  uint64_t seed = 7;
  for (int64_t i = 0; i < T; i++) map[i] = (int32_t)i;
  for (int64_t i = T - 1; i > 0; i--) {
    int64_t j = (int64_t)(rng_next(&seed) % (uint64_t)(i + 1));
    int32_t x = map[i];
    map[i] = map[j], map[j] = x;
  }
  const size_t bytes = (size_t)(T > 0 ? T : 1) * sizeof(int32_t);
  const int64_t shape[1] = {T};
  st = pa_buffer_create(c->ctx, bytes, &c->slots_buf);
  if (st == PA_OK) st = pa_buffer_write(c->slots_buf, 0, map, bytes);
  if (st == PA_OK) st = pa_tensor_init(&c->slots, c->slots_buf, 0, PA_I32, 1, shape);
  free(map);
  if (st != PA_OK) return fail(r, st, "slot map", c->ctx);
  r->flops = 0;
  r->bytes = (double)T * H * (s->d + s->dv) *
                 (double)(pa_dtype_size(s->dtype) + pa_dtype_size(s->kv_dtype)) +
             4.0 * (double)T;
  return PA_OK;
}

static pa_status setup_gemm(bench_case *c, const bench_opts *o, const bench_shape *s,
                            bench_result *r) {
  int64_t T = s->sq, H = s->hq, K = s->d, N = s->dv;
  c->nt = 3;
  c->spec[0] = (tspec){s->dtype, 3, {T, H, K, 0}, 1, 1.0f};
  c->spec[1] = (tspec){s->dtype, 3, {H, K, N, 0}, 1, 0.1f};
  c->spec[2] = (tspec){s->dtype, 3, {T, H, N, 0}, 0, 0};
  size_t set_bytes = 0;
  for (int k = 0; k < c->nt; k++) set_bytes += tspec_bytes(&c->spec[k]);
  c->sets = choose_sets(o, set_bytes);
  pa_status st = alloc_sets(c, r);
  if (st != PA_OK) return st;
  double es = (double)pa_dtype_size(s->dtype);
  r->flops = 2.0 * T * H * K * N;
  r->bytes = ((double)T * H * K + (double)H * K * N + (double)T * H * N) * es;
  return PA_OK;
}

/* ------------------------------------------------------------------------ */
/* Timing: warm up, calibrate so one sample lasts >= 1 ms on a GPU (a single
 * run on the CPU, which executes at once), median of the samples; every
 * sample ends with pa_context_synchronize. */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

pa_status bench_run_case(pa_context *ctx, const bench_opts *o, const bench_shape *s,
                         bench_result *r) {
  memset(r, 0, sizeof *r);
  r->shape = *s;
  bench_shape_str(s, r->shape_str, sizeof r->shape_str, r->key, sizeof r->key);
  bench_case *c = calloc(1, sizeof *c);
  if (!c) return fail(r, PA_ERR_OUT_OF_MEMORY, "case", NULL);
  c->ctx = ctx;
  c->s = s;
  pa_status st;
  switch (s->kind) {
  case BENCH_PREFILL:
  case BENCH_DECODE: st = setup_attention(c, o, s, r); break;
  case BENCH_MLA: st = setup_mla(c, o, s, r); break;
  case BENCH_MERGE: st = setup_merge(c, o, s, r); break;
  case BENCH_APPEND: st = setup_append(c, o, s, r); break;
  default: st = setup_gemm(c, o, s, r); break;
  }
  if (st != PA_OK) goto done;
  r->sets = c->sets;
  if (c->plan) {
    r->splits_chosen = pa_plan_num_splits(c->plan, 0);
    snprintf(r->kernel, sizeof r->kernel, "%s", pa_plan_kernel_name(c->plan));
    size_t ws = pa_plan_workspace_size(c->plan);
    if (ws > 0 && (st = pa_buffer_create(ctx, ws, &c->ws)) != PA_OK) {
      fail(r, st, "workspace", ctx);
      goto done;
    }
  }

  int set = 0;
  for (int i = 0; i < (o->warmup > 0 ? o->warmup : 1); i++) {
    if ((st = run_one(c, set++ % c->sets)) != PA_OK) {
      fail(r, st, "run", ctx);
      goto done;
    }
  }
  if ((st = pa_context_synchronize(ctx)) != PA_OK) {
    fail(r, st, "synchronize", ctx);
    goto done;
  }
  double t0 = bench_now();
  run_one(c, set++ % c->sets);
  pa_context_synchronize(ctx);
  double one = bench_now() - t0;
  int reps = 1;
  if (o->backend != PA_BACKEND_CPU && one < 1e-3)
    reps = (int)(1e-3 / (one > 1e-7 ? one : 1e-7)) + 1;
  if (reps > 1000) reps = 1000;

  int n = o->iters > 0 ? o->iters : 10;
  double *ms = malloc((size_t)n * sizeof(double));
  if (!ms) {
    fail(r, PA_ERR_OUT_OF_MEMORY, "samples", NULL);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    t0 = bench_now();
    for (int k = 0; k < reps; k++) st = run_one(c, set++ % c->sets);
    pa_status sy = pa_context_synchronize(ctx);
    ms[i] = (bench_now() - t0) * 1e3 / reps;
    if (st != PA_OK || sy != PA_OK) {
      fail(r, st != PA_OK ? st : sy, "run", ctx);
      free(ms);
      goto done;
    }
  }
  qsort(ms, (size_t)n, sizeof(double), cmp_double);
  r->ms_median = n % 2 ? ms[n / 2] : 0.5 * (ms[n / 2 - 1] + ms[n / 2]);
  r->ms_min = ms[0];
  r->ms_max = ms[n - 1];
  r->samples = n;
  r->reps = reps;
  r->status = PA_OK;
  free(ms);
done:
  free_case(c);
  free(c);
  return r->status;
}

/* pa-bench internals: the shape of a case, its result, the machine's ceilings. */
#ifndef PA_BENCH_H
#define PA_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "polyattn.h"

typedef enum bench_kind {
  BENCH_PREFILL = 0,
  BENCH_DECODE,
  BENCH_MLA,
  BENCH_MERGE,
  BENCH_GEMM,
  BENCH_APPEND,
  BENCH_NUM_KINDS
} bench_kind;

/* One shape. Fields are reused per kind:
 *   prefill/decode: b, hq, hkv, d (qk), dv, sq, skv, page (0: contiguous), causal, window
 *   mla:   b, hq heads, d = Dc (ckv), dr = Dr (kpe), sq query tokens per request, skv, page
 *   merge: b = rows, hq = heads, d = dim, splits = states merged per row
 *   gemm:  sq = tokens, hq = heads, d = K, dv = N  (pa_head_gemm)
 *   append: b = tokens, hkv heads, d (k), dv (v), page; dtype = the new
 *          tokens', kv_dtype = the cache's (pa_kv_append) */
typedef struct bench_shape {
  bench_kind kind;
  const char *label; /* preset name, e.g. "decode-long" */
  pa_dtype dtype, kv_dtype;
  int b, hq, hkv, d, dv, dr, sq, skv, page, causal, window, splits;
} bench_shape;

/* > 0 for a ragged preset (by label): request i's keys drawn from
 * [bench_skv_min, skv] with a fixed seed; 0 otherwise. */
int bench_skv_min(const bench_shape *s);
/* A ragged prefill preset ("prefill-ragged": b requests of sq = skv =
 * 100..4000 tokens, sq and skv in the shape being the longest allowed): the
 * seed its lengths are drawn from, else 0; bench_ragged_len draws length i
 * (bench/peers/sdpa.py draws the same). */
int bench_ragged_seed(const bench_shape *s);
int bench_ragged_len(int seed, int i);

typedef struct bench_opts {
  pa_backend backend;
  int device;
  int threads; /* 0: all cores */
  int iters;   /* timed samples */
  int warmup;
  int rotate; /* input sets to rotate through; 0: auto (beat the caches) */
  const char *json_path;
  int verbose;
  const char *options; /* pa_context_desc.options */
} bench_opts;

typedef struct bench_result {
  bench_shape shape;
  char shape_str[192];
  char key[192]; /* joins pa-bench and peer JSON (bench/peers/compare.py) */
  pa_status status;
  char error[256];
  double ms_median, ms_min, ms_max;
  int samples, reps, sets;
  double flops;      /* per run, counted honestly (visible pairs only) */
  double bytes;      /* per run: inputs read once + outputs written once */
  int splits_chosen; /* request 0's KV splits (attention/mla) */
  char kernel[64];   /* the plan's kernel (attention/mla) */
  double unfused_ms; /* OpenCL prefill: the CLBlast unfused baseline (0: not run) */
} bench_result;

/* Ceilings measured on this machine, in this run. */
typedef struct bench_ceilings {
  double flops; /* FLOP/s: CPU f32 FMA, CUDA cuBLAS bf16 GEMM, OpenCL f32 FMA */
  char flops_what[96];
  double read_bw;    /* B/s of a read stream (0: not measured) */
  double copy_bw;    /* B/s of a copy, read + write bytes counted */
  double gemm_flops; /* OpenCL: CLBlast SGEMM FLOP/s (0: not measured) */
  double bw;         /* the bandwidth the %bw column divides by */
  char bw_what[64];
  char note[160];
} bench_ceilings;

/* cases.c */
const char *bench_kind_name(bench_kind k);
int bench_kind_parse(const char *s, bench_kind *k);
/* The presets of a kind for a backend (issue floors first); returns the count. */
int bench_presets(bench_kind k, pa_backend backend, const bench_shape **out);
void bench_shape_str(const bench_shape *s, char *buf, size_t n, char *key, size_t nkey);
/* Builds inputs, plans, times; fills r. Returns r->status. */
pa_status bench_run_case(pa_context *ctx, const bench_opts *o, const bench_shape *s,
                         bench_result *r);

/* ceilings_cpu.c / ceilings_cuda.c / ceilings_opencl.c */
void bench_ceilings_cpu(int threads, bench_ceilings *c);
#ifdef PA_HAVE_CUDA
void bench_ceilings_cuda(pa_context *ctx, bench_ceilings *c);
#endif
#ifdef PA_HAVE_OPENCL
void bench_ceilings_opencl(pa_context *ctx, bench_ceilings *c);
/* The unfused CLBlast baseline of a prefill shape (f32): seconds per run, or < 0. */
double bench_opencl_unfused_prefill(pa_context *ctx, const bench_shape *s, int iters, char *err,
                                    size_t nerr);
#endif

/* json.c: a tiny writer, enough for flat records. */
typedef struct bench_json {
  FILE *f;
  int depth;
  int first[16];
} bench_json;
void json_begin_obj(bench_json *j, const char *key);
void json_end_obj(bench_json *j);
void json_begin_arr(bench_json *j, const char *key);
void json_end_arr(bench_json *j);
void json_str(bench_json *j, const char *key, const char *v);
void json_num(bench_json *j, const char *key, double v);
void json_int(bench_json *j, const char *key, long long v);

/* timing */
double bench_now(void); /* seconds, monotonic */

#endif

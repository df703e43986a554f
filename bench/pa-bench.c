/* pa-bench: times polyattn's operations on one backend and sets each figure
 * beside the machine's own ceilings, measured in the same run.
 *
 *   pa-bench [prefill|decode|mla|merge|gemm|append|all ...] [--backend cpu|cuda|opencl]
 *            [--dtype f32|f16|bf16] [--kv-dtype ..] [-b N] [--hq N] [--hkv N] [-d N]
 *            [--dv N] [--dr N] [--sq N] [--skv N] [--page N] [--causal 0|1]
 *            [--window N] [--splits N] [--iters N] [--warmup N] [--rotate N]
 *            [--threads N] [--device N] [--options K=V,..] [--no-ceilings] [--json FILE]
 *
 * With no shape flag a case runs its presets (the floors); with any,
 * it runs once: the first preset with those fields replaced. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "cp_cli.h"

double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void usage(void) {
  fputs("usage: pa-bench [prefill|decode|mla|merge|gemm|append|all ...] [options]\n"
        "       pa-bench cp-decode|cp-prefill --ranks R ... (context parallelism; --help)\n"
        "  --backend cpu|cuda|opencl|auto   (default auto)\n"
        "  --dtype f32|f16|bf16  --kv-dtype f32|f16|bf16|e4m3|e5m2\n"
        "  -b N  --hq N  --hkv N  -d N  --dv N  --dr N (MLA rope dim)\n"
        "  --sq N  --skv N  --page N (0: contiguous)  --causal 0|1  --window N  --splits N\n"
        "  --iters N (timed samples, default 10)  --warmup N (default 3)\n"
        "  --rotate N (input sets; default: enough to beat the caches)\n"
        "  --threads N (CPU; 0 = all)  --device N  --no-ceilings  --json FILE\n"
        "  --options K=V,.. (context options, README: Configuration)\n"
        "merge: -b rows, --hq heads, -d dim, --splits states.  gemm: --sq tokens, --hq heads,\n"
        "-d K, --dv N.  mla: --hq heads, -d Dc, --dr Dr.\n",
        stderr);
}

static int parse_dtype(const char *s, pa_dtype *t) {
  if (!strcmp(s, "f32"))
    *t = PA_F32;
  else if (!strcmp(s, "f16"))
    *t = PA_F16;
  else if (!strcmp(s, "bf16"))
    *t = PA_BF16;
  else if (!strcmp(s, "e4m3"))
    *t = PA_FP8_E4M3;
  else if (!strcmp(s, "e5m2"))
    *t = PA_FP8_E5M2;
  else
    return 0;
  return 1;
}

/* Shape overrides from the command line; -2 means "not given". */
typedef struct overrides {
  int any, dtype_set, kv_set;
  pa_dtype dtype, kv_dtype;
  int b, hq, hkv, d, dv, dr, sq, skv, page, causal, window, splits;
} overrides;

static void apply(const overrides *v, bench_shape *s) {
  if (v->dtype_set) s->dtype = v->dtype;
  if (v->kv_set)
    s->kv_dtype = v->kv_dtype;
  else if (v->dtype_set)
    s->kv_dtype = v->dtype;
  int *dst[] = {&s->b,  &s->hq,  &s->hkv,  &s->d,      &s->dv,     &s->dr,
                &s->sq, &s->skv, &s->page, &s->causal, &s->window, &s->splits};
  const int src[] = {v->b,  v->hq,  v->hkv,  v->d,      v->dv,     v->dr,
                     v->sq, v->skv, v->page, v->causal, v->window, v->splits};
  for (int i = 0; i < 12; i++)
    if (src[i] != -2) *dst[i] = src[i];
  /* -d alone keeps dv equal to it for attention (the common case) */
  if (v->d != -2 && v->dv == -2 && s->kind != BENCH_MLA && s->kind != BENCH_GEMM) s->dv = v->d;
  if (v->hq != -2 && v->hkv == -2 && s->hkv > 0 && s->hq % s->hkv) s->hkv = s->hq;
  s->label = "custom";
}

static void print_ceilings(const bench_ceilings *c) {
  printf("ceilings: %.1f GFLOP/s %s", c->flops * 1e-9, c->flops_what);
  if (c->read_bw > 0) printf("; read %.1f GB/s", c->read_bw * 1e-9);
  if (c->copy_bw > 0) printf("; copy %.1f GB/s", c->copy_bw * 1e-9);
  if (c->gemm_flops > 0) printf("; CLBlast SGEMM %.1f GFLOP/s", c->gemm_flops * 1e-9);
  printf("\n  %%peak divides by the FLOP ceiling, %%bw by the %s bandwidth%s%s\n", c->bw_what,
         c->note[0] ? "; " : "", c->note);
}

static void print_row(const bench_result *r, const bench_ceilings *c) {
  if (r->status != PA_OK) {
    printf("%-12s %-48s  FAILED %s\n", r->shape.label, r->shape_str, r->error);
    return;
  }
  double sec = r->ms_median * 1e-3, tf = r->flops / sec, bw = r->bytes / sec;
  printf("%-12s %-48s %10.3f %9.3f %9.3f %9.1f %6.1f%% %6.1f%% %5d\n", r->shape.label, r->shape_str,
         r->ms_median, r->ms_min, tf * 1e-12, bw * 1e-9, c->flops > 0 ? 100.0 * tf / c->flops : 0.0,
         c->bw > 0 ? 100.0 * bw / c->bw : 0.0, r->splits_chosen);
}

static void write_json(const char *path, const bench_opts *o, const pa_device_info *info,
                       const bench_ceilings *c, const bench_ceilings *after,
                       const bench_result *res, int n) {
  FILE *f = fopen(path, "w");
  if (!f) {
    fprintf(stderr, "pa-bench: cannot write %s\n", path);
    return;
  }
  bench_json j = {f, 0, {0}};
  char date[64];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
  json_begin_obj(&j, NULL);
  json_str(&j, "tool", "pa-bench");
  json_str(&j, "version", PA_VERSION_STRING);
  json_str(&j, "date", date);
  json_str(&j, "backend", pa_backend_name(info->backend));
  json_str(&j, "device", info->name);
  json_str(&j, "features", info->features);
  json_int(&j, "compute_units", info->compute_units);
  json_int(&j, "threads", o->threads);
  json_str(&j, "options", o->options ? o->options : "");
  json_begin_obj(&j, "ceilings");
  json_num(&j, "flops", c->flops);
  json_str(&j, "flops_what", c->flops_what);
  json_num(&j, "read_bw", c->read_bw);
  json_num(&j, "copy_bw", c->copy_bw);
  json_num(&j, "gemm_flops", c->gemm_flops);
  json_num(&j, "bw", c->bw);
  json_str(&j, "bw_what", c->bw_what);
  json_str(&j, "note", c->note);
  json_end_obj(&j);
  if (after->flops > 0) { /* CPU: measured again after the cases (shared machines drift) */
    json_begin_obj(&j, "ceilings_after");
    json_num(&j, "flops", after->flops);
    json_num(&j, "read_bw", after->read_bw);
    json_end_obj(&j);
  }
  json_begin_arr(&j, "results");
  for (int i = 0; i < n; i++) {
    const bench_result *r = &res[i];
    const bench_shape *s = &r->shape;
    json_begin_obj(&j, NULL);
    json_str(&j, "case", bench_kind_name(s->kind));
    json_str(&j, "label", s->label);
    json_str(&j, "key", r->key);
    json_str(&j, "shape", r->shape_str);
    json_str(&j, "dtype", pa_dtype_name(s->dtype));
    json_str(&j, "kv_dtype", pa_dtype_name(s->kv_dtype));
    const char *names[] = {"b",  "hq",  "hkv",  "d",      "dv",     "dr",
                           "sq", "skv", "page", "causal", "window", "splits"};
    const int vals[] = {s->b,  s->hq,  s->hkv,  s->d,      s->dv,     s->dr,
                        s->sq, s->skv, s->page, s->causal, s->window, s->splits};
    for (int k = 0; k < 12; k++) json_int(&j, names[k], vals[k]);
    if (bench_skv_min(s) > 0) json_int(&j, "skv_min", bench_skv_min(s));
    if (bench_ragged_seed(s)) json_int(&j, "ragged", bench_ragged_seed(s));
    json_str(&j, "status", pa_status_str(r->status));
    if (r->status != PA_OK) {
      json_str(&j, "error", r->error);
    } else {
      double sec = r->ms_median * 1e-3;
      json_num(&j, "ms_median", r->ms_median);
      json_num(&j, "ms_min", r->ms_min);
      json_num(&j, "ms_max", r->ms_max);
      json_int(&j, "samples", r->samples);
      json_int(&j, "reps_per_sample", r->reps);
      json_int(&j, "input_sets", r->sets);
      json_int(&j, "splits_chosen", r->splits_chosen);
      json_str(&j, "kernel", r->kernel);
      json_num(&j, "flops", r->flops);
      json_num(&j, "bytes", r->bytes);
      json_num(&j, "tflops", r->flops / sec * 1e-12);
      json_num(&j, "gbs", r->bytes / sec * 1e-9);
      json_num(&j, "frac_peak", c->flops > 0 ? r->flops / sec / c->flops : 0);
      json_num(&j, "frac_bw", c->bw > 0 ? r->bytes / sec / c->bw : 0);
      if (r->unfused_ms > 0) {
        json_num(&j, "unfused_ms", r->unfused_ms);
        json_num(&j, "speedup_vs_unfused", r->unfused_ms / r->ms_median);
      }
    }
    json_end_obj(&j);
  }
  json_end_arr(&j);
  json_end_obj(&j);
  fclose(f);
}

int main(int argc, char **argv) {
  if (argc > 1 && (!strcmp(argv[1], "cp-decode") || !strcmp(argv[1], "cp-prefill")))
    return cp_cli_main(argc, argv);
  bench_opts o = {PA_BACKEND_AUTO, -1, 0, 10, 3, 0, NULL, 0, NULL};
  overrides v = {0, 0, 0, PA_F32, PA_F32, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2, -2};
  int want[BENCH_NUM_KINDS] = {0}, any_case = 0, ceilings = 1;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    bench_kind k;
    struct {
      const char *flag;
      int *dst;
    } ints[] = {{"-b", &v.b},
                {"--hq", &v.hq},
                {"--hkv", &v.hkv},
                {"-d", &v.d},
                {"--dv", &v.dv},
                {"--dr", &v.dr},
                {"--sq", &v.sq},
                {"--skv", &v.skv},
                {"--page", &v.page},
                {"--causal", &v.causal},
                {"--window", &v.window},
                {"--splits", &v.splits}};
    int matched = 0;
    for (size_t m = 0; m < sizeof ints / sizeof ints[0]; m++)
      if (!strcmp(a, ints[m].flag)) {
        if (!val) {
          usage();
          return 2;
        }
        *ints[m].dst = atoi(val);
        v.any = 1;
        matched = 1;
        i++;
      }
    if (matched) continue;
    if (bench_kind_parse(a, &k)) {
      want[k] = any_case = 1;
    } else if (!strcmp(a, "all")) {
      for (int m = 0; m < BENCH_NUM_KINDS; m++) want[m] = 1;
      any_case = 1;
    } else if (!strcmp(a, "--backend") && val) {
      i++;
      if (!strcmp(val, "cpu"))
        o.backend = PA_BACKEND_CPU;
      else if (!strcmp(val, "cuda"))
        o.backend = PA_BACKEND_CUDA;
      else if (!strcmp(val, "opencl"))
        o.backend = PA_BACKEND_OPENCL;
      else if (!strcmp(val, "auto"))
        o.backend = PA_BACKEND_AUTO;
      else {
        fprintf(stderr, "pa-bench: unknown backend '%s'\n", val);
        return 2;
      }
    } else if ((!strcmp(a, "--dtype") || !strcmp(a, "--kv-dtype")) && val) {
      i++;
      int kv = a[2] == 'k';
      if (!parse_dtype(val, kv ? &v.kv_dtype : &v.dtype)) {
        fprintf(stderr, "pa-bench: unknown dtype '%s'\n", val);
        return 2;
      }
      *(kv ? &v.kv_set : &v.dtype_set) = 1;
      v.any = 1;
    } else if (!strcmp(a, "--iters") && val) {
      o.iters = atoi(argv[++i]);
    } else if (!strcmp(a, "--warmup") && val) {
      o.warmup = atoi(argv[++i]);
    } else if (!strcmp(a, "--rotate") && val) {
      o.rotate = atoi(argv[++i]);
    } else if (!strcmp(a, "--threads") && val) {
      o.threads = atoi(argv[++i]);
    } else if (!strcmp(a, "--device") && val) {
      o.device = atoi(argv[++i]);
    } else if (!strcmp(a, "--options") && val) {
      o.options = argv[++i];
    } else if (!strcmp(a, "--json") && val) {
      o.json_path = argv[++i];
    } else if (!strcmp(a, "--no-ceilings")) {
      ceilings = 0;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage();
      return 0;
    } else {
      fprintf(stderr, "pa-bench: unknown argument '%s'\n", a);
      usage();
      return 2;
    }
  }
  if (!any_case)
    for (int m = 0; m < BENCH_NUM_KINDS; m++) want[m] = 1;

  pa_context_desc cd = {o.backend, o.device, NULL, o.threads, NULL, o.options};
  pa_context *ctx = NULL;
  pa_status st = pa_context_create(&cd, &ctx);
  if (st != PA_OK) {
    fprintf(stderr, "pa-bench: no context on backend %s: %s\n", pa_backend_name(o.backend),
            pa_status_str(st));
    return 1;
  }
  pa_device_info info;
  memset(&info, 0, sizeof info);
  pa_context_info(ctx, &info);
  o.backend = pa_context_backend(ctx);

  char date[64];
  time_t now = time(NULL);
  strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
  printf("pa-bench %s  backend=%s  device=\"%s\"  units=%d  %s  %s\n", PA_VERSION_STRING,
         pa_backend_name(o.backend), info.name, info.compute_units, info.features, date);

  bench_ceilings c;
  memset(&c, 0, sizeof c);
  if (ceilings) {
    if (o.backend == PA_BACKEND_CPU) bench_ceilings_cpu(o.threads, &c);
#ifdef PA_HAVE_CUDA
    if (o.backend == PA_BACKEND_CUDA) bench_ceilings_cuda(ctx, &c);
#endif
#ifdef PA_HAVE_OPENCL
    if (o.backend == PA_BACKEND_OPENCL) bench_ceilings_opencl(ctx, &c);
#endif
    print_ceilings(&c);
  }

  bench_result *res = calloc(64, sizeof *res);
  int nres = 0, failed = 0;
  printf("%-12s %-48s %10s %9s %9s %9s %7s %7s %5s\n", "case", "shape", "ms(med)", "ms(min)",
         "TFLOP/s", "GB/s", "%peak", "%bw", "split");
  for (int k = 0; k < BENCH_NUM_KINDS && res; k++) {
    if (!want[k]) continue;
    const bench_shape *p;
    int np = bench_presets((bench_kind)k, o.backend, &p);
    if (v.any) np = np > 0 ? 1 : 0;
    for (int i = 0; i < np && nres < 64; i++) {
      bench_shape s = p[i];
      if (v.any) apply(&v, &s);
      bench_result *r = &res[nres++];
      bench_run_case(ctx, &o, &s, r);
      if (r->status != PA_OK) failed++;
      print_row(r, &c);
      fflush(stdout);
    }
  }
#ifdef PA_HAVE_OPENCL
  /* The unfused CLBlast baseline beside the fused prefill (issue 4). */
  if (o.backend == PA_BACKEND_OPENCL && want[BENCH_PREFILL]) {
    for (int i = 0; i < nres; i++) {
      if (res[i].shape.kind != BENCH_PREFILL || res[i].status != PA_OK) continue;
      char err[256] = "";
      double sec = bench_opencl_unfused_prefill(ctx, &res[i].shape, o.iters, err, sizeof err);
      if (sec > 0) res[i].unfused_ms = sec * 1e3;
      if (sec > 0)
        printf("%-12s %-48s %10.3f %9s %9.3f   (fused is %.2fx the unfused baseline)\n",
               "unfused-clb", res[i].shape_str, sec * 1e3, "", res[i].flops / sec * 1e-12,
               sec / (res[i].ms_median * 1e-3));
      else
        printf("%-12s %-48s  not measured: %s\n", "unfused-clb", res[i].shape_str, err);
    }
  }
#endif
  /* On a CPU the neighbours share our cores and memory: measure the ceilings
   * again and say so when they moved, since then no fraction above is sound. */
  bench_ceilings after;
  memset(&after, 0, sizeof after);
  if (ceilings && o.backend == PA_BACKEND_CPU && nres > 0) {
    bench_ceilings_cpu(o.threads, &after);
    double df = after.flops / (c.flops > 0 ? c.flops : 1), db = after.bw / (c.bw > 0 ? c.bw : 1);
    printf(
        "ceilings after the cases: %.1f GFLOP/s, read %.1f GB/s (%+.0f%%, %+.0f%% vs before)%s\n",
        after.flops * 1e-9, after.read_bw * 1e-9, 100 * (df - 1), 100 * (db - 1),
        (df < 0.85 || df > 1.15 || db < 0.85 || db > 1.15)
            ? "\n  WARNING: the machine's speed moved during the run (busy neighbours?); "
              "the fractions above are not reliable"
            : "");
  }
  if (o.json_path && res) write_json(o.json_path, &o, &info, &c, &after, res, nres);
  free(res);
  pa_context_destroy(ctx);
  return failed ? 1 : 0;
}

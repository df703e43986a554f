/* pa-cp-bench: context parallelism over MPI on CPU contexts (one thread per
 * rank). decode: the three combines, per step (local attention + combine);
 * prefill: the ring, per call. Run: mpirun -np R build/bench/pa-cp-bench
 * decode [B heads kv_heads dim keys iters] | prefill [seq heads dim iters
 * kv_heads] (or pa-bench cp-decode / cp-prefill --ranks R: bench/cp_cli.c).
 * Prints min and median over the iterations of the slowest rank (rank 0).
 * PA_CP_COMBINE=allgather|heads|heads_gather runs one decode combine;
 * PA_CP_WINDOW=w sets window_left (both; causal decode then), PA_CP_QUERIES=n
 * gives decode n causal queries per request (MTP), PA_CP_PAGE=n pages the
 * prefill K/V shards (pages of n, reverse order). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "polyattn_mpi.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static pa_buffer *zeros(pa_context *ctx, size_t n) {
  pa_buffer *b;
  void *h = calloc(1, n);
  pa_buffer_create(ctx, n, &b);
  pa_buffer_write(b, 0, h, n);
  free(h);
  return b;
}

static int rank, R;

/* Times fn over iters calls (3 warm-up), the slowest rank each time. */
typedef pa_status (*run_fn)(pa_cp_plan *, const pa_attention_args *);
static void time_runs(run_fn fn, pa_cp_plan *p, const pa_attention_args *a, int iters, double *mn,
                      double *med) {
  double *t = malloc(sizeof(double) * (size_t)iters);
  for (int i = -3; i < iters; i++) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = now();
    fn(p, a);
    double dt = now() - t0;
    MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (i >= 0) t[i] = dt;
  }
  qsort(t, (size_t)iters, sizeof t[0], cmp);
  *mn = t[0];
  *med = t[iters / 2];
  free(t);
}

static void prefill(pa_context *ctx, pa_cp *cp, int argc, char **argv) {
  int S = argc > 2 ? atoi(argv[2]) : 4096, H = argc > 3 ? atoi(argv[3]) : 8;
  int D = argc > 4 ? atoi(argv[4]) : 128, iters = argc > 5 ? atoi(argv[5]) : 5;
  int Hk = argc > 6 ? atoi(argv[6]) : H;
  int32_t len[1] = {S}, ll[1];
  pa_cp_zigzag_shard(rank, R, 1, len, ll, NULL, NULL);
  pa_attention_desc d;
  pa_attention_desc_init(&d, H, Hk, D, PA_BF16);
  d.causal = 1;
  d.window_left = getenv("PA_CP_WINDOW") ? atoi(getenv("PA_CP_WINDOW")) : -1;
  /* PA_CP_PAGE=n: paged K/V shards, pages of n in reverse pool order. */
  const int P = getenv("PA_CP_PAGE") ? atoi(getenv("PA_CP_PAGE")) : 0;
  d.page_size = P > 0 ? P : 0;
  pa_batch gb = {1, len, len, NULL, NULL};
  pa_cp_plan *p;
  if (pa_cp_prefill_plan(cp, &d, &gb, &p) != PA_OK) {
    if (!rank) printf("prefill: %s\n", pa_cp_last_error(cp));
    return;
  }
  const int64_t np = d.page_size ? (ll[0] + P - 1) / P : 0, rows = np ? np * P : ll[0];
  size_t n = (size_t)ll[0] * H * D * 2, nk = (size_t)(rows ? rows : 1) * Hk * D * 2;
  pa_buffer *q = zeros(ctx, n), *k = zeros(ctx, nk), *v = zeros(ctx, nk), *o = zeros(ctx, n);
  pa_buffer *bt = zeros(ctx, (size_t)(np + 1) * 4);
  pa_attention_args a = {0};
  int64_t sh[3] = {ll[0], H, D}, shk[3] = {ll[0], Hk, D};
  pa_tensor_init(&a.q, q, 0, PA_BF16, 3, sh);
  pa_tensor_init(&a.k, k, 0, PA_BF16, 3, shk);
  pa_tensor_init(&a.v, v, 0, PA_BF16, 3, shk);
  if (np) {
    int32_t *tab = malloc(sizeof(int32_t) * (size_t)np);
    for (int64_t i = 0; i < np; i++) tab[i] = (int32_t)(np - 1 - i);
    pa_buffer_write(bt, 0, tab, sizeof(int32_t) * (size_t)np);
    free(tab);
    int64_t shp[4] = {np, P, Hk, D}, sb[2] = {1, np};
    pa_tensor_init(&a.k, k, 0, PA_BF16, 4, shp);
    pa_tensor_init(&a.v, v, 0, PA_BF16, 4, shp);
    pa_tensor_init(&a.block_table, bt, 0, PA_I32, 2, sb);
  }
  pa_tensor_init(&a.out, o, 0, PA_BF16, 3, sh);
  double mn, med;
  time_runs(pa_cp_prefill_run, p, &a, iters, &mn, &med);
  if (!rank)
    printf("prefill R=%d S=%d H=%d/%d D=%d causal window %d page %d bf16 ring   min %10.1f  median "
           "%10.1f us\n",
           R, S, H, Hk, D, d.window_left, d.page_size, mn * 1e6, med * 1e6);
  pa_cp_plan_destroy(p);
  pa_buffer_destroy(q), pa_buffer_destroy(k), pa_buffer_destroy(v), pa_buffer_destroy(o);
  pa_buffer_destroy(bt);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  pa_context *ctx;
  pa_context_desc cd = {.backend = PA_BACKEND_CPU, .device = -1, .num_threads = 1};
  pa_context_create(&cd, &ctx);
  pa_cp *cp;
  pa_cp_create_mpi(ctx, MPI_COMM_WORLD, &cp);
  if (argc > 1 && strcmp(argv[1], "prefill") == 0) {
    prefill(ctx, cp, argc, argv);
    pa_cp_destroy(cp);
    pa_context_destroy(ctx);
    MPI_Finalize();
    return 0;
  }
  int B = argc > 2 ? atoi(argv[2]) : 8, H = argc > 3 ? atoi(argv[3]) : 32;
  int Hk = argc > 4 ? atoi(argv[4]) : 8, D = argc > 5 ? atoi(argv[5]) : 128;
  int L = argc > 6 ? atoi(argv[6]) : 4096, iters = argc > 7 ? atoi(argv[7]) : 30, P = 16;
  if (B > 64) B = 64;
  const int nq = getenv("PA_CP_QUERIES") ? atoi(getenv("PA_CP_QUERIES")) : 1;
  int32_t lq[64], lk[64];
  for (int b = 0; b < B; b++) lq[b] = nq, lk[b] = L;
  int32_t per = pa_cp_shard_len(PA_CP_SHARD_INTERLEAVED, L, P, rank, R);
  int64_t maxp = (per + P - 1) / P, pages = B * maxp;
  pa_attention_desc d;
  pa_attention_desc_init(&d, H, Hk, D, PA_BF16);
  d.page_size = P;
  d.num_splits = 1;
  d.window_left = getenv("PA_CP_WINDOW") ? atoi(getenv("PA_CP_WINDOW")) : -1;
  d.causal = d.window_left >= 0 || nq > 1;
  pa_buffer *q = zeros(ctx, (size_t)B * nq * H * D * 2),
            *kv = zeros(ctx, (size_t)pages * P * Hk * D * 2),
            *bt = zeros(ctx, (size_t)B * maxp * 4), *o = zeros(ctx, (size_t)B * nq * H * D * 2);
  int32_t *tab = malloc(sizeof(int32_t) * B * maxp);
  for (int64_t i = 0; i < B * maxp; i++) tab[i] = (int32_t)i;
  pa_buffer_write(bt, 0, tab, sizeof(int32_t) * B * maxp);
  pa_attention_args a = {0};
  int64_t qs[3] = {B * nq, H, D}, ks[4] = {pages, P, Hk, D}, bs[2] = {B, maxp};
  pa_tensor_init(&a.q, q, 0, PA_BF16, 3, qs);
  pa_tensor_init(&a.k, kv, 0, PA_BF16, 4, ks);
  pa_tensor_init(&a.v, kv, 0, PA_BF16, 4, ks);
  pa_tensor_init(&a.block_table, bt, 0, PA_I32, 2, bs);
  static const char *names[] = {"allgather", "heads", "heads_gather"};
  pa_batch gb = {B, lq, lk, NULL, NULL};
  for (int m = 0; m < 3; m++) {
    const char *only = getenv("PA_CP_COMBINE"); /* one combine by name (profiling) */
    if ((m != 0 && H % R) || (only && strcmp(only, names[m]))) continue;
    pa_cp_plan *p;
    if (pa_cp_decode_plan(cp, &d, &gb, PA_CP_SHARD_INTERLEAVED, (pa_cp_combine)m, &p) != PA_OK) {
      if (!rank) printf("%s: %s\n", names[m], pa_cp_last_error(cp));
      continue;
    }
    int64_t os[3] = {B * nq, m == 1 ? H / R : H, D};
    pa_tensor_init(&a.out, o, 0, PA_BF16, 3, os);
    double mn, med;
    time_runs(pa_cp_decode_run, p, &a, iters, &mn, &med);
    if (!rank)
      printf("decode R=%d B=%d q=%d H=%d/%d D=%d keys=%d window %d bf16 %-13s min %10.1f  median "
             "%10.1f us\n",
             R, B, nq, H, Hk, D, L, d.window_left, names[m], mn * 1e6, med * 1e6);
    pa_cp_plan_destroy(p);
  }
  pa_cp_destroy(cp);
  pa_context_destroy(ctx);
  MPI_Finalize();
  return 0;
}

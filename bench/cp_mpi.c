/* pa-cp-bench: decode context parallelism over MPI, the three combines timed
 * per step (local attention + combine), and ring prefill, on CPU contexts
 * (one thread per rank). Run: mpirun -np R build/bench/pa-cp-bench
 * [B heads kv_heads dim keys]. Prints the median over 30 steps (rank 0). */
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

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, R;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  int B = argc > 1 ? atoi(argv[1]) : 8, H = argc > 2 ? atoi(argv[2]) : 32;
  int Hk = argc > 3 ? atoi(argv[3]) : 8, D = argc > 4 ? atoi(argv[4]) : 128;
  int L = argc > 5 ? atoi(argv[5]) : 4096, P = 16;
  pa_context *ctx;
  pa_context_desc cd = {.backend = PA_BACKEND_CPU, .device = -1, .num_threads = 1};
  pa_context_create(&cd, &ctx);
  pa_cp *cp;
  pa_cp_create_mpi(ctx, MPI_COMM_WORLD, &cp);
  int32_t lq[64], lk[64];
  for (int b = 0; b < B; b++) lq[b] = 1, lk[b] = L;
  int32_t per = pa_cp_shard_len(PA_CP_SHARD_INTERLEAVED, L, P, rank, R);
  int64_t maxp = (per + P - 1) / P, pages = B * maxp;
  pa_attention_desc d;
  pa_attention_desc_init(&d, H, Hk, D, PA_BF16);
  d.page_size = P;
  d.num_splits = 1;
  pa_buffer *q = zeros(ctx, (size_t)B * H * D * 2), *kv = zeros(ctx, (size_t)pages * P * Hk * D * 2),
            *bt = zeros(ctx, (size_t)B * maxp * 4), *o = zeros(ctx, (size_t)B * H * D * 2);
  int32_t *tab = malloc(sizeof(int32_t) * B * maxp);
  for (int64_t i = 0; i < B * maxp; i++) tab[i] = (int32_t)i;
  pa_buffer_write(bt, 0, tab, sizeof(int32_t) * B * maxp);
  pa_attention_args a = {0};
  int64_t qs[3] = {B, H, D}, ks[4] = {pages, P, Hk, D}, bs[2] = {B, maxp};
  pa_tensor_init(&a.q, q, 0, PA_BF16, 3, qs);
  pa_tensor_init(&a.k, kv, 0, PA_BF16, 4, ks);
  pa_tensor_init(&a.v, kv, 0, PA_BF16, 4, ks);
  pa_tensor_init(&a.block_table, bt, 0, PA_I32, 2, bs);
  static const char *names[] = {"allgather", "heads", "heads_gather"};
  pa_batch gb = {B, lq, lk, NULL, NULL};
  for (int m = 0; m < 3; m++) {
    if (m != 0 && H % R) continue;
    pa_cp_plan *p;
    if (pa_cp_decode_plan(cp, &d, &gb, PA_CP_SHARD_INTERLEAVED, (pa_cp_combine)m, &p) != PA_OK) {
      if (!rank) printf("%s: %s\n", names[m], pa_cp_last_error(cp));
      continue;
    }
    int64_t os[3] = {B, m == 1 ? H / R : H, D};
    pa_tensor_init(&a.out, o, 0, PA_BF16, 3, os);
    double t[30];
    for (int i = -3; i < 30; i++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = now();
      pa_cp_decode_run(p, &a);
      double dt = now() - t0;
      MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (i >= 0) t[i] = dt;
    }
    qsort(t, 30, sizeof t[0], cmp);
    if (!rank)
      printf("decode R=%d B=%d H=%d/%d D=%d keys=%d bf16 %-13s %8.1f us/step\n", R, B, H, Hk, D, L,
             names[m], t[15] * 1e6);
    pa_cp_plan_destroy(p);
  }
  pa_cp_destroy(cp);
  pa_context_destroy(ctx);
  MPI_Finalize();
  return 0;
}

/* pa-cp-bench-nccl: context parallelism over NCCL, one thread per GPU.
 *   decode  [gpus keys B Hq Hkv D iters]: one decode step over `keys` keys
 *           per request, split over the GPUs (interleaved pages of 16), each
 *           combine; then the same on one GPU with all the keys.
 *   prefill [gpus seq Hq Hkv D iters]: causal bf16 ring prefill of one
 *           sequence; then plain attention on one GPU.
 * Prints the mean time per call of the slowest rank (CUDA events) and the
 * speedup over one GPU. Inputs are zeros (timing only). PA_CP_WINDOW=w sets
 * window_left (decode: causal then). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "polyattn_cuda.h"
#include "polyattn_nccl.h"

typedef struct job {
  int dev, nranks, decode, combine, iters, plain; /* plain: pa_attention on one GPU, no CP */
  int keys, B, hq, hkv, d, seq;
  ncclComm_t comm;
  pthread_barrier_t *bar;
  double ms;
  int ok;
} job;

static pa_buffer *dev_zeros(pa_context *ctx, size_t n) {
  pa_buffer *b = NULL;
  if (pa_buffer_create(ctx, n ? n : 1, &b) != PA_OK) return NULL;
  cudaMemset(pa_buffer_native(b), 0, n ? n : 1);
  return b;
}

static pa_status step(const job *j, pa_cp_plan *p, pa_plan *pp, const pa_attention_args *a) {
  if (pp) return pa_attention_run(pp, a, NULL);
  return j->decode ? pa_cp_decode_run(p, a) : pa_cp_prefill_run(p, a);
}

static void *run(void *arg) {
  job *j = arg;
  cudaSetDevice(j->dev);
  cudaStream_t s;
  cudaStreamCreate(&s);
  pa_context *ctx = NULL;
  pa_cp *cp = NULL;
  pa_cp_plan *p = NULL;
  pa_plan *pp = NULL;
  pa_attention_args a = {0};
  pa_buffer *bufs[5] = {0};
  j->ok = pa_context_create_cuda(j->dev, s, &ctx) == PA_OK &&
          pa_cp_create_nccl(ctx, j->comm, s, &cp) == PA_OK;
  int rank = j->ok ? pa_cp_rank(cp) : 0, R = j->nranks;
  pa_attention_desc d;
  pa_attention_desc_init(&d, j->hq, j->hkv, j->d, PA_BF16);
  d.window_left = getenv("PA_CP_WINDOW") ? atoi(getenv("PA_CP_WINDOW")) : -1;
  if (j->ok && j->decode) {
    int32_t lq[64], lk[64], P = 16;
    for (int b = 0; b < j->B; b++) lq[b] = 1, lk[b] = j->keys;
    int32_t per = pa_cp_shard_len(PA_CP_SHARD_INTERLEAVED, j->keys, P, rank, R);
    int64_t maxp = (per + P - 1) / P, pages = j->B * maxp;
    d.page_size = P;
    d.causal = d.window_left >= 0;
    pa_batch gb = {j->B, lq, lk, NULL, NULL};
    j->ok = pa_cp_decode_plan(cp, &d, &gb, PA_CP_SHARD_INTERLEAVED, j->combine, &p) == PA_OK &&
            (!j->plain || pa_attention_plan(ctx, &d, &gb, &pp) == PA_OK);
    size_t kv = (size_t)pages * P * j->hkv * j->d * 2;
    bufs[0] = dev_zeros(ctx, (size_t)j->B * j->hq * j->d * 2);
    bufs[1] = dev_zeros(ctx, kv);
    bufs[2] = dev_zeros(ctx, kv);
    bufs[3] = dev_zeros(ctx, (size_t)j->B * j->hq * j->d * 2);
    bufs[4] = dev_zeros(ctx, (size_t)j->B * maxp * 4);
    int32_t *tab = malloc(sizeof(int32_t) * (size_t)(j->B * maxp + 1));
    for (int64_t i = 0; i < j->B * maxp; i++) tab[i] = (int32_t)i;
    pa_buffer_write(bufs[4], 0, tab, sizeof(int32_t) * (size_t)(j->B * maxp));
    free(tab);
    int64_t qs[3] = {j->B, j->hq, j->d}, ks[4] = {pages, P, j->hkv, j->d}, bs[2] = {j->B, maxp};
    int64_t os[3] = {j->B, j->combine == PA_CP_COMBINE_HEADS ? j->hq / R : j->hq, j->d};
    pa_tensor_init(&a.q, bufs[0], 0, PA_BF16, 3, qs);
    pa_tensor_init(&a.k, bufs[1], 0, PA_BF16, 4, ks);
    pa_tensor_init(&a.v, bufs[2], 0, PA_BF16, 4, ks);
    pa_tensor_init(&a.out, bufs[3], 0, PA_BF16, 3, os);
    pa_tensor_init(&a.block_table, bufs[4], 0, PA_I32, 2, bs);
  } else if (j->ok) {
    int32_t len[1] = {j->seq}, ll[1];
    pa_cp_zigzag_shard(rank, R, 1, len, ll, NULL, NULL);
    d.causal = 1;
    pa_batch gb = {1, len, len, NULL, NULL};
    j->ok = pa_cp_prefill_plan(cp, &d, &gb, &p) == PA_OK &&
            (!j->plain || pa_attention_plan(ctx, &d, &gb, &pp) == PA_OK);
    int64_t qs[3] = {ll[0], j->hq, j->d}, ks[3] = {ll[0], j->hkv, j->d};
    bufs[0] = dev_zeros(ctx, (size_t)ll[0] * j->hq * j->d * 2);
    bufs[1] = dev_zeros(ctx, (size_t)ll[0] * j->hkv * j->d * 2);
    bufs[2] = dev_zeros(ctx, (size_t)ll[0] * j->hkv * j->d * 2);
    bufs[3] = dev_zeros(ctx, (size_t)ll[0] * j->hq * j->d * 2);
    pa_tensor_init(&a.q, bufs[0], 0, PA_BF16, 3, qs);
    pa_tensor_init(&a.k, bufs[1], 0, PA_BF16, 3, ks);
    pa_tensor_init(&a.v, bufs[2], 0, PA_BF16, 3, ks);
    pa_tensor_init(&a.out, bufs[3], 0, PA_BF16, 3, qs);
  }
  if (!j->ok && cp) fprintf(stderr, "rank %d: %s\n", rank, pa_cp_last_error(cp));
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  for (int i = 0; j->ok && i < 3; i++) j->ok = step(j, p, pp, &a) == PA_OK;
  cudaStreamSynchronize(s);
  pthread_barrier_wait(j->bar);
  cudaEventRecord(e0, s);
  for (int i = 0; j->ok && i < j->iters; i++) j->ok = step(j, p, pp, &a) == PA_OK;
  cudaEventRecord(e1, s);
  cudaEventSynchronize(e1);
  float ms = 0;
  cudaEventElapsedTime(&ms, e0, e1);
  j->ms = ms / j->iters;
  pa_cp_plan_destroy(p);
  pa_plan_destroy(pp);
  for (int i = 0; i < 5; i++) pa_buffer_destroy(bufs[i]);
  pa_cp_destroy(cp);
  pa_context_destroy(ctx);
  cudaStreamDestroy(s);
  return NULL;
}

/* The slowest rank's ms per call with n GPUs, or -1. */
static double measure(job proto, int n) {
  job jobs[8];
  pthread_t th[8];
  ncclComm_t comms[8];
  int devs[8] = {0};
  pthread_barrier_t bar;
  for (int i = 0; i < n; i++) devs[i] = i;
  if (ncclCommInitAll(comms, n, devs) != ncclSuccess) return -1;
  pthread_barrier_init(&bar, NULL, (unsigned)n);
  for (int i = 0; i < n; i++) {
    jobs[i] = proto;
    jobs[i].dev = i;
    jobs[i].nranks = n;
    jobs[i].comm = comms[i];
    jobs[i].bar = &bar;
    pthread_create(&th[i], NULL, run, &jobs[i]);
  }
  double worst = 0;
  int ok = 1;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    ok &= jobs[i].ok;
    if (jobs[i].ms > worst) worst = jobs[i].ms;
  }
  for (int i = 0; i < n; i++) ncclCommDestroy(comms[i]);
  pthread_barrier_destroy(&bar);
  return ok ? worst : -1;
}

int main(int argc, char **argv) {
  int count = 0;
  if (pa_device_count(PA_BACKEND_CUDA, &count) != PA_OK || count == 0) {
    printf("no CUDA device\n");
    return 77;
  }
  const int decode = !(argc > 1 && strcmp(argv[1], "prefill") == 0);
  int n = argc > 2 ? atoi(argv[2]) : count;
  if (n > count) n = count;
  if (n > 8) n = 8;
  job j = {.decode = decode, .iters = 20};
  if (decode) {
    j.keys = argc > 3 ? atoi(argv[3]) : 1 << 20;
    j.B = argc > 4 ? atoi(argv[4]) : 1;
    j.hq = argc > 5 ? atoi(argv[5]) : 32;
    j.hkv = argc > 6 ? atoi(argv[6]) : 8;
    j.d = argc > 7 ? atoi(argv[7]) : 128;
    j.iters = argc > 8 ? atoi(argv[8]) : 50;
    if (j.B > 64) j.B = 64;
    static const char *names[] = {"allgather", "heads", "heads_gather"};
    j.combine = PA_CP_COMBINE_ALLGATHER;
    double one = measure(j, 1);
    j.plain = 1;
    double plain = measure(j, 1);
    j.plain = 0;
    printf("plain pa_attention 1 GPU keys=%d B=%d H=%d/%d d=%d bf16 %9.3f ms (CP with 1 rank, "
           "allgather: %.3f ms)\n",
           j.keys, j.B, j.hq, j.hkv, j.d, plain, one);
    for (int c = 0; c < 3; c++) {
      j.combine = c;
      double t = measure(j, n);
      printf("cp-decode gpus=%d keys=%d B=%d H=%d/%d d=%d window %s bf16 %-12s %9.3f ms  (1 GPU "
             "%.3f ms, speedup %.2fx)\n",
             n, j.keys, j.B, j.hq, j.hkv, j.d,
             getenv("PA_CP_WINDOW") ? getenv("PA_CP_WINDOW") : "-1", names[c], t, one,
             t > 0 ? one / t : 0);
    }
  } else {
    j.seq = argc > 3 ? atoi(argv[3]) : 65536;
    j.hq = argc > 4 ? atoi(argv[4]) : 32;
    j.hkv = argc > 5 ? atoi(argv[5]) : 8;
    j.d = argc > 6 ? atoi(argv[6]) : 128;
    j.iters = argc > 7 ? atoi(argv[7]) : 5;
    double one = measure(j, 1), t = measure(j, n);
    j.plain = 1;
    double plain = measure(j, 1);
    printf("plain pa_attention 1 GPU seq=%d H=%d/%d d=%d causal bf16 %9.3f ms (CP with 1 rank: "
           "%.3f ms)\n",
           j.seq, j.hq, j.hkv, j.d, plain, one);
    printf("cp-prefill gpus=%d seq=%d H=%d/%d d=%d causal window %s bf16 ring %9.3f ms  (1 GPU "
           "%.3f ms, speedup %.2fx)\n",
           n, j.seq, j.hq, j.hkv, j.d, getenv("PA_CP_WINDOW") ? getenv("PA_CP_WINDOW") : "-1", t,
           one, t > 0 ? one / t : 0);
  }
  return 0;
}

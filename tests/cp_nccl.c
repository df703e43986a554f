/* Context parallelism over NCCL: one rank per visible GPU (at most 4; one
 * thread each, ncclCommInitAll), running the cases of cp_cases.c through the
 * NCCL transport. With one GPU that is one rank (all-gather, all-to-all, 2-D
 * copies, plan-time agreement); with several, the ring too. PA_CP_RANKS
 * caps the count. Exit 77 (skip) without a GPU. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "cp_cases.h"
#include "polyattn_cuda.h"
#include "polyattn_nccl.h"

typedef struct rank_job {
  int dev;
  ncclComm_t comm;
  int checks, failures;
} rank_job;

static void *run_rank(void *arg) {
  rank_job *j = arg;
  cudaStream_t stream;
  pa_context *ctx = NULL;
  pa_cp *cp = NULL;
  j->failures = 1;
  if (cudaSetDevice(j->dev) != cudaSuccess || cudaStreamCreate(&stream) != cudaSuccess) {
    fprintf(stderr, "FAIL: device %d: CUDA stream\n", j->dev);
    return NULL;
  }
  if (pa_context_create_cuda(j->dev, stream, &ctx) != PA_OK ||
      pa_cp_create_nccl(ctx, j->comm, stream, &cp) != PA_OK) {
    fprintf(stderr, "FAIL: device %d: context or pa_cp_create_nccl\n", j->dev);
    return NULL;
  }
  j->failures = cp_cases_run(ctx, cp, false, &j->checks);
  pa_cp_destroy(cp);
  pa_context_destroy(ctx);
  cudaStreamDestroy(stream);
  return NULL;
}

int main(void) {
  int count = 0;
  if (pa_device_count(PA_BACKEND_CUDA, &count) != PA_OK || count == 0) {
    printf("SKIP: no CUDA device\n");
    return 77;
  }
  const char *cap = getenv("PA_CP_RANKS");
  int n = count < 4 ? count : 4;
  if (cap && atoi(cap) > 0 && atoi(cap) < n) n = atoi(cap);
  int devs[4];
  ncclComm_t comms[4];
  rank_job jobs[4];
  pthread_t th[4];
  for (int i = 0; i < n; i++) devs[i] = i;
  ncclResult_t nr = ncclCommInitAll(comms, n, devs);
  if (nr != ncclSuccess) {
    fprintf(stderr, "FAIL: ncclCommInitAll(%d): %s\n", n, ncclGetErrorString(nr));
    return 1;
  }
  printf("cuda, %d rank(s) over NCCL\n", n);
  for (int i = 0; i < n; i++) {
    jobs[i] = (rank_job){devs[i], comms[i], 0, 0};
    pthread_create(&th[i], NULL, run_rank, &jobs[i]);
  }
  int checks = 0, failures = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    checks += jobs[i].checks;
    failures += jobs[i].failures;
  }
  for (int i = 0; i < n; i++) ncclCommDestroy(comms[i]);
  printf("cuda: %d checks over %d rank(s), %d failed\n", checks, n, failures);
  return failures ? 1 : 0;
}

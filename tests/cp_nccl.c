/* Context parallelism over NCCL, one rank (ncclCommInitAll on device 0): the
 * cases of cp_cases.c through the NCCL transport (all-gather, all-to-all,
 * 2-D copies, plan-time agreement on the device). Several ranks need several
 * GPUs: see README. Exit 77 (skip) without a GPU. */
#include <stdio.h>

#include "cp_cases.h"
#include "polyattn_cuda.h"
#include "polyattn_nccl.h"

int main(void) {
  int count = 0;
  if (pa_device_count(PA_BACKEND_CUDA, &count) != PA_OK || count == 0) {
    printf("SKIP: no CUDA device\n");
    return 77;
  }
  ncclComm_t comm;
  int dev = 0;
  cudaStream_t stream;
  if (cudaSetDevice(0) != cudaSuccess || cudaStreamCreate(&stream) != cudaSuccess ||
      ncclCommInitAll(&comm, 1, &dev) != ncclSuccess) {
    fprintf(stderr, "FAIL: CUDA stream or ncclCommInitAll\n");
    return 1;
  }
  pa_context *ctx = NULL;
  pa_cp *cp = NULL;
  if (pa_context_create_cuda(0, stream, &ctx) != PA_OK ||
      pa_cp_create_nccl(ctx, comm, stream, &cp) != PA_OK) {
    fprintf(stderr, "FAIL: context or pa_cp_create_nccl\n");
    return 1;
  }
  printf("cuda, 1 rank (%s)\n", pa_cp_transport(cp));
  int checks = 0, failures = cp_cases_run(ctx, cp, &checks);
  printf("cuda: %d checks, %d failed\n", checks, failures);
  pa_cp_destroy(cp);
  pa_context_destroy(ctx);
  ncclCommDestroy(comm);
  cudaStreamDestroy(stream);
  return failures ? 1 : 0;
}

/* CUDA ceilings, on the device of the bench's context: device-to-device copy
 * bandwidth (cudaMemcpyAsync, read + write bytes counted) and a cuBLAS bf16
 * GEMM (f32 accumulate), each timed with CUDA events, best of several. */
#ifdef PA_HAVE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define CK(x)                                                                                      \
  do {                                                                                             \
    cudaError_t e_ = (x);                                                                          \
    if (e_ != cudaSuccess) {                                                                       \
      snprintf(c->note, sizeof c->note, "%s: %s", #x, cudaGetErrorName(e_));                       \
      goto out;                                                                                    \
    }                                                                                              \
  } while (0)

static float best_ms(float cur, float ms) { return cur < 0 || ms < cur ? ms : cur; }

/* Random bf16 in [-1, 1): zero or constant inputs draw less power and would
 * flatter the GEMM ceiling. */
static void *random_bf16(size_t n) {
  uint16_t *p = malloc(n * 2);
  uint32_t x = 12345u;
  for (size_t i = 0; p && i < n; i++) {
    x = x * 1664525u + 1013904223u;
    float v = (float)(x >> 8) / 8388608.0f - 1.0f;
    uint32_t u;
    memcpy(&u, &v, 4);
    p[i] = (uint16_t)(u >> 16);
  }
  return p;
}

void bench_ceilings_cuda(pa_context *ctx, bench_ceilings *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->bw_what, sizeof c->bw_what, "device copy");
  /* the device is the one behind a buffer of ctx */
  pa_buffer *probe = NULL;
  void *src = NULL, *dst = NULL, *A = NULL, *B = NULL, *C = NULL;
  cudaEvent_t e0 = NULL, e1 = NULL;
  cudaStream_t st = NULL;
  cublasHandle_t h = NULL;
  void *host = NULL;
  if (pa_buffer_create(ctx, 256, &probe) != PA_OK) {
    snprintf(c->note, sizeof c->note, "no probe buffer");
    return;
  }
  struct cudaPointerAttributes pattr;
  memset(&pattr, 0, sizeof pattr);
  CK(cudaPointerGetAttributes(&pattr, pa_buffer_native(probe)));
  CK(cudaSetDevice(pattr.device));
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));

  /* Copy: 1 GiB, far beyond any L2. */
  size_t bytes = (size_t)1 << 30;
  CK(cudaMalloc(&src, bytes));
  CK(cudaMalloc(&dst, bytes));
  CK(cudaMemsetAsync(src, 1, bytes, st));
  float best = -1, ms = 0;
  for (int r = 0; r < 8; r++) {
    CK(cudaEventRecord(e0, st));
    for (int k = 0; k < 4; k++) CK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, st));
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    CK(cudaEventElapsedTime(&ms, e0, e1));
    if (r > 0) best = best_ms(best, ms / 4); /* r = 0 warms up */
  }
  c->copy_bw = 2.0 * (double)bytes / (best * 1e-3);
  c->bw = c->copy_bw;
  cudaFree(src);
  cudaFree(dst);
  src = dst = NULL;

  /* cuBLAS bf16 GEMM, 8192^3, f32 accumulation. */
  int n = 8192;
  size_t mat = (size_t)n * n * 2;
  CK(cudaMalloc(&A, mat));
  CK(cudaMalloc(&B, mat));
  CK(cudaMalloc(&C, mat));
  host = random_bf16((size_t)n * n);
  if (!host) goto out;
  CK(cudaMemcpy(A, host, mat, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(B, host, mat, cudaMemcpyHostToDevice));
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    snprintf(c->note, sizeof c->note, "cublasCreate failed");
    goto out;
  }
  cublasSetStream(h, st);
  float alpha = 1.0f, beta = 0.0f;
  best = -1;
  for (int r = 0; r < 6; r++) {
    CK(cudaEventRecord(e0, st));
    for (int k = 0; k < 5; k++) {
      cublasStatus_t cs = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, A, CUDA_R_16BF,
                                       n, B, CUDA_R_16BF, n, &beta, C, CUDA_R_16BF, n,
                                       CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      if (cs != CUBLAS_STATUS_SUCCESS) {
        snprintf(c->note, sizeof c->note, "cublasGemmEx: status %d", (int)cs);
        goto out;
      }
    }
    CK(cudaEventRecord(e1, st));
    CK(cudaEventSynchronize(e1));
    CK(cudaEventElapsedTime(&ms, e0, e1));
    if (r > 0) best = best_ms(best, ms / 5);
  }
  c->flops = 2.0 * n * (double)n * n / (best * 1e-3);
  snprintf(c->flops_what, sizeof c->flops_what, "cuBLAS bf16 GEMM %d^3 (device %d)", n,
           pattr.device);
  snprintf(c->note, sizeof c->note, "copy 1 GiB D2D, read+write counted; GEMM on random inputs");
out:
  free(host);
  if (h) cublasDestroy(h);
  cudaFree(src);
  cudaFree(dst);
  cudaFree(A);
  cudaFree(B);
  cudaFree(C);
  if (e0) cudaEventDestroy(e0);
  if (e1) cudaEventDestroy(e1);
  if (st) cudaStreamDestroy(st);
  pa_buffer_destroy(probe);
}
#endif

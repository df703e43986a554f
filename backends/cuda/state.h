/* The CUDA backend's per-context state, shared by cuda.c and gemm.c. */
#ifndef PA_CUDA_STATE_H
#define PA_CUDA_STATE_H

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "backend.h"

typedef struct pa_cuda_state {
  int device;
  cudaStream_t stream;
  int own_stream;
  cublasHandle_t blas;
  int sm_major, sm_minor;
  int smem_optin; /* cudaDevAttrMaxSharedMemoryPerBlockOptin */
  int pdl;        /* cuda.pdl on an sm_90+ device */
  int wgmma_prefill; /* cuda.prefill=auto on sm_90: the wgmma prefill kernel is ready */
  int ws_prefill;    /* sm_90, cuda.prefill auto or ws: the warp-specialised prefill is ready */
  int ws_everywhere; /* cuda.prefill=ws: it runs every plan it takes (auto: ws_preferred) */
  int ws_pingpong;   /* dev.cuda.ws_pingpong */
  int ws_release;    /* dev.cuda.ws_release */
  int ws_lazy;       /* dev.cuda.ws_lazy */
  int mla_kernel;    /* pa_cu_kernel: the MLA decode kernel (cuda.mla, sm_90 or not) */
} pa_cuda_state;

static inline pa_cuda_state *pa_cuda_st(pa_context *ctx) { return (pa_cuda_state *)ctx->state; }

/* pa_fail with the CUDA error's name and text; e != cudaSuccess. */
pa_status pa_cuda_fail(pa_context *ctx, cudaError_t e, const char *what);

pa_status pa_cuda_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w,
                            pa_tensor *y);

#endif

/* The NCCL transport: device buffers of a CUDA context, collectives on the
 * caller's stream, ring send/recv on a comm stream of ours between events. */
#include <stdlib.h>

#include "cp.h"
#include "polyattn_nccl.h"

typedef struct nccl_state {
  ncclComm_t comm;
  cudaStream_t stream, comm_stream;
  cudaEvent_t ready, done;
} nccl_state;

static nccl_state *st_of(pa_cp *cp) { return (nccl_state *)cp->impl; }
static char *dptr(cp_region r) { return (char *)pa_buffer_native(r.buf) + r.off; }

#define NCCL_TRY(call)                                                                             \
  do {                                                                                             \
    ncclResult_t e_ = (call);                                                                      \
    if (e_ != ncclSuccess)                                                                         \
      return cp_fail(cp, PA_ERR_BACKEND, "%s: %s (%d)", #call, ncclGetErrorString(e_), (int)e_);   \
  } while (0)
#define CUDA_TRY(call)                                                                             \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess)                                                                         \
      return cp_fail(cp, PA_ERR_BACKEND, "%s: %s (%s)", #call, cudaGetErrorName(e_),               \
                     cudaGetErrorString(e_));                                                      \
  } while (0)

static pa_status nccl_host_allgather(pa_cp *cp, const void *src, void *dst, size_t bytes) {
  nccl_state *n = st_of(cp);
  char *d = NULL;
  size_t all = bytes * (size_t)cp->size;
  CUDA_TRY(cudaMalloc((void **)&d, all + bytes));
  pa_status st = PA_OK;
  cudaError_t ce = cudaMemcpyAsync(d + all, src, bytes, cudaMemcpyHostToDevice, n->stream);
  ncclResult_t ne = ce == cudaSuccess
                        ? ncclAllGather(d + all, d, bytes, ncclChar, n->comm, n->stream)
                        : ncclSuccess;
  if (ce == cudaSuccess && ne == ncclSuccess)
    ce = cudaMemcpyAsync(dst, d, all, cudaMemcpyDeviceToHost, n->stream);
  if (ce == cudaSuccess && ne == ncclSuccess) ce = cudaStreamSynchronize(n->stream);
  if (ne != ncclSuccess)
    st = cp_fail(cp, PA_ERR_BACKEND, "ncclAllGather: %s", ncclGetErrorString(ne));
  else if (ce != cudaSuccess)
    st = cp_fail(cp, PA_ERR_BACKEND, "plan-time exchange: %s", cudaGetErrorName(ce));
  cudaFree(d);
  return st;
}

static pa_status nccl_allgather(pa_cp *cp, cp_region src, cp_region dst, size_t bytes) {
  NCCL_TRY(
      ncclAllGather(dptr(src), dptr(dst), bytes, ncclChar, st_of(cp)->comm, st_of(cp)->stream));
  return PA_OK;
}

static pa_status nccl_alltoall(pa_cp *cp, cp_region src, cp_region dst, size_t bytes) {
  nccl_state *n = st_of(cp);
  NCCL_TRY(ncclGroupStart());
  for (int p = 0; p < cp->size; p++) {
    ncclSend(dptr(src) + (size_t)p * bytes, bytes, ncclChar, p, n->comm, n->stream);
    ncclRecv(dptr(dst) + (size_t)p * bytes, bytes, ncclChar, p, n->comm, n->stream);
  }
  NCCL_TRY(ncclGroupEnd());
  return PA_OK;
}

static pa_status nccl_exchange_start(pa_cp *cp, cp_region src, size_t sbytes, int to, cp_region dst,
                                     size_t rbytes, int from) {
  nccl_state *n = st_of(cp);
  /* The comm stream waits for what the compute stream wrote (and read) so far. */
  CUDA_TRY(cudaEventRecord(n->ready, n->stream));
  CUDA_TRY(cudaStreamWaitEvent(n->comm_stream, n->ready, 0));
  NCCL_TRY(ncclGroupStart());
  ncclSend(dptr(src), sbytes, ncclChar, to, n->comm, n->comm_stream);
  ncclRecv(dptr(dst), rbytes, ncclChar, from, n->comm, n->comm_stream);
  NCCL_TRY(ncclGroupEnd());
  CUDA_TRY(cudaEventRecord(n->done, n->comm_stream));
  return PA_OK;
}

static pa_status nccl_exchange_wait(pa_cp *cp) {
  nccl_state *n = st_of(cp);
  CUDA_TRY(cudaStreamWaitEvent(n->stream, n->done, 0));
  return PA_OK;
}

static pa_status nccl_copy2d(pa_cp *cp, cp_region src, size_t sp, cp_region dst, size_t dp,
                             size_t rows, size_t row) {
  if (!rows || !row) return PA_OK;
  CUDA_TRY(cudaMemcpy2DAsync(dptr(dst), dp, dptr(src), sp, row, rows, cudaMemcpyDeviceToDevice,
                             st_of(cp)->stream));
  return PA_OK;
}

static void nccl_destroy(pa_cp *cp) {
  nccl_state *n = st_of(cp);
  cudaStreamSynchronize(n->comm_stream);
  cudaEventDestroy(n->ready);
  cudaEventDestroy(n->done);
  cudaStreamDestroy(n->comm_stream);
  free(n);
}

static const cp_transport nccl_transport = {
    .name = "nccl",
    .host_allgather = nccl_host_allgather,
    .allgather = nccl_allgather,
    .alltoall = nccl_alltoall,
    .exchange_start = nccl_exchange_start,
    .exchange_wait = nccl_exchange_wait,
    .run_agree = false,
    .copy2d = nccl_copy2d,
    .destroy = nccl_destroy,
};

pa_status pa_cp_create_nccl(pa_context *ctx, ncclComm_t comm, cudaStream_t stream, pa_cp **out) {
  if (!out) return PA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!ctx || !comm) return PA_ERR_INVALID_ARGUMENT;
  if (pa_context_backend(ctx) != PA_BACKEND_CUDA) return PA_ERR_UNSUPPORTED;
  int rank = 0, size = 0;
  if (ncclCommUserRank(comm, &rank) != ncclSuccess || ncclCommCount(comm, &size) != ncclSuccess)
    return PA_ERR_INVALID_ARGUMENT;
  nccl_state *n = calloc(1, sizeof *n);
  if (!n) return PA_ERR_OUT_OF_MEMORY;
  n->comm = comm;
  n->stream = stream;
  if (cudaStreamCreateWithFlags(&n->comm_stream, cudaStreamNonBlocking) != cudaSuccess ||
      cudaEventCreateWithFlags(&n->ready, cudaEventDisableTiming) != cudaSuccess ||
      cudaEventCreateWithFlags(&n->done, cudaEventDisableTiming) != cudaSuccess) {
    free(n);
    return PA_ERR_BACKEND;
  }
  pa_status st = cp_create(ctx, &nccl_transport, n, rank, size, out);
  if (st != PA_OK) nccl_destroy(&(pa_cp){.impl = n});
  return st;
}

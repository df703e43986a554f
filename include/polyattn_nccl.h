/* polyattn over NCCL: context parallelism (polyattn_cp.h) on the caller's
 * NCCL communicator, for CUDA contexts. Collectives are enqueued on
 * `stream`, which must be the context's stream (pa_context_create_cuda);
 * ring transfers run on a second stream of polyattn's, ordered by events, so
 * they overlap the attention of the block in hand. Link libpolyattn_cp
 * (built when meson finds nvcc and NCCL: -Dnccl=auto). */
#ifndef POLYATTN_NCCL_H
#define POLYATTN_NCCL_H

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "polyattn_cp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Borrows ctx, comm and stream (none is freed by pa_cp_destroy). Plans check
 * across ranks with a small device round trip; runs do not (a rank whose run
 * fails validation leaves the others waiting in NCCL, as any collective
 * would): plan with the shapes you run. Caller owns *out. */
PA_API pa_status pa_cp_create_nccl(pa_context *ctx, ncclComm_t comm, cudaStream_t stream,
                                   pa_cp **out);

#ifdef __cplusplus
}
#endif
#endif /* POLYATTN_NCCL_H */

/* CUDA interop: contexts on a caller's stream, buffers over caller's device
 * memory. Thin typed wrappers over the generic API.
 *
 * Each polyattn call on a CUDA context makes that context's device current
 * (cudaSetDevice) and leaves it current; a multi-GPU caller sets its own
 * device again after calling polyattn. */
#ifndef POLYATTN_CUDA_H
#define POLYATTN_CUDA_H

#include <cuda_runtime_api.h>

#include "polyattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A context on `device` whose work is enqueued on `stream` (borrowed: the
 * caller keeps it alive until pa_context_destroy). stream 0 is the legacy
 * default stream. */
static inline pa_status pa_context_create_cuda(int device, cudaStream_t stream, pa_context **out) {
  pa_context_desc d = {PA_BACKEND_CUDA, device, (void *)stream, 0, NULL};
  return pa_context_create(&d, out);
}

/* A buffer over `bytes` of device memory at `ptr` (borrowed, not freed). */
static inline pa_status pa_buffer_wrap_cuda(pa_context *ctx, void *ptr, size_t bytes,
                                            pa_buffer **out) {
  return pa_buffer_wrap(ctx, ptr, bytes, out);
}

#ifdef __cplusplus
}
#endif
#endif

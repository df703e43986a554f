/* polyattn OpenCL interop: run polyattn on the caller's cl_command_queue and
 * cl_mem objects, reach the context's OpenCL objects. (The unfused CLBlast
 * baseline that the fused kernels are measured against lives in
 * bench/unfused_opencl.c.)
 *
 * Configuration (opencl.device, opencl.ptx, opencl.decode, opencl.mla and the
 * dev.opencl.* knobs): README.md, "Configuration". */
#ifndef POLYATTN_OPENCL_H
#define POLYATTN_OPENCL_H

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include "polyattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A context on the caller's queue: pa_context_desc.backend = PA_BACKEND_OPENCL,
 * .native_queue = queue (retained for the context's life; the queue's device
 * and cl_context are used). A cl_mem of that cl_context becomes a buffer with
 * pa_buffer_wrap(ctx, (void *)mem, bytes, &buf) or, sized from the cl_mem,
 * with pa_opencl_wrap_buffer; it is retained while the buffer lives. */
PA_API pa_status pa_opencl_wrap_buffer(pa_context *ctx, cl_mem mem, pa_buffer **out);

/* The context's OpenCL objects (borrowed: valid while ctx lives); any out
 * pointer may be NULL. PA_ERR_INVALID_ARGUMENT for a non-OpenCL context. */
PA_API pa_status pa_opencl_context_objects(const pa_context *ctx, cl_context *context,
                                           cl_device_id *device, cl_command_queue *queue);

/* 1 when the device passed the mma.sync (inline PTX) probe at context creation. */
PA_API int pa_opencl_has_mma(const pa_context *ctx);

#ifdef __cplusplus
}
#endif
#endif /* POLYATTN_OPENCL_H */

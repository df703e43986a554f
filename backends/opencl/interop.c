/* The public OpenCL interop of include/polyattn_opencl.h. */
#include "cl_backend.h"
#include "polyattn_opencl.h"

static bool is_cl(const pa_context *ctx) { return ctx && ctx->kind == PA_BACKEND_OPENCL && ctx->state; }

pa_status pa_opencl_wrap_buffer(pa_context *ctx, cl_mem mem, pa_buffer **out) {
  if (!is_cl(ctx)) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is not an OpenCL context");
  size_t size = 0;
  cl_int e = clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof size, &size, NULL);
  if (e != CL_SUCCESS) return pa_cl_fail(ctx, e, "pa_opencl_wrap_buffer: mem is not a cl_mem");
  return pa_buffer_wrap(ctx, (void *)mem, size, out);
}

pa_status pa_opencl_context_objects(const pa_context *ctx, cl_context *context, cl_device_id *device,
                                    cl_command_queue *queue) {
  if (!is_cl(ctx)) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is not an OpenCL context");
  const pa_cl_state *st = pa_cl(ctx);
  if (context) *context = st->context;
  if (device) *device = st->device;
  if (queue) *queue = st->queue;
  return PA_OK;
}

int pa_opencl_has_mma(const pa_context *ctx) { return is_cl(ctx) && pa_cl(ctx)->mma_ok; }

/* The OpenCL backend: device choice, context and queue, buffers, errors and
 * the vtable. Operations live in attention.c, mla.c, merge.c, gemm.c. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cl_backend.h"
#include "fault.h"

const char *pa_cl_error_name(cl_int e) {
  switch (e) {
#define N(x) \
  case x:    \
    return #x;
    N(CL_SUCCESS) N(CL_DEVICE_NOT_FOUND) N(CL_DEVICE_NOT_AVAILABLE) N(CL_COMPILER_NOT_AVAILABLE)
    N(CL_MEM_OBJECT_ALLOCATION_FAILURE) N(CL_OUT_OF_RESOURCES) N(CL_OUT_OF_HOST_MEMORY)
    N(CL_PROFILING_INFO_NOT_AVAILABLE) N(CL_MEM_COPY_OVERLAP) N(CL_IMAGE_FORMAT_MISMATCH)
    N(CL_IMAGE_FORMAT_NOT_SUPPORTED) N(CL_BUILD_PROGRAM_FAILURE) N(CL_MAP_FAILURE)
    N(CL_MISALIGNED_SUB_BUFFER_OFFSET) N(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
    N(CL_COMPILE_PROGRAM_FAILURE) N(CL_LINKER_NOT_AVAILABLE) N(CL_LINK_PROGRAM_FAILURE)
    N(CL_DEVICE_PARTITION_FAILED) N(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) N(CL_INVALID_VALUE)
    N(CL_INVALID_DEVICE_TYPE) N(CL_INVALID_PLATFORM) N(CL_INVALID_DEVICE) N(CL_INVALID_CONTEXT)
    N(CL_INVALID_QUEUE_PROPERTIES) N(CL_INVALID_COMMAND_QUEUE) N(CL_INVALID_HOST_PTR)
    N(CL_INVALID_MEM_OBJECT) N(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR) N(CL_INVALID_IMAGE_SIZE)
    N(CL_INVALID_SAMPLER) N(CL_INVALID_BINARY) N(CL_INVALID_BUILD_OPTIONS) N(CL_INVALID_PROGRAM)
    N(CL_INVALID_PROGRAM_EXECUTABLE) N(CL_INVALID_KERNEL_NAME) N(CL_INVALID_KERNEL_DEFINITION)
    N(CL_INVALID_KERNEL) N(CL_INVALID_ARG_INDEX) N(CL_INVALID_ARG_VALUE) N(CL_INVALID_ARG_SIZE)
    N(CL_INVALID_KERNEL_ARGS) N(CL_INVALID_WORK_DIMENSION) N(CL_INVALID_WORK_GROUP_SIZE)
    N(CL_INVALID_WORK_ITEM_SIZE) N(CL_INVALID_GLOBAL_OFFSET) N(CL_INVALID_EVENT_WAIT_LIST)
    N(CL_INVALID_EVENT) N(CL_INVALID_OPERATION) N(CL_INVALID_GL_OBJECT) N(CL_INVALID_BUFFER_SIZE)
    N(CL_INVALID_MIP_LEVEL) N(CL_INVALID_GLOBAL_WORK_SIZE) N(CL_INVALID_PROPERTY)
    N(CL_INVALID_IMAGE_DESCRIPTOR) N(CL_INVALID_COMPILER_OPTIONS) N(CL_INVALID_LINKER_OPTIONS)
    N(CL_INVALID_DEVICE_PARTITION_COUNT)
#undef N
    default:
      return "CL_UNKNOWN_ERROR";
  }
}

pa_status pa_cl_fail(pa_context *ctx, cl_int err, const char *what) {
  pa_status s = err == CL_OUT_OF_HOST_MEMORY || err == CL_MEM_OBJECT_ALLOCATION_FAILURE
                    ? PA_ERR_OUT_OF_MEMORY
                    : PA_ERR_BACKEND;
  return pa_fail(ctx, s, "opencl: %s: %s (%d)", what, pa_cl_error_name(err), (int)err);
}

void pa_cl_arg(pa_cl_args *a, size_t size, const void *value) {
  cl_int e = clSetKernelArg(a->k, a->n, size, value);
  if (e != CL_SUCCESS && a->err == CL_SUCCESS) {
    a->err = e;
    a->bad = a->n;
  }
  a->n++;
}
void pa_cl_arg_mem(pa_cl_args *a, const pa_buffer *b) {
  cl_mem m = pa_cl_mem(b);
  pa_cl_arg(a, sizeof m, &m);
}
void pa_cl_arg_long(pa_cl_args *a, int64_t v) {
  cl_long x = v;
  pa_cl_arg(a, sizeof x, &x);
}
void pa_cl_arg_int(pa_cl_args *a, int v) {
  cl_int x = v;
  pa_cl_arg(a, sizeof x, &x);
}
void pa_cl_arg_float(pa_cl_args *a, float v) {
  cl_float x = v;
  pa_cl_arg(a, sizeof x, &x);
}

/* ------------------------------------------------------------------------ */
/* Devices: every (platform, device) pair, in platform order.                 */

#define MAX_DEVS 64

static int list_devices(cl_platform_id *plat, cl_device_id *dev, int *plat_index) {
  cl_platform_id ps[16];
  cl_uint np = 0;
  if (clGetPlatformIDs(16, ps, &np) != CL_SUCCESS) return 0;
  int n = 0;
  for (cl_uint p = 0; p < np && p < 16; p++) {
    cl_device_id ds[MAX_DEVS];
    cl_uint nd = 0;
    if (clGetDeviceIDs(ps[p], CL_DEVICE_TYPE_ALL, MAX_DEVS, ds, &nd) != CL_SUCCESS) continue;
    for (cl_uint d = 0; d < nd && n < MAX_DEVS; d++, n++) {
      plat[n] = ps[p];
      dev[n] = ds[d];
      if (plat_index) plat_index[n] = (int)p;
    }
  }
  return n;
}

static pa_status ocl_device_count(int *count) {
  cl_platform_id p[MAX_DEVS];
  cl_device_id d[MAX_DEVS];
  *count = list_devices(p, d, NULL);
  return PA_OK;
}

static bool contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; *hay; hay++) {
    size_t i = 0;
    while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == n) return true;
  }
  return n == 0;
}

/* The device index for `device` (-1: PA_OPENCL_DEVICE, else the first GPU,
 * else the first device); -1 when none matches. */
static int resolve_device(int device, cl_platform_id *plat, cl_device_id *dev, int n,
                          const int *plat_index) {
  if (device >= 0) return device < n ? device : -1;
  const char *env = getenv("PA_OPENCL_DEVICE");
  if (env && *env) {
    int p, d;
    char tail;
    if (sscanf(env, "%d:%d%c", &p, &d, &tail) == 2) {
      int k = 0;
      for (int i = 0; i < n; i++) {
        if (plat_index[i] != p) continue;
        if (k++ == d) return i;
      }
      return -1;
    }
    for (int i = 0; i < n; i++) {
      char name[256] = "", pname[256] = "";
      clGetDeviceInfo(dev[i], CL_DEVICE_NAME, sizeof name - 1, name, NULL);
      clGetPlatformInfo(plat[i], CL_PLATFORM_NAME, sizeof pname - 1, pname, NULL);
      if (contains_nocase(name, env) || contains_nocase(pname, env)) return i;
    }
    return -1;
  }
  for (int i = 0; i < n; i++) {
    cl_device_type t = 0;
    clGetDeviceInfo(dev[i], CL_DEVICE_TYPE, sizeof t, &t, NULL);
    if (t & CL_DEVICE_TYPE_GPU) return i;
  }
  return n > 0 ? 0 : -1;
}

static void fill_info(cl_device_id d, pa_device_info *info) {
  memset(info, 0, sizeof *info);
  clGetDeviceInfo(d, CL_DEVICE_NAME, sizeof info->name - 1, info->name, NULL);
  info->backend = PA_BACKEND_OPENCL;
  cl_uint cu = 0;
  cl_ulong gm = 0, lm = 0;
  clGetDeviceInfo(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof cu, &cu, NULL);
  clGetDeviceInfo(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof gm, &gm, NULL);
  clGetDeviceInfo(d, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL);
  info->compute_units = (int)cu;
  info->global_mem = (int64_t)gm;
  info->shared_mem = (int64_t)lm;
  char ver[64] = "";
  clGetDeviceInfo(d, CL_DEVICE_VERSION, sizeof ver - 1, ver, NULL);
  cl_device_type type = 0;
  clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  /* "gpu" lets PA_BACKEND_AUTO prefer an OpenCL GPU over the CPU backend. */
  const char *kind = type & CL_DEVICE_TYPE_GPU ? "gpu" : type & CL_DEVICE_TYPE_CPU ? "cpu" : "other";
  snprintf(info->features, sizeof info->features, "%s %s", kind, ver);
}

static pa_status ocl_device_info(int device, pa_device_info *info) {
  cl_platform_id p[MAX_DEVS];
  cl_device_id d[MAX_DEVS];
  int pi[MAX_DEVS];
  int n = list_devices(p, d, pi);
  int i = resolve_device(device, p, d, n, pi);
  if (i < 0) return pa_fail(NULL, PA_ERR_NO_DEVICE, "opencl: device=%d not found (%d devices)", device, n);
  fill_info(d[i], info);
  return PA_OK;
}

/* ------------------------------------------------------------------------ */
/* Context                                                                    */

pa_status pa_cl_probe_mma(pa_context *ctx); /* probe.c */

static void cl_destroy(pa_context *ctx) {
  pa_cl_state *st = pa_cl(ctx);
  if (!st) return;
  pa_cl_cache_free(st);
  if (st->queue) clReleaseCommandQueue(st->queue);
  if (st->context) clReleaseContext(st->context);
  pthread_mutex_destroy(&st->lock);
  free(st->cache_dir);
  free(st);
  ctx->state = NULL;
}

static pa_status cl_create(pa_context *ctx, int device, const pa_context_desc *desc, void **state) {
  pa_cl_state *st = PA_FAULT_OR(calloc(1, sizeof *st));
  if (!st) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: context state");
  pthread_mutex_init(&st->lock, NULL);
  ctx->state = st;
  *state = st;
  cl_int e;
  cl_command_queue nq = desc ? (cl_command_queue)desc->native_queue : NULL;
  if (nq) {
    /* Borrowed queue: its context and device decide; we hold a reference. */
    e = clGetCommandQueueInfo(nq, CL_QUEUE_CONTEXT, sizeof st->context, &st->context, NULL);
    if (e == CL_SUCCESS)
      e = clGetCommandQueueInfo(nq, CL_QUEUE_DEVICE, sizeof st->device, &st->device, NULL);
    if (e != CL_SUCCESS) {
      st->context = NULL;
      cl_destroy(ctx);
      return pa_cl_fail(ctx, e, "native_queue is not a cl_command_queue");
    }
    /* Kernels of one run (attention, then combine) are ordered by the queue
     * alone, with no events between them. */
    cl_command_queue_properties props = 0;
    clGetCommandQueueInfo(nq, CL_QUEUE_PROPERTIES, sizeof props, &props, NULL);
    if (props & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) {
      st->context = NULL;
      cl_destroy(ctx);
      return pa_fail(ctx, PA_ERR_UNSUPPORTED,
                     "opencl: native_queue is out-of-order; polyattn needs an in-order queue");
    }
    clRetainContext(st->context);
    clRetainCommandQueue(nq);
    st->queue = nq;
    clGetDeviceInfo(st->device, CL_DEVICE_PLATFORM, sizeof st->platform, &st->platform, NULL);
  } else {
    cl_platform_id p[MAX_DEVS];
    cl_device_id d[MAX_DEVS];
    int pi[MAX_DEVS];
    int n = list_devices(p, d, pi);
    int i = resolve_device(device, p, d, n, pi);
    if (i < 0) {
      cl_destroy(ctx);
      const char *env = getenv("PA_OPENCL_DEVICE");
      return pa_fail(ctx, PA_ERR_NO_DEVICE, "opencl: device=%d (PA_OPENCL_DEVICE=%s) not found among %d devices",
                     device, env ? env : "", n);
    }
    st->platform = p[i];
    st->device = d[i];
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)p[i], 0};
    st->context = clCreateContext(props, 1, &st->device, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
      st->context = NULL;
      cl_destroy(ctx);
      return pa_cl_fail(ctx, e, "clCreateContext");
    }
    st->queue = clCreateCommandQueue(st->context, st->device, 0, &e);
    if (e != CL_SUCCESS) {
      st->queue = NULL;
      cl_destroy(ctx);
      return pa_cl_fail(ctx, e, "clCreateCommandQueue");
    }
    st->own_queue = true;
  }

  cl_device_type type = 0;
  cl_ulong lm = 0;
  size_t wg = 0;
  clGetDeviceInfo(st->device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
  clGetDeviceInfo(st->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof lm, &lm, NULL);
  clGetDeviceInfo(st->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof wg, &wg, NULL);
  st->is_cpu = (type & CL_DEVICE_TYPE_CPU) != 0;
  st->local_mem = (size_t)lm;
  st->max_wg = wg;
  char name[256] = "", drv[128] = "", pver[256] = "";
  clGetDeviceInfo(st->device, CL_DEVICE_NAME, sizeof name - 1, name, NULL);
  clGetDeviceInfo(st->device, CL_DRIVER_VERSION, sizeof drv - 1, drv, NULL);
  clGetPlatformInfo(st->platform, CL_PLATFORM_VERSION, sizeof pver - 1, pver, NULL);
  snprintf(st->device_key, sizeof st->device_key, "%s|%s|%s", name, drv, pver);
  if (desc && desc->cache_dir && *desc->cache_dir) {
    st->cache_dir = PA_FAULT_OR(strdup(desc->cache_dir));
    if (!st->cache_dir) {
      cl_destroy(ctx);
      return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: cache_dir");
    }
  }

  fill_info(st->device, &ctx->info);
  ctx->device = device;
  /* GPUs keep several work-groups of the tile kernel resident per unit. */
  ctx->props = (pa_device_props){
      .compute_units = ctx->info.compute_units > 0 ? ctx->info.compute_units : 1,
      .slots_per_unit = st->is_cpu ? 1 : 4,
      .min_kv_per_split = 256,
      .max_splits = 64,
  };
  pa_cl_probe_mma(ctx);
  size_t used = strlen(ctx->info.features);
  snprintf(ctx->info.features + used, sizeof ctx->info.features - used, "%s",
           st->mma_ok ? ", mma.sync probe ok" : "");
  pa_log(2, "opencl: %s (%s), %d CUs, local %zu B%s", name, drv, ctx->info.compute_units,
         st->local_mem, st->mma_ok ? ", mma.sync probe ok" : "");
  return PA_OK;
}

/* ------------------------------------------------------------------------ */
/* Buffers                                                                    */

static pa_status cl_buf_alloc(pa_context *ctx, size_t bytes, void **handle) {
  if (pa_fault_hit())
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: clCreateBuffer of %zu bytes: injected fault",
                   bytes);
  cl_int e;
  cl_mem m = clCreateBuffer(pa_cl(ctx)->context, CL_MEM_READ_WRITE, bytes ? bytes : 4, NULL, &e);
  if (e != CL_SUCCESS) return pa_cl_fail(ctx, e, "clCreateBuffer");
  *handle = m;
  return PA_OK;
}

static void cl_buf_free(pa_context *ctx, void *handle) {
  (void)ctx;
  if (handle) clReleaseMemObject((cl_mem)handle);
}

static pa_status cl_buf_wrap(pa_context *ctx, void *native, size_t bytes, void **handle) {
  cl_mem m = (cl_mem)native;
  cl_context c = NULL;
  size_t size = 0;
  cl_int e = clGetMemObjectInfo(m, CL_MEM_CONTEXT, sizeof c, &c, NULL);
  if (e == CL_SUCCESS) e = clGetMemObjectInfo(m, CL_MEM_SIZE, sizeof size, &size, NULL);
  if (e != CL_SUCCESS) return pa_cl_fail(ctx, e, "pa_buffer_wrap: native is not a cl_mem");
  if (c != pa_cl(ctx)->context)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "pa_buffer_wrap: cl_mem belongs to another cl_context");
  if (size < bytes)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "pa_buffer_wrap: bytes=%zu but the cl_mem holds %zu",
                   bytes, size);
  clRetainMemObject(m);
  *handle = m;
  return PA_OK;
}

static pa_status cl_buf_write(pa_context *ctx, void *handle, size_t off, const void *src, size_t n) {
  if (!n) return PA_OK;
  cl_int e = clEnqueueWriteBuffer(pa_cl(ctx)->queue, (cl_mem)handle, CL_TRUE, off, n, src, 0, NULL, NULL);
  return e == CL_SUCCESS ? PA_OK : pa_cl_fail(ctx, e, "clEnqueueWriteBuffer");
}

static pa_status cl_buf_read(pa_context *ctx, void *handle, size_t off, void *dst, size_t n) {
  if (!n) return PA_OK;
  cl_int e = clEnqueueReadBuffer(pa_cl(ctx)->queue, (cl_mem)handle, CL_TRUE, off, n, dst, 0, NULL, NULL);
  return e == CL_SUCCESS ? PA_OK : pa_cl_fail(ctx, e, "clEnqueueReadBuffer");
}

static pa_status cl_synchronize(pa_context *ctx) {
  cl_int e = clFinish(pa_cl(ctx)->queue);
  return e == CL_SUCCESS ? PA_OK : pa_cl_fail(ctx, e, "clFinish");
}

const pa_backend_ops pa_opencl_backend = {
    .abi_version = PA_BACKEND_ABI,
    .kind = PA_BACKEND_OPENCL,
    .name = "opencl",
    .device_count = ocl_device_count,
    .device_info = ocl_device_info,
    .create = cl_create,
    .destroy = cl_destroy,
    .buf_alloc = cl_buf_alloc,
    .buf_free = cl_buf_free,
    .buf_wrap = cl_buf_wrap,
    .buf_unwrap = cl_buf_free,
    .buf_write = cl_buf_write,
    .buf_read = cl_buf_read,
    .select = pa_cl_select,
    .plan_ready = pa_cl_plan_ready,
    .attention = pa_cl_attention,
    .mla = pa_cl_mla,
    .merge = pa_cl_merge,
    .head_gemm = pa_cl_head_gemm,
    .synchronize = cl_synchronize,
    .append = pa_cl_append,
};

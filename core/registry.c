/* The backends compiled in, and how PA_BACKEND_AUTO chooses among them. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend.h"
#include "registry.h"

const pa_backend_ops *pa_backend_find(pa_backend b) {
  switch (b) {
  case PA_BACKEND_CPU: return &pa_cpu_backend;
#ifdef PA_HAVE_CUDA
  case PA_BACKEND_CUDA: return &pa_cuda_backend;
#endif
#ifdef PA_HAVE_OPENCL
  case PA_BACKEND_OPENCL: return &pa_opencl_backend;
#endif
  default: return NULL;
  }
}

int pa_backend_compiled(pa_backend b) { return pa_backend_find(b) != NULL; }

pa_status pa_device_count(pa_backend b, int *count) {
  if (!count) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "count is NULL");
  *count = 0;
  const pa_backend_ops *ops = pa_backend_find(b);
  if (!ops) return PA_OK;
  int n = 0;
  if (ops->device_count(&n) != PA_OK) n = 0; /* no driver: no devices */
  *count = n;
  return PA_OK;
}

pa_status pa_device_get_info(pa_backend b, int device, pa_device_info *info) {
  if (!info) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "info is NULL");
  const pa_backend_ops *ops = pa_backend_find(b);
  if (!ops) return pa_fail(NULL, PA_ERR_UNSUPPORTED, "backend %s is not compiled in",
                           pa_backend_name(b));
  int n = 0;
  if (ops->device_count(&n) != PA_OK || device < 0 || device >= n)
    return pa_fail(NULL, PA_ERR_NO_DEVICE, "backend %s: device=%d but %d device(s)",
                   pa_backend_name(b), device, n);
  memset(info, 0, sizeof *info);
  return ops->device_info(device, info);
}

/* PA_BACKEND=cpu|cuda|opencl overrides AUTO. Otherwise the first with a device:
 * CUDA, then OpenCL on a GPU-class device, then the CPU. PoCL is an OpenCL CPU
 * device and never beats our own CPU backend, so AUTO skips OpenCL unless its
 * backend says its default device is a GPU (features contains "gpu"). */
pa_backend pa_backend_auto(void) {
  const char *env = pa_config_env_backend();
  if (env && *env) {
    if (!strcasecmp(env, "cpu")) return PA_BACKEND_CPU;
    if (!strcasecmp(env, "cuda")) return PA_BACKEND_CUDA;
    if (!strcasecmp(env, "opencl")) return PA_BACKEND_OPENCL;
  }
  int n = 0;
  if (pa_device_count(PA_BACKEND_CUDA, &n) == PA_OK && n > 0) return PA_BACKEND_CUDA;
  if (pa_device_count(PA_BACKEND_OPENCL, &n) == PA_OK && n > 0) {
    pa_device_info info;
    if (pa_device_get_info(PA_BACKEND_OPENCL, 0, &info) == PA_OK && strstr(info.features, "gpu"))
      return PA_BACKEND_OPENCL;
  }
  return PA_BACKEND_CPU;
}

/* The tensor-core probe: on NVIDIA, a tiny kernel with inline PTX mma.sync must
 * build and produce a known product before any kernel may use it.
 * PA_OPENCL_NO_MMA=1 disables it. */
#include <stdlib.h>
#include <string.h>

#include "cl_backend.h"

pa_status pa_cl_probe_mma(pa_context *ctx) {
  pa_cl_state *st = pa_cl(ctx);
  st->mma_ok = false;
  const char *off = getenv("PA_OPENCL_NO_MMA");
  if (off && *off && strcmp(off, "0")) return PA_OK;
  char vendor[128] = "";
  clGetDeviceInfo(st->device, CL_DEVICE_VENDOR, sizeof vendor - 1, vendor, NULL);
  if (!strstr(vendor, "NVIDIA")) return PA_OK;
  /* No mma.sync kernel ships yet: the probe stays off until one does. */
  return PA_OK;
}

/* OpenCL helpers shared by the bench's ceilings and the unfused baseline: a
 * queue of our own (with profiling) on the device of a polyattn context. */
#ifndef PA_BENCH_OPENCL_UTIL_H
#define PA_BENCH_OPENCL_UTIL_H

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "polyattn.h"

typedef struct bench_cl {
  cl_context ctx; /* retained */
  cl_device_id dev;
  cl_command_queue q;
} bench_cl;

/* Finds ctx's cl_context and device through a cl_mem of it. */
pa_status bench_cl_from_ctx(pa_context *ctx, bench_cl *b, char *err, size_t nerr);
void bench_cl_release(bench_cl *b);
/* Waits for ev, returns its device time in ms, releases it. */
double bench_cl_event_ms(cl_event ev);
/* NULL on failure, with the build log's start in err. */
cl_program bench_cl_build(bench_cl *b, const char *src, char *err, size_t nerr);

#endif

/* pa_kv_append / pa_mla_append on OpenCL: one launch of kernels/append.cl,
 * built per (source dtypes, cache dtype) and found in the program cache. */
#include <stdio.h>

#include "cl_backend.h"

pa_status pa_cl_append(pa_context *ctx, const pa_append_launch *L) {
  pa_cl_state *st = pa_cl(ctx);
  char defs[160];
  /* fp8: the quotient x / scale must be the host's, so IEEE division */
  snprintf(defs, sizeof defs, "-DS0_DT=%d -DS1_DT=%d -DC_DT=%d%s", (int)L->s[0].src->dtype,
           (int)L->s[1].src->dtype, (int)L->s[0].cache->dtype,
           pa_dtype_is_fp8(L->s[0].cache->dtype) ? " -cl-fp32-correctly-rounded-divide-sqrt" : "");
  cl_kernel k;
  pa_status s = pa_cl_kernel(ctx, "append.cl", defs, "pa_append", &k);
  if (s != PA_OK) return s;
  pthread_mutex_lock(&st->lock);
  pa_cl_args g = {.k = k};
  for (int i = 0; i < 2; i++) {
    pa_cl_arg_mem(&g, L->s[i].src->buf);
    pa_cl_arg_long(&g, pa_cl_elem_off(L->s[i].src));
    pa_cl_arg_long(&g, L->s[i].src_t), pa_cl_arg_long(&g, L->s[i].src_h);
  }
  for (int i = 0; i < 2; i++) {
    pa_cl_arg_mem(&g, L->s[i].cache->buf);
    pa_cl_arg_long(&g, pa_cl_elem_off(L->s[i].cache));
    pa_cl_arg_long(&g, L->s[i].c_page), pa_cl_arg_long(&g, L->s[i].c_slot);
    pa_cl_arg_long(&g, L->s[i].c_h);
  }
  for (int i = 0; i < 2; i++) {
    pa_cl_arg_mem(&g, L->s[i].scale ? L->s[i].scale->buf : NULL);
    pa_cl_arg_long(&g, L->s[i].scale ? pa_cl_elem_off(L->s[i].scale) : 0);
    pa_cl_arg_long(&g, L->s[i].scale_h);
  }
  pa_cl_arg_mem(&g, L->slots->buf);
  pa_cl_arg_long(&g, pa_cl_elem_off(L->slots));
  pa_cl_arg_long(&g, L->slot_s);
  pa_cl_arg_long(&g, L->heads);
  pa_cl_arg_long(&g, L->page_size);
  pa_cl_arg_long(&g, L->num_pages);
  pa_cl_arg_int(&g, (int)L->s[0].dim);
  pa_cl_arg_int(&g, (int)L->s[1].dim);
  if (g.err != CL_SUCCESS) {
    s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: append argument %u: %s (%d)", g.bad,
                pa_cl_error_name(g.err), (int)g.err);
  } else {
    const int64_t dmax = L->s[0].dim > L->s[1].dim ? L->s[0].dim : L->s[1].dim;
    size_t local = dmax >= 128 ? 128 : dmax > 32 ? 64 : 32;
    size_t global = local * (size_t)(L->tokens * L->heads);
    cl_int e = clEnqueueNDRangeKernel(st->queue, k, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, "enqueue pa_append");
  }
  pthread_mutex_unlock(&st->lock);
  return s;
}

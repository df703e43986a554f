/* The public OpenCL interop (include/polyattn_opencl.h) and the unfused CLBlast
 * baseline: scores materialised in f32, softmax kernel, two batched SGEMMs. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <clblast_c.h>

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

typedef struct layout {
  size_t q, k, v, o, s, total; /* f32 element offsets in the workspace */
} layout;

static layout unfused_layout(int64_t B, int64_t Hq, int64_t Hkv, int64_t Sq, int64_t Sk, int64_t D,
                             pa_dtype dt) {
  layout l = {0};
  size_t at = 0;
  if (dt != PA_F32) {
    l.q = at, at += (size_t)(B * Sq * Hq * D);
    l.k = at, at += (size_t)(B * Sk * Hkv * D);
    l.v = at, at += (size_t)(B * Sk * Hkv * D);
    l.o = at, at += (size_t)(B * Sq * Hq * D);
  }
  l.s = at, at += (size_t)(B * Hq * Sq * Sk);
  l.total = at;
  return l;
}

size_t pa_opencl_unfused_workspace_size(int batch, int num_q_heads, int num_kv_heads, int seq_q,
                                        int seq_k, int head_dim, pa_dtype dtype) {
  return unfused_layout(batch, num_q_heads, num_kv_heads, seq_q, seq_k, head_dim, dtype).total * 4;
}

static pa_status convert(pa_context *ctx, cl_kernel k, cl_mem src, size_t s_off, cl_mem dst,
                         size_t d_off, size_t n) {
  pa_cl_args g = {.k = k};
  pa_cl_arg(&g, sizeof src, &src);
  pa_cl_arg_long(&g, (int64_t)s_off);
  pa_cl_arg(&g, sizeof dst, &dst);
  pa_cl_arg_long(&g, (int64_t)d_off);
  pa_cl_arg_long(&g, (int64_t)n);
  if (g.err != CL_SUCCESS) return pa_cl_fail(ctx, g.err, "unfused convert arguments");
  size_t local = 256, global = 256 * 1024;
  cl_int e = clEnqueueNDRangeKernel(pa_cl(ctx)->queue, k, 1, NULL, &global, &local, 0, NULL, NULL);
  return e == CL_SUCCESS ? PA_OK : pa_cl_fail(ctx, e, "enqueue unfused convert");
}

pa_status pa_opencl_unfused_attention(pa_context *ctx, int B, int Hq, int Hkv, int Sq, int Sk, int D,
                                      int causal, pa_dtype dt, pa_buffer *q, pa_buffer *k,
                                      pa_buffer *v, pa_buffer *out, pa_buffer *ws) {
  if (!is_cl(ctx)) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "ctx is not an OpenCL context");
  if (B < 1 || Hq < 1 || Hkv < 1 || Hq % Hkv || Sq < 1 || Sk < 1 || D < 1 || !q || !k || !v || !out || !ws)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "unfused: batch=%d heads=%d/%d seq=%d/%d head_dim=%d (and five buffers) are required",
                   B, Hq, Hkv, Sq, Sk, D);
  layout l = unfused_layout(B, Hq, Hkv, Sq, Sk, D, dt);
  if (pa_buffer_size(ws) < l.total * 4)
    return pa_fail(ctx, PA_ERR_WORKSPACE_TOO_SMALL, "unfused: workspace size=%zu but %zu needed",
                   pa_buffer_size(ws), l.total * 4);
  pa_cl_state *st = pa_cl(ctx);
  char defs[64];
  snprintf(defs, sizeof defs, "-DIN_DT=%d -DOUT_DT=%d", (int)dt, (int)dt);
  cl_kernel to32 = NULL, from32 = NULL, softmax;
  pa_status s = pa_cl_kernel(ctx, "unfused.cl", defs, "pa_softmax_rows", &softmax);
  if (s == PA_OK && dt != PA_F32) s = pa_cl_kernel(ctx, "unfused.cl", defs, "pa_to_f32", &to32);
  if (s == PA_OK && dt != PA_F32) s = pa_cl_kernel(ctx, "unfused.cl", defs, "pa_from_f32", &from32);
  if (s != PA_OK) return s;

  size_t nbh = (size_t)B * Hq;
  size_t *offs = malloc(nbh * 3 * sizeof *offs * 2);
  float *alphas = malloc(nbh * 2 * sizeof *alphas);
  if (!offs || !alphas) {
    free(offs), free(alphas);
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "unfused: offsets");
  }
  cl_mem wsm = pa_cl_mem(ws);
  cl_mem qm = dt == PA_F32 ? pa_cl_mem(q) : wsm, km = dt == PA_F32 ? pa_cl_mem(k) : wsm;
  cl_mem vm = dt == PA_F32 ? pa_cl_mem(v) : wsm, om = dt == PA_F32 ? pa_cl_mem(out) : wsm;
  size_t nq = (size_t)B * Sq * Hq * D, nk = (size_t)B * Sk * Hkv * D;
  pthread_mutex_lock(&st->lock);
  if (dt != PA_F32) {
    s = convert(ctx, to32, pa_cl_mem(q), 0, wsm, l.q, nq);
    if (s == PA_OK) s = convert(ctx, to32, pa_cl_mem(k), 0, wsm, l.k, nk);
    if (s == PA_OK) s = convert(ctx, to32, pa_cl_mem(v), 0, wsm, l.v, nk);
  }
  size_t *ao = offs, *bo = offs + nbh, *co = offs + 2 * nbh;
  size_t *ao2 = offs + 3 * nbh, *bo2 = offs + 4 * nbh, *co2 = offs + 5 * nbh;
  int g = Hq / Hkv;
  for (size_t i = 0; i < nbh; i++) {
    size_t b = i / (size_t)Hq, h = i % (size_t)Hq;
    ao[i] = l.q + (b * (size_t)Sq * Hq + h) * D;
    bo[i] = l.k + (b * (size_t)Sk * Hkv + h / g) * D;
    co[i] = l.s + i * (size_t)Sq * Sk;
    ao2[i] = co[i];
    bo2[i] = l.v + (b * (size_t)Sk * Hkv + h / g) * D;
    co2[i] = l.o + (b * (size_t)Sq * Hq + h) * D;
    alphas[i] = 1.0f, alphas[nbh + i] = 0.0f;
  }
  CLBlastStatusCode c = CLBlastSuccess;
  if (s == PA_OK)
    c = CLBlastSgemmBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeYes, (size_t)Sq,
                            (size_t)Sk, (size_t)D, alphas, qm, ao, (size_t)Hq * D, km, bo,
                            (size_t)Hkv * D, alphas + nbh, wsm, co, (size_t)Sk, nbh, &st->queue, NULL);
  if (s == PA_OK && c == CLBlastSuccess) {
    pa_cl_args a = {.k = softmax};
    pa_cl_arg(&a, sizeof wsm, &wsm);
    pa_cl_arg_long(&a, (int64_t)l.s);
    pa_cl_arg_int(&a, Sq), pa_cl_arg_int(&a, Sk);
    pa_cl_arg_float(&a, 1.0f / sqrtf((float)D));
    pa_cl_arg_int(&a, causal);
    size_t local = 256, global = 256 * nbh * (size_t)Sq;
    cl_int e = a.err != CL_SUCCESS ? a.err
                                   : clEnqueueNDRangeKernel(st->queue, softmax, 1, NULL, &global, &local, 0, NULL, NULL);
    if (e != CL_SUCCESS) s = pa_cl_fail(ctx, e, "unfused softmax");
  }
  if (s == PA_OK && c == CLBlastSuccess)
    c = CLBlastSgemmBatched(CLBlastLayoutRowMajor, CLBlastTransposeNo, CLBlastTransposeNo, (size_t)Sq,
                            (size_t)D, (size_t)Sk, alphas, wsm, ao2, (size_t)Sk, vm, bo2,
                            (size_t)Hkv * D, alphas + nbh, om, co2, (size_t)Hq * D, nbh, &st->queue, NULL);
  if (s == PA_OK && c != CLBlastSuccess)
    s = pa_fail(ctx, PA_ERR_BACKEND, "unfused: CLBlastSgemmBatched returned %d", (int)c);
  if (s == PA_OK && dt != PA_F32) s = convert(ctx, from32, wsm, l.o, pa_cl_mem(out), 0, nq);
  pthread_mutex_unlock(&st->lock);
  free(offs), free(alphas);
  return s;
}

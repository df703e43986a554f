/* pa_kv_append / pa_mla_append on the host: one token per pool item, each
 * row converted through f32 in chunks (kern->load, then kern->store or the
 * fp8 encode of x / scale). */
#include "cpu.h"

#define CHUNK 256

typedef struct append_job {
  const pa_append_launch *L;
  const pa_cpu_kernels *kern;
  const int32_t *slots;
} append_job;

static void row(const append_job *jb, const pa_append_stream *s, int64_t t, int64_t page,
                int64_t off, int64_t h) {
  const size_t ses = pa_cpu_esize(s->src->dtype), ces = pa_cpu_esize(s->cache->dtype);
  const char *src = pa_tensor_ptr_host(s->src) + (t * s->src_t + h * s->src_h) * (int64_t)ses;
  char *dst = pa_tensor_ptr_host(s->cache) +
              (page * s->c_page + off * s->c_slot + h * s->c_h) * (int64_t)ces;
  const pa_dtype ct = s->cache->dtype;
  float buf[CHUNK];
  for (int64_t x0 = 0; x0 < s->dim; x0 += CHUNK) {
    const int64_t n = s->dim - x0 < CHUNK ? s->dim - x0 : CHUNK;
    jb->kern->load(s->src->dtype, src + x0 * (int64_t)ses, buf, n, 1.0f);
    if (s->scale) {
      const float sc = ((const float *)(const void *)pa_tensor_ptr_host(s->scale))[h * s->scale_h];
      uint8_t *d = (uint8_t *)dst + x0;
      if (jb->kern->quantize)
        jb->kern->quantize(ct, buf, d, n, sc);
      else
        for (int64_t x = 0; x < n; x++) d[x] = pa_fp8_encode(ct, buf[x] / sc);
    } else {
      jb->kern->store(ct, buf, dst + x0 * (int64_t)ces, n, 1.0f);
    }
  }
}

static void run_token(void *arg, int64_t t, int tid) {
  const append_job *jb = arg;
  const pa_append_launch *L = jb->L;
  (void)tid;
  const int32_t slot = jb->slots[t * L->slot_s];
  if (slot < 0) return;
  const int64_t page = slot / L->page_size, off = slot % L->page_size;
  for (int i = 0; i < 2; i++)
    for (int64_t h = 0; h < L->heads; h++) row(jb, &L->s[i], t, page, off, h);
}

pa_status pa_cpu_append(pa_context *ctx, const pa_append_launch *L) {
  pa_cpu_state *st = pa_cpu(ctx);
  append_job jb = {L, st->kern, (const int32_t *)(const void *)pa_tensor_ptr_host(L->slots)};
  pa_pool_run(st->pool, L->tokens, run_token, &jb);
  return PA_OK;
}

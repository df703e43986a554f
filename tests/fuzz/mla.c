/* libFuzzer harness: bytes -> an MLA descriptor (heads, latent and rope dims,
 * dtypes incl. fp8 caches, page size, causal, splits, chunk, flags), a paged
 * batch and tensors for pa_mla_plan + pa_mla_run on the CPU backend; runs
 * whenever validation accepts. Buffers sized exactly (fuzz_util.h). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pa_context *ctx = fuzz_ctx();
  bytes b = {data, size};
  int H = 1 + (int)take(&b, 8);
  int dc = take(&b, 32) == 0 ? 512 : 1 + (int)take(&b, 80);
  int dr = take(&b, 32) == 0 ? 64 : (int)take(&b, 20);
  static const int pages[6] = {1, 2, 4, 16, 64, 0};
  int ps = pages[take(&b, 6)];
  pa_dtype dt = (pa_dtype)take(&b, 3);
  pa_mla_desc d;
  pa_mla_desc_init(&d, H, dc, dr, ps, dt);
  if (take(&b, 4) == 0) d.kv_dtype = take(&b, 2) ? PA_FP8_E4M3 : PA_FP8_E5M2;
  if (take(&b, 16) == 0) d.kv_dtype = (pa_dtype)take(&b, 7);
  if (take(&b, 16) == 0) d.q_dtype = (pa_dtype)take(&b, 7);
  if (take(&b, 16) == 0) d.o_dtype = (pa_dtype)take(&b, 7);
  d.causal = (int)take(&b, 2);
  d.num_splits = (int)take(&b, 6) - (take(&b, 32) == 0);
  d.kv_chunk = take(&b, 4) == 0 ? (int)take(&b, 40) - 1 : 0;
  d.flags = take(&b, 32);
  if (take(&b, 16) == 0) d.scale = take(&b, 2) ? -1.0f : NAN;

  int B = (int)take(&b, 4);
  int32_t lq[3] = {0}, lk[3] = {0}, cq[4] = {0};
  int64_t T = 0, max_pages = 1, npages = 0;
  for (int i = 0; i < B; i++) {
    lq[i] = (int32_t)take(&b, 5);
    lk[i] = (int32_t)take(&b, 70);
    if (take(&b, 32) == 0) lk[i] = -1;
    cq[i + 1] = cq[i] + lq[i];
    T += lq[i];
    int64_t np = ps > 0 && lk[i] > 0 ? (lk[i] + ps - 1) / ps : 0;
    npages += np;
    if (np > max_pages) max_pages = np;
  }
  pa_batch batch = {B, NULL, lk, cq, NULL};
  if (take(&b, 8) == 0) batch.seqlens_q = lq;
  if (take(&b, 32) == 0) batch.seqlens_k = NULL;

  pa_plan *plan = NULL;
  if (pa_mla_plan(ctx, &d, &batch, &plan) != PA_OK) return 0;
  pa_mla_args a;
  memset(&a, 0, sizeof a);
  int64_t qn[3] = {T, H, dc}, qp[3] = {T, H, dr}, os[3] = {T, H, dc}, ls[2] = {T, H};
  int64_t cs[3] = {npages + 1, ps, dc}, ks[3] = {npages + 1, ps, dr}, bt[2] = {B, max_pages};
  make(ctx, &b, &a.q_nope, d.q_dtype, 3, qn);
  make(ctx, &b, &a.q_pe, d.q_dtype, 3, qp);
  make(ctx, &b, &a.ckv, d.kv_dtype, 3, cs);
  make(ctx, &b, &a.kpe, d.kv_dtype, 3, ks);
  make(ctx, &b, &a.block_table, PA_I32, 2, bt);
  make(ctx, &b, &a.out, d.o_dtype, 3, os);
  if ((d.flags & PA_RETURN_LSE) || take(&b, 16) == 0) make(ctx, &b, &a.lse, PA_F32, 2, ls);
  int fp8 = d.kv_dtype == PA_FP8_E4M3 || d.kv_dtype == PA_FP8_E5M2;
  int64_t one[1] = {1};
  if (fp8 != (take(&b, 16) == 0)) make(ctx, &b, &a.kv_scale, PA_F32, 1, one);
  /* valid page indices, unless the bytes say otherwise */
  size_t n = (size_t)(B * max_pages);
  int32_t *idx = calloc(n ? n : 1, sizeof *idx);
  for (size_t i = 0; idx && i < n; i++)
    idx[i] = take(&b, 32) == 0 ? (int32_t)take(&b, 255) - 100 : (int32_t)(i % (size_t)(npages + 1));
  if (idx) put_i32(&a.block_table, idx, (int64_t)n);
  free(idx);
  pa_buffer *ws = NULL;
  size_t wss = pa_plan_workspace_size(plan);
  if (wss && take(&b, 4) == 0) pa_buffer_create(ctx, wss - take(&b, 2), &ws);
  if (pa_mla_run(plan, &a, ws) == PA_OK) pa_context_synchronize(ctx);
  pa_buffer_destroy(ws);
  pa_tensor *ts[] = {&a.q_nope,      &a.q_pe, &a.ckv, &a.kpe,
                     &a.block_table, &a.out,  &a.lse, &a.kv_scale};
  destroy_all(ts, sizeof ts / sizeof ts[0]);
  pa_plan_destroy(plan);
  return 0;
}

/* libFuzzer harness: bytes -> an attention descriptor, batch, tensor shapes,
 * strides, offsets and dtypes on the CPU backend; plan, and run whenever
 * validation accepts. Every tensor has its own buffer sized exactly as its
 * shape and strides claim (offset included), so ASan sees any access past
 * it (helpers in fuzz_util.h); fp8 K/V with their k_scale/v_scale. Built
 * with -Dfuzz=true (clang, -fsanitize=fuzzer,address,undefined). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pa_context *ctx = fuzz_ctx();
  bytes b = {data, size};
  int hkv = 1 + (int)take(&b, 3), g = 1 + (int)take(&b, 4);
  int dqk = 1 + (int)take(&b, 72), dv = take(&b, 2) ? dqk : 1 + (int)take(&b, 72);
  pa_dtype dt = (pa_dtype)take(&b, 3);
  pa_attention_desc d;
  pa_attention_desc_init(&d, hkv * g, hkv, dqk, dt);
  d.head_dim_v = dv;
  d.causal = (int)take(&b, 2);
  d.window_left = (int)take(&b, 6) - 1;
  d.window_right = (int)take(&b, 6) - 1;
  d.sink_tokens = (int)take(&b, 3);
  d.softcap = take(&b, 4) == 0 ? 5.0f : 0.0f;
  static const int pages[4] = {0, 0, 1, 16};
  d.page_size = pages[take(&b, 4)];
  d.num_splits = (int)take(&b, 5);
  d.flags = take(&b, 32);
  if (take(&b, 16) == 0) d.kv_dtype = (pa_dtype)take(&b, 7);
  if (take(&b, 6) == 0) d.kv_dtype = take(&b, 2) ? PA_FP8_E4M3 : PA_FP8_E5M2;
  if (take(&b, 16) == 0) d.o_dtype = (pa_dtype)take(&b, 4);

  int B = (int)take(&b, 4);
  int32_t lq[3] = {0}, lk[3] = {0}, cq[4] = {0}, ck[4] = {0};
  int64_t tq = 0, tk = 0, max_pages = 1, npages = 0;
  for (int i = 0; i < B; i++) {
    lq[i] = (int32_t)take(&b, 20);
    lk[i] = (int32_t)take(&b, 48);
    if (d.causal == 0 && take(&b, 8) == 0) lk[i] = 0;
    cq[i + 1] = cq[i] + lq[i];
    ck[i + 1] = ck[i] + lk[i];
    tq += lq[i], tk += lk[i];
    if (d.page_size) {
      int64_t np = (lk[i] + d.page_size - 1) / d.page_size;
      npages += np;
      if (np > max_pages) max_pages = np;
    }
  }
  pa_batch batch = {B, NULL, NULL, cq, ck};
  if (d.page_size) batch = (pa_batch){B, NULL, lk, cq, NULL};
  if (take(&b, 8) == 0) batch.seqlens_q = lq;

  pa_plan *plan = NULL;
  if (pa_attention_plan(ctx, &d, &batch, &plan) == PA_OK) {
    pa_attention_args a;
    memset(&a, 0, sizeof a);
    int hq = d.num_q_heads;
    int64_t q_shape[3] = {tq, hq, dqk}, o_shape[3] = {tq, hq, dv};
    make(ctx, &b, &a.q, dt, 3, q_shape);
    make(ctx, &b, &a.out, d.o_dtype, 3, o_shape);
    if (d.page_size) {
      int64_t kp[4] = {npages + 1, d.page_size, hkv, dqk},
              vp[4] = {npages + 1, d.page_size, hkv, dv};
      make(ctx, &b, &a.k, d.kv_dtype, 4, kp);
      make(ctx, &b, &a.v, d.kv_dtype, 4, vp);
      int64_t bt[2] = {B, max_pages};
      make(ctx, &b, &a.block_table, PA_I32, 2, bt);
      if (a.block_table.buf) { /* valid page indices, unless the bytes say otherwise */
        size_t n = (size_t)(B * max_pages);
        int32_t *idx = calloc(n ? n : 1, sizeof *idx);
        for (size_t i = 0; idx && i < n; i++)
          idx[i] = take(&b, 32) == 0 ? (int32_t)take(&b, 255) - 100
                                     : (int32_t)(i % (size_t)(npages + 1));
        if (idx && a.block_table.dtype == PA_I32 && a.block_table.ndim == 2 &&
            a.block_table.stride[1] == 1 && a.block_table.stride[0] == max_pages &&
            a.block_table.shape[0] == B && a.block_table.shape[1] == max_pages)
          pa_buffer_write(a.block_table.buf, a.block_table.offset, idx, n * sizeof *idx);
        free(idx);
      }
    } else {
      int64_t ks[3] = {tk, hkv, dqk}, vs[3] = {tk, hkv, dv};
      make(ctx, &b, &a.k, d.kv_dtype, 3, ks);
      make(ctx, &b, &a.v, d.kv_dtype, 3, vs);
    }
    int64_t lse_s[2] = {tq, hq}, heads[1] = {hq};
    if (d.flags & PA_RETURN_LSE) make(ctx, &b, &a.lse, PA_F32, 2, lse_s);
    if (d.flags & PA_HAS_SINKS) make(ctx, &b, &a.sinks, PA_F32, 1, heads);
    if (d.flags & PA_HAS_ALIBI) make(ctx, &b, &a.alibi_slopes, PA_F32, 1, heads);
    int fp8 = d.kv_dtype == PA_FP8_E4M3 || d.kv_dtype == PA_FP8_E5M2;
    if (fp8 != (take(&b, 16) == 0)) { /* scales: [1] or [Hkv], refused without fp8 */
      int64_t one[1] = {1}, kvh[1] = {hkv};
      make(ctx, &b, &a.k_scale, PA_F32, 1, take(&b, 2) ? one : kvh);
      make(ctx, &b, &a.v_scale, PA_F32, 1, take(&b, 2) ? one : kvh);
    }
    int sq_max = 0, sk_max = 0;
    for (int i = 0; i < B; i++) {
      if (lq[i] > sq_max) sq_max = lq[i];
      if (lk[i] > sk_max) sk_max = lk[i];
    }
    int64_t mask_s[4] = {B, take(&b, 2) ? 1 : hq, sq_max, sk_max};
    if (d.flags & PA_HAS_MASK) make(ctx, &b, &a.mask, PA_F32, 4, mask_s);
    pa_buffer *ws = NULL;
    size_t wss = pa_plan_workspace_size(plan);
    if (wss && take(&b, 4) == 0) pa_buffer_create(ctx, wss - take(&b, 2), &ws);
    if (pa_attention_run(plan, &a, ws) == PA_OK) pa_context_synchronize(ctx);
    pa_buffer_destroy(ws);
    pa_tensor *ts[] = {&a.q,           &a.k,       &a.v,      &a.out,
                       &a.block_table, &a.lse,     &a.sinks,  &a.alibi_slopes,
                       &a.mask,        &a.k_scale, &a.v_scale};
    destroy_all(ts, sizeof ts / sizeof ts[0]);
    pa_plan_destroy(plan);
  }
  return 0;
}

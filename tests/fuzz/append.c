/* libFuzzer harness: bytes -> pa_kv_append (k, v [T, Hkv, D], caches NHD or
 * HND, f32/f16/bf16 or fp8 with k_scale/v_scale [1] or [Hkv]) or
 * pa_mla_append (ckv, kpe [T, D], latent caches, kv_scale), with a slot
 * mapping that is mostly valid (-1 skips), sometimes out of range; CPU
 * backend. Buffers sized exactly (fuzz_util.h). */
#include "fuzz_util.h"

static pa_dtype cache_dtype(bytes *b, pa_dtype dt) {
  unsigned c = take(b, 4);
  return c == 0 ? PA_FP8_E4M3 : c == 1 ? PA_FP8_E5M2 : fuzz_dtype(b, dt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pa_context *ctx = fuzz_ctx();
  bytes b = {data, size};
  unsigned mla = take(&b, 2);
  int64_t T = take(&b, 8), Hkv = 1 + take(&b, 3), Dk = 1 + take(&b, 72);
  int64_t Dv = take(&b, 2) ? Dk : take(&b, 72);
  static const int64_t page[5] = {1, 2, 4, 16, 0};
  int64_t ps = page[take(&b, 5)], P = 1 + take(&b, 4);
  pa_dtype dt = (pa_dtype)take(&b, 3), cdt = cache_dtype(&b, dt);
  int32_t slots[8];
  int64_t nslots = P * ps;
  for (int64_t t = 0; t < T; t++) {
    unsigned k = take(&b, 16);
    slots[t] = k == 0   ? -1
               : k == 1 ? (int32_t)(nslots + take(&b, 3))
               : k == 2 ? -2 - (int32_t)take(&b, 3)
                        : (int32_t)(nslots ? take(&b, 255) % (unsigned)nslots : 0);
  }
  int64_t ts1[1] = {T}, one[1] = {1}, heads[1] = {Hkv};
  int fp8 = cdt == PA_FP8_E4M3 || cdt == PA_FP8_E5M2;
  pa_status st;
  if (!mla) {
    pa_kv_append_args a;
    memset(&a, 0, sizeof a);
    int64_t ks[3] = {T, Hkv, Dk}, vs[3] = {T, Hkv, Dv};
    make(ctx, &b, &a.k, dt, 3, ks);
    make(ctx, &b, &a.v, dt, 3, vs);
    make(ctx, &b, &a.slot_mapping, PA_I32, 1, ts1);
    put_i32(&a.slot_mapping, slots, T);
    int hnd = take(&b, 3) == 0;
    pa_tensor *caches[2] = {&a.k_cache, &a.v_cache};
    for (int i = 0; i < 2; i++) {
      int64_t D = i ? Dv : Dk;
      int64_t nhd[4] = {P, ps, Hkv, D}, hnds[4] = {P, Hkv, ps, D};
      make(ctx, &b, caches[i], cdt, 4, hnd ? hnds : nhd);
      if (hnd) swap_dims(caches[i], 1, 2);
    }
    if (fp8 != (take(&b, 16) == 0)) {
      make(ctx, &b, &a.k_scale, PA_F32, 1, take(&b, 2) ? one : heads);
      make(ctx, &b, &a.v_scale, PA_F32, 1, take(&b, 2) ? one : heads);
    }
    st = pa_kv_append(ctx, &a);
    if (st == PA_OK) pa_context_synchronize(ctx);
    pa_tensor *all[] = {&a.k,       &a.v,       &a.slot_mapping, &a.k_cache,
                        &a.v_cache, &a.k_scale, &a.v_scale};
    destroy_all(all, sizeof all / sizeof all[0]);
  } else {
    pa_mla_append_args a;
    memset(&a, 0, sizeof a);
    int64_t cs[2] = {T, Dk}, rs[2] = {T, Dv};
    make(ctx, &b, &a.ckv, dt, 2, cs);
    make(ctx, &b, &a.kpe, dt, 2, rs);
    make(ctx, &b, &a.slot_mapping, PA_I32, 1, ts1);
    put_i32(&a.slot_mapping, slots, T);
    int64_t cc[3] = {P, ps, Dk}, kc[3] = {P, ps, Dv};
    make(ctx, &b, &a.ckv_cache, cdt, 3, cc);
    make(ctx, &b, &a.kpe_cache, cdt, 3, kc);
    if (fp8 != (take(&b, 16) == 0)) make(ctx, &b, &a.kv_scale, PA_F32, 1, one);
    st = pa_mla_append(ctx, &a);
    if (st == PA_OK) pa_context_synchronize(ctx);
    pa_tensor *all[] = {&a.ckv, &a.kpe, &a.slot_mapping, &a.ckv_cache, &a.kpe_cache, &a.kv_scale};
    destroy_all(all, sizeof all / sizeof all[0]);
  }
  return 0;
}

/* pa_kv_append / pa_mla_append on every target. The cache is written by the
 * append (shuffled pages, -1 slots among the real ones), the expected bytes
 * go into the host image (our own conversions, util.c), and the case then
 * runs attention over it: that checks the values the kernels see against
 * the oracle and, byte for byte, that the append wrote exactly the expected
 * cache and nothing else (the image must equal what is downloaded). Edge
 * values (ties, saturation, NaN, inf, -0, subnormals) get a direct check. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"
#include "mla_case.h"

static bool is_fp8(pa_dtype t) { return t == PA_FP8_E4M3 || t == PA_FP8_E5M2; }

/* Expected cache element e for source value x (already of the source dtype). */
static void expect_store(tu_tensor *cache, int64_t e, double x, double scale) {
  if (is_fp8(cache->t.dtype))
    cache->host[cache->t.offset + (size_t)e] =
        tu_fp8_encode(cache->t.dtype, (float)x / (float)scale); /* the f32 quotient */
  else
    tu_set(cache, e, x);
}

#define CHECK(x)                                                                                   \
  do {                                                                                             \
    pa_status s_ = (x);                                                                            \
    cr_assert_eq(s_, PA_OK, "[%s] %s: %s (%s)", target, #x, pa_status_str(s_),                     \
                 pa_context_last_error(ctx));                                                      \
  } while (0)

/* Appends every key of every request of case c (sources of dtype src_t) in
 * a shuffled token order with -1 tokens mixed in, then runs the case. */
static void append_then_attend(const char *target, const attn_case *c, pa_dtype src_t) {
  pa_context *ctx = tu_open_or_skip(target);
  attn_problem p;
  pa_status s0 = attn_setup(&p, ctx, c);
  cr_assert_eq(s0, PA_OK, "[%s] %s: %s", target, c->name, p.msg);
  tu_rng rng = tu_rng_seed(tu_hash_str(c->name) + 1);
  int64_t keys = 0;
  for (int b = 0; b < p.B; b++) keys += p.lk[b];
  const int64_t T = keys + keys / 7 + 1;                /* about one skipped token in eight */
  int64_t *order = malloc(sizeof(int64_t) * (size_t)T); /* key index, or -1 */
  for (int64_t t = 0; t < T; t++) order[t] = t < keys ? t : -1;
  for (int64_t t = T - 1; t > 0; t--) {
    int64_t j = tu_rng_int(&rng, (int)t + 1), x = order[t];
    order[t] = order[j], order[j] = x;
  }
  tu_tensor k, v, slots;
  int64_t sk[3] = {T, p.hkv, p.dqk}, sv[3] = {T, p.hkv, p.dv}, ss[1] = {T};
  /* v rows strided as in a packed QKV */
  int64_t stv[3] = {(int64_t)(p.hkv + 1) * p.dv, p.dv, 1};
  CHECK(tu_tensor_alloc(ctx, &k, src_t, 3, sk, NULL));
  CHECK(tu_tensor_alloc(ctx, &v, src_t, 3, sv, stv));
  CHECK(tu_tensor_alloc(ctx, &slots, PA_I32, 1, ss, NULL));
  tu_tensor_fill_random(&k, &rng, c->kv8 ? 1.5 : 1.0);
  tu_tensor_fill_random(&v, &rng, c->kv8 ? 1.2 : 1.0);
  const int ps = c->page_size;
  for (int64_t t = 0; t < T; t++) {
    if (order[t] < 0) {
      tu_set_i32(&slots, t, -1);
      continue;
    }
    int b = 0;
    int64_t j = order[t];
    while (j >= p.lk[b]) j -= p.lk[b++];
    const int32_t page = tu_get_i32(&p.bt, (int64_t)b * p.bt.t.stride[0] + j / ps);
    tu_set_i32(&slots, t, page * ps + (int32_t)(j % ps));
    for (int h = 0; h < p.hkv; h++) {
      const double ks = c->kv8 ? tu_get(&p.k_scale, p.k_scale.t.shape[0] > 1 ? h : 0) : 1;
      const double vs = c->kv8 ? tu_get(&p.v_scale, p.v_scale.t.shape[0] > 1 ? h : 0) : 1;
      const int64_t ko = attn_kv_offset(&p, &p.k, b, (int)j, h),
                    vo = attn_kv_offset(&p, &p.v, b, (int)j, h);
      for (int x = 0; x < p.dqk; x++)
        expect_store(&p.k, ko + x, tu_get(&k, (t * p.hkv + h) * p.dqk + x), ks);
      for (int x = 0; x < p.dv; x++)
        expect_store(&p.v, vo + x, tu_get(&v, t * stv[0] + h * p.dv + x), vs);
    }
  }
  CHECK(tu_tensor_upload(&k));
  CHECK(tu_tensor_upload(&v));
  CHECK(tu_tensor_upload(&slots));
  pa_kv_append_args a = {.k = k.t,
                         .v = v.t,
                         .slot_mapping = slots.t,
                         .k_cache = p.args.k,
                         .v_cache = p.args.v,
                         .k_scale = p.args.k_scale,
                         .v_scale = p.args.v_scale};
  CHECK(pa_kv_append(ctx, &a));
  pa_status s = attn_execute(&p, NULL, NULL);
  cr_assert_eq(s, PA_OK, "[%s] %s: %s", target, c->name, p.msg);
  attn_reference(&p);
  char why[1024];
  bool ok = attn_check(&p, target, why, sizeof why);
  cr_expect(ok, "append: %s", why);
  if (ok) cr_log_info("append %s", why);
  free(order);
  tu_tensor_free(&k);
  tu_tensor_free(&v);
  tu_tensor_free(&slots);
  attn_free(&p);
  pa_context_destroy(ctx);
}

/* clang-format off */
static const attn_case cases[] = {
  {.name = "app_e4m3_head",  .batch = 3, .lq = {1, 1, 1}, .lk = {203, 17, 64}, .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_SCALE_HEAD},
  {.name = "app_e5m2_hnd",   .batch = 2, .lq = {1, 2},    .lk = {113, 40},     .hq = 6, .hkv = 3, .dqk = 59,  .dtype = PA_F16,  .causal = 1, .page_size = 16, .kv8 = PA_FP8_E5M2, .opts = AO_LSE | AO_HND},
  {.name = "app_bf16_copy",  .batch = 2, .lq = {1, 1},    .lk = {77, 130},     .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_BF16, .page_size = 64, .opts = AO_LSE},
  {.name = "app_f16_pg1",    .batch = 2, .lq = {3, 1},    .lk = {9, 5},        .hq = 2, .hkv = 1, .dqk = 80,  .dtype = PA_F16,  .causal = 1, .page_size = 1, .opts = AO_LSE},
};
/* clang-format on */

static void run_kv(const char *target) {
  append_then_attend(target, &cases[0], PA_BF16);
  append_then_attend(target, &cases[1], PA_F32);
  append_then_attend(target, &cases[2], PA_BF16);
  append_then_attend(target, &cases[3], PA_F32); /* f32 -> f16, rounding */
}

/* Every tricky value of both formats through the device's encode: codes'
 * values, midpoints (ties) and a hair off them, beyond the largest code,
 * +-inf, NaN, -0, f32 subnormals; scale 2 (exact division) and 0.3. */
static void run_edges(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  const pa_dtype fmts[2] = {PA_FP8_E4M3, PA_FP8_E5M2};
  for (int f = 0; f < 2; f++)
    for (int sc = 0; sc < 2; sc++) {
      const pa_dtype t = fmts[f];
      const float scale = sc ? 0.3f : 2.0f;
      float vals[1200];
      int n = 0;
      for (int c = 0; c < 0x7f; c++) {
        float lo = (float)tu_fp8_decode(t, (uint8_t)c),
              hi = (float)tu_fp8_decode(t, (uint8_t)(c + 1));
        if (!isfinite(lo)) continue;
        float mid = isfinite(hi) ? (float)(((double)lo + hi) / 2) : lo * 1.1f;
        vals[n++] = lo * scale;
        vals[n++] = -mid * scale;
        vals[n++] = nextafterf(mid, 0) * scale;
        vals[n++] = nextafterf(mid, INFINITY) * scale;
      }
      const float extra[] = {INFINITY, -INFINITY, NAN, -0.0f, 0x1p-149f, -0x1p-140f, 1e30f, -3e38f};
      for (int i = 0; i < (int)(sizeof extra / sizeof *extra); i++) vals[n++] = extra[i];
      /* n tokens of one head and dim 1, pages of 4 slots, reversed slots */
      const int64_t pages = (n + 3) / 4 + 1;
      tu_tensor src, src2, cache, cache2, slots, scl;
      int64_t ss[3] = {n, 1, 1}, cs[4] = {pages, 4, 1, 1}, sl[1] = {n}, one[1] = {1};
      CHECK(tu_tensor_alloc(ctx, &src, PA_F32, 3, ss, NULL));
      CHECK(tu_tensor_alloc(ctx, &src2, PA_F32, 3, ss, NULL));
      CHECK(tu_tensor_alloc(ctx, &cache, t, 4, cs, NULL));
      CHECK(tu_tensor_alloc(ctx, &cache2, t, 4, cs, NULL));
      CHECK(tu_tensor_alloc(ctx, &slots, PA_I32, 1, sl, NULL));
      CHECK(tu_tensor_alloc(ctx, &scl, PA_F32, 1, one, NULL));
      tu_set(&scl, 0, scale);
      tu_tensor_poison(&cache);
      tu_tensor_poison(&cache2);
      for (int i = 0; i < n; i++) {
        memcpy(src.host + src.t.offset + 4 * (size_t)i, &vals[i], 4);
        tu_set(&src2, i, 0.0);
        tu_set_i32(&slots, i, (int32_t)(pages * 4 - 1 - i));
      }
      tu_tensor *up[] = {&src, &src2, &cache, &cache2, &slots, &scl};
      for (int i = 0; i < 6; i++) CHECK(tu_tensor_upload(up[i]));
      pa_kv_append_args a = {.k = src.t,
                             .v = src2.t,
                             .slot_mapping = slots.t,
                             .k_cache = cache.t,
                             .v_cache = cache2.t,
                             .k_scale = scl.t,
                             .v_scale = scl.t};
      CHECK(pa_kv_append(ctx, &a));
      CHECK(pa_context_synchronize(ctx));
      CHECK(tu_tensor_download(&cache));
      int bad = 0;
      for (int i = 0; i < n; i++) {
        const int64_t e = pages * 4 - 1 - i;
        const uint8_t got = cache.back[cache.t.offset + (size_t)e];
        const uint8_t want = tu_fp8_encode(t, vals[i] / scale);
        if (got != want && bad++ < 5)
          cr_expect(0, "[%s] %s scale %g: %a / scale -> 0x%02x, want 0x%02x", target,
                    pa_dtype_name(t), (double)scale, (double)vals[i], got, want);
      }
      cr_expect_eq(bad, 0, "[%s] %s: %d of %d values encoded wrongly", target, pa_dtype_name(t),
                   bad, n);
      for (int e = 0; e < pages * 4 - n; e++)
        cr_expect(tu_is_poison(&cache, e), "[%s] slot %d not in the map was written", target, e);
      cr_expect(tu_guards_intact(&cache));
      for (int i = 0; i < 6; i++) tu_tensor_free(up[i]);
    }
  pa_context_destroy(ctx);
}

/* MLA: one [pages, page, Dc + Dr] fp8 cache filled through pa_mla_append
 * (ckv and kpe as two interleaved views), then MLA decode over it. */
static void run_mla(const char *target) {
  static const mla_case c = {.name = "app_mla_e4m3",
                             .batch = 2,
                             .lq = {1, 2},
                             .lk = {70, 33},
                             .h = 8,
                             .dc = 512,
                             .dr = 64,
                             .dtype = PA_BF16,
                             .page_size = 16,
                             .causal = 1,
                             .one_cache = 1,
                             .lse = 1,
                             .kv8 = PA_FP8_E4M3};
  pa_context *ctx = tu_open_or_skip(target);
  mla_problem p;
  pa_status s0 = mla_setup(&p, ctx, &c);
  cr_assert_eq(s0, PA_OK, "[%s] %s", target, p.msg);
  tu_rng rng = tu_rng_seed(99);
  const int64_t T = c.lk[0] + c.lk[1];
  tu_tensor ckv, kpe, slots;
  int64_t sc[2] = {T, c.dc}, sp[2] = {T, c.dr}, ss[1] = {T};
  CHECK(tu_tensor_alloc(ctx, &ckv, PA_BF16, 2, sc, NULL));
  CHECK(tu_tensor_alloc(ctx, &kpe, PA_F32, 2, sp, NULL));
  CHECK(tu_tensor_alloc(ctx, &slots, PA_I32, 1, ss, NULL));
  tu_tensor_fill_random(&ckv, &rng, 1.0);
  tu_tensor_fill_random(&kpe, &rng, 1.0);
  const double scale = tu_get(&p.kv_scale, 0);
  const int64_t row = c.dc + c.dr;
  for (int64_t t = 0; t < T; t++) {
    const int b = t < c.lk[0] ? 0 : 1;
    const int64_t j = b ? t - c.lk[0] : t;
    const int32_t page = tu_get_i32(&p.bt, (int64_t)b * p.max_pages + j / c.page_size);
    const int32_t slot = page * c.page_size + (int32_t)(j % c.page_size);
    tu_set_i32(&slots, t, slot);
    for (int x = 0; x < c.dc; x++)
      expect_store(&p.ckv, slot * row + x, tu_get(&ckv, t * c.dc + x), scale);
    for (int x = 0; x < c.dr; x++)
      expect_store(&p.ckv, slot * row + c.dc + x, tu_get(&kpe, t * c.dr + x), scale);
  }
  CHECK(tu_tensor_upload(&ckv));
  CHECK(tu_tensor_upload(&kpe));
  CHECK(tu_tensor_upload(&slots));
  pa_mla_append_args a = {.ckv = ckv.t,
                          .kpe = kpe.t,
                          .slot_mapping = slots.t,
                          .ckv_cache = p.args.ckv,
                          .kpe_cache = p.args.kpe,
                          .kv_scale = p.args.kv_scale};
  CHECK(pa_mla_append(ctx, &a));
  pa_status s = mla_execute(&p);
  cr_assert_eq(s, PA_OK, "[%s] %s", target, p.msg);
  CHECK(tu_tensor_download(&p.ckv));
  cr_expect(tu_unchanged(&p.ckv), "[%s] the MLA cache differs from the expected append", target);
  mla_reference(&p);
  char why[1024];
  cr_expect(mla_check(&p, target, why, sizeof why), "%s", why);
  tu_tensor_free(&ckv);
  tu_tensor_free(&kpe);
  tu_tensor_free(&slots);
  mla_free(&p);
  pa_context_destroy(ctx);
}

#define ON(tgt)                                                                                    \
  Test(tgt, append_kv, .timeout = 300) { run_kv(#tgt); }                                           \
  Test(tgt, append_edges, .timeout = 120) { run_edges(#tgt); }                                     \
  Test(tgt, append_mla, .timeout = 300) { run_mla(#tgt); }
ON(cpu_scalar)
ON(cpu_avx2)
ON(cpu_avx512)
ON(cpu_neon)
ON(cpu_avx512bf16)
ON(cuda)
ON(opencl)

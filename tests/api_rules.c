/* The rules of polyattn.h on what is read and written, on every target
 * (suites as in cross_backend.c):
 * - rows of out / lse outside the used lengths (padded tails, gaps between
 *   ragged slots, requests with no query) keep their poison;
 * - unused q rows, unused K/V rows, page tails and pages no request
 *   references hold NaN, and spare block-table entries hold -1: the used
 *   rows must still match the oracle, with no NaN.
 * Plus the context-less API: desc inits, pa_last_error, strided views. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"
#include "mla_case.h"

/* Every element of x not marked in used[] set to NaN (host image). */
static void nan_unused(tu_tensor *x, const unsigned char *used) {
  int64_t n = (int64_t)(x->extent_bytes / tu_dtype_size(x->t.dtype));
  for (int64_t e = 0; e < n; e++)
    if (!used[e]) tu_set(x, e, NAN);
}

static unsigned char *mark_new(const tu_tensor *x) {
  size_t n = x->extent_bytes / tu_dtype_size(x->t.dtype);
  return calloc(n ? n : 1, 1);
}

/* Elements of x not marked in used[] that no longer hold the poison. */
static int64_t count_written(const tu_tensor *x, const unsigned char *used) {
  int64_t n = (int64_t)(x->extent_bytes / tu_dtype_size(x->t.dtype)), bad = 0;
  for (int64_t e = 0; e < n; e++)
    if (!used[e] && !tu_is_poison(x, e)) bad++;
  return bad;
}

/* Block-table entries past a request's pages set to -1 (host image). */
static void spare_entries(tu_tensor *bt, int B, const int32_t *lk, int ps) {
  int64_t cols = bt->t.shape[1];
  for (int b = 0; b < B; b++)
    for (int64_t x = (lk[b] + ps - 1) / ps; x < cols; x++)
      tu_set_i32(bt, (int64_t)b * bt->t.stride[0] + x, -1);
}

/* clang-format off */
static const attn_case rule_cases[] = {
  {.name = "rules_gaps",        .batch = 3, .lq = {3, 1, 5}, .lk = {20, 7, 33},  .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_F32,  .causal = 1, .layout = AL_GAPS, .opts = AO_LSE},
  {.name = "rules_padded",      .batch = 3, .lq = {0, 3, 1}, .lk = {5, 17, 40},  .hq = 2, .hkv = 1, .dqk = 64,  .dtype = PA_F16,  .layout = AL_PADDED, .opts = AO_LSE},
  {.name = "rules_gaps_paged",  .batch = 3, .lq = {1, 2, 1}, .lk = {17, 33, 5},  .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .page_size = 16, .layout = AL_GAPS, .num_splits = 2, .opts = AO_LSE},
  {.name = "rules_padded_paged",.batch = 2, .lq = {1, 2},    .lk = {40, 9},      .hq = 4, .hkv = 1, .dqk = 64,  .dtype = PA_F32,  .causal = 1, .page_size = 16, .layout = AL_PADDED, .opts = AO_LSE},
};
/* clang-format on */

static void run_attn_rules(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int ci = 0; ci < TU_LEN(rule_cases); ci++) {
    const attn_case *c = &rule_cases[ci];
    attn_problem p;
    char why[1024];
    pa_status s = attn_setup(&p, ctx, c);
    cr_assert(s == PA_OK, "[%s] %s setup: %s", target, c->name, p.msg);
    unsigned char *uq = mark_new(&p.q), *uk = mark_new(&p.k), *uv = mark_new(&p.v);
    unsigned char *uo = mark_new(&p.out), *ul = mark_new(&p.lse);
    for (int b = 0; b < p.B; b++) {
      for (int i = 0; i < p.lq[b]; i++)
        for (int h = 0; h < p.hq; h++) {
          memset(uq + attn_q_offset(&p, b, i, h), 1, (size_t)p.dqk);
          memset(uo + attn_out_offset(&p, b, i, h), 1, (size_t)p.dv);
          ul[attn_lse_offset(&p, b, i, h)] = 1;
        }
      for (int j = 0; j < p.lk[b]; j++)
        for (int h = 0; h < p.hkv; h++) {
          memset(uk + attn_kv_offset(&p, &p.k, b, j, h), 1, (size_t)p.dqk);
          memset(uv + attn_kv_offset(&p, &p.v, b, j, h), 1, (size_t)p.dv);
        }
    }
    nan_unused(&p.q, uq);
    nan_unused(&p.k, uk);
    nan_unused(&p.v, uv);
    cr_assert(tu_tensor_upload(&p.q) == PA_OK && tu_tensor_upload(&p.k) == PA_OK &&
              tu_tensor_upload(&p.v) == PA_OK);
    if (p.paged) {
      spare_entries(&p.bt, p.B, p.lk, c->page_size);
      cr_assert(tu_tensor_upload(&p.bt) == PA_OK);
    }
    s = attn_execute(&p, NULL, NULL);
    cr_assert(s == PA_OK, "[%s] %s: %s", target, c->name, p.msg);
    attn_reference(&p);
    bool ok = attn_check(&p, target, why, sizeof why);
    cr_expect(ok, "NaN in unused K/V/q rows, page tails, -1 spare entries: %s", why);
    int64_t wo = count_written(&p.out, uo), wl = count_written(&p.lse, ul);
    cr_expect(wo == 0 && wl == 0,
              "[%s] %s: %lld out and %lld lse elements outside the used rows were written", target,
              c->name, (long long)wo, (long long)wl);
    if (ok && wo == 0 && wl == 0) cr_log_info("[%s] %s: rules hold (%s)", target, c->name, why);
    free(uq), free(uk), free(uv), free(uo), free(ul);
    attn_free(&p);
  }
  pa_context_destroy(ctx);
}

/* MLA: requests use the first lq_used rows of slots of lq_slot rows
 * (cu_seqlens_q + seqlens_q), with NaN in unused q rows and cache slots. */
static void run_mla_rules(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  /* clang-format off */
  const mla_case slot = {.name = "rules_mla", .batch = 3, .lq = {3, 2, 1}, .lk = {20, 35, 9}, .h = 4, .dc = 128, .dr = 64, .dtype = PA_BF16, .page_size = 16, .causal = 1, .lse = 1};
  /* clang-format on */
  const int32_t used_q[3] = {2, 0, 1};
  mla_case used = slot;
  memcpy(used.lq, used_q, sizeof used_q);
  mla_problem p;
  pa_status s = mla_setup(&p, ctx, &slot);
  cr_assert(s == PA_OK, "[%s] mla setup: %s", target, p.msg);
  p.batch.seqlens_q = used_q; /* cu_seqlens_q still gives the slots */
  const int H = slot.h, Dc = slot.dc, Dr = slot.dr, ps = slot.page_size;
  unsigned char *uqn = mark_new(&p.q_nope), *uqp = mark_new(&p.q_pe), *uo = mark_new(&p.out);
  unsigned char *ul = mark_new(&p.lse), *uc = mark_new(&p.ckv), *uk = mark_new(&p.kpe);
  for (int b = 0; b < p.B; b++) {
    for (int64_t r = (int64_t)p.cu_q[b] * H; r < ((int64_t)p.cu_q[b] + used_q[b]) * H; r++) {
      memset(uqn + r * Dc, 1, (size_t)Dc);
      memset(uqp + r * Dr, 1, (size_t)Dr);
      memset(uo + r * Dc, 1, (size_t)Dc);
      ul[r] = 1;
    }
    for (int j = 0; j < slot.lk[b]; j++) {
      int64_t page = tu_get_i32(&p.bt, (int64_t)b * p.max_pages + j / ps);
      memset(uc + page * p.ckv.t.stride[0] + (j % ps) * p.ckv.t.stride[1], 1, (size_t)Dc);
      memset(uk + page * p.kpe.t.stride[0] + (j % ps) * p.kpe.t.stride[1], 1, (size_t)Dr);
    }
  }
  nan_unused(&p.q_nope, uqn);
  nan_unused(&p.q_pe, uqp);
  nan_unused(&p.ckv, uc);
  nan_unused(&p.kpe, uk);
  spare_entries(&p.bt, p.B, slot.lk, ps);
  tu_tensor *ins[] = {&p.q_nope, &p.q_pe, &p.ckv, &p.kpe, &p.bt};
  for (int i = 0; i < TU_LEN(ins); i++) cr_assert(tu_tensor_upload(ins[i]) == PA_OK);
  s = mla_execute(&p);
  cr_assert(s == PA_OK, "[%s] mla: %s", target, p.msg);
  p.c = &used; /* the reference reads the used rows of each slot */
  mla_reference(&p);
  tu_tol tol = tu_tolerance(slot.dtype);
  tu_err e = {0};
  int64_t lse_bad = 0;
  for (int b = 0; b < p.B; b++)
    for (int64_t r = (int64_t)p.cu_q[b] * H; r < ((int64_t)p.cu_q[b] + used_q[b]) * H; r++) {
      for (int x = 0; x < Dc; x++)
        tu_err_add(&e, tu_get_back(&p.out, r * Dc + x), p.o_ref[r * Dc + x], r * Dc + x);
      double got = tu_get_back(&p.lse, r), want = p.lse_ref[r];
      if (!(fabs(got - want) / fmax(1.0, fabs(want)) <= tol.lse_abs)) lse_bad++;
    }
  double rel = tu_err_rel_l2(&e);
  int64_t wo = count_written(&p.out, uo), wl = count_written(&p.lse, ul);
  cr_expect(rel <= tol.rel_l2 && e.max_abs <= tol.max_abs && e.nonfinite == 0 && lse_bad == 0,
            "[%s] mla with NaN in unused slots, -1 spare entries: rel_l2 %.3g max_abs %.3g "
            "nonfinite %lld lse bad %lld",
            target, rel, e.max_abs, (long long)e.nonfinite, (long long)lse_bad);
  cr_expect(wo == 0 && wl == 0,
            "[%s] mla: %lld out and %lld lse elements outside the used rows were written", target,
            (long long)wo, (long long)wl);
  cr_expect(tu_guards_intact(&p.out) && tu_guards_intact(&p.lse), "[%s] mla guards", target);
  cr_log_info("[%s] mla rules: rel_l2 %.3g, %lld/%lld written outside", target, rel, (long long)wo,
              (long long)wl);
  free(uqn), free(uqp), free(uo), free(ul), free(uc), free(uk);
  p.c = &slot;
  mla_free(&p);
  pa_context_destroy(ctx);
}

#define RULES_ON(tgt)                                                                              \
  Test(tgt, rules_attention, .timeout = 300) { run_attn_rules(#tgt); }                             \
  Test(tgt, rules_mla, .timeout = 300) { run_mla_rules(#tgt); }
RULES_ON(cpu_scalar)
RULES_ON(cpu_avx2)
RULES_ON(cpu_avx512)
RULES_ON(cpu_neon)
RULES_ON(cpu_avx512bf16)
RULES_ON(cuda)
RULES_ON(opencl)

/* ---- the context-less API (host only) ---- */

Test(core, context_desc_init) {
  pa_context_desc d;
  memset(&d, 0x5a, sizeof d);
  pa_context_desc_init(&d);
  cr_expect(d.backend == PA_BACKEND_AUTO && d.device == -1 && !d.native_queue &&
            d.num_threads == 0 && !d.cache_dir);
  pa_context_desc_init(NULL); /* no crash */
  /* explicit device 0 stays device 0 */
  pa_context_desc z = {.backend = PA_BACKEND_CPU, .device = 0};
  pa_context *ctx = NULL;
  cr_assert(pa_context_create(&z, &ctx) == PA_OK, "%s", pa_last_error());
  pa_context_destroy(ctx);
  d.backend = PA_BACKEND_CPU;
  cr_assert(pa_context_create(&d, &ctx) == PA_OK, "%s", pa_last_error());
  pa_context_destroy(ctx);
}

Test(core, mla_desc_init) {
  pa_mla_desc d;
  memset(&d, 0x5a, sizeof d);
  pa_mla_desc_init(&d, 16, 512, 64, 64, PA_BF16);
  cr_expect(d.num_heads == 16 && d.head_dim_ckv == 512 && d.head_dim_kpe == 64 &&
            d.page_size == 64 && d.q_dtype == PA_BF16 && d.kv_dtype == PA_BF16 &&
            d.o_dtype == PA_BF16 && d.causal == 0 && d.scale == 0.0f && d.num_splits == 0 &&
            d.kv_chunk == 0 && d.flags == 0);
  pa_mla_desc_init(NULL, 1, 1, 1, 1, PA_F32);
}

Test(core, last_error_without_context) {
  pa_context_desc d;
  pa_context_desc_init(&d);
  d.backend = (pa_backend)42;
  pa_context *ctx = (pa_context *)&d; /* must be reset to NULL */
  cr_expect(pa_context_create(&d, &ctx) == PA_ERR_INVALID_ARGUMENT);
  cr_expect(ctx == NULL);
  cr_expect(strstr(pa_last_error(), "desc.backend=42") != NULL, "got \"%s\"", pa_last_error());
  cr_expect(strstr(pa_last_error(), "PA_ERR_INVALID_ARGUMENT") != NULL);
  /* a device index past the end: the backend's reason reaches the thread */
  pa_context_desc_init(&d);
  d.backend = PA_BACKEND_CPU;
  d.device = 7;
  pa_status s = pa_context_create(&d, &ctx);
  if (s != PA_OK) {
    cr_expect(ctx == NULL);
    cr_expect(pa_last_error()[0] != 0 && strstr(pa_last_error(), pa_status_str(s)),
              "status %s, last error \"%s\"", pa_status_str(s), pa_last_error());
  } else {
    pa_context_destroy(ctx); /* the CPU backend may take any index */
  }
  /* other context-less failures */
  cr_expect(pa_context_synchronize(NULL) == PA_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(pa_last_error(), "ctx is NULL") != NULL, "got \"%s\"", pa_last_error());
  cr_expect(pa_device_get_info(PA_BACKEND_CPU, 99, &(pa_device_info){0}) == PA_ERR_NO_DEVICE);
  cr_expect(strstr(pa_last_error(), "device=99") != NULL, "got \"%s\"", pa_last_error());
}

Test(core, tensor_init_strided) {
  pa_context *ctx = tu_open_cpu();
  pa_buffer *buf = NULL;
  const int T = 5, Hq = 4, Hkv = 2, D = 8;
  size_t es = 2, bytes = (size_t)T * (Hq + 2 * Hkv) * D * es;
  cr_assert(pa_buffer_create(ctx, bytes, &buf) == PA_OK);
  /* packed QKV [T, Hq + 2 Hkv, D] */
  pa_tensor q, k, v;
  int64_t sq[3] = {T, Hq, D}, sk[3] = {T, Hkv, D}, st[3] = {(Hq + 2 * Hkv) * D, D, 1};
  cr_expect(pa_tensor_init_strided(&q, buf, 0, PA_F16, 3, sq, st) == PA_OK);
  cr_expect(pa_tensor_init_strided(&k, buf, (size_t)Hq * D * es, PA_F16, 3, sk, st) == PA_OK);
  cr_expect(pa_tensor_init_strided(&v, buf, (size_t)(Hq + Hkv) * D * es, PA_F16, 3, sk, st) ==
            PA_OK);
  cr_expect(v.offset == (size_t)(Hq + Hkv) * D * es && v.stride[0] == st[0] && v.shape[1] == Hkv);
  /* one element too far: refused, t untouched, the message names the sizes */
  pa_tensor bad;
  memset(&bad, 0x77, sizeof bad);
  pa_tensor keep = bad;
  cr_expect(pa_tensor_init_strided(&bad, buf, (size_t)(Hq + Hkv) * D * es + es, PA_F16, 3, sk,
                                   st) == PA_ERR_INVALID_ARGUMENT);
  cr_expect(memcmp(&bad, &keep, sizeof bad) == 0, "tensor written on failure");
  cr_expect(strstr(pa_context_last_error(ctx), "exceeds") != NULL, "%s",
            pa_context_last_error(ctx));
  /* offset in bytes, not elements: an odd byte offset for f16 is refused */
  cr_expect(pa_tensor_init_strided(&bad, buf, 3, PA_F16, 3, sk, st) == PA_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(pa_context_last_error(ctx), "offset=3 bytes") != NULL, "%s",
            pa_context_last_error(ctx));
  int64_t neg[3] = {T, Hkv, -1};
  cr_expect(pa_tensor_init_strided(&bad, buf, 0, PA_F16, 3, sk, neg) == PA_ERR_INVALID_ARGUMENT);
  int64_t huge[3] = {INT64_MAX / 2, 4, 1}, hst[3] = {4, 1, 1};
  cr_expect(pa_tensor_init_strided(&bad, NULL, 0, PA_F16, 3, huge, hst) == PA_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(pa_last_error(), "overflows") != NULL, "%s", pa_last_error());
  /* stride NULL: the contiguous view */
  pa_tensor c1, c2;
  cr_expect(pa_tensor_init_strided(&c1, buf, 0, PA_F16, 3, sq, NULL) == PA_OK);
  cr_expect(pa_tensor_init(&c2, buf, 0, PA_F16, 3, sq) == PA_OK);
  cr_expect(memcmp(&c1, &c2, sizeof c1) == 0);
  /* HND pages [P, Hkv, page, D] seen as [P, page, Hkv, D] */
  const int P = 2, page = 4;
  pa_buffer *pb = NULL;
  cr_assert(pa_buffer_create(ctx, (size_t)P * Hkv * page * D * es, &pb) == PA_OK);
  int64_t ps[4] = {P, page, Hkv, D}, pst[4] = {(int64_t)Hkv * page * D, D, (int64_t)page * D, 1};
  cr_expect(pa_tensor_init_strided(&k, pb, 0, PA_F16, 4, ps, pst) == PA_OK);
  /* states [T, 2, H, D]: a at 0, b at H D elements */
  int64_t ss[3] = {T, Hkv, D}, sst[3] = {2 * Hkv * D, D, 1};
  pa_buffer *sb = NULL;
  cr_assert(pa_buffer_create(ctx, (size_t)T * 2 * Hkv * D * 4, &sb) == PA_OK);
  cr_expect(pa_tensor_init_strided(&k, sb, 0, PA_F32, 3, ss, sst) == PA_OK);
  cr_expect(pa_tensor_init_strided(&v, sb, (size_t)Hkv * D * 4, PA_F32, 3, ss, sst) == PA_OK);
  pa_buffer_destroy(sb);
  pa_buffer_destroy(pb);
  pa_buffer_destroy(buf);
  pa_context_destroy(ctx);
}

/* Split-KV on every target: the num_splits sweep {1, 2, 3, 7, auto} on a
 * decode and a prefill case, all within tolerance of the oracle; the plan's
 * reported splits and workspace size; a caller-provided workspace; and
 * deterministic mode, where one request's output is bitwise the same alone
 * and inside two different batches. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "attn_case.h"

/* clang-format off */
static const attn_case decode_case = {.name = "split_decode", .batch = 2, .lq = {1, 1}, .lk = {1025, 203},
  .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F32, .page_size = 16, .opts = AO_LSE};
static const attn_case prefill_case = {.name = "split_prefill", .batch = 2, .lq = {113, 7}, .lk = {203, 1025},
  .hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE};
static const attn_case decode_bf16_case = {.name = "split_decode_bf16", .batch = 3, .lq = {1, 2, 1}, .lk = {1025, 113, 0},
  .hq = 16, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .page_size = 64, .causal = 1, .opts = AO_LSE | AO_SINKS};
/* clang-format on */

static void sweep(const char *target, const attn_case *c) {
  static const int sweep_n[] = {1, 2, 3, 7, 0};
  pa_context *ctx = tu_open_or_skip(target);
  attn_problem p;
  cr_assert(attn_setup(&p, ctx, c) == PA_OK, "setup: %s", p.msg);
  attn_reference(&p);
  int longest = 0;
  for (int b = 1; b < p.B; b++)
    if (p.lk[b] > p.lk[longest]) longest = b;
  for (int k = 0; k < TU_LEN(sweep_n); k++) {
    int n = sweep_n[k];
    pa_attention_desc d = p.desc;
    d.num_splits = n;
    pa_status s = attn_execute(&p, &d, NULL);
    cr_expect(s == PA_OK, "[%s] %s num_splits=%d: %s", target, c->name, n, p.msg);
    if (s != PA_OK) continue;
    char why[1024], splits[128] = "";
    bool ok = attn_check(&p, target, why, sizeof why);
    bool any_split = false;
    for (int b = 0; b < p.B; b++) {
      size_t l = strlen(splits);
      snprintf(splits + l, sizeof splits - l, "%s%d", b ? "," : "", p.splits[b]);
      any_split |= p.splits[b] > 1;
      cr_expect(p.splits[b] >= 1, "[%s] %s n=%d: request %d got %d splits", target, c->name, n, b,
                p.splits[b]);
      if (n >= 1)
        cr_expect(p.splits[b] <= n, "[%s] %s n=%d: request %d got %d splits", target, c->name, n,
                  b, p.splits[b]);
      if (p.lk[b] == 0)
        cr_expect(p.splits[b] == 1, "[%s] %s: empty request %d got %d splits", target, c->name, b,
                  p.splits[b]);
    }
    /* 1025 keys hold at least two chunks under any alignment up to 512. */
    if (n >= 2)
      cr_expect(p.splits[longest] >= 2, "[%s] %s n=%d: longest request (%d keys) not split (%d)",
                target, c->name, n, p.lk[longest], p.splits[longest]);
    cr_expect(any_split ? p.ws_size > 0 : p.ws_size == 0,
              "[%s] %s n=%d: workspace %zu bytes with splits {%s}", target, c->name, n, p.ws_size,
              splits);
    cr_expect(ok, "num_splits=%d (got {%s}): %s", n, splits, why);
    if (ok) cr_log_info("num_splits=%d -> {%s}, ws %zu B: %s", n, splits, p.ws_size, why);
  }
  attn_free(&p);
  pa_context_destroy(ctx);
}

/* The caller's own workspace, of exactly the queried size. */
static void own_workspace(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  attn_problem p;
  cr_assert(attn_setup(&p, ctx, &decode_case) == PA_OK, "setup: %s", p.msg);
  attn_reference(&p);
  pa_attention_desc d = p.desc;
  d.num_splits = 7;
  pa_plan *plan = NULL;
  cr_assert(pa_attention_plan(ctx, &d, &p.batch, &plan) == PA_OK, "plan: %s",
            pa_context_last_error(ctx));
  size_t ws_size = pa_plan_workspace_size(plan);
  pa_plan_destroy(plan);
  cr_assert(ws_size > 0, "[%s] 7 splits of 1025 keys need a workspace", target);
  pa_buffer *ws = NULL;
  cr_assert(pa_buffer_create(ctx, ws_size, &ws) == PA_OK, "workspace of %zu B", ws_size);
  pa_status s = attn_execute(&p, &d, ws);
  cr_assert(s == PA_OK, "[%s] run with own workspace: %s", target, p.msg);
  char why[1024];
  bool ok = attn_check(&p, target, why, sizeof why);
  cr_expect(ok, "own workspace: %s", why);
  if (ok) cr_log_info("own workspace of %zu B: %s", ws_size, why);
  pa_buffer_destroy(ws);
  attn_free(&p);
  pa_context_destroy(ctx);
}

/* Copies request sb of src into request db of dst (same shapes), then
 * uploads dst's q, k, v. */
static void copy_request(attn_problem *dst, int db, const attn_problem *src, int sb) {
  for (int i = 0; i < src->lq[sb]; i++)
    for (int h = 0; h < src->hq; h++)
      for (int x = 0; x < src->dqk; x++)
        tu_set(&dst->q, attn_q_offset(dst, db, i, h) + x,
               tu_get(&src->q, attn_q_offset(src, sb, i, h) + x));
  for (int j = 0; j < src->lk[sb]; j++)
    for (int h = 0; h < src->hkv; h++) {
      for (int x = 0; x < src->dqk; x++)
        tu_set(&dst->k, attn_kv_offset(dst, &dst->k, db, j, h) + x,
               tu_get(&src->k, attn_kv_offset(src, &src->k, sb, j, h) + x));
      for (int x = 0; x < src->dv; x++)
        tu_set(&dst->v, attn_kv_offset(dst, &dst->v, db, j, h) + x,
               tu_get(&src->v, attn_kv_offset(src, &src->v, sb, j, h) + x));
    }
  cr_assert(tu_tensor_upload(&dst->q) == PA_OK && tu_tensor_upload(&dst->k) == PA_OK &&
                tu_tensor_upload(&dst->v) == PA_OK,
            "upload");
}

/* Number of elements of request (p, b)'s out and lse that differ bitwise
 * from request (r, rb). */
static int64_t bitwise_diff(const attn_problem *p, int b, const attn_problem *r, int rb) {
  size_t es = tu_dtype_size(p->c->dtype);
  int64_t diff = 0;
  for (int i = 0; i < p->lq[b]; i++)
    for (int h = 0; h < p->hq; h++) {
      const unsigned char *x = p->out.back + p->out.t.offset + attn_out_offset(p, b, i, h) * es;
      const unsigned char *y = r->out.back + r->out.t.offset + attn_out_offset(r, rb, i, h) * es;
      for (int d = 0; d < p->dv; d++) diff += memcmp(x + d * es, y + d * es, es) != 0;
      diff += memcmp(p->lse.back + p->lse.t.offset + attn_lse_offset(p, b, i, h) * 4,
                     r->lse.back + r->lse.t.offset + attn_lse_offset(r, rb, i, h) * 4, 4) != 0;
    }
  return diff;
}

static void deterministic(const char *target, pa_dtype dt, int page_size) {
  /* Request X = (3 queries, 1025 keys), alone, second of three, last of four. */
  attn_case alone = {.name = "det_alone", .batch = 1, .lq = {3}, .lk = {1025}, .hq = 4, .hkv = 2,
                     .dqk = 64, .dtype = dt, .causal = 1, .page_size = page_size, .kv_chunk = 128,
                     .opts = AO_LSE | AO_DETERMINISTIC};
  attn_case in_a = alone, in_b = alone;
  in_a.name = "det_batch_a";
  in_a.batch = 3;
  memcpy(in_a.lq, (int32_t[]){1, 3, 7}, 3 * sizeof(int32_t));
  memcpy(in_a.lk, (int32_t[]){203, 1025, 50}, 3 * sizeof(int32_t));
  in_b.name = "det_batch_b";
  in_b.batch = 4;
  memcpy(in_b.lq, (int32_t[]){113, 1, 2, 3}, 4 * sizeof(int32_t));
  memcpy(in_b.lk, (int32_t[]){113, 2000, 9, 1025}, 4 * sizeof(int32_t));

  pa_context *ctx = tu_open_or_skip(target);
  attn_problem p0, pa, pb;
  cr_assert(attn_setup(&p0, ctx, &alone) == PA_OK, "setup: %s", p0.msg);
  cr_assert(attn_setup(&pa, ctx, &in_a) == PA_OK, "setup: %s", pa.msg);
  cr_assert(attn_setup(&pb, ctx, &in_b) == PA_OK, "setup: %s", pb.msg);
  copy_request(&pa, 1, &p0, 0);
  copy_request(&pb, 3, &p0, 0);
  cr_assert(attn_execute(&p0, NULL, NULL) == PA_OK, "[%s] alone: %s", target, p0.msg);
  cr_assert(attn_execute(&pa, NULL, NULL) == PA_OK, "[%s] batch a: %s", target, pa.msg);
  cr_assert(attn_execute(&pb, NULL, NULL) == PA_OK, "[%s] batch b: %s", target, pb.msg);
  attn_reference(&p0);
  char why[1024];
  cr_expect(attn_check(&p0, target, why, sizeof why), "deterministic alone: %s", why);
  cr_expect(p0.splits[0] >= 2, "[%s] 1025 keys in chunks of 128 should split, got %d", target,
            p0.splits[0]);
  cr_expect(pa.splits[1] == p0.splits[0] && pb.splits[3] == p0.splits[0],
            "[%s] splits of X: alone %d, batch a %d, batch b %d", target, p0.splits[0],
            pa.splits[1], pb.splits[3]);
  int64_t da = bitwise_diff(&pa, 1, &p0, 0), db = bitwise_diff(&pb, 3, &p0, 0);
  cr_expect(da == 0 && db == 0,
            "[%s] %s page %d: X differs bitwise from its solo run in %lld (batch a) and %lld "
            "(batch b) of %d elements",
            target, pa_dtype_name(dt), page_size, (long long)da, (long long)db,
            3 * 4 * (64 + 1));
  cr_log_info("[%s] deterministic %s page %d: X split %d ways, bitwise equal in both batches (%s)",
              target, pa_dtype_name(dt), page_size, p0.splits[0], why);
  attn_free(&p0);
  attn_free(&pa);
  attn_free(&pb);
  pa_context_destroy(ctx);
}

/* pa_plan_num_splits: one split when asked for none; empty requests never
 * split; auto never above what a user could ask. */
static void plan_sanity(const char *target) {
  pa_context *ctx = tu_open_or_skip(target);
  int32_t lq[4] = {1, 1, 1, 1}, lk[4] = {0, 1, 1025, 32768};
  pa_batch batch = {.batch_size = 4, .seqlens_q = lq, .seqlens_k = lk};
  pa_attention_desc d;
  pa_attention_desc_init(&d, 8, 1, 128, PA_BF16);
  d.page_size = 16;
  for (int n = 0; n <= 1; n++) {
    d.num_splits = n;
    pa_plan *plan = NULL;
    pa_status s = pa_attention_plan(ctx, &d, &batch, &plan);
    cr_assert(s == PA_OK, "[%s] plan: %s (%s)", target, pa_status_str(s), pa_context_last_error(ctx));
    int got[4];
    for (int b = 0; b < 4; b++) got[b] = pa_plan_num_splits(plan, b);
    cr_expect(got[0] == 1 && got[1] == 1, "[%s] n=%d: tiny requests split: %d %d", target, n,
              got[0], got[1]);
    for (int b = 0; b < 4; b++)
      cr_expect(got[b] >= 1 && (n != 1 || got[b] == 1), "[%s] n=%d: request %d -> %d splits",
                target, n, b, got[b]);
    if (n == 1)
      cr_expect(pa_plan_workspace_size(plan) == 0, "[%s] no split, yet workspace %zu B", target,
                pa_plan_workspace_size(plan));
    cr_log_info("[%s] num_splits=%d -> %d %d %d %d, workspace %zu B", target, n, got[0], got[1],
                got[2], got[3], pa_plan_workspace_size(plan));
    pa_plan_destroy(plan);
  }
  pa_context_destroy(ctx);
}

#define SPLIT_TESTS(tgt)                                                                          \
  Test(tgt, sweep_decode, .timeout = 120) { sweep(#tgt, &decode_case); }                          \
  Test(tgt, sweep_prefill, .timeout = 120) { sweep(#tgt, &prefill_case); }                        \
  Test(tgt, sweep_decode_bf16, .timeout = 120) { sweep(#tgt, &decode_bf16_case); }                \
  Test(tgt, own_workspace, .timeout = 60) { own_workspace(#tgt); }                                \
  Test(tgt, deterministic_f32, .timeout = 60) { deterministic(#tgt, PA_F32, 0); }                 \
  Test(tgt, deterministic_bf16_paged, .timeout = 60) { deterministic(#tgt, PA_BF16, 16); }        \
  Test(tgt, plan_num_splits, .timeout = 60) { plan_sanity(#tgt); }

SPLIT_TESTS(cpu_scalar)
SPLIT_TESTS(cpu_avx2)
SPLIT_TESTS(cpu_avx512)
SPLIT_TESTS(cpu_neon)
SPLIT_TESTS(cpu_avx512bf16)
SPLIT_TESTS(cuda)
SPLIT_TESTS(opencl)

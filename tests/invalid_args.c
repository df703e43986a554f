/* Invalid inputs: each asserts the exact status code, that the outputs (and
 * their guard bands) were not touched, and that the context's last error
 * names the field. Validation lives in core, so these run on the CPU. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

/* clang-format off */
static const attn_case paged_base = {.name = "inv_paged", .batch = 2, .lq = {3, 1}, .lk = {40, 17},
  .hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .page_size = 16, .opts = AO_LSE};
static const attn_case ragged_base = {.name = "inv_ragged", .batch = 2, .lq = {3, 1}, .lk = {40, 17},
  .hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE};
static const attn_case split_base = {.name = "inv_split", .batch = 1, .lq = {1}, .lk = {1025},
  .hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_F32, .num_splits = 4, .opts = AO_LSE};
/* clang-format on */

typedef struct fixture {
  pa_context *ctx;
  attn_problem p;
  pa_attention_desc d;
  pa_batch b;
  pa_attention_args a;
  pa_buffer *ws;
  tu_tensor extra;       /* a tensor a test adds (freed with the fixture) */
  pa_context *other;     /* a second context a test uses */
  pa_buffer *other_buf;
  int32_t seq[3][AC_MAX_B + 1]; /* scratch length arrays a test may point the batch at */
} fixture;

static void fix_setup(fixture *f, const attn_case *c) {
  memset(f, 0, sizeof *f);
  f->ctx = tu_open_cpu();
  cr_assert(attn_setup(&f->p, f->ctx, c) == PA_OK, "setup: %s", f->p.msg);
  f->d = f->p.desc;
  f->b = f->p.batch;
  f->a = f->p.args;
}

static bool mentions(const char *msg, const char *const *fields) {
  for (; *fields; fields++)
    if (strstr(msg, *fields)) return true;
  return false;
}

static void join(char *dst, size_t n, const char *const *fields) {
  dst[0] = 0;
  for (; *fields; fields++) {
    size_t l = strlen(dst);
    snprintf(dst + l, n - l, "%s'%s'", l ? " or " : "", *fields);
  }
}

/* Outputs (out, lse and their guard bands) exactly as uploaded. */
static void expect_outputs_untouched(fixture *f) {
  cr_assert(tu_tensor_download(&f->p.out) == PA_OK, "download out");
  cr_expect(tu_unchanged(&f->p.out), "out was written on a failed call");
  if (f->p.lse.host) {
    cr_assert(tu_tensor_download(&f->p.lse) == PA_OK, "download lse");
    cr_expect(tu_unchanged(&f->p.lse), "lse was written on a failed call");
  }
}

/* Plans and runs with the fixture's (mutated) desc, batch and args; the first
 * failure is the verdict, wherever core chose to check. */
static void fix_expect(fixture *f, pa_status want, const char *const *fields) {
  char msg[1024] = "";
  pa_plan *plan = NULL;
  pa_status s = pa_attention_plan(f->ctx, &f->d, &f->b, &plan);
  if (s == PA_OK) {
    s = pa_attention_run(plan, &f->a, f->ws);
    snprintf(msg, sizeof msg, "%s", pa_context_last_error(f->ctx));
    pa_plan_destroy(plan);
  } else {
    snprintf(msg, sizeof msg, "%s", pa_context_last_error(f->ctx));
  }
  pa_context_synchronize(f->ctx);
  char want_fields[256];
  join(want_fields, sizeof want_fields, fields);
  cr_expect(s == want, "status %s, expected %s (message: \"%s\")", pa_status_str(s),
            pa_status_str(want), msg);
  cr_expect(mentions(msg, fields), "last error \"%s\" does not name %s", msg, want_fields);
  cr_log_info("%s: \"%s\"", pa_status_str(s), msg);
  expect_outputs_untouched(f);
  pa_buffer_destroy(f->ws);
  if (f->extra.host) tu_tensor_free(&f->extra);
  pa_buffer_destroy(f->other_buf);
  pa_context_destroy(f->other);
  attn_free(&f->p);
  pa_context_destroy(f->ctx);
}

#define FIELDS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define INVALID_CASE(name, base, mutation, status, ...)                                           \
  Test(invalid_args, name) {                                                                      \
    fixture f_;                                                                                   \
    fixture *f = &f_;                                                                             \
    fix_setup(f, &base);                                                                          \
    mutation;                                                                                     \
    fix_expect(f, status, FIELDS(__VA_ARGS__));                                                   \
  }
#define BAD(name, base, mutation, ...)                                                            \
  INVALID_CASE(name, base, mutation, PA_ERR_INVALID_ARGUMENT, __VA_ARGS__)

/* The baselines themselves are valid (else every case below is vacuous). */
Test(invalid_args, baselines_are_valid) {
  const attn_case *bases[] = {&paged_base, &ragged_base, &split_base};
  for (int i = 0; i < TU_LEN(bases); i++) {
    pa_context *ctx = tu_open_cpu();
    attn_problem p;
    cr_assert(attn_setup(&p, ctx, bases[i]) == PA_OK, "setup: %s", p.msg);
    cr_expect(attn_execute(&p, NULL, NULL) == PA_OK, "baseline %s: %s", bases[i]->name, p.msg);
    attn_free(&p);
    pa_context_destroy(ctx);
  }
}

/* ---- the attention descriptor ---- */
BAD(heads_not_divisible, paged_base, (f->d.num_q_heads = 6, f->d.num_kv_heads = 4), "num_kv_heads", "num_q_heads")
BAD(q_heads_zero, paged_base, f->d.num_q_heads = 0, "num_q_heads")
BAD(kv_heads_negative, paged_base, f->d.num_kv_heads = -2, "num_kv_heads")
BAD(head_dim_qk_zero, paged_base, f->d.head_dim_qk = 0, "head_dim_qk")
BAD(head_dim_qk_257, paged_base, f->d.head_dim_qk = 257, "head_dim_qk")
BAD(head_dim_v_zero, paged_base, f->d.head_dim_v = 0, "head_dim_v")
BAD(head_dim_v_257, paged_base, f->d.head_dim_v = 257, "head_dim_v")
BAD(q_dtype_unknown, paged_base, f->d.q_dtype = (pa_dtype)9, "q_dtype")
BAD(kv_dtype_i32, paged_base, f->d.kv_dtype = PA_I32, "kv_dtype")
BAD(o_dtype_unknown, paged_base, f->d.o_dtype = (pa_dtype)-1, "o_dtype")
BAD(num_splits_negative, paged_base, f->d.num_splits = -1, "num_splits")
BAD(page_size_negative, paged_base, f->d.page_size = -16, "page_size")
BAD(kv_chunk_negative, split_base, (f->d.flags |= PA_DETERMINISTIC, f->d.kv_chunk = -64), "kv_chunk")

/* ---- the batch ---- */
BAD(batch_size_negative, paged_base, f->b.batch_size = -1, "batch_size")
BAD(seqlens_k_negative, paged_base,
    (f->seq[0][0] = 40, f->seq[0][1] = -5, f->b.seqlens_k = f->seq[0]), "seqlens_k")
BAD(seqlens_q_negative, paged_base,
    (f->seq[0][0] = -1, f->seq[0][1] = 1, f->b.seqlens_q = f->seq[0]), "seqlens_q")
BAD(cu_seqlens_q_not_monotone, paged_base,
    (f->seq[0][0] = 0, f->seq[0][1] = 3, f->seq[0][2] = 2, f->b.cu_seqlens_q = f->seq[0]), "cu_seqlens_q")
BAD(cu_seqlens_k_not_monotone, ragged_base,
    (f->seq[0][0] = 0, f->seq[0][1] = 40, f->seq[0][2] = 30, f->b.cu_seqlens_k = f->seq[0]), "cu_seqlens_k")
BAD(k_lengths_missing, paged_base, f->b.seqlens_k = NULL, "seqlens_k")
BAD(used_length_exceeds_slot, ragged_base,
    (f->seq[0][0] = 4, f->seq[0][1] = 1, f->b.seqlens_q = f->seq[0]), "seqlens_q")

/* ---- tensors against the desc ---- */
BAD(q_head_dim_mismatch, paged_base, f->a.q.shape[2] = 32, "q.", "q:", "q ")
BAD(q_heads_mismatch, paged_base, f->a.q.shape[1] = 3, "q.", "q:", "q ")
BAD(q_ndim_2, paged_base, f->a.q.ndim = 2, "q.", "q:", "q ")
BAD(q_dtype_mismatch, paged_base, f->a.q.dtype = PA_BF16, "q.", "q:", "q ", "q_dtype")
BAD(k_heads_mismatch, paged_base, f->a.k.shape[2] = 1, "k.", "k:", "k ")
BAD(k_dtype_mismatch, paged_base, f->a.k.dtype = PA_F16, "k.", "k:", "k ", "kv_dtype")
BAD(v_head_dim_mismatch, paged_base, f->a.v.shape[3] = 32, "v.", "v:", "v ")
BAD(out_dtype_mismatch, paged_base, f->a.out.dtype = PA_F16, "out")
BAD(out_tokens_too_few, paged_base, f->a.out.shape[0] = 3, "out")
BAD(q_tokens_too_few, paged_base, f->a.q.shape[0] = 2, "q.", "q:", "q ")
BAD(k_tokens_too_few, ragged_base, f->a.k.shape[0] = 50, "k.", "k:", "k ")
BAD(q_beyond_buffer, paged_base, f->a.q.offset += (size_t)1 << 20, "q.", "q:", "q ")
BAD(q_size_overflow, paged_base, (f->a.q.shape[0] = INT64_MAX / 4, f->a.q.stride[0] = INT64_MAX / 8), "q.", "q:", "q ")
BAD(k_negative_shape, ragged_base, f->a.k.shape[0] = -1, "k.", "k:", "k ")
BAD(q_last_dim_strided, paged_base, f->a.q.stride[2] = 2, "q.", "q:", "q ", "stride")
BAD(k_page_size_mismatch, paged_base, f->a.k.shape[1] = 8, "page_size", "k.", "k:")
BAD(block_table_f32, paged_base, f->a.block_table.dtype = PA_F32, "block_table")
BAD(block_table_missing, paged_base, f->a.block_table.buf = NULL, "block_table")
BAD(block_table_rows, paged_base, f->a.block_table.shape[0] = 1, "block_table")
BAD(block_table_too_few_pages, paged_base, f->a.block_table.shape[1] = 2, "block_table")
BAD(lse_missing, paged_base, f->a.lse.buf = NULL, "lse")
BAD(lse_f16, paged_base, f->a.lse.dtype = PA_F16, "lse")
BAD(lse_heads_mismatch, paged_base, f->a.lse.shape[1] = 3, "lse")
BAD(sinks_missing, paged_base, f->d.flags |= PA_HAS_SINKS, "sinks")
BAD(alibi_missing, paged_base, f->d.flags |= PA_HAS_ALIBI, "alibi")
BAD(mask_missing, paged_base, f->d.flags |= PA_HAS_MASK, "mask")

static void bad_mask_heads(fixture *f) {
  /* Hm must be 1 or Hq (4); 3 is neither. */
  int64_t shape[4] = {2, 3, 3, 40};
  cr_assert(tu_tensor_alloc(f->ctx, &f->extra, PA_F32, 4, shape, NULL) == PA_OK, "mask alloc");
  f->a.mask = f->extra.t;
  f->d.flags |= PA_HAS_MASK;
}
BAD(mask_heads_3_of_4, paged_base, bad_mask_heads(f), "mask")

static void foreign_q(fixture *f) {
  /* q in a buffer of another context. */
  f->other = tu_open_cpu();
  cr_assert(pa_buffer_create(f->other, pa_buffer_size(f->a.q.buf), &f->other_buf) == PA_OK, "buf");
  f->a.q.buf = f->other_buf;
}
BAD(q_from_another_context, paged_base, foreign_q(f), "q.", "q:", "q ", "context")

static void small_workspace(fixture *f) {
  cr_assert(pa_buffer_create(f->ctx, 16, &f->ws) == PA_OK, "ws");
}
INVALID_CASE(workspace_too_small, split_base, small_workspace(f), PA_ERR_WORKSPACE_TOO_SMALL, "workspace")

/* ---- outputs that would race or overwrite inputs ---- */
BAD(out_heads_share_memory, paged_base, f->a.out.stride[1] = 0, "out")
BAD(lse_tokens_share_memory, ragged_base, f->a.lse.stride[0] = 0, "lse")
BAD(kv_chunk_too_big, split_base, (f->d.flags |= PA_DETERMINISTIC, f->d.kv_chunk = INT32_MAX),
    "kv_chunk")

/* The workspace is used from byte 0: q's own buffer would be overwritten,
 * even when it is large enough to serve as the workspace. */
Test(invalid_args, workspace_is_q_buffer) {
  fixture f;
  fix_setup(&f, &split_base);
  pa_plan *plan = NULL;
  cr_assert(pa_attention_plan(f.ctx, &f.d, &f.b, &plan) == PA_OK, "plan");
  size_t ws = pa_plan_workspace_size(plan), qb = pa_buffer_size(f.a.q.buf);
  cr_assert(ws > 0, "the case must split");
  /* q moved into a buffer big enough to be the workspace too */
  pa_buffer *big = NULL;
  cr_assert(pa_buffer_create(f.ctx, ws + qb, &big) == PA_OK, "big buffer");
  void *host = malloc(qb);
  cr_assert(host && pa_buffer_read(f.a.q.buf, 0, host, qb) == PA_OK, "read q");
  cr_assert(pa_buffer_write(big, 0, host, qb) == PA_OK, "write q");
  free(host);
  f.a.q.buf = big;
  pa_status s = pa_attention_run(plan, &f.a, big);
  cr_expect(s == PA_ERR_INVALID_ARGUMENT, "status %s", pa_status_str(s));
  cr_expect(strstr(pa_context_last_error(f.ctx), "workspace") != NULL, "message: %s",
            pa_context_last_error(f.ctx));
  pa_plan_destroy(plan);
  expect_outputs_untouched(&f);
  pa_buffer_destroy(big);
  attn_free(&f.p);
  pa_context_destroy(f.ctx);
}

/* ---- NULL pointers ---- */
Test(invalid_args, null_pointers) {
  fixture f;
  fix_setup(&f, &paged_base);
  pa_plan *plan = NULL;
  cr_expect(pa_attention_plan(f.ctx, NULL, &f.b, &plan) == PA_ERR_INVALID_ARGUMENT, "desc NULL");
  cr_expect(strstr(pa_context_last_error(f.ctx), "desc") != NULL, "message: %s",
            pa_context_last_error(f.ctx));
  cr_expect(pa_attention_plan(f.ctx, &f.d, NULL, &plan) == PA_ERR_INVALID_ARGUMENT, "batch NULL");
  cr_expect(strstr(pa_context_last_error(f.ctx), "batch") != NULL, "message: %s",
            pa_context_last_error(f.ctx));
  cr_expect(pa_attention_plan(f.ctx, &f.d, &f.b, NULL) == PA_ERR_INVALID_ARGUMENT, "out NULL");
  cr_expect(pa_attention_plan(NULL, &f.d, &f.b, &plan) == PA_ERR_INVALID_ARGUMENT, "ctx NULL");
  cr_expect(pa_attention_run(NULL, &f.a, NULL) == PA_ERR_INVALID_ARGUMENT, "plan NULL");
  cr_assert(pa_attention_plan(f.ctx, &f.d, &f.b, &plan) == PA_OK, "valid plan");
  cr_expect(pa_attention_run(plan, NULL, NULL) == PA_ERR_INVALID_ARGUMENT, "args NULL");
  cr_expect(strstr(pa_context_last_error(f.ctx), "args") != NULL, "message: %s",
            pa_context_last_error(f.ctx));
  pa_plan_destroy(plan);
  cr_expect(pa_context_create(NULL, NULL) == PA_ERR_INVALID_ARGUMENT, "context out NULL");
  pa_buffer *b = NULL;
  cr_expect(pa_buffer_create(f.ctx, 64, NULL) == PA_ERR_INVALID_ARGUMENT, "buffer out NULL");
  cr_expect(pa_buffer_create(NULL, 64, &b) == PA_ERR_INVALID_ARGUMENT, "buffer ctx NULL");
  cr_expect(pa_head_gemm(f.ctx, NULL, &f.a.q, &f.a.out) == PA_ERR_INVALID_ARGUMENT, "gemm x NULL");
  cr_expect(pa_merge_states(f.ctx, NULL, &f.a.lse, &f.a.out, &f.a.lse) == PA_ERR_INVALID_ARGUMENT,
            "merge v NULL");
  cr_expect(pa_tensor_init(NULL, NULL, 0, PA_F32, 1, (int64_t[]){4}) == PA_ERR_INVALID_ARGUMENT,
            "tensor NULL");
  expect_outputs_untouched(&f);
  attn_free(&f.p);
  pa_context_destroy(f.ctx);
}

Test(invalid_args, context_and_buffers) {
  pa_context *ctx = NULL;
  pa_context_desc d = {.backend = (pa_backend)99, .device = -1};
  cr_expect(pa_context_create(&d, &ctx) == PA_ERR_INVALID_ARGUMENT && ctx == NULL,
            "unknown backend must be INVALID_ARGUMENT");
  ctx = tu_open_cpu();
  pa_buffer *b = NULL;
  cr_assert(pa_buffer_create(ctx, 100, &b) == PA_OK, "buffer");
  unsigned char bytes[64] = {0};
  cr_expect(pa_buffer_write(b, 90, bytes, 20) == PA_ERR_INVALID_ARGUMENT, "write past the end");
  cr_expect(strstr(pa_context_last_error(ctx), "100") != NULL,
            "message should give the buffer size: %s", pa_context_last_error(ctx));
  cr_expect(pa_buffer_read(b, 101, bytes, 1) == PA_ERR_INVALID_ARGUMENT, "read past the end");
  cr_expect(pa_buffer_write(b, SIZE_MAX - 4, bytes, 8) == PA_ERR_INVALID_ARGUMENT,
            "offset + bytes overflows");
  pa_tensor t;
  int64_t shape[5] = {1, 2, 3, 4, 5};
  cr_expect(pa_tensor_init(&t, b, 0, PA_F32, 5, shape) == PA_ERR_INVALID_ARGUMENT, "ndim 5");
  cr_expect(pa_tensor_init(&t, b, 0, (pa_dtype)11, 2, shape) == PA_ERR_INVALID_ARGUMENT,
            "unknown dtype");
  pa_buffer_destroy(b);
  pa_context_destroy(ctx);
}

/* ---- merge ---- */
typedef struct merge_fix {
  pa_context *ctx;
  tu_tensor a, la, b, lb, out, lo;
  tu_tensor extra;
} merge_fix;

static void merge_setup(merge_fix *m) {
  memset(m, 0, sizeof *m);
  m->ctx = tu_open_cpu();
  tu_rng r = tu_rng_seed(7);
  int64_t o[3] = {5, 3, 64}, l[2] = {5, 3};
  tu_tensor *ts[] = {&m->a, &m->b, &m->out};
  for (int i = 0; i < 3; i++) {
    cr_assert(tu_tensor_alloc(m->ctx, ts[i], PA_F32, 3, o, NULL) == PA_OK, "alloc");
    tu_tensor_fill_random(ts[i], &r, 1.0);
  }
  tu_tensor *ls[] = {&m->la, &m->lb, &m->lo};
  for (int i = 0; i < 3; i++) {
    cr_assert(tu_tensor_alloc(m->ctx, ls[i], PA_F32, 2, l, NULL) == PA_OK, "alloc");
    tu_tensor_fill_random(ls[i], &r, 1.0);
  }
  tu_tensor_poison(&m->out);
  tu_tensor_poison(&m->lo);
  tu_tensor *all[] = {&m->a, &m->b, &m->out, &m->la, &m->lb, &m->lo};
  for (int i = 0; i < 6; i++) cr_assert(tu_tensor_upload(all[i]) == PA_OK, "upload");
}

static void merge_verdict(merge_fix *m, pa_status s, const char *const *fields) {
  char want[256];
  join(want, sizeof want, fields);
  const char *msg = pa_context_last_error(m->ctx);
  cr_expect(s == PA_ERR_INVALID_ARGUMENT, "status %s (message \"%s\")", pa_status_str(s), msg);
  cr_expect(mentions(msg, fields), "last error \"%s\" does not name %s", msg, want);
  cr_assert(tu_tensor_download(&m->out) == PA_OK && tu_tensor_download(&m->lo) == PA_OK, "dl");
  cr_expect(tu_unchanged(&m->out) && tu_unchanged(&m->lo), "merge output written on failure");
  tu_tensor *all[] = {&m->a, &m->b, &m->out, &m->la, &m->lb, &m->lo};
  for (int i = 0; i < 6; i++) tu_tensor_free(all[i]);
  if (m->extra.host) tu_tensor_free(&m->extra);
  pa_context_destroy(m->ctx);
}

Test(invalid_args, merge_pair_dim_mismatch) {
  merge_fix m;
  merge_setup(&m);
  m.b.t.shape[2] = 32;
  merge_verdict(&m, pa_merge_state_pair(m.ctx, &m.a.t, &m.la.t, &m.b.t, &m.lb.t, &m.out.t, &m.lo.t),
                FIELDS("b.", "b:", "b "));
}

Test(invalid_args, merge_pair_head_dim_zero) {
  merge_fix m;
  merge_setup(&m);
  m.a.t.shape[2] = m.b.t.shape[2] = m.out.t.shape[2] = 0; /* lse_out would still be owed */
  merge_verdict(&m, pa_merge_state_pair(m.ctx, &m.a.t, &m.la.t, &m.b.t, &m.lb.t, &m.out.t, &m.lo.t),
                FIELDS("head dim"));
}

Test(invalid_args, merge_pair_lse_shape) {
  merge_fix m;
  merge_setup(&m);
  m.la.t.shape[1] = 2;
  merge_verdict(&m, pa_merge_state_pair(m.ctx, &m.a.t, &m.la.t, &m.b.t, &m.lb.t, &m.out.t, &m.lo.t),
                FIELDS("lse_a"));
}

Test(invalid_args, merge_pair_out_shape) {
  merge_fix m;
  merge_setup(&m);
  m.out.t.shape[0] = 4;
  merge_verdict(&m, pa_merge_state_pair(m.ctx, &m.a.t, &m.la.t, &m.b.t, &m.lb.t, &m.out.t, &m.lo.t),
                FIELDS("out"));
}

Test(invalid_args, merge_pair_lse_dtype) {
  merge_fix m;
  merge_setup(&m);
  m.lb.t.dtype = PA_F16;
  merge_verdict(&m, pa_merge_state_pair(m.ctx, &m.a.t, &m.la.t, &m.b.t, &m.lb.t, &m.out.t, &m.lo.t),
                FIELDS("lse_b"));
}

Test(invalid_args, merge_fixed_count_mismatch) {
  /* v [5, 3(N), 3, 64] seen from a [5, 3, 64] buffer is too big; use a view
   * with N 3 of the a buffer's first token rows and s with N 2. */
  merge_fix m;
  merge_setup(&m);
  pa_tensor v = m.a.t, s = m.la.t;
  v.ndim = 4;
  v.shape[0] = 1, v.shape[1] = 5, v.shape[2] = 3, v.shape[3] = 64;
  v.stride[0] = 5 * 3 * 64, v.stride[1] = 3 * 64, v.stride[2] = 64, v.stride[3] = 1;
  s.ndim = 3;
  s.shape[0] = 1, s.shape[1] = 4, s.shape[2] = 3; /* N 4 != 5 */
  s.stride[0] = 15, s.stride[1] = 3, s.stride[2] = 1;
  pa_tensor out = m.out.t, lo = m.lo.t;
  out.shape[0] = 1, lo.shape[0] = 1;
  merge_verdict(&m, pa_merge_states(m.ctx, &v, &s, &out, &lo), FIELDS("s.", "s:", "s ", "lse"));
}

Test(invalid_args, merge_varlen_indptr_dtype) {
  merge_fix m;
  merge_setup(&m);
  int64_t sh[1] = {3};
  cr_assert(tu_tensor_alloc(m.ctx, &m.extra, PA_F32, 1, sh, NULL) == PA_OK, "alloc");
  pa_tensor out = m.out.t, lo = m.lo.t;
  out.shape[0] = 2, lo.shape[0] = 2;
  merge_verdict(&m, pa_merge_states_varlen(m.ctx, &m.a.t, &m.la.t, &m.extra.t, &out, &lo),
                FIELDS("indptr"));
}

Test(invalid_args, merge_varlen_indptr_length) {
  merge_fix m;
  merge_setup(&m);
  int64_t sh[1] = {4}; /* out has 2 rows: indptr needs 3 entries (or out 3 rows) */
  cr_assert(tu_tensor_alloc(m.ctx, &m.extra, PA_I32, 1, sh, NULL) == PA_OK, "alloc");
  pa_tensor out = m.out.t, lo = m.lo.t;
  out.shape[0] = 2, lo.shape[0] = 2;
  merge_verdict(&m, pa_merge_states_varlen(m.ctx, &m.a.t, &m.la.t, &m.extra.t, &out, &lo),
                FIELDS("indptr", "out."));
}

/* ---- head GEMM: x [T, H, K], w [H, K, N], y [T, H, N] ---- */
typedef struct gemm_fix {
  pa_context *ctx;
  tu_tensor x, w, y;
} gemm_fix;

static void gemm_setup(gemm_fix *g) {
  g->ctx = tu_open_cpu();
  tu_rng r = tu_rng_seed(11);
  int64_t xs[3] = {3, 2, 16}, ws[3] = {2, 16, 8}, ys[3] = {3, 2, 8};
  cr_assert(tu_tensor_alloc(g->ctx, &g->x, PA_F32, 3, xs, NULL) == PA_OK, "x");
  cr_assert(tu_tensor_alloc(g->ctx, &g->w, PA_F32, 3, ws, NULL) == PA_OK, "w");
  cr_assert(tu_tensor_alloc(g->ctx, &g->y, PA_F32, 3, ys, NULL) == PA_OK, "y");
  tu_tensor_fill_random(&g->x, &r, 1.0);
  tu_tensor_fill_random(&g->w, &r, 1.0);
  tu_tensor_poison(&g->y);
  cr_assert(tu_tensor_upload(&g->x) == PA_OK && tu_tensor_upload(&g->w) == PA_OK &&
                tu_tensor_upload(&g->y) == PA_OK,
            "upload");
}

static void gemm_verdict(gemm_fix *g, const char *const *fields) {
  pa_status s = pa_head_gemm(g->ctx, &g->x.t, &g->w.t, &g->y.t);
  char want[256];
  join(want, sizeof want, fields);
  const char *msg = pa_context_last_error(g->ctx);
  cr_expect(s == PA_ERR_INVALID_ARGUMENT, "status %s (message \"%s\")", pa_status_str(s), msg);
  cr_expect(mentions(msg, fields), "last error \"%s\" does not name %s", msg, want);
  cr_assert(tu_tensor_download(&g->y) == PA_OK, "dl");
  cr_expect(tu_unchanged(&g->y), "y written on failure");
  tu_tensor_free(&g->x);
  tu_tensor_free(&g->w);
  tu_tensor_free(&g->y);
  pa_context_destroy(g->ctx);
}

Test(invalid_args, head_gemm_k_mismatch) {
  gemm_fix g;
  gemm_setup(&g);
  g.x.t.shape[2] = 12;
  gemm_verdict(&g, FIELDS("x.", "w.", "K"));
}

Test(invalid_args, head_gemm_heads_mismatch) {
  gemm_fix g;
  gemm_setup(&g);
  g.w.t.shape[0] = 1;
  gemm_verdict(&g, FIELDS("w.", "x.", "H"));
}

Test(invalid_args, head_gemm_n_mismatch) {
  gemm_fix g;
  gemm_setup(&g);
  g.y.t.shape[2] = 4;
  gemm_verdict(&g, FIELDS("y."));
}

Test(invalid_args, head_gemm_tokens_mismatch) {
  gemm_fix g;
  gemm_setup(&g);
  g.y.t.shape[0] = 2;
  gemm_verdict(&g, FIELDS("y."));
}

Test(invalid_args, head_gemm_dtype_mismatch) {
  gemm_fix g;
  gemm_setup(&g);
  g.w.t.dtype = PA_I32;
  gemm_verdict(&g, FIELDS("w.", "dtype"));
}

Test(invalid_args, head_gemm_w_no_unit_stride) {
  gemm_fix g;
  gemm_setup(&g);
  /* Neither of w's last two strides is 1. */
  g.w.t.shape[1] = 8, g.w.t.shape[2] = 4;
  g.w.t.stride[1] = 16, g.w.t.stride[2] = 2;
  g.x.t.shape[2] = 8, g.y.t.shape[2] = 4;
  gemm_verdict(&g, FIELDS("w.", "stride"));
}

/* ---- MLA ---- */
#include "mla_case.h"
static const mla_case mla_base = {.name = "inv_mla", .batch = 1, .lq = {2}, .lk = {40}, .h = 4,
                                  .dc = 64, .dr = 16, .dtype = PA_F32, .page_size = 16,
                                  .causal = 1, .lse = 1};

static void mla_expect(mla_problem *p, pa_status want, const char *const *fields) {
  char msg[1024] = "";
  pa_plan *plan = NULL;
  pa_status s = pa_mla_plan(p->ctx, &p->desc, &p->batch, &plan);
  if (s == PA_OK) s = pa_mla_run(plan, &p->args, NULL);
  snprintf(msg, sizeof msg, "%s", pa_context_last_error(p->ctx));
  pa_plan_destroy(plan);
  char wantf[256];
  join(wantf, sizeof wantf, fields);
  cr_expect(s == want, "status %s, expected %s (message \"%s\")", pa_status_str(s),
            pa_status_str(want), msg);
  cr_expect(mentions(msg, fields), "last error \"%s\" does not name %s", msg, wantf);
  cr_assert(tu_tensor_download(&p->out) == PA_OK && tu_tensor_download(&p->lse) == PA_OK, "dl");
  cr_expect(tu_unchanged(&p->out) && tu_unchanged(&p->lse), "MLA outputs written on failure");
  pa_context *ctx = p->ctx;
  mla_free(p);
  pa_context_destroy(ctx);
}

#define BAD_MLA(name, mutation, ...)                                                              \
  Test(invalid_args, name) {                                                                      \
    mla_problem p_;                                                                               \
    mla_problem *p = &p_;                                                                         \
    cr_assert(mla_setup(p, tu_open_cpu(), &mla_base) == PA_OK, "setup: %s", p->msg);              \
    mutation;                                                                                     \
    mla_expect(p, PA_ERR_INVALID_ARGUMENT, FIELDS(__VA_ARGS__));                                  \
  }

Test(invalid_args, mla_baseline_is_valid) {
  mla_problem p;
  pa_context *ctx = tu_open_cpu();
  cr_assert(mla_setup(&p, ctx, &mla_base) == PA_OK, "setup: %s", p.msg);
  cr_expect(mla_execute(&p) == PA_OK, "MLA baseline: %s", p.msg);
  mla_free(&p);
  pa_context_destroy(ctx);
}
BAD_MLA(mla_heads_zero, p->desc.num_heads = 0, "num_heads")
BAD_MLA(mla_head_dim_ckv_zero, p->desc.head_dim_ckv = 0, "head_dim_ckv")
BAD_MLA(mla_head_dim_kpe_overflow, p->desc.head_dim_kpe = INT32_MAX - 100, "head_dim_kpe")
BAD_MLA(mla_ckv_dim_mismatch, p->args.ckv.shape[2] = 32, "ckv")
BAD_MLA(mla_kpe_page_mismatch, p->args.kpe.shape[1] = 8, "kpe", "page_size")
BAD_MLA(mla_q_pe_dim_mismatch, p->args.q_pe.shape[2] = 8, "q_pe")
BAD_MLA(mla_block_table_i32_required, p->args.block_table.dtype = PA_F32, "block_table")
BAD_MLA(mla_lse_missing, p->args.lse.buf = NULL, "lse")

/* ---- fp8 K/V: scales and dtypes ---- */
/* clang-format off */
static const attn_case fp8_base = {.name = "inv_fp8", .batch = 2, .lq = {3, 1}, .lk = {40, 17},
  .hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_BF16, .causal = 1, .page_size = 16, .kv8 = PA_FP8_E4M3,
  .opts = AO_LSE | AO_SCALE_HEAD};
/* clang-format on */
Test(invalid_args, fp8_baseline_is_valid) {
  pa_context *ctx = tu_open_cpu();
  attn_problem p;
  cr_assert(attn_setup(&p, ctx, &fp8_base) == PA_OK, "setup: %s", p.msg);
  cr_expect(attn_execute(&p, NULL, NULL) == PA_OK, "fp8 baseline: %s", p.msg);
  attn_free(&p);
  pa_context_destroy(ctx);
}
BAD(fp8_k_scale_missing, fp8_base, f->a.k_scale.buf = NULL, "k_scale")
BAD(fp8_v_scale_missing, fp8_base, f->a.v_scale.buf = NULL, "v_scale")
BAD(fp8_k_scale_shape, fp8_base, f->a.k_scale.shape[0] = 3, "k_scale")
BAD(fp8_v_scale_f16, fp8_base, f->a.v_scale.dtype = PA_F16, "v_scale")
BAD(fp8_k_scale_2d, fp8_base, f->a.k_scale.ndim = 2, "k_scale")
BAD(fp8_k_scale_beyond_buffer, fp8_base, f->a.k_scale.offset += 4096, "k_scale")
BAD(fp8_scale_on_bf16_cache, fp8_base, (f->d.kv_dtype = PA_BF16, f->a.k.dtype = f->a.v.dtype = PA_BF16), "k", "scale")
BAD(fp8_q_dtype, fp8_base, f->d.q_dtype = PA_FP8_E4M3, "q_dtype")
BAD(fp8_o_dtype, fp8_base, f->d.o_dtype = PA_FP8_E5M2, "o_dtype")
BAD(fp8_k_dtype_mismatch, fp8_base, f->a.k.dtype = PA_FP8_E5M2, "k.", "kv_dtype")
BAD(fp8_scale_in_out, fp8_base, (f->a.k_scale.buf = f->a.out.buf, f->a.k_scale.offset = f->a.out.offset), "out", "k_scale")

BAD_MLA(mla_fp8_kv_scale_missing,
        (p->desc.kv_dtype = PA_FP8_E4M3, p->args.ckv.dtype = p->args.kpe.dtype = PA_FP8_E4M3), "kv_scale")
BAD_MLA(mla_fp8_q_dtype, p->desc.q_dtype = PA_FP8_E4M3, "q_dtype")
BAD_MLA(mla_kv_scale_on_f32, (p->args.kv_scale = p->args.lse), "kv_scale")

/* ---- pa_kv_append / pa_mla_append ---- */
typedef struct app_fix {
  pa_context *ctx;
  tu_tensor k, v, slots, kc, vc, ks, vs;
  pa_kv_append_args a;
} app_fix;

/* 5 tokens [5, 2, 8] bf16 into e4m3 caches [4 pages, 4, 2, 8], one scale. */
static void app_setup(app_fix *f) {
  memset(f, 0, sizeof *f);
  f->ctx = tu_open_cpu();
  tu_rng r = tu_rng_seed(5);
  int64_t ss[3] = {5, 2, 8}, cs[4] = {4, 4, 2, 8}, sl[1] = {5}, one[1] = {1};
  cr_assert(tu_tensor_alloc(f->ctx, &f->k, PA_BF16, 3, ss, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(f->ctx, &f->v, PA_BF16, 3, ss, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(f->ctx, &f->slots, PA_I32, 1, sl, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(f->ctx, &f->kc, PA_FP8_E4M3, 4, cs, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(f->ctx, &f->vc, PA_FP8_E4M3, 4, cs, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(f->ctx, &f->ks, PA_F32, 1, one, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(f->ctx, &f->vs, PA_F32, 1, one, NULL) == PA_OK);
  tu_tensor_fill_random(&f->k, &r, 1.0);
  tu_tensor_fill_random(&f->v, &r, 1.0);
  tu_tensor_poison(&f->kc);
  tu_tensor_poison(&f->vc);
  tu_set(&f->ks, 0, 0.5), tu_set(&f->vs, 0, 0.25);
  const int32_t map[5] = {3, -1, 15, 0, 9};
  for (int t = 0; t < 5; t++) tu_set_i32(&f->slots, t, map[t]);
  tu_tensor *all[] = {&f->k, &f->v, &f->slots, &f->kc, &f->vc, &f->ks, &f->vs};
  for (int i = 0; i < 7; i++) cr_assert(tu_tensor_upload(all[i]) == PA_OK);
  f->a = (pa_kv_append_args){.k = f->k.t, .v = f->v.t, .slot_mapping = f->slots.t,
                             .k_cache = f->kc.t, .v_cache = f->vc.t, .k_scale = f->ks.t,
                             .v_scale = f->vs.t};
}

static void app_expect(app_fix *f, pa_status want, const char *const *fields) {
  pa_status s = pa_kv_append(f->ctx, &f->a);
  const char *msg = pa_context_last_error(f->ctx);
  char wantf[256];
  join(wantf, sizeof wantf, fields);
  cr_expect(s == want, "status %s, expected %s (message \"%s\")", pa_status_str(s),
            pa_status_str(want), msg);
  if (want != PA_OK) {
    cr_expect(mentions(msg, fields), "last error \"%s\" does not name %s", msg, wantf);
    cr_assert(tu_tensor_download(&f->kc) == PA_OK && tu_tensor_download(&f->vc) == PA_OK);
    cr_expect(tu_unchanged(&f->kc) && tu_unchanged(&f->vc), "a cache was written on failure");
  }
  cr_log_info("%s: \"%s\"", pa_status_str(s), msg);
  tu_tensor *all[] = {&f->k, &f->v, &f->slots, &f->kc, &f->vc, &f->ks, &f->vs};
  for (int i = 0; i < 7; i++) tu_tensor_free(all[i]);
  pa_context_destroy(f->ctx);
}

#define APPEND_CASE(name, mutation, status, ...)                                                  \
  Test(invalid_args, name) {                                                                      \
    app_fix f_;                                                                                   \
    app_fix *f = &f_;                                                                             \
    app_setup(f);                                                                                 \
    mutation;                                                                                     \
    app_expect(f, status, FIELDS(__VA_ARGS__));                                                   \
  }
#define BAD_APPEND(name, mutation, ...) APPEND_CASE(name, mutation, PA_ERR_INVALID_ARGUMENT, __VA_ARGS__)

APPEND_CASE(append_baseline_is_valid, (void)0, PA_OK, "")
BAD_APPEND(append_slot_beyond_cache, (tu_set_i32(&f->slots, 4, 16), tu_tensor_upload(&f->slots)),
           "slot_mapping[4]=16")
BAD_APPEND(append_slot_below_minus_one, (tu_set_i32(&f->slots, 0, -2), tu_tensor_upload(&f->slots)),
           "slot_mapping[0]=-2")
BAD_APPEND(append_slot_mapping_f32, f->a.slot_mapping.dtype = PA_F32, "slot_mapping")
BAD_APPEND(append_slot_mapping_length, f->a.slot_mapping.shape[0] = 4, "slot_mapping")
BAD_APPEND(append_cache_dtype_mismatch, f->a.v_cache.dtype = PA_FP8_E5M2, "v_cache.dtype", "k_cache.dtype")
BAD_APPEND(append_k_scale_missing, f->a.k_scale.buf = NULL, "k_scale")
BAD_APPEND(append_v_scale_shape, f->a.v_scale.shape[0] = 3, "v_scale")
BAD_APPEND(append_scale_on_bf16_cache,
           (f->a.k_cache.dtype = f->a.v_cache.dtype = PA_BF16, f->a.k_cache.shape[0] = 2,
            f->a.v_cache.shape[0] = 2), "k_scale")
BAD_APPEND(append_source_fp8, f->a.k.dtype = PA_FP8_E4M3, "k.", "k:", "k ")
BAD_APPEND(append_heads_mismatch, f->a.v_cache.shape[2] = 1, "v_cache")
BAD_APPEND(append_dim_mismatch, f->a.k_cache.shape[3] = 4, "k_cache")
BAD_APPEND(append_pages_mismatch, f->a.v_cache.shape[0] = 3, "v_cache")
BAD_APPEND(append_caches_overlap, f->a.v_cache = f->a.k_cache, "v_cache", "k_cache")
BAD_APPEND(append_cache_overlaps_source,
           (f->a.k.buf = f->a.k_cache.buf, f->a.k.offset = f->a.k_cache.offset), "k_cache", "k")
BAD_APPEND(append_cache_stride_aliases, f->a.k_cache.stride[1] = 0, "k_cache")
BAD_APPEND(append_cache_missing, f->a.k_cache.buf = NULL, "k_cache")

Test(invalid_args, mla_append_validation) {
  pa_context *ctx = tu_open_cpu();
  tu_tensor ckv, kpe, slots, cache, scl;
  int64_t sc[2] = {3, 8}, sp[2] = {3, 4}, sl[1] = {3}, cs[3] = {2, 4, 12}, one[1] = {1};
  cr_assert(tu_tensor_alloc(ctx, &ckv, PA_F32, 2, sc, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &kpe, PA_F32, 2, sp, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &slots, PA_I32, 1, sl, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &cache, PA_FP8_E5M2, 3, cs, NULL) == PA_OK);
  cr_assert(tu_tensor_alloc(ctx, &scl, PA_F32, 1, one, NULL) == PA_OK);
  tu_set(&scl, 0, 1.0);
  for (int t = 0; t < 3; t++) tu_set_i32(&slots, t, 2 * t);
  tu_tensor *all[] = {&ckv, &kpe, &slots, &cache, &scl};
  for (int i = 0; i < 5; i++) cr_assert(tu_tensor_upload(all[i]) == PA_OK);
  pa_mla_append_args a = {.ckv = ckv.t, .kpe = kpe.t, .slot_mapping = slots.t, .kv_scale = scl.t};
  int64_t vc[3] = {2, 4, 8}, vp[3] = {2, 4, 4}, st[3] = {48, 12, 1};
  tu_tensor_view(&cache, &a.ckv_cache, 0, 3, vc, st);
  tu_tensor_view(&cache, &a.kpe_cache, 8, 3, vp, st);
  cr_expect_eq(pa_mla_append(ctx, &a), PA_OK, "interleaved views: %s", pa_context_last_error(ctx));
  pa_mla_append_args b = a;
  tu_tensor_view(&cache, &b.kpe_cache, 6, 3, vp, st); /* columns 6..9 overlap ckv's 0..7 */
  cr_expect_eq(pa_mla_append(ctx, &b), PA_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(pa_context_last_error(ctx), "kpe_cache"), "%s", pa_context_last_error(ctx));
  b = a;
  b.kv_scale.buf = NULL;
  cr_expect_eq(pa_mla_append(ctx, &b), PA_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(pa_context_last_error(ctx), "kv_scale"), "%s", pa_context_last_error(ctx));
  b = a;
  tu_set_i32(&slots, 1, 8);
  cr_assert(tu_tensor_upload(&slots) == PA_OK);
  cr_expect_eq(pa_mla_append(ctx, &b), PA_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(pa_context_last_error(ctx), "slot_mapping[1]=8"), "%s", pa_context_last_error(ctx));
  for (int i = 0; i < 5; i++) tu_tensor_free(all[i]);
  pa_context_destroy(ctx);
}

/* The CPU backend's results do not depend on its thread count: the same
 * decode (one long request, GQA; a batch), prefill and MLA decode give
 * bitwise the same O and LSE on 1, 2, 3 and 8 threads, on every ISA path
 * (plus a bf16 prefill with an odd head dim and odd key tails),
 * and the 1-thread result is within tolerance of the oracle. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"
#include "mla_case.h"

/* clang-format off */
static const attn_case long_decode = {.name = "threads_long_decode", .batch = 1, .lq = {1}, .lk = {5003},
  .hq = 32, .hkv = 8, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .opts = AO_LSE};
/* The grouped decode driver (head groups need a long request) on e4m3 K/V
 * with per-head scales: the cheap e4m3 read, which the cross_backend shapes
 * are too small to reach. */
static const attn_case long_decode_e4m3 = {.name = "threads_long_decode_e4m3", .batch = 1, .lq = {1}, .lk = {5003},
  .hq = 32, .hkv = 8, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_SCALE_HEAD};
/* MHA: one row per KV head, the 1 x 8 QK and 1 x 64 PV tiles (odd key tail) */
static const attn_case mha_decode = {.name = "threads_mha_decode", .batch = 1, .lq = {1}, .lk = {5003},
  .hq = 8, .hkv = 8, .dqk = 128, .dtype = PA_F16, .page_size = 16, .opts = AO_LSE};
static const attn_case batch_decode = {.name = "threads_batch_decode", .batch = 3, .lq = {1, 1, 2}, .lk = {1025, 2050, 700},
  .hq = 8, .hkv = 2, .dqk = 64, .dtype = PA_F16, .page_size = 64, .causal = 1, .opts = AO_LSE | AO_SINKS};
static const attn_case prefill = {.name = "threads_prefill", .batch = 2, .lq = {203, 113}, .lk = {1025, 113},
  .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F32, .causal = 1, .opts = AO_LSE};
/* bf16 tiles of many rows with an odd head dim and odd block tails (the
 * AVX512-BF16 path pairs dims and keys) */
static const attn_case prefill_bf16_odd = {.name = "threads_prefill_bf16_odd", .batch = 2, .lq = {70, 40}, .lk = {301, 40},
  .hq = 4, .hkv = 2, .dqk = 59, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE};
static const mla_case mla = {.name = "threads_mla", .batch = 1, .lq = {1}, .lk = {3001}, .h = 16,
  .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64, .lse = 1};
/* clang-format on */

static const int thread_counts[] = {1, 2, 3, 8};

static pa_context *open_threads(const char *target, int threads) {
  const tu_target *t = tu_target_find(target);
  cr_assert(t && t->isa, "unknown CPU target %s", target);
  setenv("PA_CPU_ISA", t->isa, 1);
  pa_context_desc d = {.backend = PA_BACKEND_CPU, .device = -1, .num_threads = threads};
  pa_context *ctx = NULL;
  pa_status s = pa_context_create(&d, &ctx);
  if (s == PA_ERR_UNSUPPORTED)
    cr_skip_test("%s: ISA %s not available on this host", target, t->isa);
  cr_assert(s == PA_OK && ctx, "%s: pa_context_create(%d threads): %s", target, threads,
            pa_status_str(s));
  return ctx;
}

static void attn_threads(const char *target, const attn_case *c) {
  unsigned char *out0 = NULL, *lse0 = NULL;
  size_t out_n = 0, lse_n = 0;
  for (int k = 0; k < TU_LEN(thread_counts); k++) {
    pa_context *ctx = open_threads(target, thread_counts[k]);
    attn_problem p;
    cr_assert(attn_setup(&p, ctx, c) == PA_OK, "setup: %s", p.msg);
    cr_assert(attn_execute(&p, NULL, NULL) == PA_OK, "[%s] %s, %d threads: %s", target, c->name,
              thread_counts[k], p.msg);
    if (k == 0) {
      attn_reference(&p);
      char why[1024];
      cr_expect(attn_check(&p, target, why, sizeof why), "[%s] %s: %s", target, c->name, why);
      out_n = p.out.bytes;
      lse_n = p.lse.bytes;
      out0 = malloc(out_n);
      lse0 = malloc(lse_n ? lse_n : 1);
      cr_assert(out0 && lse0);
      memcpy(out0, p.out.back, out_n);
      if (lse_n) memcpy(lse0, p.lse.back, lse_n);
      cr_log_info("[%s] %s: splits of request 0 = %d", target, c->name, p.splits[0]);
    } else {
      cr_expect(p.out.bytes == out_n && !memcmp(out0, p.out.back, out_n),
                "[%s] %s: O on %d threads differs from 1 thread", target, c->name,
                thread_counts[k]);
      cr_expect(p.lse.bytes == lse_n && (!lse_n || !memcmp(lse0, p.lse.back, lse_n)),
                "[%s] %s: LSE on %d threads differs from 1 thread", target, c->name,
                thread_counts[k]);
    }
    attn_free(&p);
    pa_context_destroy(ctx);
  }
  free(out0);
  free(lse0);
}

static void mla_threads(const char *target, const mla_case *c) {
  unsigned char *out0 = NULL;
  size_t out_n = 0;
  for (int k = 0; k < TU_LEN(thread_counts); k++) {
    pa_context *ctx = open_threads(target, thread_counts[k]);
    mla_problem p;
    cr_assert(mla_setup(&p, ctx, c) == PA_OK, "setup: %s", p.msg);
    cr_assert(mla_execute(&p) == PA_OK, "[%s] %s, %d threads: %s", target, c->name,
              thread_counts[k], p.msg);
    if (k == 0) {
      mla_reference(&p);
      char why[1024];
      cr_expect(mla_check(&p, target, why, sizeof why), "[%s] %s: %s", target, c->name, why);
      out_n = p.out.bytes;
      out0 = malloc(out_n);
      cr_assert(out0);
      memcpy(out0, p.out.back, out_n);
    } else {
      cr_expect(p.out.bytes == out_n && !memcmp(out0, p.out.back, out_n),
                "[%s] %s: O on %d threads differs from 1 thread", target, c->name,
                thread_counts[k]);
    }
    mla_free(&p);
    pa_context_destroy(ctx);
  }
  free(out0);
}

#define THREAD_TESTS(target)                                                                       \
  Test(target, long_decode) { attn_threads(#target, &long_decode); }                               \
  Test(target, mha_decode) { attn_threads(#target, &mha_decode); }                                 \
  Test(target, batch_decode) { attn_threads(#target, &batch_decode); }                             \
  Test(target, prefill) { attn_threads(#target, &prefill); }                                       \
  Test(target, prefill_bf16_odd) { attn_threads(#target, &prefill_bf16_odd); }                     \
  Test(target, mla) { mla_threads(#target, &mla); }

THREAD_TESTS(cpu_scalar)
THREAD_TESTS(cpu_avx2)
THREAD_TESTS(cpu_avx512)
THREAD_TESTS(cpu_neon)
THREAD_TESTS(cpu_avx512bf16)

/* Only where the kernels have the cheap e4m3 read (kernels.h, e4m3_nan). */
Test(cpu_avx2, long_decode_e4m3) { attn_threads("cpu_avx2", &long_decode_e4m3); }
Test(cpu_avx512, long_decode_e4m3) { attn_threads("cpu_avx512", &long_decode_e4m3); }
Test(cpu_avx512bf16, long_decode_e4m3) { attn_threads("cpu_avx512bf16", &long_decode_e4m3); }

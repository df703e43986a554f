/* Core units: split selection (core/split.c, rule in core/split.h), status
 * and dtype names, tensor descriptors, version. Expected values are worked
 * out by hand from the rule comments, not from the implementation. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "split.h"
#include "util.h"

typedef struct split_row {
  const char *why;
  pa_split_input in;
  int splits, chunk; /* chunk 0: only require >= 1 */
} split_row;

/* cu, slots, min_kv, max_splits, natural, len_k, user, det, kv_chunk, align */
#define IN(cu, sl, mk, mx, nat, len, user, det, ch, al)                                          \
  {.compute_units = cu, .slots_per_unit = sl, .min_kv_per_split = mk, .max_splits = mx,           \
   .natural_items = nat, .len_k = len, .user_splits = user, .deterministic = det,                 \
   .kv_chunk = ch, .kv_align = al}

/* clang-format off */
static const split_row split_table[] = {
  /* auto: two waves = 2 * cu * slots items */
  {"auto 2 cpus, one item: factor 4",          IN(2, 1, 256, 64, 1, 8192, 0, false, 0, 1),    4, 2048},
  {"auto 2 cpus, two items fill a wave",       IN(2, 1, 256, 64, 2, 8192, 0, false, 0, 1),    1, 8192},
  {"auto 4 cpus, two items: factor 4",         IN(4, 1, 256, 64, 2, 8192, 0, false, 0, 1),    4, 2048},
  {"auto H200 MLA b64 x 2 tiles: 97% of wave", IN(132, 1, 256, 64, 128, 4096, 0, false, 0, 64), 1, 4096},
  {"auto H200 b1 hkv8 long, 1 slot: 32",       IN(132, 1, 256, 64, 8, 32768, 0, false, 0, 64), 32, 1024},
  {"auto 3 items > target/2: no split",        IN(2, 1, 256, 64, 3, 8192, 0, false, 0, 1),    1, 8192},
  {"auto natural > target: no split",          IN(2, 1, 256, 64, 9, 8192, 0, false, 0, 1),    1, 8192},
  {"auto H100 b64 hkv8: already 1 wave",       IN(132, 2, 256, 64, 512, 4096, 0, false, 0, 1), 1, 4096},
  {"auto H100 b1 hkv8 long: capped by max",    IN(132, 2, 256, 64, 8, 32768, 0, false, 0, 1),  64, 512},
  {"auto max_splits 32 caps",                  IN(132, 2, 256, 32, 8, 32768, 0, false, 0, 1),  32, 1024},
  {"auto min_kv caps: 1000/256=3 -> 2",        IN(132, 2, 256, 64, 1, 1000, 0, false, 0, 1),   2, 500},
  {"auto min_kv caps with align 64",           IN(132, 2, 256, 64, 1, 1000, 0, false, 0, 64),  2, 512},
  {"auto too short to split",                  IN(132, 2, 256, 64, 1, 100, 0, false, 0, 1),    1, 100},
  {"auto exact min_kv multiple",               IN(132, 2, 256, 64, 1, 1024, 0, false, 0, 1),   4, 256},
  {"auto odd length, chunk rounded up",        IN(16, 1, 64, 64, 1, 1025, 0, false, 0, 1),     16, 65},
  {"auto align 16: chunk 65 -> 80, 13 splits", IN(16, 1, 64, 64, 1, 1025, 0, false, 0, 16),    13, 80},
  {"auto len_k 0",                             IN(16, 1, 64, 64, 1, 0, 0, false, 0, 1),        1, 0},
  /* user override */
  {"user 1: none",                             IN(132, 2, 256, 64, 1, 32768, 1, false, 0, 1),  1, 32768},
  {"user 3 of 1025",                           IN(2, 1, 256, 64, 64, 1025, 3, false, 0, 1),    3, 342},
  {"user 7 of 1025",                           IN(2, 1, 256, 64, 64, 1025, 7, false, 0, 1),    7, 147},
  {"user 7 of 100, align 16",                  IN(2, 1, 256, 64, 1, 100, 7, false, 0, 16),     7, 16},
  {"user 3 of 100, align 16",                  IN(2, 1, 256, 64, 1, 100, 3, false, 0, 16),     3, 48},
  {"user 7 of 10, align 16: one chunk",        IN(2, 1, 256, 64, 1, 10, 7, false, 0, 16),      1, 16},
  {"user 7 of 5, align 1: five of one key",    IN(2, 1, 256, 64, 1, 5, 7, false, 0, 1),        5, 1},
  {"user 7 of 0",                              IN(2, 1, 256, 64, 1, 0, 7, false, 0, 1),        1, 0},
  {"user ignores min_kv",                      IN(2, 1, 256, 64, 1, 512, 4, false, 0, 1),      4, 128},
  /* deterministic: chunk fixed, independent of the batch and the device */
  {"det default chunk",                        IN(2, 1, 256, 64, 1, 8192, 0, true, 0, 1),      8, PA_DEFAULT_KV_CHUNK},
  {"det default chunk, other batch",           IN(132, 2, 256, 64, 999, 8192, 0, true, 0, 1),  8, PA_DEFAULT_KV_CHUNK},
  {"det chunk 64 of 1025",                     IN(2, 1, 256, 64, 1, 1025, 0, true, 64, 1),     17, 64},
  {"det chunk 100 align 64 -> 128",            IN(2, 1, 256, 64, 1, 1025, 0, true, 100, 64),   9, 128},
  {"det short request",                        IN(2, 1, 256, 64, 1, 7, 0, true, 64, 1),        1, 0},
  {"det len_k 0",                              IN(2, 1, 256, 64, 1, 0, 0, true, 64, 1),        1, 0},
};
/* clang-format on */

Test(core_split, table) {
  for (int i = 0; i < TU_LEN(split_table); i++) {
    const split_row *r = &split_table[i];
    pa_split s = pa_choose_split(&r->in);
    cr_expect(s.num_splits == r->splits && (r->chunk == 0 ? s.kv_chunk >= 1 : s.kv_chunk == r->chunk),
              "%s: len_k %d user %d det %d -> (splits %d, chunk %d), expected (%d, %d)", r->why,
              r->in.len_k, r->in.user_splits, (int)r->in.deterministic, s.num_splits, s.kv_chunk,
              r->splits, r->chunk);
  }
}

/* Invariants over a sweep: no empty split, chunks aligned, keys covered,
 * auto never above max_splits, powers of two in auto mode. */
Test(core_split, invariants) {
  static const int lens[] = {0, 1, 7, 63, 64, 65, 113, 203, 1000, 1025, 4096, 32768, 100000};
  static const int aligns[] = {1, 16, 64};
  static const int users[] = {0, 1, 2, 3, 7, 64};
  static const int64_t naturals[] = {1, 3, 8, 64, 1000};
  int checked = 0;
  for (int a = 0; a < TU_LEN(lens); a++)
    for (int b = 0; b < TU_LEN(aligns); b++)
      for (int c = 0; c < TU_LEN(users); c++)
        for (int d = 0; d < TU_LEN(naturals); d++)
          for (int det = 0; det < 2; det++) {
            pa_split_input in = IN(132, 2, 256, 64, naturals[d], lens[a], users[c], det, 0, aligns[b]);
            pa_split s = pa_choose_split(&in);
            int L = lens[a];
            char what[160];
            snprintf(what, sizeof what, "len %d align %d user %d natural %lld det %d -> (%d, %d)",
                     L, aligns[b], users[c], (long long)naturals[d], det, s.num_splits, s.kv_chunk);
            cr_expect(s.num_splits >= 1 && s.kv_chunk >= 1, "%s: must be >= 1", what);
            cr_expect(s.kv_chunk % aligns[b] == 0, "%s: chunk not aligned", what);
            if (L > 0) {
              cr_expect((int64_t)s.num_splits * s.kv_chunk >= L, "%s: keys not covered", what);
              cr_expect((int64_t)(s.num_splits - 1) * s.kv_chunk < L, "%s: empty split", what);
            } else {
              cr_expect(s.num_splits == 1, "%s: len_k 0 must give one split", what);
            }
            if (!det && users[c] == 0) {
              cr_expect(s.num_splits <= 64, "%s: above max_splits", what);
            }
            if (!det && users[c] >= 1) cr_expect(s.num_splits <= users[c], "%s: above user", what);
            checked++;
          }
  cr_log_info("split invariants on %d inputs", checked);
}

/* pa_balance_chunk, worked out by hand: greedy heaviest-first onto the
 * least loaded slot, items cost keys + overhead (+ split overhead). */
static int balance(int n, const int32_t *len, const int32_t *items, const int32_t *cur, int slots,
                   int align, int over, int split_over) {
  pa_balance_input in = {.n = n, .len_k = len, .items = items, .cur_splits = cur, .slots = slots,
                         .align = align, .max_splits = 64, .overhead = over,
                         .split_overhead = split_over};
  return pa_balance_chunk(&in);
}

Test(core_split, balance) {
  int32_t len[64], items[64], cur[64];
  /* MLA b64 kv4096 on 132 SMs: 128 items already fill a wave: keep */
  for (int i = 0; i < 64; i++) len[i] = 4096, items[i] = 2, cur[i] = 1;
  cr_expect_eq(balance(64, len, items, cur, 132, 64, 64, 128), 0);
  /* b8 kv16384: the rule's 16 splits give 256 items of 1024 + 192 on 132
   * slots (2432); one chunk of 2048 gives 128 items of 2240: taken */
  for (int i = 0; i < 8; i++) cur[i] = 16, len[i] = 16384;
  cr_expect_eq(balance(8, len, items, cur, 132, 64, 64, 128), 2048);
  /* b1 kv32768: the rule's 64 splits are already 128 equal items: keep */
  len[0] = 32768, cur[0] = 64;
  cr_expect_eq(balance(1, len, items, cur, 132, 64, 64, 128), 0);
  /* ragged {12, 4} on 4 slots: unsplit 12; chunk 4 gives four items of 4 */
  int32_t l2[2] = {12, 4}, i2[2] = {1, 1}, c2[2] = {1, 1};
  cr_expect_eq(balance(2, l2, i2, c2, 4, 1, 0, 0), 4);
  /* no work, or more than 4 waves of unsplit items: keep */
  int32_t l0[2] = {0, 0};
  cr_expect_eq(balance(2, l0, i2, c2, 4, 1, 0, 0), 0);
  for (int i = 0; i < 64; i++) len[i] = 1000 + 37 * i, items[i] = 1, cur[i] = 1;
  cr_expect_eq(balance(64, len, items, cur, 8, 16, 64, 128), 0);
  /* any answer is a multiple of align and within max_splits */
  for (int i = 0; i < 32; i++) len[i] = 1024 + (i * 2654435761u) % 7169, items[i] = 2, cur[i] = 4;
  const int c = balance(32, len, items, cur, 132, 64, 64, 128);
  cr_expect(c == 0 || (c % 64 == 0 && (8192 + c - 1) / c <= 64), "chunk %d", c);
  cr_log_info("b32 ragged 1024..8192 on 132 slots: chunk %d", c);
}

Test(core_units, status_str) {
  static const struct {
    pa_status s;
    const char *name;
  } rows[] = {
      {PA_OK, "PA_OK"},
      {PA_ERR_INVALID_ARGUMENT, "PA_ERR_INVALID_ARGUMENT"},
      {PA_ERR_UNSUPPORTED, "PA_ERR_UNSUPPORTED"},
      {PA_ERR_OUT_OF_MEMORY, "PA_ERR_OUT_OF_MEMORY"},
      {PA_ERR_NO_DEVICE, "PA_ERR_NO_DEVICE"},
      {PA_ERR_BACKEND, "PA_ERR_BACKEND"},
      {PA_ERR_WORKSPACE_TOO_SMALL, "PA_ERR_WORKSPACE_TOO_SMALL"},
  };
  for (int i = 0; i < TU_LEN(rows); i++) {
    const char *got = pa_status_str(rows[i].s);
    cr_expect(got && strcmp(got, rows[i].name) == 0, "pa_status_str(%d) = %s, want %s",
              (int)rows[i].s, got ? got : "(null)", rows[i].name);
  }
  cr_expect(pa_status_str((pa_status)-99) != NULL, "unknown status must not give NULL");
  cr_expect(pa_status_str((pa_status)42) != NULL, "unknown status must not give NULL");
}

Test(core_units, dtypes) {
  cr_expect(pa_dtype_size(PA_F32) == 4 && pa_dtype_size(PA_F16) == 2 &&
                pa_dtype_size(PA_BF16) == 2 && pa_dtype_size(PA_I32) == 4,
            "dtype sizes");
  cr_expect(pa_dtype_size((pa_dtype)17) == 0, "unknown dtype size must be 0");
  cr_expect(strcmp(pa_dtype_name(PA_F32), "f32") == 0, "f32 name: %s", pa_dtype_name(PA_F32));
  cr_expect(strcmp(pa_dtype_name(PA_F16), "f16") == 0, "f16 name: %s", pa_dtype_name(PA_F16));
  cr_expect(strcmp(pa_dtype_name(PA_BF16), "bf16") == 0, "bf16 name: %s", pa_dtype_name(PA_BF16));
  cr_expect(pa_dtype_name((pa_dtype)17) != NULL, "unknown dtype name must not be NULL");
  cr_expect(strcmp(pa_backend_name(PA_BACKEND_CPU), "cpu") == 0, "cpu name");
  cr_expect(strcmp(pa_backend_name(PA_BACKEND_CUDA), "cuda") == 0, "cuda name");
  cr_expect(strcmp(pa_backend_name(PA_BACKEND_OPENCL), "opencl") == 0, "opencl name");
  cr_expect(pa_backend_compiled(PA_BACKEND_CPU) == 1, "the CPU backend is always built");
}

Test(core_units, version) {
  int ma = -1, mi = -1, pt = -1;
  pa_version(&ma, &mi, &pt);
  cr_expect(ma == PA_VERSION_MAJOR && mi == PA_VERSION_MINOR && pt == PA_VERSION_PATCH,
            "library %d.%d.%d vs header %s", ma, mi, pt, PA_VERSION_STRING);
  pa_version(NULL, NULL, NULL); /* NULLs are allowed */
}

Test(core_units, tensor_init) {
  pa_context *ctx = tu_open_cpu();
  pa_buffer *buf = NULL;
  cr_assert(pa_buffer_create(ctx, 64 + 3 * 5 * 7 * 11 * 2, &buf) == PA_OK, "buffer");
  pa_tensor t;
  int64_t shape[4] = {3, 5, 7, 11};
  cr_assert(pa_tensor_init(&t, buf, 64, PA_F16, 4, shape) == PA_OK, "tensor_init 4-d");
  cr_expect(t.buf == buf, "buffer kept");
  cr_expect(t.ndim == 4 && t.dtype == PA_F16 && t.offset == 64, "fields");
  cr_expect(t.stride[3] == 1 && t.stride[2] == 11 && t.stride[1] == 77 && t.stride[0] == 385,
            "row-major strides: %lld %lld %lld %lld", (long long)t.stride[0],
            (long long)t.stride[1], (long long)t.stride[2], (long long)t.stride[3]);
  for (int i = 0; i < 4; i++) cr_expect(t.shape[i] == shape[i], "shape[%d]", i);
  int64_t one[1] = {9};
  cr_assert(pa_tensor_init(&t, buf, 0, PA_I32, 1, one) == PA_OK, "tensor_init 1-d");
  cr_expect(t.stride[0] == 1 && t.shape[0] == 9, "1-d view");
  pa_buffer_destroy(buf);
  pa_context_destroy(ctx);
}

/* The CPU context describes itself and reports compute units to the planner. */
Test(core_units, cpu_context) {
  pa_context *ctx = tu_open_cpu();
  pa_device_info info;
  cr_assert(pa_context_info(ctx, &info) == PA_OK, "context info");
  cr_expect(info.backend == PA_BACKEND_CPU && info.compute_units >= 1, "cpu info: units %d",
            info.compute_units);
  cr_expect(pa_context_backend(ctx) == PA_BACKEND_CPU, "backend kind");
  cr_expect(strcmp(pa_context_last_error(ctx), "") == 0, "no error yet: %s",
            pa_context_last_error(ctx));
  int n = 0;
  cr_expect(pa_device_count(PA_BACKEND_CPU, &n) == PA_OK && n >= 1, "cpu device count %d", n);
  pa_context_destroy(ctx);
  pa_context_destroy(NULL); /* destroy accepts NULL */
  pa_buffer_destroy(NULL);
  pa_plan_destroy(NULL);
}

/* PA_BACKEND in the environment overrides the automatic choice. */
Test(core_units, backend_env_override) {
  setenv("PA_BACKEND", "cpu", 1);
  pa_context *ctx = NULL;
  cr_assert(pa_context_create(NULL, &ctx) == PA_OK, "default context");
  cr_expect(pa_context_backend(ctx) == PA_BACKEND_CPU, "PA_BACKEND=cpu gave %s",
            pa_backend_name(pa_context_backend(ctx)));
  pa_context_destroy(ctx);
}

/* Buffers round-trip bytes; wrap keeps the caller's memory. */
Test(core_units, buffers) {
  pa_context *ctx = tu_open_cpu();
  pa_buffer *b = NULL;
  cr_assert(pa_buffer_create(ctx, 1000, &b) == PA_OK, "buffer_create");
  cr_expect(pa_buffer_size(b) == 1000, "size %zu", pa_buffer_size(b));
  unsigned char src[100], dst[100];
  for (int i = 0; i < 100; i++) src[i] = (unsigned char)(i * 7 + 1);
  cr_assert(pa_buffer_write(b, 900, src, 100) == PA_OK, "write at the end");
  cr_assert(pa_buffer_read(b, 900, dst, 100) == PA_OK, "read back");
  cr_expect(memcmp(src, dst, 100) == 0, "round trip");
  pa_buffer_destroy(b);
  float host[16] = {0};
  cr_assert(pa_buffer_wrap(ctx, host, sizeof host, &b) == PA_OK, "wrap");
  cr_expect(pa_buffer_native(b) == (void *)host, "CPU native is the host pointer");
  float v = 3.5f;
  cr_assert(pa_buffer_write(b, 8, &v, 4) == PA_OK, "write wrapped");
  cr_expect(host[2] == 3.5f, "wrapped memory written");
  pa_buffer_destroy(b);
  pa_context_destroy(ctx);
}

/* The suite's own f16/bf16 conversions (util.c), which the oracle trusts. */
Test(test_util, conversions) {
  static const struct {
    float f;
    uint16_t h;
  } f16[] = {{1.0f, 0x3C00},           {-2.0f, 0xC000},          {65504.0f, 0x7BFF},
             {65520.0f, 0x7C00},       {0x1p-24f, 0x0001},       {0x1p-25f, 0x0000},
             {0x1.8p-25f, 0x0001},     {0x1p-14f, 0x0400},       {0.1f, 0x2E66},
             {1.0f + 0x1p-11f, 0x3C00}, {1.0f + 0x3p-11f, 0x3C02}};
  for (int i = 0; i < TU_LEN(f16); i++)
    cr_expect(tu_f32_to_f16(f16[i].f) == f16[i].h, "f16(%a) = 0x%04x, want 0x%04x", f16[i].f,
              tu_f32_to_f16(f16[i].f), f16[i].h);
  static const struct {
    float f;
    uint16_t h;
  } bf[] = {{1.0f, 0x3F80}, {1.0f + 0x1p-8f, 0x3F80}, {1.0f + 0x3p-8f, 0x3F82}, {-0.5f, 0xBF00}};
  for (int i = 0; i < TU_LEN(bf); i++)
    cr_expect(tu_f32_to_bf16(bf[i].f) == bf[i].h, "bf16(%a) = 0x%04x, want 0x%04x", bf[i].f,
              tu_f32_to_bf16(bf[i].f), bf[i].h);
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) continue; /* NaN */
    bad += tu_f32_to_f16(tu_f16_to_f32((uint16_t)h)) != h;
    bad += tu_f32_to_bf16(tu_bf16_to_f32((uint16_t)h)) != h;
  }
  cr_expect(bad == 0, "%d f16/bf16 values do not round-trip", bad);
}

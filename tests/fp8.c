/* fp8 conversions (core/fp8.c) against the formats' definitions (util.c,
 * double arithmetic): every code of both formats in both directions, ties,
 * saturation, NaN, +-0, subnormals, and each CPU ISA's vector decode. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "cpu/isa.h"
#include "util.h"

static const pa_dtype formats[2] = {PA_FP8_E4M3, PA_FP8_E5M2};

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}
static int max_code(pa_dtype t) { return t == PA_FP8_E4M3 ? 0x7e : 0x7b; }
static int is_nan_code(pa_dtype t, int c) {
  return t == PA_FP8_E4M3 ? (c & 0x7f) == 0x7f : (c & 0x7c) == 0x7c && (c & 3);
}

/* A decoded value matches the definition: bit for bit, or a NaN of the code's sign. */
static int same_value(pa_dtype t, int c, float got) {
  const double want = tu_fp8_decode(t, (uint8_t)c);
  if (is_nan_code(t, c)) return isnan(got) && !!signbit(got) == !!(c & 0x80);
  return bits(got) == bits((float)want);
}

Test(fp8, sizes_and_names) {
  cr_expect_eq(pa_dtype_size(PA_FP8_E4M3), 1);
  cr_expect_eq(pa_dtype_size(PA_FP8_E5M2), 1);
  cr_expect_str_eq(pa_dtype_name(PA_FP8_E4M3), "e4m3");
  cr_expect_str_eq(pa_dtype_name(PA_FP8_E5M2), "e5m2");
  cr_expect(isnan(pa_fp8_decode(PA_BF16, 1)));
  cr_expect_eq(pa_fp8_encode(PA_F32, 1.0f), 0);
}

Test(fp8, decode_all_codes) {
  for (int f = 0; f < 2; f++)
    for (int c = 0; c < 256; c++) {
      const float got = pa_fp8_decode(formats[f], (uint8_t)c);
      cr_expect(same_value(formats[f], c, got),
                "%s code 0x%02x decodes to %a (bits 0x%08x), want %a", pa_dtype_name(formats[f]), c,
                (double)got, bits(got), tu_fp8_decode(formats[f], (uint8_t)c));
    }
  /* landmarks written out by hand */
  cr_expect_eq(pa_fp8_decode(PA_FP8_E4M3, 0x7e), 448.0f);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E4M3, 0x01), 0x1p-9f);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E4M3, 0x08), 0x1p-6f);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E4M3, 0x38), 1.0f);
  cr_expect_eq(bits(pa_fp8_decode(PA_FP8_E4M3, 0x80)), 0x80000000u);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E5M2, 0x7b), 57344.0f);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E5M2, 0x01), 0x1p-16f);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E5M2, 0x3c), 1.0f);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E5M2, 0x7c), INFINITY);
  cr_expect_eq(pa_fp8_decode(PA_FP8_E5M2, 0xfc), -INFINITY);
}

Test(fp8, encode_every_code_round_trips) {
  for (int f = 0; f < 2; f++) {
    const pa_dtype t = formats[f];
    for (int c = 0; c < 256; c++) {
      if (is_nan_code(t, c)) continue;
      const float v = pa_fp8_decode(t, (uint8_t)c);
      const int want = isinf(v) ? (c & 0x80) | max_code(t) : c; /* inf saturates */
      cr_expect_eq(pa_fp8_encode(t, v), want, "%s: encode(%a) = 0x%02x, want 0x%02x",
                   pa_dtype_name(t), (double)v, pa_fp8_encode(t, v), want);
    }
  }
}

/* Midpoints between neighbouring codes go to the even one; a hair either
 * side goes to the nearer; for both signs. */
Test(fp8, encode_ties_and_neighbours) {
  for (int f = 0; f < 2; f++) {
    const pa_dtype t = formats[f];
    for (int c = 0; c < max_code(t); c++)
      for (int s = 0; s < 2; s++) {
        const float sg = s ? -1.0f : 1.0f;
        const float lo = pa_fp8_decode(t, (uint8_t)c), hi = pa_fp8_decode(t, (uint8_t)(c + 1));
        const float mid = sg * (float)(((double)lo + hi) / 2); /* exact in f32 */
        const int even = (c & 1) ? c + 1 : c, sb = s ? 0x80 : 0;
        cr_expect_eq(pa_fp8_encode(t, mid), sb | even, "%s: tie %a -> 0x%02x, want 0x%02x",
                     pa_dtype_name(t), (double)mid, pa_fp8_encode(t, mid), sb | even);
        const float below = nextafterf(mid, 0.0f), above = nextafterf(mid, sg * INFINITY);
        cr_expect_eq(pa_fp8_encode(t, below), sb | c, "%s: %a -> 0x%02x, want 0x%02x",
                     pa_dtype_name(t), (double)below, pa_fp8_encode(t, below), sb | c);
        cr_expect_eq(pa_fp8_encode(t, above), sb | (c + 1), "%s: %a -> 0x%02x, want 0x%02x",
                     pa_dtype_name(t), (double)above, pa_fp8_encode(t, above), sb | (c + 1));
      }
  }
}

Test(fp8, encode_saturation_nan_zero_subnormal) {
  for (int f = 0; f < 2; f++) {
    const pa_dtype t = formats[f];
    const int mc = max_code(t);
    const float mx = pa_fp8_decode(t, (uint8_t)mc);
    const float over[] = {
        nextafterf(mx, INFINITY), mx * 1.0625f, mx * 1.2f, 1e30f, FLT_MAX, INFINITY};
    for (int i = 0; i < TU_LEN(over); i++) {
      cr_expect_eq(pa_fp8_encode(t, over[i]), mc, "%s: %a", pa_dtype_name(t), (double)over[i]);
      cr_expect_eq(pa_fp8_encode(t, -over[i]), 0x80 | mc, "%s: -%a", pa_dtype_name(t),
                   (double)over[i]);
    }
    cr_expect_eq(pa_fp8_encode(t, NAN), 0x7f);
    cr_expect_eq(pa_fp8_encode(t, -NAN), 0x7f);
    cr_expect_eq(pa_fp8_encode(t, 0.0f), 0x00);
    cr_expect_eq(pa_fp8_encode(t, -0.0f), 0x80);
    const float least = pa_fp8_decode(t, 1);
    cr_expect_eq(pa_fp8_encode(t, least / 2), 0x00, "half the least subnormal ties to 0");
    cr_expect_eq(pa_fp8_encode(t, -least / 2), 0x80);
    cr_expect_eq(pa_fp8_encode(t, nextafterf(least / 2, 1.0f)), 0x01);
    cr_expect_eq(pa_fp8_encode(t, least * 1.5f), 0x02, "1.5 x least ties to the even 2");
    cr_expect_eq(pa_fp8_encode(t, 0x1p-149f), 0x00, "an f32 subnormal");
    cr_expect_eq(pa_fp8_encode(t, -0x1p-149f), 0x80);
  }
}

/* Arbitrary f32 bit patterns across the whole range against the search. */
Test(fp8, encode_random_against_definition) {
  tu_rng r = tu_rng_seed(12);
  for (int i = 0; i < 200000; i++) {
    uint32_t u = (uint32_t)tu_rng_next(&r);
    /* mostly exponents near fp8's range, some anywhere */
    if (i % 4) u = (u & 0x807fffffu) | ((uint32_t)(100 + tu_rng_int(&r, 50)) << 23);
    float x;
    memcpy(&x, &u, 4);
    for (int f = 0; f < 2; f++) {
      const uint8_t got = pa_fp8_encode(formats[f], x), want = tu_fp8_encode(formats[f], x);
      cr_assert_eq(got, want, "%s: encode(%a) = 0x%02x, want 0x%02x", pa_dtype_name(formats[f]),
                   (double)x, got, want);
    }
  }
}

/* Each CPU ISA's vector decode (the kernels' load: 16 and 8 lanes, masked
 * and scalar tails) gives the same values for every code, at every offset. */
Test(fp8, cpu_vector_decode_all_codes) {
  uint8_t codes[256 + 32];
  float out[256 + 32];
  for (int isa = 0; isa < PA_ISA_COUNT; isa++) {
    const pa_cpu_kernels *k = pa_cpu_isa_kernels((pa_cpu_isa)isa);
    if (!k || !pa_cpu_isa_host((pa_cpu_isa)isa)) continue;
    for (int f = 0; f < 2; f++)
      for (int off = 0; off < 17; off++)
        for (int n = 256 - 17; n <= 256; n += 8) {
          for (int i = 0; i < 256 + 32; i++) codes[i] = (uint8_t)(i - off);
          memset(out, 0, sizeof out);
          k->load(formats[f], codes + off, out, n, 1.0f);
          for (int i = 0; i < n; i++)
            cr_assert(same_value(formats[f], codes[off + i], out[i]),
                      "%s %s: code 0x%02x loads as %a (off %d, n %d)", k->name,
                      pa_dtype_name(formats[f]), codes[off + i], (double)out[i], off, n);
        }
  }
}

/* Each CPU ISA's vector encode (append) against the reference on every
 * code's value, the midpoints and a hair either side (ties), saturation,
 * NaN, inf, zeros, subnormals and random bit patterns; scales 1 and 0.3. */
Test(fp8, cpu_vector_encode) {
  static float x[4096];
  static uint8_t got[4096];
  for (int isa = 0; isa < PA_ISA_COUNT; isa++) {
    const pa_cpu_kernels *k = pa_cpu_isa_kernels((pa_cpu_isa)isa);
    if (!k || !k->quantize || !pa_cpu_isa_host((pa_cpu_isa)isa)) continue;
    for (int f = 0; f < 2; f++)
      for (int sc = 0; sc < 2; sc++) {
        const pa_dtype t = formats[f];
        const float scale = sc ? 0.3f : 1.0f;
        int n = 0;
        for (int c = 0; c < 256; c++) {
          const float v = pa_fp8_decode(t, (uint8_t)c);
          const float w = pa_fp8_decode(t, (uint8_t)((c & 0x80) | ((c & 0x7f) + 1)));
          const float mid = isfinite(v) && isfinite(w) ? (float)(((double)v + w) / 2) : v;
          x[n++] = v * scale;
          x[n++] = mid * scale;
          x[n++] = nextafterf(mid, 0.0f) * scale;
          x[n++] = nextafterf(mid, INFINITY) * scale;
        }
        const float extra[] = {INFINITY, -INFINITY, NAN, -0.0f, 0.0f, 0x1p-149f, 1e30f, -3e38f};
        for (int i = 0; i < TU_LEN(extra); i++) x[n++] = extra[i];
        tu_rng r = tu_rng_seed(77);
        while (n < 4096) {
          uint32_t u = (uint32_t)tu_rng_next(&r);
          u = (u & 0x807fffffu) | ((uint32_t)(100 + tu_rng_int(&r, 50)) << 23);
          memcpy(&x[n++], &u, 4);
        }
        k->quantize(t, x, got, n, scale);
        for (int i = 0; i < n; i++)
          cr_assert_eq(got[i], pa_fp8_encode(t, x[i] / scale),
                       "%s %s: %a / %g -> 0x%02x, want 0x%02x", k->name, pa_dtype_name(t),
                       (double)x[i], (double)scale, got[i], pa_fp8_encode(t, x[i] / scale));
      }
  }
}

/* The bf16 dot-product decode's fp8 keys (kern->bf16->qk_db8: codes turned
 * into bf16 in registers, where the host has AVX512-BF16): with one-hot bf16
 * query rows each score is one key element, exact, so every finite code must
 * come out as its value bit for bit (-0 as a zero: the sum starts at +0),
 * in 4x4 tiles, leftover keys and a masked tail of dims; an all-ones row
 * turns an inf code into an inf score and a NaN code into a NaN. */
Test(fp8, cpu_bf16_decode_all_codes) {
  enum { D = 256, N = 5 };
  static uint16_t q[D * D];
  static uint8_t k[N][D];
  static float s[D * N];
  int ran = 0;
  for (int isa = 0; isa < PA_ISA_COUNT; isa++) {
    const pa_cpu_kernels *kt = pa_cpu_isa_kernels((pa_cpu_isa)isa);
    if (!kt || !kt->bf16 || !kt->bf16->qk_db8 || !pa_cpu_isa_host((pa_cpu_isa)isa)) continue;
    ran = 1;
    for (int f = 0; f < 2; f++) {
      const pa_dtype t = formats[f];
      const char *kp[N];
      memset(q, 0, sizeof q);
      for (int r = 0; r < D; r++) q[r * D + r] = 0x3f80; /* bf16 1.0 */
      for (int c = 0; c < N; c++) {
        for (int d = 0; d < D; d++) {
          k[c][d] = (uint8_t)(d + 37 * c);
          if (!isfinite(pa_fp8_decode(t, k[c][d]))) k[c][d] = 0x30; /* finite; inf, NaN below */
        }
        kp[c] = (const char *)k[c];
      }
      for (int dims = D; dims >= D - 45; dims -= 45) { /* 256: full 32-dim steps; 211: a tail */
        for (int i = 0; i < D * N; i++) s[i] = -1.0f;
        kt->bf16->qk_db8(t, dims, N, dims, q, D, kp, s, N, 1.0f);
        for (int r = 0; r < dims; r++)
          for (int c = 0; c < N; c++)
            cr_assert(same_value(t, k[c][r], s[r * N + c]) ||
                          (k[c][r] == 0x80 && s[r * N + c] == 0.0f),
                      "%s: %s code 0x%02x scores %a (dims %d, row %d, key %d)", kt->name,
                      pa_dtype_name(t), k[c][r], (double)s[r * N + c], dims, r, c);
      }
      /* one row of ones against keys of zeros but one code each */
      for (int d = 0; d < D; d++) q[d] = 0x3f80;
      const uint8_t odd[N] = {0x7f, 0xff, 0x7c, 0xfc, 0x38};
      for (int c = 0; c < N; c++) {
        memset(k[c], 0, D);
        k[c][3 + 40 * c] = odd[c];
      }
      kt->bf16->qk_db8(t, 1, N, D, q, D, kp, s, N, 1.0f);
      for (int c = 0; c < N; c++) {
        const float want = pa_fp8_decode(t, odd[c]);
        cr_assert(isnan(want) ? isnan(s[c]) : s[c] == want, "%s: %s code 0x%02x alone scores %a",
                  kt->name, pa_dtype_name(t), odd[c], (double)s[c]);
      }
    }
  }
  if (!ran) cr_skip_test("no CPU ISA with bf16 dot products on this host");
}

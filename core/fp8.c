/* The fp8 conversions every backend matches bit for bit (polyattn.h, "fp8
 * KV caches"): exact decode tables and the rounding, saturating encode. */
#include <math.h>
#include <string.h>

#include "backend.h"

/* Decode tables as constant expressions, so they need no initialisation.
 * e4m3: bias 7, 3 mantissa bits, 0x7f/0xff NaN, no infinities.
 * e5m2: bias 15, 2 mantissa bits, IEEE-style infinities and NaNs. */
#define E4_MAG(c)                                                                                  \
  (((c)&0x7f) == 0x7f ? NAN                                                                        \
   : ((c) >> 3 & 15)  ? (float)((8 + ((c)&7)) * (1 << ((c) >> 3 & 15))) / 1024.0f                  \
                      : (float)((c)&7) / 512.0f)
#define E5_MAG(c)                                                                                  \
  (((c) >> 2 & 31) == 31 ? (((c)&3) ? NAN : INFINITY)                                              \
   : ((c) >> 2 & 31)     ? (float)(4 + ((c)&3)) * (float)(1 << ((c) >> 2 & 31)) / 131072.0f        \
                         : (float)((c)&3) / 65536.0f)
#define E4(c) ((c)&0x80 ? -E4_MAG((c)&0x7f) : E4_MAG(c))
#define E5(c) ((c)&0x80 ? -E5_MAG((c)&0x7f) : E5_MAG(c))
#define ROW(F, r)                                                                                  \
  F(r), F(r + 1), F(r + 2), F(r + 3), F(r + 4), F(r + 5), F(r + 6), F(r + 7), F(r + 8), F(r + 9),  \
      F(r + 10), F(r + 11), F(r + 12), F(r + 13), F(r + 14), F(r + 15)
#define TABLE(F)                                                                                   \
  ROW(F, 0), ROW(F, 16), ROW(F, 32), ROW(F, 48), ROW(F, 64), ROW(F, 80), ROW(F, 96), ROW(F, 112),  \
      ROW(F, 128), ROW(F, 144), ROW(F, 160), ROW(F, 176), ROW(F, 192), ROW(F, 208), ROW(F, 224),   \
      ROW(F, 240)

const float pa_fp8_e4m3_table[256] = {TABLE(E4)};
const float pa_fp8_e5m2_table[256] = {TABLE(E5)};

float pa_fp8_decode(pa_dtype t, uint8_t code) {
  if (t == PA_FP8_E4M3) return pa_fp8_e4m3_table[code];
  if (t == PA_FP8_E5M2) return pa_fp8_e5m2_table[code];
  return NAN;
}

/* f32 -> fp8 with M mantissa bits and exponent bias B, on the f32's bits:
 * normals re-biased and rounded (nearest even, a carry into the exponent is
 * the right result), subnormals shifted out of the 24-bit significand with
 * the same rule, magnitudes at or beyond max_bits saturated to max_code. */
static uint8_t encode(float x, int M, int B, uint32_t max_bits, uint8_t max_code) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  const uint8_t sign = (uint8_t)((u >> 24) & 0x80u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7f; /* NaN */
  if (a >= max_bits) return (uint8_t)(sign | max_code);
  if (a >= (uint32_t)(128 - B) << 23) { /* normal in fp8 */
    uint32_t r = a - ((uint32_t)(127 - B) << 23);
    r += (1u << (22 - M)) - 1u + ((r >> (23 - M)) & 1u);
    return (uint8_t)(sign | (r >> (23 - M)));
  }
  if (a <= (uint32_t)(127 - B - M) << 23) return sign;        /* half the least subnormal or less */
  const uint32_t shift = (uint32_t)(151 - B - M) - (a >> 23); /* 24 - B - M - exponent */
  const uint32_t m = (a & 0x7fffffu) | 0x800000u, half = 1u << (shift - 1u);
  uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u);
  if (rem > half || (rem == half && (q & 1u))) q++;
  return (uint8_t)(sign | q);
}

uint8_t pa_fp8_encode(pa_dtype t, float x) {
  /* Everything above the largest code saturates to it, the rounding
   * interval beyond it included (nothing rounds up to a NaN or inf code). */
  if (t == PA_FP8_E4M3) return encode(x, 3, 7, 0x43e00001u, 0x7e);  /* above 448 */
  if (t == PA_FP8_E5M2) return encode(x, 2, 15, 0x47600001u, 0x7b); /* above 57344 */
  return 0;
}

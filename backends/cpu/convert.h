/* Exact scalar conversions between f32 and the 16-bit float formats.
 * bf16 is the top half of an f32; both narrowing directions round to nearest
 * even, keep infinities and quiet NaNs. These are the reference the SIMD
 * conversions must match bit for bit. */
#ifndef PA_CPU_CONVERT_H
#define PA_CPU_CONVERT_H

#include <stdint.h>
#include <string.h>

static inline float pa_bits_f32(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static inline uint32_t pa_f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static inline float pa_bf16_to_f32(uint16_t b) { return pa_bits_f32((uint32_t)b << 16); }

static inline uint16_t pa_f32_to_bf16(float f) {
  uint32_t u = pa_f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}

static inline float pa_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return pa_bits_f32(sign | 0x7f800000u | (m << 13));
  if (e != 0) return pa_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
  if (m == 0) return pa_bits_f32(sign);
  /* subnormal: m * 2^-24, renormalised */
  uint32_t be = 113;
  while (!(m & 0x400u)) {
    m <<= 1;
    be--;
  }
  return pa_bits_f32(sign | (be << 23) | ((m & 0x3ffu) << 13));
}

static inline uint16_t pa_f32_to_f16(float f) {
  uint32_t u = pa_f32_bits(f);
  uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* 65520 and up round to inf */
  if (a >= 0x38800000u) {                                    /* normal half */
    uint32_t r = a - 0x38000000u;
    r += 0xfffu + ((r >> 13) & 1u);
    return (uint16_t)(sign | (r >> 13));
  }
  if (a <= 0x33000000u) return sign; /* at most 2^-25: ties to even zero */
  uint32_t shift = 126u - (a >> 23);  /* 14..24 */
  uint32_t m = (a & 0x7fffffu) | 0x800000u;
  uint32_t q = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (q & 1u))) q++;
  return (uint16_t)(sign | q);
}

#endif

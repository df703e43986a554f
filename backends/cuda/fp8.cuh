/* fp8 conversions on the device, bit for bit core/fp8.c's (polyattn.h):
 * exact decode (exponent and mantissa re-biased into an f32; subnormals
 * scale exactly) and the nearest-even, saturating encode with NaN -> 0x7f.
 * Integer code, so sm_80 (no fp8 cvt) and later chips agree. */
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include <type_traits>

#include "backend.h"

namespace pa {

__device__ __forceinline__ float e4m3_to_f32(uint32_t c) {
  const uint32_t m = c & 0x7fu;
  const float f = m == 0x7fu ? __int_as_float(0x7fc00000)
                  : m >= 8u  ? __uint_as_float((m << 20) + (120u << 23))
                             : (float)m * 0x1p-9f;
  return __uint_as_float(__float_as_uint(f) | ((c & 0x80u) << 24));
}

__device__ __forceinline__ float e5m2_to_f32(uint32_t c) {
  const uint32_t m = c & 0x7fu;
  const float f =
      m >= 0x7cu ? __uint_as_float(0x7f800000u | ((m & 3u) << 21) | (m > 0x7cu ? 0x400000u : 0u))
      : m >= 4u  ? __uint_as_float((m << 21) + (112u << 23))
                 : (float)m * 0x1p-16f;
  return __uint_as_float(__float_as_uint(f) | ((c & 0x80u) << 24));
}

/* Element i of p in dtype dt (fp8 or the 16/32-bit floats) as f32. */
__device__ __forceinline__ float ld_any(const char *p, int dt, int64_t i) {
  if (dt == PA_FP8_E4M3) return e4m3_to_f32(reinterpret_cast<const uint8_t *>(p)[i]);
  if (dt == PA_FP8_E5M2) return e5m2_to_f32(reinterpret_cast<const uint8_t *>(p)[i]);
  if (dt == PA_F32) return reinterpret_cast<const float *>(p)[i];
  if (dt == PA_F16) return __half2float(reinterpret_cast<const __half *>(p)[i]);
  return __bfloat162float(reinterpret_cast<const __nv_bfloat16 *>(p)[i]);
}

template <int M, int B>
__device__ __forceinline__ uint8_t f32_to_fp8(float x, uint32_t max_bits, uint32_t max_code) {
  const uint32_t u = __float_as_uint(x), a = u & 0x7fffffffu, sign = (u >> 24) & 0x80u;
  if (a > 0x7f800000u) return 0x7f;
  if (a >= max_bits) return (uint8_t)(sign | max_code);
  if (a >= (uint32_t)(128 - B) << 23) {
    uint32_t r = a - ((uint32_t)(127 - B) << 23);
    r += (1u << (22 - M)) - 1u + ((r >> (23 - M)) & 1u);
    return (uint8_t)(sign | (r >> (23 - M)));
  }
  if (a <= (uint32_t)(127 - B - M) << 23) return (uint8_t)sign;
  const uint32_t shift = (uint32_t)(151 - B - M) - (a >> 23);
  const uint32_t mm = (a & 0x7fffffu) | 0x800000u, hf = 1u << (shift - 1u);
  uint32_t q = mm >> shift;
  const uint32_t rem = mm & ((1u << shift) - 1u);
  if (rem > hf || (rem == hf && (q & 1u))) q++;
  return (uint8_t)(sign | q);
}

__device__ __forceinline__ uint8_t encode_fp8(int dt, float x) {
  return dt == PA_FP8_E4M3 ? f32_to_fp8<3, 7>(x, 0x43e00001u, 0x7eu)
                           : f32_to_fp8<2, 15>(x, 0x47600001u, 0x7bu);
}

/* Two fp8 codes (bits 0-15 of x, KV = PA_FP8_E4M3 / E5M2) -> a packed pair
 * of T = __half / __nv_bfloat16 (low half first); exact: every e4m3/e5m2
 * value is an f16 and a bf16. One cvt on sm_89+; bf16 goes through f32
 * (its top half). */
template <typename T, int KV> __device__ __forceinline__ uint32_t fp8x2_to(uint32_t x) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)(x & 0xffffu),
                                                   KV == PA_FP8_E4M3 ? __NV_E4M3 : __NV_E5M2);
  if constexpr (std::is_same<T, __half>::value) {
    return (uint32_t)h.x | ((uint32_t)h.y << 16);
  } else {
    const float2 f = __half22float2(__half2(h));
    return __byte_perm(__float_as_uint(f.x), __float_as_uint(f.y), 0x7632);
  }
}

} // namespace pa

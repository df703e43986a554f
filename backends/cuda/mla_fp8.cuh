/* fp8 ckv/kpe for the sm_90 MLA kernel: 8 fp8 codes (e4m3 or e5m2) to 8
 * f16 or bf16 values, exactly (every e4m3 and e5m2 value is an f16 and a
 * bf16 value; the cache's scale is applied outside, in f32). The hardware
 * conversion (sm_89+) goes to f16x2; bf16 takes the f32 round trip, exact. */
#pragma once

#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <stdint.h>

#include "backend.h"
#include "mma.cuh"

namespace pa {
namespace mla {

/* Two codes (byte 0 the lower element) as an f16x2 or bf16x2 word. */
template <typename T, int KV> __device__ __forceinline__ uint32_t fp8x2_to(uint32_t two) {
  const __half2_raw h = __nv_cvt_fp8x2_to_halfraw2((__nv_fp8x2_storage_t)two,
                                                   KV == PA_FP8_E4M3 ? __NV_E4M3 : __NV_E5M2);
  if constexpr (dtype_of<T>::value == PA_F16) {
    return (uint32_t)h.x | ((uint32_t)h.y << 16);
  } else {
    const float2 f = __half22float2(__half2(h));
    return pack2<T>(f.x, f.y);
  }
}

/* Eight codes (lo: codes 0-3, hi: 4-7) as one 16-byte chunk of T. */
template <typename T, int KV> __device__ __forceinline__ uint4 fp8x8_to(uint32_t lo, uint32_t hi) {
  return make_uint4(fp8x2_to<T, KV>(lo & 0xffffu), fp8x2_to<T, KV>(lo >> 16),
                    fp8x2_to<T, KV>(hi & 0xffffu), fp8x2_to<T, KV>(hi >> 16));
}

} // namespace mla
} // namespace pa

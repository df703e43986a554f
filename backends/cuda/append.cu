/* pa_kv_append / pa_mla_append: one block per (token, head), its threads
 * over the dims of both streams (K and V, or ckv and kpe). Each element goes
 * through f32: copied or rounded to the cache's 16/32-bit float, or divided
 * by the scale (IEEE division, as on the host) and encoded to fp8
 * (fp8.cuh, core/fp8.c's rule). Slots outside the cache are skipped: the
 * host does not read a device slot map (polyattn.h). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "fp8.cuh"
#include "launch.h"

namespace {

struct stream_args {
  const char *src;
  char *cache;
  const float *scale;
  int64_t dim, src_t, src_h, c_page, c_slot, c_h, scale_h;
  int src_dt;
};

__device__ __forceinline__ void store(char *p, int dt, int64_t i, float x) {
  if (dt == PA_F32)
    reinterpret_cast<float *>(p)[i] = x;
  else if (dt == PA_F16)
    reinterpret_cast<__half *>(p)[i] = __float2half_rn(x);
  else if (dt == PA_BF16)
    reinterpret_cast<__nv_bfloat16 *>(p)[i] = __float2bfloat16_rn(x);
  else
    reinterpret_cast<uint8_t *>(p)[i] = pa::encode_fp8(dt, x);
}

__device__ __forceinline__ void one_row(const stream_args &s, int cdt, int64_t t, int64_t h,
                                        int64_t page, int64_t off) {
  const int64_t src = t * s.src_t + h * s.src_h, dst = page * s.c_page + off * s.c_slot + h * s.c_h;
  const float q = s.scale ? s.scale[h * s.scale_h] : 1.f;
  for (int64_t x = threadIdx.x; x < s.dim; x += blockDim.x) {
    float v = pa::ld_any(s.src, s.src_dt, src + x);
    if (s.scale) v = __fdiv_rn(v, q);
    store(s.cache, cdt, dst + x, v);
  }
}

__global__ void append_kernel(const stream_args s0, const stream_args s1, const int32_t *slots,
                              int64_t slot_s, int64_t heads, int64_t page_size, int64_t num_pages,
                              int cdt) {
  const int64_t g = blockIdx.x, t = g / heads, h = g - t * heads;
  const int32_t slot = slots[t * slot_s];
  if (slot < 0 || (int64_t)slot >= num_pages * page_size) return;
  const int64_t page = slot / page_size, off = slot - page * page_size;
  one_row(s0, cdt, t, h, page, off);
  one_row(s1, cdt, t, h, page, off);
}

stream_args args_of(const pa_append_stream &s) {
  stream_args a;
  a.src = (const char *)s.src->buf->handle + s.src->offset;
  a.cache = (char *)s.cache->buf->handle + s.cache->offset;
  a.scale =
      s.scale ? (const float *)((const char *)s.scale->buf->handle + s.scale->offset) : nullptr;
  a.dim = s.dim, a.src_t = s.src_t, a.src_h = s.src_h;
  a.c_page = s.c_page, a.c_slot = s.c_slot, a.c_h = s.c_h, a.scale_h = s.scale_h;
  a.src_dt = (int)s.src->dtype;
  return a;
}

} // namespace

extern "C" cudaError_t pa_cu_append(const pa_append_launch *L, cudaStream_t st) {
  const int64_t blocks = L->tokens * L->heads;
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
  const int64_t dmax = L->s[0].dim > L->s[1].dim ? L->s[0].dim : L->s[1].dim;
  const int threads = dmax >= 128 ? 128 : dmax > 32 ? 64 : 32;
  const int32_t *slots = (const int32_t *)((const char *)L->slots->buf->handle + L->slots->offset);
  append_kernel<<<(unsigned)blocks, threads, 0, st>>>(args_of(L->s[0]), args_of(L->s[1]), slots,
                                                      L->slot_s, L->heads, L->page_size,
                                                      L->num_pages, (int)L->s[0].cache->dtype);
  return cudaGetLastError();
}

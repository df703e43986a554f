/* pa_kv_append / pa_mla_append. Each element goes through f32: copied or
 * rounded to the cache's 16/32-bit float, or divided by the scale (IEEE
 * division, as on the host) and encoded to fp8 (fp8.cuh, core/fp8.c's rule).
 * Slots outside the cache are skipped: the host does not read a device slot
 * map (polyattn.h).
 *
 * Fast kernel (rows 16-byte aligned, dims a multiple of VEC): one thread
 * per VEC elements of a row (16 bytes of fp8 or 16-bit cache written, 16 or
 * 32 read), consecutive threads along the row, then the heads, then the
 * tokens, so a warp reads one slot entry and whole rows; blockIdx.y picks
 * the stream. Otherwise one block per (token, head). */
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

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

template <int DT> struct elem;
template <> struct elem<PA_F32> { using type = float; };
template <> struct elem<PA_F16> { using type = __half; };
template <> struct elem<PA_BF16> { using type = __nv_bfloat16; };

template <int DT> __device__ __forceinline__ float to_f32(typename elem<DT>::type x) {
  if constexpr (DT == PA_F32)
    return x;
  else if constexpr (DT == PA_F16)
    return __half2float(x);
  else
    return __bfloat162float(x);
}

/* fp8 code pair (a in bits 0-7, b in 8-15), core/fp8.c's rule: the cvt's
 * round-to-nearest-even with saturation is that rule for every number; NaN
 * (which the cvt keeps as some NaN) is 0x7f. */
template <int CD> __device__ __forceinline__ uint32_t enc2(float a, float b) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 890
  uint32_t c = __nv_cvt_float2_to_fp8x2(make_float2(a, b), __NV_SATFINITE,
                                        CD == PA_FP8_E4M3 ? __NV_E4M3 : __NV_E5M2);
  if (a != a) c = (c & 0xff00u) | 0x7fu;
  if (b != b) c = (c & 0x00ffu) | 0x7f00u;
  return c;
#else
  return (uint32_t)pa::encode_fp8(CD, a) | ((uint32_t)pa::encode_fp8(CD, b) << 8);
#endif
}

template <int SD, int CD> struct vec_cfg {
  static constexpr int CS = (CD == PA_FP8_E4M3 || CD == PA_FP8_E5M2) ? 1 : CD == PA_F32 ? 4 : 2;
  static constexpr int SS = SD == PA_F32 ? 4 : 2;
  static constexpr int VEC = CS == 1 ? 16 : 8; /* elements per thread */
};

template <int SD, int CD>
__global__ void __launch_bounds__(256)
    append_vec(const stream_args s0, const stream_args s1, const int32_t *slots, int64_t slot_s,
               int heads, int tokens, int64_t page_size, int64_t num_pages) {
  using C = vec_cfg<SD, CD>;
  using ST = typename elem<SD>::type;
  constexpr int VEC = C::VEC;
  /* field by field: a reference picked at run time would copy the params to local memory */
  const bool y = blockIdx.y != 0;
  stream_args s;
  s.src = y ? s1.src : s0.src, s.cache = y ? s1.cache : s0.cache, s.scale = y ? s1.scale : s0.scale;
  s.dim = y ? s1.dim : s0.dim, s.src_t = y ? s1.src_t : s0.src_t, s.src_h = y ? s1.src_h : s0.src_h;
  s.c_page = y ? s1.c_page : s0.c_page, s.c_slot = y ? s1.c_slot : s0.c_slot;
  s.c_h = y ? s1.c_h : s0.c_h, s.scale_h = y ? s1.scale_h : s0.scale_h;
  const int per = (int)(s.dim / VEC), idx = blockIdx.x * blockDim.x + threadIdx.x;
  const int row = idx / per, v = idx - row * per, t = row / heads, h = row - t * heads;
  if (per == 0 || t >= tokens) return;
  const int32_t slot = __ldg(slots + t * slot_s);
  if (slot < 0 || (int64_t)slot >= num_pages * page_size) return;
  const int64_t page = slot / page_size, off = slot - page * page_size;

  float x[VEC];
  const uint4 *src = reinterpret_cast<const uint4 *>(reinterpret_cast<const ST *>(s.src) +
                                                     t * s.src_t + h * s.src_h + v * VEC);
#pragma unroll
  for (int u = 0; u < VEC * C::SS / 16; ++u) {
    const uint4 q = __ldg(src + u);
    const ST *e = reinterpret_cast<const ST *>(&q);
#pragma unroll
    for (int k = 0; k < 16 / C::SS; ++k) x[u * (16 / C::SS) + k] = to_f32<SD>(e[k]);
  }
  char *dst = s.cache + (page * s.c_page + off * s.c_slot + h * s.c_h + v * VEC) * C::CS;
  if constexpr (C::CS == 1) {
    const float q = s.scale[h * s.scale_h];
    /* a power-of-two scale: the product by its exact inverse is the quotient */
    const uint32_t qb = __float_as_uint(q), qe = (qb >> 23) & 0xffu;
    if ((qb & 0x7fffffu) == 0 && qe >= 2 && qe <= 252) {
      const float r = 1.f / q;
#pragma unroll
      for (int k = 0; k < VEC; ++k) x[k] *= r;
    } else {
#pragma unroll
      for (int k = 0; k < VEC; ++k) x[k] = __fdiv_rn(x[k], q);
    }
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; ++k)
      w[k] = enc2<CD>(x[4 * k], x[4 * k + 1]) | (enc2<CD>(x[4 * k + 2], x[4 * k + 3]) << 16);
    *reinterpret_cast<uint4 *>(dst) = make_uint4(w[0], w[1], w[2], w[3]);
  } else {
    using CT = typename elem<CD>::type;
    CT y[VEC];
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      if constexpr (CD == PA_F32)
        y[k] = x[k];
      else if constexpr (CD == PA_F16)
        y[k] = __float2half_rn(x[k]);
      else
        y[k] = __float2bfloat16_rn(x[k]);
    }
#pragma unroll
    for (int u = 0; u < VEC * C::CS / 16; ++u)
      reinterpret_cast<uint4 *>(dst)[u] = reinterpret_cast<const uint4 *>(y)[u];
  }
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

int dt_size(int dt) { return dt == PA_F32 ? 4 : dt == PA_F16 || dt == PA_BF16 ? 2 : 1; }

/* Whether stream s fits append_vec: VEC | dim, every row start 16-byte
 * aligned in the source and the cache. */
bool vec_ok(const stream_args &s, int cdt, int64_t heads, int64_t tokens) {
  const int cs = dt_size(cdt), ss = dt_size(s.src_dt), vec = cs == 1 ? 16 : 8;
  if (s.dim <= 0 || s.dim % vec) return false;
  if (((uintptr_t)s.src | (uintptr_t)s.cache) % 16) return false;
  const int64_t st[3] = {s.src_t * ss, s.src_h * ss, 0};
  const int64_t ct[3] = {s.c_page * cs, s.c_slot * cs, s.c_h * cs};
  for (int k = 0; k < 3; ++k)
    if (st[k] % 16 || ct[k] % 16) return false;
  const int64_t items = tokens * heads * (s.dim / vec);
  return items < 0x7fffffffLL - 256 && tokens * heads < 0x7fffffffLL;
}

template <int SD, int CD>
cudaError_t launch_vec(const pa_append_launch *L, const stream_args &a0, const stream_args &a1,
                       const int32_t *slots, cudaStream_t st) {
  constexpr int VEC = vec_cfg<SD, CD>::VEC;
  const int64_t dmax = a0.dim > a1.dim ? a0.dim : a1.dim;
  const int64_t items = L->tokens * L->heads * (dmax / VEC);
  const dim3 grid((unsigned)((items + 255) / 256), a1.dim > 0 ? 2 : 1);
  append_vec<SD, CD><<<grid, 256, 0, st>>>(a0, a1, slots, L->slot_s, (int)L->heads, (int)L->tokens,
                                           L->page_size, L->num_pages);
  return cudaGetLastError();
}

template <int SD>
cudaError_t launch_src(const pa_append_launch *L, const stream_args &a0, const stream_args &a1,
                       const int32_t *slots, int cdt, cudaStream_t st) {
  switch (cdt) {
  case PA_FP8_E4M3: return launch_vec<SD, PA_FP8_E4M3>(L, a0, a1, slots, st);
  case PA_FP8_E5M2: return launch_vec<SD, PA_FP8_E5M2>(L, a0, a1, slots, st);
  case PA_F32: return launch_vec<SD, PA_F32>(L, a0, a1, slots, st);
  case PA_F16: return launch_vec<SD, PA_F16>(L, a0, a1, slots, st);
  case PA_BF16: return launch_vec<SD, PA_BF16>(L, a0, a1, slots, st);
  default: return cudaErrorNotSupported;
  }
}

} // namespace

/* vec: the vectorised kernel where it applies (dev.cuda.append_vec). */
extern "C" cudaError_t pa_cu_append(const pa_append_launch *L, int vec, cudaStream_t st) {
  const int64_t blocks = L->tokens * L->heads;
  if (blocks == 0) return cudaSuccess;
  if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
  const int32_t *slots = (const int32_t *)((const char *)L->slots->buf->handle + L->slots->offset);
  const stream_args a0 = args_of(L->s[0]), a1 = args_of(L->s[1]);
  const int cdt = (int)L->s[0].cache->dtype;
  const bool fp8 = cdt == PA_FP8_E4M3 || cdt == PA_FP8_E5M2;
  if (vec && vec_ok(a0, cdt, L->heads, L->tokens) &&
      (a1.dim == 0 || vec_ok(a1, cdt, L->heads, L->tokens)) &&
      (!a1.dim || a1.src_dt == a0.src_dt) && (int)L->s[1].cache->dtype == cdt &&
      (!fp8 || (a0.scale && (!a1.dim || a1.scale)))) {
    cudaError_t e = cudaErrorNotSupported;
    if (a0.src_dt == PA_F16)
      e = launch_src<PA_F16>(L, a0, a1, slots, cdt, st);
    else if (a0.src_dt == PA_BF16)
      e = launch_src<PA_BF16>(L, a0, a1, slots, cdt, st);
    else if (a0.src_dt == PA_F32)
      e = launch_src<PA_F32>(L, a0, a1, slots, cdt, st);
    if (e != cudaErrorNotSupported) return e;
  }
  const int64_t dmax = L->s[0].dim > L->s[1].dim ? L->s[0].dim : L->s[1].dim;
  const int threads = dmax >= 128 ? 128 : dmax > 32 ? 64 : 32;
  append_kernel<<<(unsigned)blocks, threads, 0, st>>>(a0, a1, slots, L->slot_s, L->heads,
                                                      L->page_size, L->num_pages, cdt);
  return cudaGetLastError();
}

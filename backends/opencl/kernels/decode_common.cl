/* decode_common.cl: what the decode kernels (decode.cl: pa_decode,
 * decode_w.cl: pa_decode_w) share, prepended to both after common.cl:
 * element types of the defines Q_DT KV_DT O_DT, and a lane's 8-element slice
 * of a K or V row, loaded raw and converted to floats. */

#define SL 8 /* elements per lane */

#define Q_RAW PA_CAT(PA_RAW_, Q_DT)
#define KV_RAW PA_CAT(PA_RAW_, KV_DT)
#define O_RAW PA_CAT(PA_RAW_, O_DT)
#define LDQ(AS, p, i) PA_CAT(PA_LD_, Q_DT)(AS, p, i)
#define LDKV(AS, p, i) PA_CAT(PA_LD_, KV_DT)(AS, p, i)
#define STO(AS, p, i, v) PA_CAT(PA_ST_, O_DT)(AS, p, i, v)
#define VEC_OK (DQK % SL == 0 && DV % SL == 0)

#define F_LSE 1
#define F_SINKS 4
#define F_ALIBI 8
#define F_MASK 16

/* One lane's 8 elements of a K or V row: raw (as loaded, so 16-bit data keeps
 * half the registers while loads are in flight) and as floats. */
#define KV_FP8 (KV_DT == 4 || KV_DT == 5)
#if KV_DT == 0
typedef float8 raw8;
#elif KV_FP8
typedef uint2 raw8; /* 8 fp8 codes */
#else
typedef uint4 raw8;
#endif
typedef struct {
  float x[SL];
} slice8;

inline raw8 load_raw(__global const KV_RAW *p, long off, int d0, int dlim, int vec) {
#if VEC_OK
  if (vec) {
#if KV_DT == 0
    float4 a = *(__global const float4 *)(p + off + d0), b = *(__global const float4 *)(p + off + d0 + 4);
    return (float8)(a, b);
#elif KV_FP8
    return *(__global const uint2 *)(p + off + d0);
#else
    return *(__global const uint4 *)(p + off + d0);
#endif
  }
#endif
  KV_RAW e[SL];
  #pragma unroll
  for (int i = 0; i < SL; i++) e[i] = d0 + i < dlim ? p[off + d0 + i] : (KV_RAW)0;
#if KV_DT == 0
  return (float8)(e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]);
#elif KV_FP8
  return (uint2)(e[0] | (uint)e[1] << 8 | (uint)e[2] << 16 | (uint)e[3] << 24,
                 e[4] | (uint)e[5] << 8 | (uint)e[6] << 16 | (uint)e[7] << 24);
#else
  return (uint4)(e[0] | (uint)e[1] << 16, e[2] | (uint)e[3] << 16, e[4] | (uint)e[5] << 16,
                 e[6] | (uint)e[7] << 16);
#endif
}

#if KV_FP8
#ifndef FP8CVT
#define FP8CVT 0
#endif
#define pa_fp8_dec_4(c) pa_e4m3_to_f32((uchar)(c))
#define pa_fp8_dec_5(c) pa_e5m2_to_f32((uchar)(c))
/* Two fp8 codes (bits 0-15 of x) as floats: FP8CVT=1 (NVIDIA sm_89+) one
 * cvt to f16x2, else common.cl's exact integer decode. */
inline float2 pa_fp8x2_f32(uint x) {
#if FP8CVT
  float a, b;
#if KV_DT == 4
  asm("{ .reg .b16 c, d, lo, hi; .reg .b32 h; mov.b32 {c, d}, %2; cvt.rn.f16x2.e4m3x2 h, c; "
      "mov.b32 {lo, hi}, h; cvt.f32.f16 %0, lo; cvt.f32.f16 %1, hi; }"
      : "=f"(a), "=f"(b) : "r"(x));
#else
  asm("{ .reg .b16 c, d, lo, hi; .reg .b32 h; mov.b32 {c, d}, %2; cvt.rn.f16x2.e5m2x2 h, c; "
      "mov.b32 {lo, hi}, h; cvt.f32.f16 %0, lo; cvt.f32.f16 %1, hi; }"
      : "=f"(a), "=f"(b) : "r"(x));
#endif
  return (float2)(a, b);
#else
  return (float2)(PA_CAT(pa_fp8_dec_, KV_DT)(x & 0xffu), PA_CAT(pa_fp8_dec_, KV_DT)((x >> 8) & 0xffu));
#endif
}
#endif

inline slice8 to_slice(raw8 u) {
  slice8 s;
#if KV_DT == 0
  s.x[0] = u.s0, s.x[1] = u.s1, s.x[2] = u.s2, s.x[3] = u.s3;
  s.x[4] = u.s4, s.x[5] = u.s5, s.x[6] = u.s6, s.x[7] = u.s7;
#elif KV_FP8
  float2 f0 = pa_fp8x2_f32(u.s0), f1 = pa_fp8x2_f32(u.s0 >> 16);
  float2 f2 = pa_fp8x2_f32(u.s1), f3 = pa_fp8x2_f32(u.s1 >> 16);
  s.x[0] = f0.x, s.x[1] = f0.y, s.x[2] = f1.x, s.x[3] = f1.y;
  s.x[4] = f2.x, s.x[5] = f2.y, s.x[6] = f3.x, s.x[7] = f3.y;
#elif KV_DT == 1
  float8 f = vload_half8(0, (const half *)&u);
  s.x[0] = f.s0, s.x[1] = f.s1, s.x[2] = f.s2, s.x[3] = f.s3;
  s.x[4] = f.s4, s.x[5] = f.s5, s.x[6] = f.s6, s.x[7] = f.s7;
#else
  s.x[0] = as_float(u.s0 << 16), s.x[1] = as_float(u.s0 & 0xffff0000u);
  s.x[2] = as_float(u.s1 << 16), s.x[3] = as_float(u.s1 & 0xffff0000u);
  s.x[4] = as_float(u.s2 << 16), s.x[5] = as_float(u.s2 & 0xffff0000u);
  s.x[6] = as_float(u.s3 << 16), s.x[7] = as_float(u.s3 & 0xffff0000u);
#endif
  return s;
}

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
#if KV_DT == 0
typedef float8 raw8;
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
#else
  return (uint4)(e[0] | (uint)e[1] << 16, e[2] | (uint)e[3] << 16, e[4] | (uint)e[5] << 16,
                 e[6] | (uint)e[7] << 16);
#endif
}

inline slice8 to_slice(raw8 u) {
  slice8 s;
#if KV_DT == 0
  s.x[0] = u.s0, s.x[1] = u.s1, s.x[2] = u.s2, s.x[3] = u.s3;
  s.x[4] = u.s4, s.x[5] = u.s5, s.x[6] = u.s6, s.x[7] = u.s7;
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

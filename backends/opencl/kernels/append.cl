/* append.cl: pa_kv_append / pa_mla_append. One work-group per (token, head);
 * its threads walk the dims of both streams (K and V, or ckv and kpe),
 * converting each element through f32 to the cache dtype (fp8: x / scale,
 * encoded as core/fp8.c; the program is built with correctly rounded
 * division so the quotient is the same as on the host).
 * Slots outside [0, num_pages * page_size) are skipped (-1 by convention;
 * anything else is a caller's error the host cannot see here).
 * Defines: S0_DT S1_DT (source dtypes), C_DT (cache dtype). */

#define S0_RAW PA_CAT(PA_RAW_, S0_DT)
#define S1_RAW PA_CAT(PA_RAW_, S1_DT)
#define C_RAW PA_CAT(PA_RAW_, C_DT)
#define LD0(p, i) PA_CAT(PA_LD_, S0_DT)(__global, p, i)
#define LD1(p, i) PA_CAT(PA_LD_, S1_DT)(__global, p, i)
#define STC(p, i, v) PA_CAT(PA_ST_, C_DT)(__global, p, i, v)

__kernel void pa_append(__global const S0_RAW *s0, long s0_off, long s0_t, long s0_h,
                        __global const S1_RAW *s1, long s1_off, long s1_t, long s1_h,
                        __global C_RAW *c0, long c0_off, long c0_p, long c0_s, long c0_h,
                        __global C_RAW *c1, long c1_off, long c1_p, long c1_s, long c1_h,
                        __global const float *sc0, long sc0_off, long sc0_h,
                        __global const float *sc1, long sc1_off, long sc1_h,
                        __global const int *slots, long sl_off, long sl_s, long heads,
                        long page_size, long num_pages, int d0, int d1) {
  const long g = get_group_id(0), t = g / heads, h = g - t * heads;
  const int slot = slots[sl_off + t * sl_s];
  if (slot < 0 || (long)slot >= num_pages * page_size) return;
  const long page = slot / page_size, o = slot - page * page_size;
#if C_DT >= 4
  const float q0 = sc0[sc0_off + h * sc0_h], q1 = sc1[sc1_off + h * sc1_h];
#else
  const float q0 = 1.0f, q1 = 1.0f;
#endif
  const long src0 = s0_off + t * s0_t + h * s0_h, dst0 = c0_off + page * c0_p + o * c0_s + h * c0_h;
  const long src1 = s1_off + t * s1_t + h * s1_h, dst1 = c1_off + page * c1_p + o * c1_s + h * c1_h;
  for (int x = get_local_id(0); x < d0; x += get_local_size(0)) {
    float v = LD0(s0, src0 + x);
#if C_DT >= 4
    v = v / q0;
#endif
    STC(c0, dst0 + x, v);
  }
  for (int x = get_local_id(0); x < d1; x += get_local_size(0)) {
    float v = LD1(s1, src1 + x);
#if C_DT >= 4
    v = v / q1;
#endif
    STC(c1, dst1 + x, v);
  }
}

/* AVX2 + FMA + F16C kernels. Built with its own flags and only called after
 * isa.c saw the CPU and OS support them. 16 ymm registers set the tiles:
 * QK 2 rows x 4 keys (8 accumulators + 4 K vectors), 4 x 2 for GQA
 * groups, 1 x 8 for a row of its own, transposed QK for prefill tiles
 * 24 rows x 4 keys (12 accumulators), PV 4 rows x 16 dims (8 accumulators,
 * 2 V vectors) or 1 row x 64 dims. Partial vectors at the end of d go
 * through small stack buffers (AVX2 has no 16-bit masked loads). */
#include <immintrin.h>
#include <math.h>

#include "convert.h"
#include "fp8_avx2.h"
#include "kernels.h"

#define INLINE static inline __attribute__((always_inline))

/* fp8 -> f32 through F16C: an e5m2 code is the top byte of an f16; an e4m3
 * code's exponent and mantissa sit in an f16 at 2^-8 of the value (bias 15
 * vs 7), so f16 subnormals give e4m3's; its NaN codes (0x7f, 0xff) are
 * patched in. Both exact, as the tables. */
INLINE __m256 ld_e5m2(const char *p) {
  const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
  return _mm256_cvtph_ps(_mm_unpacklo_epi8(_mm_setzero_si128(), b));
}
INLINE __m256 ld_e4m3(const char *p) {
#ifdef PA_E4M3_GATHER /* measurement variant: the exact decode table, gathered */
  return _mm256_i32gather_ps(pa_fp8_e4m3_table,
                             _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)), 4);
#else
  /* code << 8, shifted right arithmetically by 1: sign at bit 15, exponent
   * and mantissa at bits 13..7 (bit 14, a copy of the sign, cleared) */
  const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)p);
  const __m128i h = _mm_and_si128(_mm_srai_epi16(_mm_unpacklo_epi8(_mm_setzero_si128(), b), 1),
                                  _mm_set1_epi16((short)0xbfff));
  const __m256 f = _mm256_mul_ps(_mm256_cvtph_ps(h), _mm256_set1_ps(256.0f));
  /* only the NaN codes land on +-480 */
  const __m256 nan = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), f),
                                   _mm256_set1_ps(480.0f), _CMP_EQ_OQ);
  return _mm256_blendv_ps(f, _mm256_set1_ps(NAN), nan);
#endif
}

/* PA_CPU_E4M3_LO (kernels.h): sign-extended to 16 bits and shifted left by
 * 7, sign at bit 15, exponent and mantissa at 13..7, bit 14 cleared: an f16
 * at 2^-8 of the value. */
INLINE __m256 ld_e4m3_lo(const char *p) {
  const __m128i b = _mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(const void *)p));
  return _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(b, 7), _mm_set1_epi16((short)0xbfff)));
}

INLINE __m256 ldv(const char *p, int64_t i, pa_dtype t) {
  if (t == PA_CPU_E4M3_LO) return ld_e4m3_lo(p + i);
  if (t == PA_FP8_E4M3) return ld_e4m3(p + i);
  if (t == PA_FP8_E5M2) return ld_e5m2(p + i);
  if (t == PA_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i)));
  if (t == PA_BF16)
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i))), 16));
  return _mm256_loadu_ps((const float *)(const void *)p + i);
}

/* n < 8 elements from i, zero-filled. */
static __m256 ldv_tail(const char *p, int64_t i, pa_dtype t, int n) {
  float b[8] = {0};
  for (int x = 0; x < n; x++) {
    if (t == PA_F16)
      b[x] = pa_f16_to_f32(((const uint16_t *)(const void *)p)[i + x]);
    else if (t == PA_BF16)
      b[x] = pa_bf16_to_f32(((const uint16_t *)(const void *)p)[i + x]);
    else if (t == PA_FP8_E4M3)
      b[x] = pa_fp8_e4m3_table[((const uint8_t *)p)[i + x]];
    else if (t == PA_CPU_E4M3_LO) /* NaN codes: the driver never passes them here */
      b[x] = pa_fp8_e4m3_table[((const uint8_t *)p)[i + x]] * 0x1p-8f;
    else if (t == PA_FP8_E5M2)
      b[x] = pa_fp8_e5m2_table[((const uint8_t *)p)[i + x]];
    else
      b[x] = ((const float *)(const void *)p)[i + x];
  }
  return _mm256_loadu_ps(b);
}

INLINE __m256i lane_mask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

INLINE float red1(__m256 v) {
  __m128 c = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  __m128 e = _mm_add_ps(c, _mm_movehl_ps(c, c));
  return _mm_cvtss_f32(_mm_add_ss(e, _mm_shuffle_ps(e, e, 1)));
}
INLINE __m256 red_a(__m256 u, __m256 v) {
  return _mm256_add_ps(_mm256_permute2f128_ps(u, v, 0x20), _mm256_permute2f128_ps(u, v, 0x31));
}
INLINE __m256 red_b(__m256 u, __m256 v) {
  return _mm256_add_ps(_mm256_shuffle_ps(u, v, 0x44), _mm256_shuffle_ps(u, v, 0xEE));
}
INLINE __m256 red_c(__m256 u, __m256 v) {
  return _mm256_add_ps(_mm256_shuffle_ps(u, v, 0x88), _mm256_shuffle_ps(u, v, 0xDD));
}

/* A value the compiler must hold in a register: a Q vector used by several
 * FMAs is then loaded once, not folded into each (the 4 x 2 tile was bound
 * by loads, 10 per 8 FMAs). */
#define KEEP(v) __asm__("" : "+x"(v))

/* acc a<c><r>: key c, row r; the tree leaves S[r][c] in lane 4r + c. */
#define QK_STEP(X0, X1, X2, X3, Y0, Y1)                                                            \
  do {                                                                                             \
    __m256 x0 = X0, x1 = X1, x2 = X2, x3 = X3, y = Y0;                                             \
    KEEP(y);                                                                                       \
    a00 = _mm256_fmadd_ps(y, x0, a00);                                                             \
    a10 = _mm256_fmadd_ps(y, x1, a10);                                                             \
    a20 = _mm256_fmadd_ps(y, x2, a20);                                                             \
    a30 = _mm256_fmadd_ps(y, x3, a30);                                                             \
    y = Y1;                                                                                        \
    KEEP(y);                                                                                       \
    a01 = _mm256_fmadd_ps(y, x0, a01);                                                             \
    a11 = _mm256_fmadd_ps(y, x1, a11);                                                             \
    a21 = _mm256_fmadd_ps(y, x2, a21);                                                             \
    a31 = _mm256_fmadd_ps(y, x3, a31);                                                             \
  } while (0)

INLINE void qk_2x4(int D, const float *q0, const float *q1, const char *const *kp, pa_dtype t,
                   float *s, int64_t lds, int accumulate) {
  const char *k0 = kp[0], *k1 = kp[1], *k2 = kp[2], *k3 = kp[3];
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00,
         a30 = a00, a31 = a00;
  int d = 0;
  for (; d + 8 <= D; d += 8)
    QK_STEP(ldv(k0, d, t), ldv(k1, d, t), ldv(k2, d, t), ldv(k3, d, t), _mm256_loadu_ps(q0 + d),
            _mm256_loadu_ps(q1 + d));
  if (d < D) {
    int n = D - d;
    QK_STEP(ldv_tail(k0, d, t, n), ldv_tail(k1, d, t, n), ldv_tail(k2, d, t, n),
            ldv_tail(k3, d, t, n), ldv_tail((const char *)q0, d, PA_F32, n),
            ldv_tail((const char *)q1, d, PA_F32, n));
  }
  __m256 f = red_c(red_b(red_a(a00, a01), red_a(a10, a11)), red_b(red_a(a20, a21), red_a(a30, a31)));
  __m128 r0 = _mm256_castps256_ps128(f), r1 = _mm256_extractf128_ps(f, 1);
  if (accumulate) {
    r0 = _mm_add_ps(r0, _mm_loadu_ps(s));
    r1 = _mm_add_ps(r1, _mm_loadu_ps(s + lds));
  }
  _mm_storeu_ps(s, r0);
  _mm_storeu_ps(s + lds, r1);
}

INLINE float dot1(int D, const float *q, const char *k, pa_dtype t) {
  __m256 a = _mm256_setzero_ps();
  int d = 0;
  for (; d + 8 <= D; d += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), ldv(k, d, t), a);
  if (d < D)
    a = _mm256_fmadd_ps(ldv_tail((const char *)q, d, PA_F32, D - d), ldv_tail(k, d, t, D - d), a);
  return red1(a);
}

/* One row x 8 keys (a row of its own: MHA decode, the odd row of a tile):
 * 8 independent chains where dot1 has one, so the FMA latency is hidden.
 * Inputs in the order k0 k4 k1 k5 k2 k6 k3 k7 put key j in lane j of the
 * tree of qk_2x4, whose every sum is red1()'s: scores equal dot1's bit for bit. */
INLINE void qk_1x8(int D, const float *q, const char *const *kp, pa_dtype t, float *s,
                   int accumulate) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
#define QK18(LK, LQ)                                                                               \
  do {                                                                                             \
    __m256 y = LQ;                                                                                 \
    KEEP(y);                                                                                       \
    a0 = _mm256_fmadd_ps(y, LK(0), a0);                                                            \
    a1 = _mm256_fmadd_ps(y, LK(1), a1);                                                            \
    a2 = _mm256_fmadd_ps(y, LK(2), a2);                                                            \
    a3 = _mm256_fmadd_ps(y, LK(3), a3);                                                            \
    a4 = _mm256_fmadd_ps(y, LK(4), a4);                                                            \
    a5 = _mm256_fmadd_ps(y, LK(5), a5);                                                            \
    a6 = _mm256_fmadd_ps(y, LK(6), a6);                                                            \
    a7 = _mm256_fmadd_ps(y, LK(7), a7);                                                            \
  } while (0)
  int d = 0;
#define LK(j) ldv(kp[j], d, t)
  for (; d + 8 <= D; d += 8) QK18(LK, _mm256_loadu_ps(q + d));
#undef LK
  if (d < D) {
    const int n = D - d;
#define LK(j) ldv_tail(kp[j], d, t, n)
    QK18(LK, ldv_tail((const char *)q, d, PA_F32, n));
#undef LK
  }
#undef QK18
  __m256 f = red_c(red_b(red_a(a0, a4), red_a(a1, a5)), red_b(red_a(a2, a6), red_a(a3, a7)));
  if (accumulate) f = _mm256_add_ps(f, _mm256_loadu_ps(s));
  _mm256_storeu_ps(s, f);
}

/* 4 rows x 2 keys: each K vector converted once for 4 rows (decode with a
 * GQA group of 4 or 8 rows). b<r><c>: row r, key c; the tree of qk_2x4,
 * inputs reordered, leaves S[r][c] in lane 2r + c, each sum in red1()'s
 * order (so the scores equal qk_2x4's bit for bit). */
INLINE void qk_4x2(int D, const float *q, int64_t ldq, const char *const *kp, pa_dtype t, float *s,
                   int64_t lds, int accumulate) {
  const float *q0 = q, *q1 = q + ldq, *q2 = q + 2 * ldq, *q3 = q + 3 * ldq;
  const char *k0 = kp[0], *k1 = kp[1];
  __m256 b00 = _mm256_setzero_ps(), b01 = b00, b10 = b00, b11 = b00, b20 = b00, b21 = b00,
         b30 = b00, b31 = b00;
#define QK42(X0, X1, LQ)                                                                           \
  do {                                                                                             \
    const __m256 x0 = X0, x1 = X1;                                                                 \
    __m256 y = LQ(q0);                                                                             \
    KEEP(y);                                                                                       \
    b00 = _mm256_fmadd_ps(y, x0, b00);                                                             \
    b01 = _mm256_fmadd_ps(y, x1, b01);                                                             \
    y = LQ(q1);                                                                                    \
    KEEP(y);                                                                                       \
    b10 = _mm256_fmadd_ps(y, x0, b10);                                                             \
    b11 = _mm256_fmadd_ps(y, x1, b11);                                                             \
    y = LQ(q2);                                                                                    \
    KEEP(y);                                                                                       \
    b20 = _mm256_fmadd_ps(y, x0, b20);                                                             \
    b21 = _mm256_fmadd_ps(y, x1, b21);                                                             \
    y = LQ(q3);                                                                                    \
    KEEP(y);                                                                                       \
    b30 = _mm256_fmadd_ps(y, x0, b30);                                                             \
    b31 = _mm256_fmadd_ps(y, x1, b31);                                                             \
  } while (0)
  int d = 0;
#define LQ(qr) _mm256_loadu_ps(qr + d)
  for (; d + 8 <= D; d += 8) QK42(ldv(k0, d, t), ldv(k1, d, t), LQ);
#undef LQ
  if (d < D) {
    const int n = D - d;
#define LQ(qr) ldv_tail((const char *)(qr), d, PA_F32, n)
    QK42(ldv_tail(k0, d, t, n), ldv_tail(k1, d, t, n), LQ);
#undef LQ
  }
#undef QK42
  /* the tree puts its k-th input in lane (k even: k/2, odd: 4 + k/2) */
  __m256 f = red_c(red_b(red_a(b00, b20), red_a(b01, b21)), red_b(red_a(b10, b30), red_a(b11, b31)));
  __m128 lo = _mm256_castps256_ps128(f), hi = _mm256_extractf128_ps(f, 1);
  if (accumulate) {
    lo = _mm_add_ps(lo, _mm_loadh_pi(_mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(const void *)s),
                                     (const __m64 *)(const void *)(s + lds)));
    hi = _mm_add_ps(hi, _mm_loadh_pi(_mm_loadl_pi(_mm_setzero_ps(),
                                                  (const __m64 *)(const void *)(s + 2 * lds)),
                                     (const __m64 *)(const void *)(s + 3 * lds)));
  }
  _mm_storel_pi((__m64 *)(void *)s, lo);
  _mm_storeh_pi((__m64 *)(void *)(s + lds), lo);
  _mm_storel_pi((__m64 *)(void *)(s + 2 * lds), hi);
  _mm_storeh_pi((__m64 *)(void *)(s + 3 * lds), hi);
}

INLINE void qk_body(int R, int N, int D, const float *q, int64_t ldq, const char *const *kp,
                    pa_dtype t, float *s, int64_t lds, int accumulate) {
  int r = 0;
  for (; r + 4 <= R; r += 4) {
    int j = 0;
    for (; j + 2 <= N; j += 2)
      qk_4x2(D, q + r * ldq, ldq, kp + j, t, s + r * lds + j, lds, accumulate);
    for (; j < N; j++)
      for (int rr = r; rr < r + 4; rr++) {
        float v = dot1(D, q + rr * ldq, kp[j], t);
        s[rr * lds + j] = accumulate ? s[rr * lds + j] + v : v;
      }
  }
  for (; r + 2 <= R; r += 2) {
    int j = 0;
    for (; j + 4 <= N; j += 4)
      qk_2x4(D, q + r * ldq, q + (r + 1) * ldq, kp + j, t, s + r * lds + j, lds, accumulate);
    for (; j < N; j++)
      for (int rr = r; rr < r + 2; rr++) {
        float v = dot1(D, q + rr * ldq, kp[j], t);
        s[rr * lds + j] = accumulate ? s[rr * lds + j] + v : v;
      }
  }
  for (; r < R; r++) {
    int j = 0;
    for (; j + 8 <= N; j += 8) qk_1x8(D, q + r * ldq, kp + j, t, s + r * lds + j, accumulate);
    for (; j < N; j++) {
      float v = dot1(D, q + r * ldq, kp[j], t);
      s[r * lds + j] = accumulate ? s[r * lds + j] + v : v;
    }
  }
}

static void qk(int R, int N, int D, const float *q, int64_t ldq, const char *const *kp, pa_dtype kt,
               float *s, int64_t lds, int accumulate) {
  if (kt == PA_CPU_E4M3_LO)
    qk_body(R, N, D, q, ldq, kp, PA_CPU_E4M3_LO, s, lds, accumulate);
  else if (kt == PA_FP8_E4M3)
    qk_body(R, N, D, q, ldq, kp, PA_FP8_E4M3, s, lds, accumulate);
  else if (kt == PA_FP8_E5M2)
    qk_body(R, N, D, q, ldq, kp, PA_FP8_E5M2, s, lds, accumulate);
  else if (kt == PA_F16)
    qk_body(R, N, D, q, ldq, kp, PA_F16, s, lds, accumulate);
  else if (kt == PA_BF16)
    qk_body(R, N, D, q, ldq, kp, PA_BF16, s, lds, accumulate);
  else
    qk_body(R, N, D, q, ldq, kp, PA_F32, s, lds, accumulate);
}

/* R rows (1..4) x one 8-wide column block of O (n valid lanes). */
INLINE void pv_rows_x8(int R, int N, int d, int n, const float *p, int64_t ldp, int64_t pjs,
                       const char *const *vp, pa_dtype t, const float *alpha, float *o,
                       int64_t ldo) {
  const __m256i m = lane_mask(n);
  __m256 c[4];
  for (int r = 0; r < R; r++)
    c[r] = _mm256_mul_ps(_mm256_maskload_ps(o + r * ldo + d, m),
                         _mm256_set1_ps(alpha ? alpha[r] : 1.0f));
  for (int j = 0; j < N; j++) {
    __m256 x = n == 8 ? ldv(vp[j], d, t) : ldv_tail(vp[j], d, t, n);
    for (int r = 0; r < R; r++) c[r] = _mm256_fmadd_ps(_mm256_set1_ps(p[r * ldp + j * pjs]), x, c[r]);
  }
  for (int r = 0; r < R; r++) _mm256_maskstore_ps(o + r * ldo + d, m, c[r]);
}

/* One row x 64 dims (8 accumulators): a row of its own would otherwise wait
 * on one accumulator's FMA latency per key. Same order per element. */
INLINE void pv_1x64(int N, int d, const float *p, int64_t pjs, const char *const *vp, pa_dtype t,
                    float alpha, float *o) {
  __m256 c[8];
  const __m256 al = _mm256_set1_ps(alpha);
  for (int v = 0; v < 8; v++) c[v] = _mm256_mul_ps(_mm256_loadu_ps(o + d + 8 * v), al);
  for (int j = 0; j < N; j++) {
    const __m256 b = _mm256_set1_ps(p[j * pjs]);
    _Pragma("GCC unroll 8") for (int v = 0; v < 8; v++) c[v] =
        _mm256_fmadd_ps(b, ldv(vp[j], d + 8 * v, t), c[v]);
  }
  for (int v = 0; v < 8; v++) _mm256_storeu_ps(o + d + 8 * v, c[v]);
}

#define PV_ROW(r)                                                                                  \
  do {                                                                                             \
    __m256 b = _mm256_set1_ps(p##r[j * pjs]);                                                            \
    o##r##0 = _mm256_fmadd_ps(b, x0, o##r##0);                                                     \
    o##r##1 = _mm256_fmadd_ps(b, x1, o##r##1);                                                     \
  } while (0)
#define PV_LOAD(r)                                                                                 \
  __m256 o##r##0 = _mm256_mul_ps(_mm256_loadu_ps(or##r + d), al##r),                               \
         o##r##1 = _mm256_mul_ps(_mm256_loadu_ps(or##r + d + 8), al##r)
#define PV_STORE(r)                                                                                \
  _mm256_storeu_ps(or##r + d, o##r##0);                                                            \
  _mm256_storeu_ps(or##r + d + 8, o##r##1)

/* 6 rows x 16 dims (12 accumulators) for tiles of many rows: the 8 chains
 * of 4 x 16 only just cover the FMA latency (4 cycles x 2 pipes), so each
 * late V load stalled them (prefill, a quarter of its PV time in one FMA). */
INLINE void pv_6x16(int N, int D, const float *p, int64_t ldp, int64_t pjs, const char *const *vp,
                    pa_dtype t, const float *alpha, float *o, int64_t ldo) {
  const float *p0 = p, *p1 = p0 + ldp, *p2 = p1 + ldp, *p3 = p2 + ldp, *p4 = p3 + ldp,
              *p5 = p4 + ldp;
  float *or0 = o, *or1 = or0 + ldo, *or2 = or1 + ldo, *or3 = or2 + ldo, *or4 = or3 + ldo,
        *or5 = or4 + ldo;
#define AL(r) _mm256_set1_ps(alpha ? alpha[r] : 1.0f)
  int d = 0;
  for (; d + 16 <= D; d += 16) {
    const __m256 al0 = AL(0), al1 = AL(1), al2 = AL(2), al3 = AL(3), al4 = AL(4), al5 = AL(5);
    PV_LOAD(0);
    PV_LOAD(1);
    PV_LOAD(2);
    PV_LOAD(3);
    PV_LOAD(4);
    PV_LOAD(5);
    for (int j = 0; j < N; j++) {
      __m256 x0 = ldv(vp[j], d, t), x1 = ldv(vp[j], d + 8, t);
      PV_ROW(0);
      PV_ROW(1);
      PV_ROW(2);
      PV_ROW(3);
      PV_ROW(4);
      PV_ROW(5);
    }
    PV_STORE(0);
    PV_STORE(1);
    PV_STORE(2);
    PV_STORE(3);
    PV_STORE(4);
    PV_STORE(5);
  }
#undef AL
  for (; d < D; d += 8) {
    const int n = D - d < 8 ? D - d : 8;
    pv_rows_x8(4, N, d, n, p, ldp, pjs, vp, t, alpha, o, ldo);
    pv_rows_x8(2, N, d, n, p4, ldp, pjs, vp, t, alpha ? alpha + 4 : NULL, or4, ldo);
  }
}

INLINE void pv_body(int R, int N, int D, const float *p, int64_t ldp, int64_t pjs,
                    const char *const *vp, pa_dtype t, const float *alpha, float *o, int64_t ldo) {
  int r = 0;
  if (R >= 12)
    for (; r + 6 <= R; r += 6)
      pv_6x16(N, D, p + r * ldp, ldp, pjs, vp, t, alpha ? alpha + r : NULL, o + r * ldo, ldo);
  for (; r + 4 <= R; r += 4) {
    const float *p0 = p + r * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp, *p3 = p2 + ldp;
    float *or0 = o + r * ldo, *or1 = or0 + ldo, *or2 = or1 + ldo, *or3 = or2 + ldo;
    const __m256 al0 = _mm256_set1_ps(alpha ? alpha[r] : 1.0f),
                 al1 = _mm256_set1_ps(alpha ? alpha[r + 1] : 1.0f),
                 al2 = _mm256_set1_ps(alpha ? alpha[r + 2] : 1.0f),
                 al3 = _mm256_set1_ps(alpha ? alpha[r + 3] : 1.0f);
    int d = 0;
    for (; d + 16 <= D; d += 16) {
      PV_LOAD(0);
      PV_LOAD(1);
      PV_LOAD(2);
      PV_LOAD(3);
      for (int j = 0; j < N; j++) {
        __m256 x0 = ldv(vp[j], d, t), x1 = ldv(vp[j], d + 8, t);
        PV_ROW(0);
        PV_ROW(1);
        PV_ROW(2);
        PV_ROW(3);
      }
      PV_STORE(0);
      PV_STORE(1);
      PV_STORE(2);
      PV_STORE(3);
    }
    for (; d < D; d += 8)
      pv_rows_x8(4, N, d, D - d < 8 ? D - d : 8, p0, ldp, pjs, vp, t, alpha ? alpha + r : NULL, or0, ldo);
  }
  for (; r < R; r++) {
    int d = 0;
    for (; d + 64 <= D; d += 64)
      pv_1x64(N, d, p + r * ldp, pjs, vp, t, alpha ? alpha[r] : 1.0f, o + r * ldo);
    for (; d < D; d += 8)
      pv_rows_x8(1, N, d, D - d < 8 ? D - d : 8, p + r * ldp, ldp, pjs, vp, t, alpha ? alpha + r : NULL,
                 o + r * ldo, ldo);
  }
}

static void pv(int R, int N, int D, const float *p, int64_t prs, int64_t pjs, const char *const *vp,
               pa_dtype vt, const float *alpha, float *o, int64_t ldo) {
  if (vt == PA_CPU_E4M3_LO)
    pv_body(R, N, D, p, prs, pjs, vp, PA_CPU_E4M3_LO, alpha, o, ldo);
  else if (vt == PA_FP8_E4M3)
    pv_body(R, N, D, p, prs, pjs, vp, PA_FP8_E4M3, alpha, o, ldo);
  else if (vt == PA_FP8_E5M2)
    pv_body(R, N, D, p, prs, pjs, vp, PA_FP8_E5M2, alpha, o, ldo);
  else if (vt == PA_F16)
    pv_body(R, N, D, p, prs, pjs, vp, PA_F16, alpha, o, ldo);
  else if (vt == PA_BF16)
    pv_body(R, N, D, p, prs, pjs, vp, PA_BF16, alpha, o, ldo);
  else
    pv_body(R, N, D, p, prs, pjs, vp, PA_F32, alpha, o, ldo);
}

/* Transposed scores for tiles of many rows (the driver's prefill path, f32
 * key rows converted once per block): st[j][r] accumulates k_j[d]
 * (broadcast from memory) x qt[d][r..r+8) over d, NV row vectors x KG keys
 * of accumulators (3 x 4: 12 accumulators + 3 Q vectors + 1 broadcast of the
 * 16 ymm). No reduction across lanes; every score sums over d in order,
 * whatever its tile. */
#define DEF_QKT(NV, KG)                                                                            \
  static void qkt_##NV##_##KG(int D, const float *qt, int64_t ldqt, const float *const *kp,        \
                              int d0, float *st, int64_t ldst, int accumulate) {                   \
    __m256 a[KG][NV];                                                                              \
    const float *k[KG];                                                                            \
    _Pragma("GCC unroll 4") for (int c = 0; c < KG; c++) {                                         \
      k[c] = kp[c] + d0;                                                                           \
      _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) a[c][v] = _mm256_setzero_ps();          \
    }                                                                                              \
    for (int d = 0; d < D; d++) {                                                                  \
      __m256 y[NV];                                                                                \
      _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) y[v] =                                  \
          _mm256_loadu_ps(qt + d * ldqt + 8 * v);                                                  \
      _Pragma("GCC unroll 4") for (int c = 0; c < KG; c++) {                                       \
        const __m256 b = _mm256_broadcast_ss(k[c] + d);                                            \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) a[c][v] =                             \
            _mm256_fmadd_ps(b, y[v], a[c][v]);                                                     \
      }                                                                                            \
    }                                                                                              \
    _Pragma("GCC unroll 4") for (int c = 0; c < KG; c++)                                           \
        _Pragma("GCC unroll 3") for (int v = 0; v < NV; v++) {                                     \
      float *o = st + c * ldst + 8 * v;                                                            \
      _mm256_storeu_ps(o, accumulate ? _mm256_add_ps(_mm256_loadu_ps(o), a[c][v]) : a[c][v]);      \
    }                                                                                              \
  }
DEF_QKT(3, 4)
DEF_QKT(2, 4)
DEF_QKT(1, 4)
DEF_QKT(3, 1)
DEF_QKT(2, 1)
DEF_QKT(1, 1)

/* d goes in chunks of QKT_DC so one chunk of Q^T (24 rows) and of the
 * block's K rows stay in L1 together; partial sums add up chunk by chunk. */
#define QKT_DC 64

static void qk_t(int R, int N, int D, const float *qt, int64_t ldqt, const float *const *kp,
                 float *st, int64_t ldst, int accumulate) {
  for (int dc = 0; dc < D; dc += QKT_DC) {
    const int dn = D - dc < QKT_DC ? D - dc : QKT_DC, acc = accumulate || dc > 0;
    for (int r0 = 0; r0 < R; r0 += 24) {
      const int nv = (R - r0 + 7) / 8 < 3 ? (R - r0 + 7) / 8 : 3;
      const float *q = qt + (int64_t)dc * ldqt + r0;
      float *o = st + r0;
      int j = 0;
      switch (nv) {
      case 3:
        for (; j + 4 <= N; j += 4) qkt_3_4(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        for (; j < N; j++) qkt_3_1(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        break;
      case 2:
        for (; j + 4 <= N; j += 4) qkt_2_4(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        for (; j < N; j++) qkt_2_1(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        break;
      default:
        for (; j + 4 <= N; j += 4) qkt_1_4(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        for (; j < N; j++) qkt_1_1(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        break;
      }
    }
  }
}

/* exp for x <= 0 (cephes expf polynomial, 2^n built in the exponent
 * field); below -87.3 (and -inf) gives 0. */
INLINE __m256 exp256(__m256 x) {
  const __m256 under = _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), r);
  y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

INLINE float hmax(__m256 v) {
  __m128 c = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  c = _mm_max_ps(c, _mm_movehl_ps(c, c));
  return _mm_cvtss_f32(_mm_max_ss(c, _mm_shuffle_ps(c, c, 1)));
}

static void softmax(int R, int N, float *s, int64_t lds, float *m, float *l, float *alpha) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY);
  for (int r = 0; r < R; r++) {
    float *row = s + r * lds;
    __m256 vm = ninf;
    int j = 0;
    for (; j + 8 <= N; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(row + j));
    float mx = hmax(vm);
    for (int x = j; x < N; x++) mx = row[x] > mx ? row[x] : mx;
    if (m[r] > mx) mx = m[r];
    if (mx == -INFINITY) {
      for (j = 0; j < N; j++) row[j] = 0.0f;
      alpha[r] = 1.0f;
      continue;
    }
    const __m256 vmx = _mm256_set1_ps(mx);
    __m256 vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= N; j += 8) {
      __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(row + j), vmx));
      _mm256_storeu_ps(row + j, e);
      vs = _mm256_add_ps(vs, e);
    }
    if (j < N) {
      const __m256i k = lane_mask(N - j);
      __m256 x = _mm256_blendv_ps(ninf, _mm256_maskload_ps(row + j, k), _mm256_castsi256_ps(k));
      __m256 e = exp256(_mm256_sub_ps(x, vmx));
      _mm256_maskstore_ps(row + j, k, e);
      vs = _mm256_add_ps(vs, e);
    }
    alpha[r] = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx);
    l[r] = l[r] * alpha[r] + red1(vs);
    m[r] = mx;
  }
}

/* softmax() on transposed scores: 8 rows per vector, max and sum run down
 * the keys, so no horizontal reductions. Rows R..Rp of st are padding. */
static void softmax_t(int R, int N, float *st, int64_t ldst, float *m, float *l, float *alpha) {
  const __m256 ninf = _mm256_set1_ps(-INFINITY), zero = _mm256_setzero_ps(),
               one = _mm256_set1_ps(1.0f);
  for (int r0 = 0; r0 < R; r0 += 8) {
    const int nr = R - r0 < 8 ? R - r0 : 8;
    const __m256i k = lane_mask(nr);
    const __m256 mo = _mm256_blendv_ps(ninf, _mm256_maskload_ps(m + r0, k), _mm256_castsi256_ps(k));
    __m256 mx = mo;
    for (int j = 0; j < N; j++) mx = _mm256_max_ps(mx, _mm256_loadu_ps(st + j * ldst + r0));
    const __m256 empty = _mm256_cmp_ps(mx, ninf, _CMP_EQ_OQ);
    const __m256 ms = _mm256_blendv_ps(mx, zero, empty); /* exp(-inf - 0) = 0 */
    __m256 sum = zero;
    for (int j = 0; j < N; j++) {
      __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(st + j * ldst + r0), ms));
      _mm256_storeu_ps(st + j * ldst + r0, e);
      sum = _mm256_add_ps(sum, e);
    }
    const __m256 al = _mm256_blendv_ps(exp256(_mm256_sub_ps(mo, ms)), one, empty);
    const __m256 lo = _mm256_maskload_ps(l + r0, k);
    _mm256_maskstore_ps(l + r0, k, _mm256_fmadd_ps(lo, al, sum));
    _mm256_maskstore_ps(m + r0, k, mx);
    _mm256_maskstore_ps(alpha + r0, k, al);
  }
}

static void load(pa_dtype t, const void *src, float *dst, int64_t n, float scale) {
  const __m256 sc = _mm256_set1_ps(scale);
  const char *p = src;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_mul_ps(sc, ldv(p, i, t)));
  if (i < n)
    _mm256_maskstore_ps(dst + i, lane_mask((int)(n - i)),
                        _mm256_mul_ps(sc, ldv_tail(p, i, t, (int)(n - i))));
}

/* f32 -> bf16, nearest even; NaN stays a quiet NaN (as convert.h). */
INLINE __m128i to_bf16(__m256 v) {
  __m256i u = _mm256_castps_si256(v);
  __m256i hi = _mm256_srli_epi32(u, 16);
  __m256i lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
  __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, _mm256_set1_epi32(0x40)), nan);
  r = _mm256_packus_epi32(r, r); /* per 128-bit lane; values fit in 16 bits */
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(r, 0x08));
}

static void store(pa_dtype t, const float *src, void *dst, int64_t n, float scale) {
  const __m256 sc = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_mul_ps(sc, _mm256_loadu_ps(src + i));
    if (t == PA_F16)
      _mm_storeu_si128((__m128i *)(void *)((uint16_t *)dst + i),
                       _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    else if (t == PA_BF16)
      _mm_storeu_si128((__m128i *)(void *)((uint16_t *)dst + i), to_bf16(v));
    else
      _mm256_storeu_ps((float *)dst + i, v);
  }
  for (; i < n; i++) {
    float x = scale * src[i];
    if (t == PA_F16)
      ((uint16_t *)dst)[i] = pa_f32_to_f16(x);
    else if (t == PA_BF16)
      ((uint16_t *)dst)[i] = pa_f32_to_bf16(x);
    else
      ((float *)dst)[i] = x;
  }
}

const pa_cpu_kernels pa_cpu_kernels_avx2 = {"avx2", qk, pv, softmax, qk_t, softmax_t, load, store, NULL,
    pa_fp8_quantize_avx2, pa_e4m3_nan_avx2};

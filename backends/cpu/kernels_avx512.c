/* AVX-512 (F, BW, VL, DQ) kernels. Built with its own -mavx512* flags and
 * only called after isa.c saw the CPU and OS support it.
 *
 * QK: a 4-row x 4-key tile of dot products, 16 zmm accumulators over d,
 * then one transposing reduction tree (45 shuffles/adds for 16 sums) whose
 * per-sum order equals red1()'s, so tails and full tiles round alike.
 * PV: a 4-row x 64-dim tile of O in 16 zmm, one V row (4 vectors) and
 * 4 broadcast P values per key. Tails of d use masked loads. */
#include <immintrin.h>
#include <math.h>

#include "convert.h"
#include "fp8_avx2.h"
#include "kernels.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __mmask16 tmask(int n) { return (__mmask16)((1u << n) - 1u); }

/* fp8 -> f32 through f16, as in kernels_avx2.c: e5m2 is an f16's top byte;
 * e4m3 sits in an f16 at 2^-8 of its value, NaN codes patched in. Exact. */
INLINE __m512 cvt_e5m2(__m128i b) {
  return _mm512_cvtph_ps(_mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8));
}
INLINE __m512 cvt_e4m3(__m128i b) {
  /* code << 8 shifted right arithmetically by 1, the sign's copy in bit 14
   * cleared: an f16 at 2^-8 of the value (kernels_avx2.c) */
  const __m256i h = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(_mm256_cvtepu8_epi16(b), 8), 1),
                                     _mm256_set1_epi16((short)0xbfff));
  const __m512 f = _mm512_mul_ps(_mm512_cvtph_ps(h), _mm512_set1_ps(256.0f));
  const __mmask16 nan = _mm512_cmp_ps_mask(_mm512_abs_ps(f), _mm512_set1_ps(480.0f), _CMP_EQ_OQ);
  return _mm512_mask_mov_ps(f, nan, _mm512_set1_ps(NAN)); /* only NaN codes land on +-480 */
}

/* PA_CPU_E4M3_LO (kernels.h): the code sign-extended to 16 bits and shifted
 * left by 7 leaves sign at bit 15 and exponent and mantissa at bits 13..7;
 * bit 14 (a copy of the sign) cleared, an f16 at 2^-8 of the value. */
INLINE __m512 cvt_e4m3_lo(__m128i b) {
  return _mm512_cvtph_ps(_mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(b), 7),
                                          _mm256_set1_epi16((short)0xbfff)));
}

/* pa_e4m3_nan_avx2 (fp8_avx2.h) on 64-byte vectors. */
static int e4m3_nan(const char *const *rows, int n, int64_t bytes) {
  const __m512i hi = _mm512_set1_epi8((char)0x80);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0;
  const int64_t b128 = bytes & ~(int64_t)127;
  for (int j = 0; j < n; j++) {
    const char *p = rows[j];
    int64_t x = 0;
    for (; x < b128; x += 128) {
      a0 = _mm512_max_epu8(a0, _mm512_or_si512(_mm512_loadu_si512(p + x), hi));
      a1 = _mm512_max_epu8(a1, _mm512_or_si512(_mm512_loadu_si512(p + x + 64), hi));
    }
    for (; x < bytes; x += 64) {
      const __mmask64 m = bytes - x >= 64 ? ~(__mmask64)0 : ((__mmask64)1 << (bytes - x)) - 1;
      a0 = _mm512_max_epu8(a0, _mm512_or_si512(_mm512_maskz_loadu_epi8(m, p + x), hi));
    }
  }
  return _mm512_cmpeq_epi8_mask(_mm512_max_epu8(a0, a1), _mm512_set1_epi8((char)0xff)) != 0;
}

INLINE __m512 ldv(const char *p, int64_t i, pa_dtype t) {
  if (t == PA_CPU_E4M3_LO)
    return cvt_e4m3_lo(_mm_loadu_si128((const __m128i *)(const void *)(p + i)));
  if (t == PA_FP8_E4M3) return cvt_e4m3(_mm_loadu_si128((const __m128i *)(const void *)(p + i)));
  if (t == PA_FP8_E5M2) return cvt_e5m2(_mm_loadu_si128((const __m128i *)(const void *)(p + i)));
  if (t == PA_F16) return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i)));
  if (t == PA_BF16)
    return _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)(p + 2 * i))), 16));
  return _mm512_loadu_ps((const float *)(const void *)p + i);
}

INLINE __m512 ldvm(const char *p, int64_t i, pa_dtype t, __mmask16 k) {
  if (t == PA_CPU_E4M3_LO) return cvt_e4m3_lo(_mm_maskz_loadu_epi8(k, p + i));
  if (t == PA_FP8_E4M3) return cvt_e4m3(_mm_maskz_loadu_epi8(k, p + i));
  if (t == PA_FP8_E5M2) return cvt_e5m2(_mm_maskz_loadu_epi8(k, p + i));
  if (t == PA_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p + 2 * i));
  if (t == PA_BF16)
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p + 2 * i)), 16));
  return _mm512_maskz_loadu_ps(k, (const float *)(const void *)p + i);
}

INLINE float red1(__m512 v) {
  __m256 t = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 c = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  __m128 e = _mm_add_ps(c, _mm_movehl_ps(c, c));
  return _mm_cvtss_f32(_mm_add_ss(e, _mm_shuffle_ps(e, e, 1)));
}

INLINE __m512 red_l1(__m512 u, __m512 v) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(u, v, 0x44), _mm512_shuffle_f32x4(u, v, 0xEE));
}
INLINE __m512 red_l2(__m512 u, __m512 v) {
  return _mm512_add_ps(_mm512_shuffle_f32x4(u, v, 0x88), _mm512_shuffle_f32x4(u, v, 0xDD));
}
INLINE __m512 red_l3(__m512 u, __m512 v) {
  return _mm512_add_ps(_mm512_shuffle_ps(u, v, 0x44), _mm512_shuffle_ps(u, v, 0xEE));
}
INLINE __m512 red_l4(__m512 u, __m512 v) {
  return _mm512_add_ps(_mm512_shuffle_ps(u, v, 0x88), _mm512_shuffle_ps(u, v, 0xDD));
}

/* acc a<c><r>: key c, row r. The tree leaves S[r][c] in lane 4r + c. */
#define QK_FMA4(y, r, x0, x1, x2, x3)                                                              \
  a0##r = _mm512_fmadd_ps(y, x0, a0##r);                                                           \
  a1##r = _mm512_fmadd_ps(y, x1, a1##r);                                                           \
  a2##r = _mm512_fmadd_ps(y, x2, a2##r);                                                           \
  a3##r = _mm512_fmadd_ps(y, x3, a3##r)

#define QK_STEP(LDK, LDQ)                                                                          \
  do {                                                                                             \
    __m512 x0 = LDK(k0), x1 = LDK(k1), x2 = LDK(k2), x3 = LDK(k3), y;                              \
    y = LDQ(q0);                                                                                   \
    QK_FMA4(y, 0, x0, x1, x2, x3);                                                                 \
    y = LDQ(q1);                                                                                   \
    QK_FMA4(y, 1, x0, x1, x2, x3);                                                                 \
    y = LDQ(q2);                                                                                   \
    QK_FMA4(y, 2, x0, x1, x2, x3);                                                                 \
    y = LDQ(q3);                                                                                   \
    QK_FMA4(y, 3, x0, x1, x2, x3);                                                                 \
  } while (0)

INLINE void qk_4x4(int D, const float *q, int64_t ldq, const char *const *kp, pa_dtype t, float *s,
                   int64_t lds, int accumulate) {
  const float *q0 = q, *q1 = q + ldq, *q2 = q + 2 * ldq, *q3 = q + 3 * ldq;
  const char *k0 = kp[0], *k1 = kp[1], *k2 = kp[2], *k3 = kp[3];
  __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00,
         a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00,
         a32 = a00, a33 = a00;
  int d = 0;
#define LDK(k) ldv(k, d, t)
#define LDQ(qr) _mm512_loadu_ps(qr + d)
  for (; d + 16 <= D; d += 16) QK_STEP(LDK, LDQ);
#undef LDK
#undef LDQ
  if (d < D) {
    const __mmask16 m = tmask(D - d);
#define LDK(k) ldvm(k, d, t, m)
#define LDQ(qr) _mm512_maskz_loadu_ps(m, qr + d)
    QK_STEP(LDK, LDQ);
#undef LDK
#undef LDQ
  }
  __m512 w0 = red_l1(a00, a01), w1 = red_l1(a02, a03), w2 = red_l1(a10, a11),
         w3 = red_l1(a12, a13), w4 = red_l1(a20, a21), w5 = red_l1(a22, a23),
         w6 = red_l1(a30, a31), w7 = red_l1(a32, a33);
  __m512 z0 = red_l2(w0, w1), z1 = red_l2(w2, w3), z2 = red_l2(w4, w5), z3 = red_l2(w6, w7);
  __m512 f = red_l4(red_l3(z0, z1), red_l3(z2, z3));
  __m128 r0 = _mm512_castps512_ps128(f), r1 = _mm512_extractf32x4_ps(f, 1),
         r2 = _mm512_extractf32x4_ps(f, 2), r3 = _mm512_extractf32x4_ps(f, 3);
  if (accumulate) {
    r0 = _mm_add_ps(r0, _mm_loadu_ps(s));
    r1 = _mm_add_ps(r1, _mm_loadu_ps(s + lds));
    r2 = _mm_add_ps(r2, _mm_loadu_ps(s + 2 * lds));
    r3 = _mm_add_ps(r3, _mm_loadu_ps(s + 3 * lds));
  }
  _mm_storeu_ps(s, r0);
  _mm_storeu_ps(s + lds, r1);
  _mm_storeu_ps(s + 2 * lds, r2);
  _mm_storeu_ps(s + 3 * lds, r3);
}

/* One dot product: the order red1() fixes, same as a lane of the tree. */
INLINE float dot1(int D, const float *q, const char *k, pa_dtype t) {
  __m512 a = _mm512_setzero_ps();
  int d = 0;
  for (; d + 16 <= D; d += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), ldv(k, d, t), a);
  if (d < D) {
    const __mmask16 m = tmask(D - d);
    a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), ldvm(k, d, t, m), a);
  }
  return red1(a);
}

INLINE void qk_body(int R, int N, int D, const float *q, int64_t ldq, const char *const *kp,
                    pa_dtype t, float *s, int64_t lds, int accumulate) {
  int r = 0;
  for (; r + 4 <= R; r += 4) {
    int j = 0;
    for (; j + 4 <= N; j += 4) qk_4x4(D, q + r * ldq, ldq, kp + j, t, s + r * lds + j, lds, accumulate);
    for (; j < N; j++)
      for (int rr = r; rr < r + 4; rr++) {
        float v = dot1(D, q + rr * ldq, kp[j], t);
        s[rr * lds + j] = accumulate ? s[rr * lds + j] + v : v;
      }
  }
  for (; r < R; r++)
    for (int j = 0; j < N; j++) {
      float v = dot1(D, q + r * ldq, kp[j], t);
      s[r * lds + j] = accumulate ? s[r * lds + j] + v : v;
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


/* Transposed scores for tiles of many rows: st[j][r] accumulates
 * k_j[d] (broadcast) x qt[d][r..r+16) over d, NV row vectors x KG keys of
 * accumulators. No reduction across lanes; every score sums over d in
 * order, whatever its tile. */
#define DEF_QKT(NV, KG)                                                                            \
  static void qkt_##NV##_##KG(int D, const float *qt, int64_t ldqt, const float *const *kp,        \
                              int d0, float *st, int64_t ldst, int accumulate) {                   \
    __m512 a[KG][NV];                                                                              \
    const float *k[KG];                                                                            \
    _Pragma("GCC unroll 16") for (int c = 0; c < KG; c++) {                                        \
      k[c] = kp[c] + d0;                                                                           \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[c][v] = _mm512_setzero_ps();          \
    }                                                                                              \
    for (int d = 0; d < D; d++) {                                                                  \
      __m512 y[NV];                                                                                \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) y[v] =                                  \
          _mm512_loadu_ps(qt + d * ldqt + 16 * v);                                                 \
      _Pragma("GCC unroll 16") for (int c = 0; c < KG; c++) {                                      \
        const __m512 b = _mm512_set1_ps(k[c][d]);                                                  \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[c][v] =                             \
            _mm512_fmadd_ps(b, y[v], a[c][v]);                                                     \
      }                                                                                            \
    }                                                                                              \
    _Pragma("GCC unroll 16") for (int c = 0; c < KG; c++)                                          \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                       \
        float *o = st + c * ldst + 16 * v;                                                         \
        _mm512_storeu_ps(o, accumulate ? _mm512_add_ps(_mm512_loadu_ps(o), a[c][v]) : a[c][v]);    \
      }                                                                                            \
  }
DEF_QKT(4, 4)
DEF_QKT(3, 5)
DEF_QKT(2, 8)
DEF_QKT(1, 8)
DEF_QKT(4, 1)
DEF_QKT(3, 1)
DEF_QKT(2, 1)
DEF_QKT(1, 1)

/* d goes in chunks of QKT_DC so one chunk of Q^T (64 rows) and of the
 * block's K rows stay in L1 together; partial sums add up chunk by chunk. */
#define QKT_DC 64

static void qk_t(int R, int N, int D, const float *qt, int64_t ldqt, const float *const *kp,
                 float *st, int64_t ldst, int accumulate) {
  for (int dc = 0; dc < D; dc += QKT_DC) {
    const int dn = D - dc < QKT_DC ? D - dc : QKT_DC, acc = accumulate || dc > 0;
    for (int r0 = 0; r0 < R; r0 += 64) {
      const int nv = (R - r0 + 15) / 16 < 4 ? (R - r0 + 15) / 16 : 4;
      const float *q = qt + (int64_t)dc * ldqt + r0;
      float *o = st + r0;
      int j = 0;
      switch (nv) {
      case 4:
        for (; j + 4 <= N; j += 4) qkt_4_4(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        for (; j < N; j++) qkt_4_1(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        break;
      case 3:
        for (; j + 5 <= N; j += 5) qkt_3_5(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        for (; j < N; j++) qkt_3_1(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        break;
      case 2:
        for (; j + 8 <= N; j += 8) qkt_2_8(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        for (; j < N; j++) qkt_2_1(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        break;
      default:
        for (; j + 8 <= N; j += 8) qkt_1_8(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        for (; j < N; j++) qkt_1_1(dn, q, ldqt, kp + j, dc, o + j * ldst, ldst, acc);
        break;
      }
    }
  }
}

/* O tile of 4 rows x 64 dims: o<r><v>. */
#define PV_ROW(r)                                                                                  \
  do {                                                                                             \
    __m512 b = _mm512_set1_ps(p##r[j * pjs]);                                                            \
    o##r##0 = _mm512_fmadd_ps(b, x0, o##r##0);                                                     \
    o##r##1 = _mm512_fmadd_ps(b, x1, o##r##1);                                                     \
    o##r##2 = _mm512_fmadd_ps(b, x2, o##r##2);                                                     \
    o##r##3 = _mm512_fmadd_ps(b, x3, o##r##3);                                                     \
  } while (0)
#define PV_LOAD(r)                                                                                 \
  __m512 o##r##0 = _mm512_mul_ps(_mm512_loadu_ps(or##r + d), al##r),                               \
         o##r##1 = _mm512_mul_ps(_mm512_loadu_ps(or##r + d + 16), al##r),                          \
         o##r##2 = _mm512_mul_ps(_mm512_loadu_ps(or##r + d + 32), al##r),                          \
         o##r##3 = _mm512_mul_ps(_mm512_loadu_ps(or##r + d + 48), al##r)
#define PV_STORE(r)                                                                                \
  _mm512_storeu_ps(or##r + d, o##r##0);                                                            \
  _mm512_storeu_ps(or##r + d + 16, o##r##1);                                                       \
  _mm512_storeu_ps(or##r + d + 32, o##r##2);                                                       \
  _mm512_storeu_ps(or##r + d + 48, o##r##3)

/* d chunks outer, row groups inner: one 64-wide chunk of the block's V rows
 * stays in L1 while every row group passes over it. */
INLINE void pv_body(int R, int N, int D, const float *p, int64_t ldp, int64_t pjs,
                    const char *const *vp, pa_dtype t, const float *alpha, float *o, int64_t ldo) {
  const int R4 = R & ~3;
  int d = 0;
  for (; d + 64 <= D; d += 64)
    for (int r = 0; r < R4; r += 4) {
      const float *p0 = p + r * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp, *p3 = p2 + ldp;
      float *or0 = o + r * ldo, *or1 = or0 + ldo, *or2 = or1 + ldo, *or3 = or2 + ldo;
      const __m512 al0 = _mm512_set1_ps(alpha ? alpha[r] : 1.0f),
                   al1 = _mm512_set1_ps(alpha ? alpha[r + 1] : 1.0f),
                   al2 = _mm512_set1_ps(alpha ? alpha[r + 2] : 1.0f),
                   al3 = _mm512_set1_ps(alpha ? alpha[r + 3] : 1.0f);
      PV_LOAD(0);
      PV_LOAD(1);
      PV_LOAD(2);
      PV_LOAD(3);
      for (int j = 0; j < N; j++) {
        const char *v = vp[j];
        __m512 x0 = ldv(v, d, t), x1 = ldv(v, d + 16, t), x2 = ldv(v, d + 32, t),
               x3 = ldv(v, d + 48, t);
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
  for (; d < D; d += 16) { /* the last < 64 dims, one vector at a time */
    const __mmask16 m = tmask(D - d < 16 ? D - d : 16);
    for (int r = 0; r < R4; r += 4) {
      const float *p0 = p + r * ldp, *p1 = p0 + ldp, *p2 = p1 + ldp, *p3 = p2 + ldp;
      float *or0 = o + r * ldo, *or1 = or0 + ldo, *or2 = or1 + ldo, *or3 = or2 + ldo;
      __m512 c0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, or0 + d), _mm512_set1_ps(alpha ? alpha[r] : 1.0f)),
             c1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, or1 + d), _mm512_set1_ps(alpha ? alpha[r + 1] : 1.0f)),
             c2 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, or2 + d), _mm512_set1_ps(alpha ? alpha[r + 2] : 1.0f)),
             c3 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, or3 + d), _mm512_set1_ps(alpha ? alpha[r + 3] : 1.0f));
      for (int j = 0; j < N; j++) {
        __m512 x = ldvm(vp[j], d, t, m);
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(p0[j * pjs]), x, c0);
        c1 = _mm512_fmadd_ps(_mm512_set1_ps(p1[j * pjs]), x, c1);
        c2 = _mm512_fmadd_ps(_mm512_set1_ps(p2[j * pjs]), x, c2);
        c3 = _mm512_fmadd_ps(_mm512_set1_ps(p3[j * pjs]), x, c3);
      }
      _mm512_mask_storeu_ps(or0 + d, m, c0);
      _mm512_mask_storeu_ps(or1 + d, m, c1);
      _mm512_mask_storeu_ps(or2 + d, m, c2);
      _mm512_mask_storeu_ps(or3 + d, m, c3);
    }
  }
  for (int r = R4; r < R; r++) {
    const float *p0 = p + r * ldp;
    float *or0 = o + r * ldo;
    const __m512 al0 = _mm512_set1_ps(alpha ? alpha[r] : 1.0f);
    for (int dd = 0; dd < D; dd += 16) {
      const __mmask16 m = tmask(D - dd < 16 ? D - dd : 16);
      __m512 c0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, or0 + dd), al0);
      for (int j = 0; j < N; j++)
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(p0[j * pjs]), ldvm(vp[j], dd, t, m), c0);
      _mm512_mask_storeu_ps(or0 + dd, m, c0);
    }
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

/* exp for x <= 0 (cephes expf polynomial; 2^n by scalef); below -87.3
 * (and -inf) gives 0. */
INLINE __m512 exp512(__m512 x) {
  const __mmask16 under = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), r);
  y = _mm512_add_ps(y, _mm512_set1_ps(1.0f));
  return _mm512_maskz_mov_ps((__mmask16)~under, _mm512_scalef_ps(y, n));
}

static void softmax(int R, int N, float *s, int64_t lds, float *m, float *l, float *alpha) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  for (int r = 0; r < R; r++) {
    float *row = s + r * lds;
    __m512 vm = ninf;
    int j = 0;
    for (; j + 16 <= N; j += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(row + j));
    if (j < N) vm = _mm512_max_ps(vm, _mm512_mask_loadu_ps(ninf, tmask(N - j), row + j));
    float mx = _mm512_reduce_max_ps(vm);
    if (m[r] > mx) mx = m[r];
    if (mx == -INFINITY) {
      for (j = 0; j < N; j++) row[j] = 0.0f;
      alpha[r] = 1.0f;
      continue;
    }
    const __m512 vmx = _mm512_set1_ps(mx);
    __m512 vs = _mm512_setzero_ps();
    for (j = 0; j + 16 <= N; j += 16) {
      __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(row + j), vmx));
      _mm512_storeu_ps(row + j, e);
      vs = _mm512_add_ps(vs, e);
    }
    if (j < N) {
      const __mmask16 k = tmask(N - j);
      __m512 e = exp512(_mm512_sub_ps(_mm512_mask_loadu_ps(ninf, k, row + j), vmx));
      _mm512_mask_storeu_ps(row + j, k, e);
      vs = _mm512_add_ps(vs, e);
    }
    alpha[r] = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx);
    l[r] = l[r] * alpha[r] + _mm512_reduce_add_ps(vs);
    m[r] = mx;
  }
}


/* softmax() on transposed scores: 16 rows per vector, max and sum run
 * down the keys, so no horizontal reductions. */
static void softmax_t(int R, int N, float *st, int64_t ldst, float *m, float *l, float *alpha) {
  const __m512 ninf = _mm512_set1_ps(-INFINITY), zero = _mm512_setzero_ps(),
               one = _mm512_set1_ps(1.0f);
  for (int r0 = 0; r0 < R; r0 += 16) {
    const __mmask16 k = tmask(R - r0 < 16 ? R - r0 : 16);
    const __m512 mo = _mm512_mask_loadu_ps(ninf, k, m + r0);
    __m512 mx = mo;
    for (int j = 0; j < N; j++) mx = _mm512_max_ps(mx, _mm512_loadu_ps(st + j * ldst + r0));
    const __mmask16 empty = _mm512_cmp_ps_mask(mx, ninf, _CMP_EQ_OQ);
    const __m512 ms = _mm512_mask_mov_ps(mx, empty, zero); /* exp(-inf - 0) = 0 */
    __m512 sum = zero;
    for (int j = 0; j < N; j++) {
      __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(st + j * ldst + r0), ms));
      _mm512_storeu_ps(st + j * ldst + r0, e);
      sum = _mm512_add_ps(sum, e);
    }
    const __m512 al = _mm512_mask_mov_ps(exp512(_mm512_sub_ps(mo, ms)), empty, one);
    const __m512 lo = _mm512_maskz_loadu_ps(k, l + r0);
    _mm512_mask_storeu_ps(l + r0, k, _mm512_fmadd_ps(lo, al, sum));
    _mm512_mask_storeu_ps(m + r0, k, mx);
    _mm512_mask_storeu_ps(alpha + r0, k, al);
  }
}

static void load(pa_dtype t, const void *src, float *dst, int64_t n, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  const char *p = src;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(dst + i, _mm512_mul_ps(sc, ldv(p, i, t)));
  if (i < n) {
    const __mmask16 k = tmask((int)(n - i));
    _mm512_mask_storeu_ps(dst + i, k, _mm512_mul_ps(sc, ldvm(p, i, t, k)));
  }
}

/* f32 -> bf16, nearest even; NaN stays a quiet NaN (as convert.h). */
INLINE __m256i to_bf16(__m512 v) {
  __m512i u = _mm512_castps_si512(v);
  __m512i hi = _mm512_srli_epi32(u, 16);
  __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

static void store(pa_dtype t, const float *src, void *dst, int64_t n, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = tmask(n - i < 16 ? (int)(n - i) : 16);
    __m512 v = _mm512_mul_ps(sc, _mm512_maskz_loadu_ps(k, src + i));
    if (t == PA_F16)
      _mm256_mask_storeu_epi16((uint16_t *)dst + i, k,
                               _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    else if (t == PA_BF16)
      _mm256_mask_storeu_epi16((uint16_t *)dst + i, k, to_bf16(v));
    else
      _mm512_mask_storeu_ps((float *)dst + i, k, v);
  }
}

const pa_cpu_kernels pa_cpu_kernels_avx512 = {
    "avx512", qk, pv, softmax, qk_t, softmax_t, load, store, NULL, pa_fp8_quantize_avx2, e4m3_nan};

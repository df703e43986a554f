/* AVX-512 BF16 (vdpbf16ps) for prefill tiles with bf16 K and V: each
 * instruction does 32 multiply-adds (pairs of bf16 products summed into 16
 * f32 lanes), twice the f32 FMA rate, and the K rows are read as they are
 * in the cache (no conversion). Q (pre-scaled) and P are rounded to bf16
 * for the products; sums stay f32. Built with -mavx512bf16 and only called
 * after isa.c saw the CPU flag (CPUID.(7,1):EAX[5]).
 *
 * QK: the transposed scores st[j][r], 4 vectors of 16 rows x 4 keys (16
 * zmm accumulators); Q^T packed as bf16 pairs qp[t][r] = (q[r][2t],
 * q[r][2t+1]), each key's pair (k[2t], k[2t+1]) broadcast as one dword.
 * PV: O tiles of 4 rows x 64 dims (16 accumulators); V packed per block as
 * pairs of keys vp[t][d] = (v[2t][d], v[2t+1][d]), P as pairs pp[t][r].
 * Every score and O element sums its pairs in one order fixed by the key
 * and dim indices (not by the tile), so results do not depend on tiling. */
#include <immintrin.h>
#include <stdint.h>

#include "kernels.h"

#define INLINE static inline __attribute__((always_inline))

INLINE __mmask16 tmask(int n) { return (__mmask16)((1u << n) - 1u); }

INLINE __m512bh as_bh(__m512i v) { return (__m512bh)v; }

/* st[j][r0 + 16v] (+)= sum over pairs t < T of qp[t][.] . kpair_j[t];
 * odd D: the last pair holds one element (Q's second half is zero, and the
 * key's second half is never read). */
#define DEF_QKB(NV, KG)                                                                            \
  static void qkb_##NV##_##KG(int D, int t0, const uint32_t *qp, int64_t ldqp,                     \
                              const char *const *kp, float *st, int64_t ldst, int accumulate) {    \
    __m512 a[KG][NV];                                                                              \
    const uint16_t *k[KG];                                                                         \
    _Pragma("GCC unroll 4") for (int c = 0; c < KG; c++) {                                         \
      k[c] = (const uint16_t *)(const void *)kp[c];                                                \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[c][v] = _mm512_setzero_ps();          \
    }                                                                                              \
    const int T = (D + 1) / 2, full = D / 2;                                                       \
    for (int t = t0; t < T; t++) {                                                                 \
      __m512i y[NV];                                                                               \
      _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) y[v] =                                  \
          _mm512_loadu_si512(qp + (int64_t)t * ldqp + 16 * v);                                     \
      _Pragma("GCC unroll 4") for (int c = 0; c < KG; c++) {                                       \
        uint32_t kk;                                                                               \
        if (t < full)                                                                              \
          __builtin_memcpy(&kk, k[c] + 2 * t, 4);                                                  \
        else                                                                                       \
          kk = k[c][2 * t];                                                                        \
        const __m512i b = _mm512_set1_epi32((int)kk);                                              \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) a[c][v] =                             \
            _mm512_dpbf16_ps(a[c][v], as_bh(y[v]), as_bh(b));                                      \
      }                                                                                            \
    }                                                                                              \
    _Pragma("GCC unroll 4") for (int c = 0; c < KG; c++)                                           \
        _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) {                                     \
      float *o = st + c * ldst + 16 * v;                                                           \
      _mm512_storeu_ps(o, accumulate ? _mm512_add_ps(_mm512_loadu_ps(o), a[c][v]) : a[c][v]);      \
    }                                                                                              \
  }
DEF_QKB(4, 4)
DEF_QKB(3, 4)
DEF_QKB(2, 4)
DEF_QKB(1, 4)
DEF_QKB(4, 1)
DEF_QKB(3, 1)
DEF_QKB(2, 1)
DEF_QKB(1, 1)

/* st[j][r] (+)= q_r . k_j over D dims, Q^T as bf16 pairs (qp[t * ldqp + r],
 * zero beyond R up to a multiple of 16 rows), K rows bf16 at kp[j]. */
static void qk_tb(int R, int N, int D, const uint32_t *qp, int64_t ldqp, const char *const *kp,
                  float *st, int64_t ldst, int accumulate) {
  for (int r0 = 0; r0 < R; r0 += 64) {
    const int nv = (R - r0 + 15) / 16 < 4 ? (R - r0 + 15) / 16 : 4;
    const uint32_t *q = qp + r0;
    float *o = st + r0;
    int j = 0;
#define QKB_CASE(NV)                                                                               \
  case NV:                                                                                         \
    for (; j + 4 <= N; j += 4)                                                                     \
      qkb_##NV##_4(D, 0, q, ldqp, kp + j, o + j * ldst, ldst, accumulate);                         \
    for (; j < N; j++) qkb_##NV##_1(D, 0, q, ldqp, kp + j, o + j * ldst, ldst, accumulate);        \
    break
    switch (nv) {
      QKB_CASE(4);
      QKB_CASE(3);
      QKB_CASE(2);
    default: QKB_CASE(1);
    }
#undef QKB_CASE
  }
}

/* Two f32 vectors rounded to bf16 (nearest even) and paired per lane:
 * lane i = (a[i], b[i]). */
INLINE __m512i pair_bf16(__m512 a, __m512 b) {
  const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(a));
  const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(b));
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

/* One bf16 vector of 16 from each of two rows, paired per lane. */
INLINE __m512i pair_rows(const uint16_t *a, const uint16_t *b, __mmask16 m) {
  const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, a));
  const __m512i hi =
      b ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, b)) : _mm512_setzero_si512();
  return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

/* o[r][d] = o[r][d] * alpha[r] + sum_j st[j][r] v_j[d]: P (st, f32, keys
 * x ldst rows) and the bf16 V rows are packed into work first (pairs of
 * keys; an odd last key pairs with zero). work holds
 * ceil(N/2) * (ldst + round16(D)) dwords. */
static void pv_tb(int R, int N, int D, const float *st, int64_t ldst, const char *const *vrows,
                  const float *alpha, float *o, int64_t ldo, uint32_t *work) {
  const int T = (N + 1) / 2, Dp = (D + 15) & ~15;
  uint32_t *pp = work, *vp = work + (int64_t)T * ldst;
  for (int t = 0; t < T; t++) {
    const float *s0 = st + (int64_t)(2 * t) * ldst;
    const int two = 2 * t + 1 < N;
    for (int r = 0; r < R; r += 16) {
      const __mmask16 m = tmask(R - r < 16 ? R - r : 16);
      const __m512 a = _mm512_maskz_loadu_ps(m, s0 + r);
      const __m512 b = two ? _mm512_maskz_loadu_ps(m, s0 + ldst + r) : _mm512_setzero_ps();
      _mm512_storeu_si512(pp + (int64_t)t * ldst + r, pair_bf16(a, b));
    }
    const uint16_t *v0 = (const uint16_t *)(const void *)vrows[2 * t];
    const uint16_t *v1 = two ? (const uint16_t *)(const void *)vrows[2 * t + 1] : NULL;
    for (int d = 0; d < D; d += 16)
      _mm512_storeu_si512(vp + (int64_t)t * Dp + d,
                          pair_rows(v0 + d, v1 ? v1 + d : NULL, tmask(D - d < 16 ? D - d : 16)));
  }
  const int R4 = R & ~3;
  for (int d = 0; d < D; d += 64) {
    const int nd = D - d < 64 ? (D - d + 15) / 16 : 4;
    const __mmask16 mt = tmask(D - d - 16 * (nd - 1) < 16 ? D - d - 16 * (nd - 1) : 16);
    for (int r = 0; r < R; r += (r < R4 ? 4 : 1)) {
      const int nr = r < R4 ? 4 : 1;
      __m512 c[4][4];
      for (int i = 0; i < nr; i++) {
        const __m512 al = _mm512_set1_ps(alpha ? alpha[r + i] : 1.0f);
        for (int v = 0; v < nd; v++)
          c[i][v] = _mm512_mul_ps(
              _mm512_maskz_loadu_ps(v == nd - 1 ? mt : 0xffff, o + (r + i) * ldo + d + 16 * v), al);
      }
      if (nr == 4 && nd == 4) {
        for (int t = 0; t < T; t++) {
          const uint32_t *vt = vp + (int64_t)t * Dp + d, *pt = pp + (int64_t)t * ldst + r;
          const __m512i x0 = _mm512_loadu_si512(vt), x1 = _mm512_loadu_si512(vt + 16),
                        x2 = _mm512_loadu_si512(vt + 32), x3 = _mm512_loadu_si512(vt + 48);
          _Pragma("GCC unroll 4") for (int i = 0; i < 4; i++) {
            const __m512i b = _mm512_set1_epi32((int)pt[i]);
            c[i][0] = _mm512_dpbf16_ps(c[i][0], as_bh(x0), as_bh(b));
            c[i][1] = _mm512_dpbf16_ps(c[i][1], as_bh(x1), as_bh(b));
            c[i][2] = _mm512_dpbf16_ps(c[i][2], as_bh(x2), as_bh(b));
            c[i][3] = _mm512_dpbf16_ps(c[i][3], as_bh(x3), as_bh(b));
          }
        }
      } else {
        for (int t = 0; t < T; t++) {
          const uint32_t *vt = vp + (int64_t)t * Dp + d, *pt = pp + (int64_t)t * ldst + r;
          for (int v = 0; v < nd; v++) {
            const __m512i x = _mm512_loadu_si512(vt + 16 * v);
            for (int i = 0; i < nr; i++)
              c[i][v] = _mm512_dpbf16_ps(c[i][v], as_bh(x), as_bh(_mm512_set1_epi32((int)pt[i])));
          }
        }
      }
      for (int i = 0; i < nr; i++)
        for (int v = 0; v < nd; v++)
          _mm512_mask_storeu_ps(o + (r + i) * ldo + d + 16 * v, v == nd - 1 ? mt : 0xffff, c[i][v]);
    }
  }
}

/* Decode scores (few rows: the grouped driver), Q and K both bf16 as the
 * caller gave them, so every product is exact and only the f32 sums round:
 * 4 rows x 4 keys of 32-dim vdpbf16ps (16 accumulators), then the 16-sum
 * tree of kernels_avx512.c. Each lane sums its pair (2l, 2l + 1) of every
 * 32-dim step; red1() adds the 16 lanes in the tree's order, so rows and
 * keys left over (dot1) round as inside a tile. */
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
INLINE float red1(__m512 v) {
  __m256 t = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
  __m128 c = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
  __m128 e = _mm_add_ps(c, _mm_movehl_ps(c, c));
  return _mm_cvtss_f32(_mm_add_ss(e, _mm_shuffle_ps(e, e, 1)));
}

INLINE __m512i ld32(const uint16_t *p, int d, int D) {
  return D - d >= 32 ? _mm512_loadu_si512(p + d)
                     : _mm512_maskz_loadu_epi16((__mmask32)((1ull << (D - d)) - 1), p + d);
}

/* 32 fp8 codes as bf16, exactly: bf16 holds every e4m3 and e5m2 value as
 * a normal number (the smallest, 2^-9 and 2^-16, too), so vdpbf16ps, which
 * reads denormals as zero, loses nothing. Normal codes (exponent field
 * E >= 1) are the code's magnitude bits moved under bf16's exponent plus
 * the difference of the biases (127 - 7 for e4m3, 127 - 15 for e5m2); E = 0
 * codes (zero, M x 2^-9 or M x 2^-16) come from a table indexed by the
 * mantissa; e4m3's NaN codes (magnitude 0x7f) give a NaN, e5m2's E = 31
 * (inf, NaN) get 112 more (bf16's 255, the mantissa kept). 7 (e4m3) or 9
 * (e5m2) operations for 32 values, where the f32 path spends 8 (two of
 * PA_CPU_E4M3_LO's 4) before its FMAs. */
INLINE __m512i fp8_bf16(__m256i b, int e4m3) {
  const __m512i w = _mm512_cvtepi8_epi16(b); /* sign in bit 15, magnitude in bits 6..0 */
  const __m512i t = e4m3 ? _mm512_and_si512(_mm512_slli_epi16(w, 4), _mm512_set1_epi16(0x07f0))
                         : _mm512_and_si512(_mm512_slli_epi16(w, 5), _mm512_set1_epi16(0x0fe0));
  __m512i r = _mm512_add_epi16(t, _mm512_set1_epi16(e4m3 ? 0x3c00 : 0x3800));
  if (!e4m3)
    r = _mm512_mask_add_epi16(r, _mm512_cmpge_epu16_mask(t, _mm512_set1_epi16(0x0f80)), r,
                              _mm512_set1_epi16(0x3800));
  const __m512i sub =
      e4m3 ? _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                              0, 0x3c60, 0x3c40, 0x3c20, 0x3c00, 0x3bc0, 0x3b80, 0x3b00, 0)
           : _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                              0, 0, 0, 0, 0, 0x3840, 0x3800, 0x3780, 0);
  const __mmask32 e0 = _mm512_testn_epi16_mask(w, _mm512_set1_epi16(e4m3 ? 0x0078 : 0x007c));
  r = _mm512_mask_permutexvar_epi16(r, e0, w, sub);
  r = _mm512_ternarylogic_epi32(r, w, _mm512_set1_epi16((short)0x8000), 0xf8); /* r | (w & C) */
  if (e4m3)
    r = _mm512_mask_mov_epi16(r, _mm512_cmpeq_epi16_mask(t, _mm512_set1_epi16(0x07f0)),
                              _mm512_set1_epi16(0x7fc0));
  return r;
}

/* K's 32 dims from d on, bf16 as stored or fp8 converted (zero past D). */
INLINE __m512i ldk(const char *p, int d, int D, pa_dtype kt) {
  if (kt == PA_BF16) return ld32((const uint16_t *)(const void *)p, d, D);
  const __m256i b = D - d >= 32
                        ? _mm256_loadu_si256((const __m256i *)(const void *)(p + d))
                        : _mm256_maskz_loadu_epi8((__mmask32)((1ull << (D - d)) - 1), p + d);
  return fp8_bf16(b, kt == PA_FP8_E4M3);
}

INLINE void qk_4x4_db(int D, const uint16_t *q, int64_t ldq, const char *const *kp, float *s,
                      int64_t lds, float scale, pa_dtype kt) {
  __m512 a[4][4]; /* [key][row] */
  for (int c = 0; c < 4; c++)
    for (int r = 0; r < 4; r++) a[c][r] = _mm512_setzero_ps();
  for (int d = 0; d < D; d += 32) {
    const __m512i x0 = ldk(kp[0], d, D, kt), x1 = ldk(kp[1], d, D, kt), x2 = ldk(kp[2], d, D, kt),
                  x3 = ldk(kp[3], d, D, kt);
    _Pragma("GCC unroll 4") for (int r = 0; r < 4; r++) {
      const __m512bh y = as_bh(ld32(q + r * ldq, d, D));
      a[0][r] = _mm512_dpbf16_ps(a[0][r], y, as_bh(x0));
      a[1][r] = _mm512_dpbf16_ps(a[1][r], y, as_bh(x1));
      a[2][r] = _mm512_dpbf16_ps(a[2][r], y, as_bh(x2));
      a[3][r] = _mm512_dpbf16_ps(a[3][r], y, as_bh(x3));
    }
  }
  /* the tree of kernels_avx512.c's qk_4x4: S[r][c] in lane 4r + c */
  __m512 w0 = red_l1(a[0][0], a[0][1]), w1 = red_l1(a[0][2], a[0][3]),
         w2 = red_l1(a[1][0], a[1][1]), w3 = red_l1(a[1][2], a[1][3]),
         w4 = red_l1(a[2][0], a[2][1]), w5 = red_l1(a[2][2], a[2][3]),
         w6 = red_l1(a[3][0], a[3][1]), w7 = red_l1(a[3][2], a[3][3]);
  __m512 z0 = red_l2(w0, w1), z1 = red_l2(w2, w3), z2 = red_l2(w4, w5), z3 = red_l2(w6, w7);
  __m512 f = _mm512_mul_ps(red_l4(red_l3(z0, z1), red_l3(z2, z3)), _mm512_set1_ps(scale));
  _mm_storeu_ps(s, _mm512_castps512_ps128(f));
  _mm_storeu_ps(s + lds, _mm512_extractf32x4_ps(f, 1));
  _mm_storeu_ps(s + 2 * lds, _mm512_extractf32x4_ps(f, 2));
  _mm_storeu_ps(s + 3 * lds, _mm512_extractf32x4_ps(f, 3));
}

INLINE float dot1_db(int D, const uint16_t *q, const char *kp, pa_dtype kt) {
  __m512 a = _mm512_setzero_ps();
  for (int d = 0; d < D; d += 32)
    a = _mm512_dpbf16_ps(a, as_bh(ld32(q, d, D)), as_bh(ldk(kp, d, D, kt)));
  return red1(a);
}

INLINE void qk_db_body(int R, int N, int D, const uint16_t *q, int64_t ldq, const char *const *kp,
                       float *s, int64_t lds, float scale, pa_dtype kt) {
  int r = 0;
  for (; r + 4 <= R; r += 4) {
    int j = 0;
    for (; j + 4 <= N; j += 4)
      qk_4x4_db(D, q + r * ldq, ldq, kp + j, s + r * lds + j, lds, scale, kt);
    for (; j < N; j++)
      for (int rr = r; rr < r + 4; rr++)
        s[rr * lds + j] = dot1_db(D, q + rr * ldq, kp[j], kt) * scale;
  }
  for (; r < R; r++)
    for (int j = 0; j < N; j++) s[r * lds + j] = dot1_db(D, q + r * ldq, kp[j], kt) * scale;
}

static void qk_db(int R, int N, int D, const uint16_t *q, int64_t ldq, const char *const *kp,
                  float *s, int64_t lds, float scale) {
  qk_db_body(R, N, D, q, ldq, kp, s, lds, scale, PA_BF16);
}

static void qk_db8(pa_dtype kt, int R, int N, int D, const uint16_t *q, int64_t ldq,
                   const char *const *kp, float *s, int64_t lds, float scale) {
  if (kt == PA_FP8_E4M3)
    qk_db_body(R, N, D, q, ldq, kp, s, lds, scale, PA_FP8_E4M3);
  else
    qk_db_body(R, N, D, q, ldq, kp, s, lds, scale, PA_FP8_E5M2);
}

const pa_cpu_bf16_kernels pa_cpu_bf16_avx512 = {qk_tb, pv_tb, qk_db, qk_db8};

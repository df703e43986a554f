/* f32 -> fp8 on 8 lanes with AVX2, core/fp8.c's rule bit for bit (nearest
 * even, saturating, NaN -> 0x7f): the normal and the subnormal rounding are
 * both computed and the lane's case picks one. Included by the AVX2 and the
 * AVX-512 kernels (both built with AVX2 flags). */
#ifndef PA_CPU_FP8_AVX2_H
#define PA_CPU_FP8_AVX2_H

#include <immintrin.h>
#include <stdint.h>

#include "polyattn.h"

/* M mantissa bits, bias B; returns the 8 codes in the low byte of each lane. */
static inline __attribute__((always_inline)) __m256i pa_fp8_enc8(__m256 x, int M, int B,
                                                                 int max_bits, int max_code) {
  const __m256i u = _mm256_castps_si256(x), one = _mm256_set1_epi32(1);
  const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(0x80));
  /* normal: re-bias, round at bit 23 - M */
  __m256i r = _mm256_sub_epi32(a, _mm256_set1_epi32((127 - B) << 23));
  r = _mm256_add_epi32(r, _mm256_add_epi32(_mm256_set1_epi32((1 << (22 - M)) - 1),
                                           _mm256_and_si256(_mm256_srli_epi32(r, 23 - M), one)));
  const __m256i qn = _mm256_srli_epi32(r, 23 - M);
  /* subnormal: the 24-bit significand shifted right by 151 - B - M - e */
  const __m256i shift = _mm256_sub_epi32(_mm256_set1_epi32(151 - B - M), _mm256_srli_epi32(a, 23));
  const __m256i m = _mm256_or_si256(_mm256_and_si256(a, _mm256_set1_epi32(0x7fffff)),
                                    _mm256_set1_epi32(0x800000));
  __m256i q = _mm256_srlv_epi32(m, shift);
  const __m256i rem = _mm256_and_si256(m, _mm256_sub_epi32(_mm256_sllv_epi32(one, shift), one));
  const __m256i half = _mm256_sllv_epi32(one, _mm256_sub_epi32(shift, one));
  const __m256i up =
      _mm256_or_si256(_mm256_cmpgt_epi32(rem, half),
                      _mm256_and_si256(_mm256_cmpeq_epi32(rem, half),
                                       _mm256_cmpeq_epi32(_mm256_and_si256(q, one), one)));
  q = _mm256_sub_epi32(q, up); /* up is -1 where the lane rounds up */
  const __m256i normal = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(((128 - B) << 23) - 1));
  const __m256i tiny = _mm256_cmpgt_epi32(_mm256_set1_epi32(((127 - B - M) << 23) + 1), a);
  const __m256i sat = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(max_bits - 1));
  const __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
  __m256i c = _mm256_blendv_epi8(q, qn, normal);
  c = _mm256_andnot_si256(tiny, c);
  c = _mm256_blendv_epi8(c, _mm256_set1_epi32(max_code), sat);
  c = _mm256_or_si256(c, sign);
  return _mm256_blendv_epi8(c, _mm256_set1_epi32(0x7f), nan);
}

/* dst[i] = encode(src[i] / scale) (IEEE division, as the reference). */
static inline void pa_fp8_quantize_avx2(pa_dtype t, const float *src, uint8_t *dst, int64_t n,
                                        float scale) {
  const __m256 sc = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_div_ps(_mm256_loadu_ps(src + i), sc);
    const __m256i c = t == PA_FP8_E4M3 ? pa_fp8_enc8(x, 3, 7, 0x43e00001, 0x7e)
                                       : pa_fp8_enc8(x, 2, 15, 0x47600001, 0x7b);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
    _mm_storel_epi64((__m128i *)(void *)(dst + i), _mm_packus_epi16(w, w));
  }
  for (; i < n; i++) dst[i] = pa_fp8_encode(t, src[i] / scale);
}

/* Whether rows[0..n) of bytes e4m3 codes hold a NaN code (0x7f, 0xff):
 * the driver's test before it reads a chunk with PA_CPU_E4M3_LO. Codes with
 * the sign bit set are 0xff only for NaN; the max over all is kept. */
static inline int pa_e4m3_nan_avx2(const char *const *rows, int n, int64_t bytes) {
  const __m256i hi = _mm256_set1_epi8((char)0x80);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0;
  const int64_t b64 = bytes & ~(int64_t)63, b32 = bytes & ~(int64_t)31;
  int tail = 0;
  for (int j = 0; j < n; j++) {
    const __m256i *p = (const __m256i *)(const void *)rows[j];
    int64_t x = 0;
    for (; x < b64; x += 64, p += 2) {
      a0 = _mm256_max_epu8(a0, _mm256_or_si256(_mm256_loadu_si256(p), hi));
      a1 = _mm256_max_epu8(a1, _mm256_or_si256(_mm256_loadu_si256(p + 1), hi));
    }
    if (x < b32) a0 = _mm256_max_epu8(a0, _mm256_or_si256(_mm256_loadu_si256(p), hi));
    for (x = b32; x < bytes; x++) tail |= (rows[j][x] & 0x7f) == 0x7f;
  }
  a0 = _mm256_cmpeq_epi8(_mm256_max_epu8(a0, a1), _mm256_set1_epi8((char)0xff));
  return tail || !_mm256_testz_si256(a0, a0);
}

#endif

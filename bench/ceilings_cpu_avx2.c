/* AVX2+FMA ceiling kernels (built with -mavx2 -mfma). */
#include <immintrin.h>

#include "ceilings_cpu.h"

/* 12 independent chains (written out so they stay in registers) cover FMA latency (4-5 cycles) x 2
 * ports with room; 12 + 2 constants fit in the 16 ymm registers. */
float bench_fma_avx2(long iters) {
  __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
  __m256 a0 = _mm256_set1_ps(1.0f + 0e-3f);
  __m256 a1 = _mm256_set1_ps(1.0f + 1e-3f);
  __m256 a2 = _mm256_set1_ps(1.0f + 2e-3f);
  __m256 a3 = _mm256_set1_ps(1.0f + 3e-3f);
  __m256 a4 = _mm256_set1_ps(1.0f + 4e-3f);
  __m256 a5 = _mm256_set1_ps(1.0f + 5e-3f);
  __m256 a6 = _mm256_set1_ps(1.0f + 6e-3f);
  __m256 a7 = _mm256_set1_ps(1.0f + 7e-3f);
  __m256 a8 = _mm256_set1_ps(1.0f + 8e-3f);
  __m256 a9 = _mm256_set1_ps(1.0f + 9e-3f);
  __m256 a10 = _mm256_set1_ps(1.0f + 10e-3f);
  __m256 a11 = _mm256_set1_ps(1.0f + 11e-3f);
  for (long it = 0; it < iters; it++) {
    /* opaque constants: no compiler may fold or shorten the chains */
    __asm__ volatile("" : "+x"(m), "+x"(c));
    a0 = _mm256_fmadd_ps(a0, m, c);
    a1 = _mm256_fmadd_ps(a1, m, c);
    a2 = _mm256_fmadd_ps(a2, m, c);
    a3 = _mm256_fmadd_ps(a3, m, c);
    a4 = _mm256_fmadd_ps(a4, m, c);
    a5 = _mm256_fmadd_ps(a5, m, c);
    a6 = _mm256_fmadd_ps(a6, m, c);
    a7 = _mm256_fmadd_ps(a7, m, c);
    a8 = _mm256_fmadd_ps(a8, m, c);
    a9 = _mm256_fmadd_ps(a9, m, c);
    a10 = _mm256_fmadd_ps(a10, m, c);
    a11 = _mm256_fmadd_ps(a11, m, c);
  }
  __m256 s =
      _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                                  _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7))),
                    _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

/* p is 64-byte aligned, n a multiple of 32 floats. */
float bench_read_avx2(const float *p, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(p + i + 24));
  }
  float out[8];
  _mm256_storeu_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return out[0] + out[5];
}

/* AVX-512 ceiling kernels (built with -mavx512f). */
#include <immintrin.h>

#include "ceilings_cpu.h"

/* 24 independent chains (written out so they stay in registers): latency 4 x 2 FMA ports needs 8;
 * more hides any port-0/5 scheduling noise, and 24 + 2 constants fit in 32 zmm registers. */
float bench_fma_avx512(long iters) {
  __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
  __m512 a0 = _mm512_set1_ps(1.0f + 0e-3f);
  __m512 a1 = _mm512_set1_ps(1.0f + 1e-3f);
  __m512 a2 = _mm512_set1_ps(1.0f + 2e-3f);
  __m512 a3 = _mm512_set1_ps(1.0f + 3e-3f);
  __m512 a4 = _mm512_set1_ps(1.0f + 4e-3f);
  __m512 a5 = _mm512_set1_ps(1.0f + 5e-3f);
  __m512 a6 = _mm512_set1_ps(1.0f + 6e-3f);
  __m512 a7 = _mm512_set1_ps(1.0f + 7e-3f);
  __m512 a8 = _mm512_set1_ps(1.0f + 8e-3f);
  __m512 a9 = _mm512_set1_ps(1.0f + 9e-3f);
  __m512 a10 = _mm512_set1_ps(1.0f + 10e-3f);
  __m512 a11 = _mm512_set1_ps(1.0f + 11e-3f);
  __m512 a12 = _mm512_set1_ps(1.0f + 12e-3f);
  __m512 a13 = _mm512_set1_ps(1.0f + 13e-3f);
  __m512 a14 = _mm512_set1_ps(1.0f + 14e-3f);
  __m512 a15 = _mm512_set1_ps(1.0f + 15e-3f);
  __m512 a16 = _mm512_set1_ps(1.0f + 16e-3f);
  __m512 a17 = _mm512_set1_ps(1.0f + 17e-3f);
  __m512 a18 = _mm512_set1_ps(1.0f + 18e-3f);
  __m512 a19 = _mm512_set1_ps(1.0f + 19e-3f);
  __m512 a20 = _mm512_set1_ps(1.0f + 20e-3f);
  __m512 a21 = _mm512_set1_ps(1.0f + 21e-3f);
  __m512 a22 = _mm512_set1_ps(1.0f + 22e-3f);
  __m512 a23 = _mm512_set1_ps(1.0f + 23e-3f);
  for (long it = 0; it < iters; it++) {
    /* opaque constants: no compiler may fold or shorten the chains */
    __asm__ volatile("" : "+x"(m), "+x"(c));
    a0 = _mm512_fmadd_ps(a0, m, c);
    a1 = _mm512_fmadd_ps(a1, m, c);
    a2 = _mm512_fmadd_ps(a2, m, c);
    a3 = _mm512_fmadd_ps(a3, m, c);
    a4 = _mm512_fmadd_ps(a4, m, c);
    a5 = _mm512_fmadd_ps(a5, m, c);
    a6 = _mm512_fmadd_ps(a6, m, c);
    a7 = _mm512_fmadd_ps(a7, m, c);
    a8 = _mm512_fmadd_ps(a8, m, c);
    a9 = _mm512_fmadd_ps(a9, m, c);
    a10 = _mm512_fmadd_ps(a10, m, c);
    a11 = _mm512_fmadd_ps(a11, m, c);
    a12 = _mm512_fmadd_ps(a12, m, c);
    a13 = _mm512_fmadd_ps(a13, m, c);
    a14 = _mm512_fmadd_ps(a14, m, c);
    a15 = _mm512_fmadd_ps(a15, m, c);
    a16 = _mm512_fmadd_ps(a16, m, c);
    a17 = _mm512_fmadd_ps(a17, m, c);
    a18 = _mm512_fmadd_ps(a18, m, c);
    a19 = _mm512_fmadd_ps(a19, m, c);
    a20 = _mm512_fmadd_ps(a20, m, c);
    a21 = _mm512_fmadd_ps(a21, m, c);
    a22 = _mm512_fmadd_ps(a22, m, c);
    a23 = _mm512_fmadd_ps(a23, m, c);
  }
  __m512 s = _mm512_add_ps(
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                                  _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7))),
                    _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                                  _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)))),
      _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a16, a17), _mm512_add_ps(a18, a19)),
                    _mm512_add_ps(_mm512_add_ps(a20, a21), _mm512_add_ps(a22, a23))));
  return _mm512_reduce_add_ps(s);
}

/* p is 64-byte aligned, n a multiple of 64 floats. */
float bench_read_avx512(const float *p, size_t n) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < n; i += 64) {
    s0 = _mm512_add_ps(s0, _mm512_load_ps(p + i));
    s1 = _mm512_add_ps(s1, _mm512_load_ps(p + i + 16));
    s2 = _mm512_add_ps(s2, _mm512_load_ps(p + i + 32));
    s3 = _mm512_add_ps(s3, _mm512_load_ps(p + i + 48));
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

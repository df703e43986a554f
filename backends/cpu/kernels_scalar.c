/* The scalar kernels: plain loops, the reference every SIMD table must
 * agree with (within rounding: the SIMD ones sum in another order). */
#include <math.h>

#include "convert.h"
#include "kernels.h"

static inline float ld(const char *p, pa_dtype t, int64_t i) {
  switch (t) {
  case PA_F16: return pa_f16_to_f32(((const uint16_t *)(const void *)p)[i]);
  case PA_BF16: return pa_bf16_to_f32(((const uint16_t *)(const void *)p)[i]);
  case PA_FP8_E4M3: return pa_fp8_e4m3_table[((const uint8_t *)p)[i]];
  case PA_FP8_E5M2: return pa_fp8_e5m2_table[((const uint8_t *)p)[i]];
  default: return ((const float *)(const void *)p)[i];
  }
}

static void qk(int R, int N, int D, const float *q, int64_t ldq, const char *const *kp, pa_dtype kt,
               float *s, int64_t lds, int accumulate) {
  for (int r = 0; r < R; r++)
    for (int j = 0; j < N; j++) {
      float acc = 0.0f;
      for (int d = 0; d < D; d++) acc += q[r * ldq + d] * ld(kp[j], kt, d);
      s[r * lds + j] = accumulate ? s[r * lds + j] + acc : acc;
    }
}

static void pv(int R, int N, int D, const float *p, int64_t prs, int64_t pjs, const char *const *vp,
               pa_dtype vt, const float *alpha, float *o, int64_t ldo) {
  for (int r = 0; r < R; r++) {
    float *orow = o + r * ldo;
    if (alpha)
      for (int d = 0; d < D; d++) orow[d] *= alpha[r];
    for (int j = 0; j < N; j++) {
      float pj = p[r * prs + j * pjs];
      for (int d = 0; d < D; d++) orow[d] += pj * ld(vp[j], vt, d);
    }
  }
}

static void softmax(int R, int N, float *s, int64_t lds, float *m, float *l, float *alpha) {
  for (int r = 0; r < R; r++) {
    float *row = s + r * lds;
    float mx = m[r];
    for (int j = 0; j < N; j++) mx = row[j] > mx ? row[j] : mx;
    if (mx == -INFINITY) {
      for (int j = 0; j < N; j++) row[j] = 0.0f;
      alpha[r] = 1.0f;
      continue;
    }
    float sum = 0.0f;
    for (int j = 0; j < N; j++) {
      row[j] = expf(row[j] - mx); /* exp(-inf) = 0 */
      sum += row[j];
    }
    alpha[r] = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx);
    l[r] = l[r] * alpha[r] + sum;
    m[r] = mx;
  }
}

static void load(pa_dtype t, const void *src, float *dst, int64_t n, float scale) {
  for (int64_t i = 0; i < n; i++) dst[i] = scale * ld(src, t, i);
}

static void store(pa_dtype t, const float *src, void *dst, int64_t n, float scale) {
  for (int64_t i = 0; i < n; i++) {
    float x = scale * src[i];
    if (t == PA_F16)
      ((uint16_t *)dst)[i] = pa_f32_to_f16(x);
    else if (t == PA_BF16)
      ((uint16_t *)dst)[i] = pa_f32_to_bf16(x);
    else
      ((float *)dst)[i] = x;
  }
}

const pa_cpu_kernels pa_cpu_kernels_scalar = {"scalar", qk, pv, softmax, NULL, NULL, load, store, NULL, NULL, NULL};

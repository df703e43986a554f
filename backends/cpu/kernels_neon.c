/* NEON kernels (aarch64 baseline, no extra flags). Same tiles as AVX-512
 * in 4-lane vectors: QK 4 rows x 4 keys (16 accumulators of the 32
 * registers), PV 4 rows x 16 dims. Partial vectors at the end of d go
 * through small stack buffers. Each dot product reduces as
 * (v0 + v2) + (v1 + v3) wherever it sits in a tile. */
#include <arm_neon.h>
#include <math.h>

#include "convert.h"
#include "kernels.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float32x4_t ldv(const char *p, int64_t i, pa_dtype t) {
  if (t == PA_FP8_E4M3 || t == PA_FP8_E5M2) { /* exact decode tables (compile-checked only) */
    const float *tb = t == PA_FP8_E4M3 ? pa_fp8_e4m3_table : pa_fp8_e5m2_table;
    const uint8_t *b = (const uint8_t *)p + i;
    const float x[4] = {tb[b[0]], tb[b[1]], tb[b[2]], tb[b[3]]};
    return vld1q_f32(x);
  }
  if (t == PA_F16)
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)p + i)));
  if (t == PA_BF16)
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)(const void *)p + i), 16));
  return vld1q_f32((const float *)(const void *)p + i);
}

/* n < 4 elements from i, zero-filled. */
static float32x4_t ldv_tail(const char *p, int64_t i, pa_dtype t, int n) {
  float b[4] = {0, 0, 0, 0};
  for (int x = 0; x < n; x++) {
    if (t == PA_F16)
      b[x] = pa_f16_to_f32(((const uint16_t *)(const void *)p)[i + x]);
    else if (t == PA_BF16)
      b[x] = pa_bf16_to_f32(((const uint16_t *)(const void *)p)[i + x]);
    else if (t == PA_FP8_E4M3)
      b[x] = pa_fp8_e4m3_table[((const uint8_t *)p)[i + x]];
    else if (t == PA_FP8_E5M2)
      b[x] = pa_fp8_e5m2_table[((const uint8_t *)p)[i + x]];
    else
      b[x] = ((const float *)(const void *)p)[i + x];
  }
  return vld1q_f32(b);
}

INLINE float red1(float32x4_t v) {
  float32x2_t t = vadd_f32(vget_low_f32(v), vget_high_f32(v));
  return vget_lane_f32(t, 0) + vget_lane_f32(t, 1);
}

INLINE float dot1(int D, const float *q, const char *k, pa_dtype t) {
  float32x4_t a = vdupq_n_f32(0.0f);
  int d = 0;
  for (; d + 4 <= D; d += 4) a = vfmaq_f32(a, vld1q_f32(q + d), ldv(k, d, t));
  if (d < D) a = vfmaq_f32(a, ldv_tail((const char *)q, d, PA_F32, D - d), ldv_tail(k, d, t, D - d));
  return red1(a);
}

INLINE void qk_4x4(int D, const float *q, int64_t ldq, const char *const *kp, pa_dtype t, float *s,
                   int64_t lds, int accumulate) {
  float32x4_t a[4][4];
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) a[r][c] = vdupq_n_f32(0.0f);
  int d = 0;
  for (; d + 4 <= D; d += 4) {
    float32x4_t x[4] = {ldv(kp[0], d, t), ldv(kp[1], d, t), ldv(kp[2], d, t), ldv(kp[3], d, t)};
    for (int r = 0; r < 4; r++) {
      float32x4_t y = vld1q_f32(q + r * ldq + d);
      for (int c = 0; c < 4; c++) a[r][c] = vfmaq_f32(a[r][c], y, x[c]);
    }
  }
  if (d < D) {
    int n = D - d;
    float32x4_t x[4] = {ldv_tail(kp[0], d, t, n), ldv_tail(kp[1], d, t, n),
                        ldv_tail(kp[2], d, t, n), ldv_tail(kp[3], d, t, n)};
    for (int r = 0; r < 4; r++) {
      float32x4_t y = ldv_tail((const char *)(q + r * ldq), d, PA_F32, n);
      for (int c = 0; c < 4; c++) a[r][c] = vfmaq_f32(a[r][c], y, x[c]);
    }
  }
  for (int r = 0; r < 4; r++)
    for (int c = 0; c < 4; c++) {
      float v = red1(a[r][c]);
      s[r * lds + c] = accumulate ? s[r * lds + c] + v : v;
    }
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
  if (kt == PA_FP8_E4M3 || kt == PA_FP8_E5M2)
    qk_body(R, N, D, q, ldq, kp, kt, s, lds, accumulate);
  else if (kt == PA_F16)
    qk_body(R, N, D, q, ldq, kp, PA_F16, s, lds, accumulate);
  else if (kt == PA_BF16)
    qk_body(R, N, D, q, ldq, kp, PA_BF16, s, lds, accumulate);
  else
    qk_body(R, N, D, q, ldq, kp, PA_F32, s, lds, accumulate);
}

/* rows (1..4) x 16 dims of O from d; full: all 16 lanes valid. */
INLINE void pv_tile(int rows, int N, int d, int nd, const float *p, int64_t ldp, int64_t pjs,
                    const char *const *vp, pa_dtype t, const float *alpha, float *o, int64_t ldo) {
  float32x4_t c[4][4];
  const int nv = (nd + 3) / 4;
  for (int r = 0; r < rows; r++) {
    float32x4_t al = vdupq_n_f32(alpha ? alpha[r] : 1.0f);
    for (int v = 0; v < nv; v++) {
      int n = nd - 4 * v < 4 ? nd - 4 * v : 4;
      float32x4_t x = n == 4 ? vld1q_f32(o + r * ldo + d + 4 * v)
                             : ldv_tail((const char *)(o + r * ldo), d + 4 * v, PA_F32, n);
      c[r][v] = vmulq_f32(x, al);
    }
  }
  for (int j = 0; j < N; j++) {
    float32x4_t x[4];
    for (int v = 0; v < nv; v++) {
      int n = nd - 4 * v < 4 ? nd - 4 * v : 4;
      x[v] = n == 4 ? ldv(vp[j], d + 4 * v, t) : ldv_tail(vp[j], d + 4 * v, t, n);
    }
    for (int r = 0; r < rows; r++) {
      float pj = p[r * ldp + j * pjs];
      for (int v = 0; v < nv; v++) c[r][v] = vfmaq_n_f32(c[r][v], x[v], pj);
    }
  }
  for (int r = 0; r < rows; r++)
    for (int v = 0; v < nv; v++) {
      int n = nd - 4 * v < 4 ? nd - 4 * v : 4;
      if (n == 4) {
        vst1q_f32(o + r * ldo + d + 4 * v, c[r][v]);
      } else {
        float b[4];
        vst1q_f32(b, c[r][v]);
        for (int x = 0; x < n; x++) o[r * ldo + d + 4 * v + x] = b[x];
      }
    }
}

INLINE void pv_body(int R, int N, int D, const float *p, int64_t ldp, int64_t pjs,
                    const char *const *vp, pa_dtype t, const float *alpha, float *o, int64_t ldo) {
  for (int r = 0; r < R; r += 4) {
    int rows = R - r < 4 ? R - r : 4;
    for (int d = 0; d < D; d += 16)
      pv_tile(rows, N, d, D - d < 16 ? D - d : 16, p + r * ldp, ldp, pjs, vp, t,
              alpha ? alpha + r : NULL, o + r * ldo, ldo);
  }
}

static void pv(int R, int N, int D, const float *p, int64_t prs, int64_t pjs, const char *const *vp,
               pa_dtype vt, const float *alpha, float *o, int64_t ldo) {
  if (vt == PA_FP8_E4M3 || vt == PA_FP8_E5M2)
    pv_body(R, N, D, p, prs, pjs, vp, vt, alpha, o, ldo);
  else if (vt == PA_F16)
    pv_body(R, N, D, p, prs, pjs, vp, PA_F16, alpha, o, ldo);
  else if (vt == PA_BF16)
    pv_body(R, N, D, p, prs, pjs, vp, PA_BF16, alpha, o, ldo);
  else
    pv_body(R, N, D, p, prs, pjs, vp, PA_F32, alpha, o, ldo);
}

/* exp for x <= 0 (cephes expf polynomial); below -87.3 (and -inf) gives 0. */
INLINE float32x4_t expv(float32x4_t x) {
  uint32x4_t under = vcltq_f32(x, vdupq_n_f32(-87.3f));
  x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.3f));
  float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t y = vdupq_n_f32(1.9875691500e-4f);
  y = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), y, r);
  y = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), y, r);
  y = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), y, r);
  y = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), y, r);
  y = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), y, r);
  y = vfmaq_f32(r, y, vmulq_f32(r, r));
  y = vaddq_f32(y, vdupq_n_f32(1.0f));
  int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
  y = vmulq_f32(y, vreinterpretq_f32_s32(e));
  return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(y), under));
}

static void softmax(int R, int N, float *s, int64_t lds, float *m, float *l, float *alpha) {
  for (int r = 0; r < R; r++) {
    float *row = s + r * lds;
    float mx = m[r];
    int j = 0;
    if (N >= 4) {
      float32x4_t vm = vld1q_f32(row);
      for (j = 4; j + 4 <= N; j += 4) vm = vmaxq_f32(vm, vld1q_f32(row + j));
      float v = vmaxvq_f32(vm);
      mx = v > mx ? v : mx;
    }
    for (; j < N; j++) mx = row[j] > mx ? row[j] : mx;
    if (mx == -INFINITY) {
      for (j = 0; j < N; j++) row[j] = 0.0f;
      alpha[r] = 1.0f;
      continue;
    }
    const float32x4_t vmx = vdupq_n_f32(mx);
    float32x4_t vs = vdupq_n_f32(0.0f);
    for (j = 0; j + 4 <= N; j += 4) {
      float32x4_t e = expv(vsubq_f32(vld1q_f32(row + j), vmx));
      vst1q_f32(row + j, e);
      vs = vaddq_f32(vs, e);
    }
    float sum = red1(vs);
    for (; j < N; j++) {
      row[j] = expf(row[j] - mx);
      sum += row[j];
    }
    alpha[r] = m[r] == -INFINITY ? 0.0f : expf(m[r] - mx);
    l[r] = l[r] * alpha[r] + sum;
    m[r] = mx;
  }
}

static void load(pa_dtype t, const void *src, float *dst, int64_t n, float scale) {
  const float32x4_t sc = vdupq_n_f32(scale);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vmulq_f32(sc, ldv(src, i, t)));
  for (; i < n; i++) {
    float x = t == PA_F16    ? pa_f16_to_f32(((const uint16_t *)src)[i])
              : t == PA_BF16 ? pa_bf16_to_f32(((const uint16_t *)src)[i])
                             : ((const float *)src)[i];
    dst[i] = scale * x;
  }
}

static void store(pa_dtype t, const float *src, void *dst, int64_t n, float scale) {
  /* scalar conversions: exact, and output is a small share of the work */
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

const pa_cpu_kernels pa_cpu_kernels_neon = {"neon", qk, pv, softmax, NULL, NULL, load, store, NULL, NULL, NULL};

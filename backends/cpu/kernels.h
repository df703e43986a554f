/* The micro-kernels behind the CPU backend: one table per ISA, filled by
 * kernels_<isa>.c (each compiled with its own flags). Everything is f32
 * inside; K/V/O rows of any dtype are converted on load and store.
 *
 * Row pointers (kp, vp) let one kernel serve contiguous, padded and paged
 * K/V alike: the driver resolves each key's address once per KV block.
 * Every element's summation order is fixed by the kernel alone (never by
 * where a row or key sits in a tile), so results do not depend on tiling. */
#ifndef PA_CPU_KERNELS_H
#define PA_CPU_KERNELS_H

#include <stdint.h>

#include "backend.h" /* fp8 decode tables */

/* Optional bf16 dot-product kernels (AVX512-BF16: vdpbf16ps) for tiles of
 * many rows whose K and V are bf16, in the transposed layout of qk_t and
 * softmax_t. Q (pre-scaled) and P are rounded to bf16 for the products.
 * qk_tb: st[j*ldst + r] (+)= sum_d q[r][d] * k_j[d], Q^T as bf16 pairs
 * qp[t*ldqp + r] = q[r][2t] | q[r][2t+1] << 16 (zero beyond R up to a
 * multiple of 16 rows; an odd last dim pairs with zero), k_j bf16 at kp[j].
 * pv_tb: o[r*ldo + d] = o * alpha[r] + sum_j st[j*ldst + r] * v_j[d], v_j
 * bf16 at vrows[j]; work: ceil(N/2) * (ldst + round16(D)) dwords. */
typedef struct pa_cpu_bf16_kernels {
  void (*qk_tb)(int R, int N, int D, const uint32_t *qp, int64_t ldqp, const char *const *kp,
                float *st, int64_t ldst, int accumulate);
  void (*pv_tb)(int R, int N, int D, const float *st, int64_t ldst, const char *const *vrows,
                const float *alpha, float *o, int64_t ldo, uint32_t *work);
  /* Decode (few rows): s[r*lds + j] = scale * sum_d q[r*ldq + d] * k_j[d],
   * Q rows bf16 as given (not pre-scaled, so the products are exact), k_j
   * bf16 at kp[j]. */
  void (*qk_db)(int R, int N, int D, const uint16_t *q, int64_t ldq, const char *const *kp,
                float *s, int64_t lds, float scale);
  /* qk_db with fp8 key codes (kt e4m3 or e5m2, raw, no scale), each
   * converted to bf16 on load: exact, inf and NaN codes kept. */
  void (*qk_db8)(pa_dtype kt, int R, int N, int D, const uint16_t *q, int64_t ldq,
                 const char *const *kp, float *s, int64_t lds, float scale);
} pa_cpu_bf16_kernels;

typedef struct pa_cpu_kernels {
  const char *name;
  /* s[r*lds + j] (+)= sum_d q[r*ldq + d] * k_j[d] for r < R, j < N, d < D;
   * k_j at kp[j] in dtype kt; accumulate: add to s instead of storing. */
  void (*qk)(int R, int N, int D, const float *q, int64_t ldq, const char *const *kp, pa_dtype kt,
             float *s, int64_t lds, int accumulate);
  /* o[r*ldo + d] = o[r*ldo + d] * alpha[r] + sum_j p[r*prs + j*pjs] * v_j[d];
   * alpha NULL: no rescale. */
  void (*pv)(int R, int N, int D, const float *p, int64_t prs, int64_t pjs, const char *const *vp,
             pa_dtype vt, const float *alpha, float *o, int64_t ldo);
  /* Online-softmax step over R rows of N scores, in place: with
   * m' = max(m, max_j s), s <- exp(s - m'), alpha = exp(m - m'),
   * l <- l * alpha + sum_j s, m <- m'. A row still at -inf gives s = 0,
   * alpha = 1. */
  void (*softmax)(int R, int N, float *s, int64_t lds, float *m, float *l, float *alpha);
  /* Optional (NULL: not offered), for tiles of many rows: the scores
   * transposed, st[j*ldst + r] (+)= sum_d qt[d*ldqt + r] * k_j[d], with Q
   * transposed (qt, zero beyond R up to a multiple of 16 rows; ldqt and
   * ldst multiples of 16) and f32 key rows; each K element is broadcast
   * against 16 rows, so no reduction across lanes is needed. */
  void (*qk_t)(int R, int N, int D, const float *qt, int64_t ldqt, const float *const *kp,
               float *st, int64_t ldst, int accumulate);
  /* The softmax step of softmax() on transposed scores st[j*ldst + r]. */
  void (*softmax_t)(int R, int N, float *st, int64_t ldst, float *m, float *l, float *alpha);
  /* dst[i] = scale * src[i], src in dtype t. */
  void (*load)(pa_dtype t, const void *src, float *dst, int64_t n, float scale);
  /* dst[i] = scale * src[i] rounded to dtype t (nearest even). */
  void (*store)(pa_dtype t, const float *src, void *dst, int64_t n, float scale);
  /* NULL where the ISA has none (isa.c sets it for avx512bf16). */
  const pa_cpu_bf16_kernels *bf16;
  /* Optional (NULL: pa_fp8_encode per element): dst[i] = the fp8 code (t
   * e4m3 or e5m2) of src[i] / scale, pa_fp8_encode's rule bit for bit. */
  void (*quantize)(pa_dtype t, const float *src, uint8_t *dst, int64_t n, float scale);
  /* Optional (NULL: not offered): whether rows[0..n) of bytes e4m3 codes
   * hold a NaN code (0x7f, 0xff). Where none does, qk and pv take the
   * pseudo-dtype PA_CPU_E4M3_LO for them. */
  int (*e4m3_nan)(const char *const *rows, int n, int64_t bytes);
} pa_cpu_kernels;

/* e4m3 codes read as 2^-8 x their value, NaN codes unchecked (read as
 * +-1.875): the code's bits shifted into an f16 and widened, three vector
 * operations where the exact read needs nine. The driver scales Q (and the
 * output rows) by 2^8, exact in f32, so scores and outputs round as with
 * PA_FP8_E4M3; blocks holding a NaN code take PA_FP8_E4M3. qk and pv only,
 * and only in kernel tables that set e4m3_nan. */
#define PA_CPU_E4M3_LO ((pa_dtype)(PA_FP8_E4M3 | 0x100))

extern const pa_cpu_kernels pa_cpu_kernels_scalar;
#ifdef PA_CPU_HAVE_AVX2
extern const pa_cpu_kernels pa_cpu_kernels_avx2;
#endif
#ifdef PA_CPU_HAVE_AVX512
extern const pa_cpu_kernels pa_cpu_kernels_avx512;
#endif
#ifdef PA_CPU_HAVE_AVX512BF16
extern const pa_cpu_bf16_kernels pa_cpu_bf16_avx512;
#endif
#ifdef PA_CPU_HAVE_NEON
extern const pa_cpu_kernels pa_cpu_kernels_neon;
#endif

#endif

/* unfused.cl: the pieces of the unfused baseline the bench measures the fused
 * kernels against: dtype conversion to and from f32 (CLBlast runs f32 SGEMM)
 * and a row softmax over materialised scores. Defines: IN_DT (to_f32), OUT_DT (from_f32). */

#ifdef IN_DT
#define IN_RAW PA_CAT(PA_RAW_, IN_DT)
/* dst[i] = src[i] for the contiguous [n] range. */
__kernel void pa_to_f32(__global const IN_RAW *src, long s_off, __global float *dst, long d_off,
                        long n) {
  for (long i = get_global_id(0); i < n; i += get_global_size(0))
    dst[d_off + i] = PA_CAT(PA_LD_, IN_DT)(__global, src, s_off + i);
}
#endif

#ifdef OUT_DT
#define OUT_RAW PA_CAT(PA_RAW_, OUT_DT)
__kernel void pa_from_f32(__global const float *src, long s_off, __global OUT_RAW *dst, long d_off,
                          long n) {
  for (long i = get_global_id(0); i < n; i += get_global_size(0))
    PA_CAT(PA_ST_, OUT_DT)(__global, dst, d_off + i, src[s_off + i]);
}
#endif

/* Scores [rows, sk] in place -> probabilities: row = (bh, i); causal keeps
 * j <= i + sk - sq. One group of 256 threads per row, reductions in local memory. */
__kernel __attribute__((reqd_work_group_size(256, 1, 1))) void pa_softmax_rows(
    __global float *s, long s_off, int sq, int sk, float scale, int causal) {
  __local float red[256];
  const long row = get_group_id(0);
  const int t = get_local_id(0), i = (int)(row % sq);
  const int last = causal ? i + sk - sq : sk - 1;
  __global float *p = s + s_off + row * sk;
  float mx = -INFINITY;
  for (int j = t; j < sk; j += 256)
    if (j <= last) mx = fmax(mx, p[j] * scale);
  red[t] = mx;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = 128; w > 0; w >>= 1) {
    if (t < w) red[t] = fmax(red[t], red[t + w]);
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  mx = pa_safe_max(red[0]);
  barrier(CLK_LOCAL_MEM_FENCE);
  float sum = 0.0f;
  for (int j = t; j < sk; j += 256) {
    float e = j <= last ? exp(p[j] * scale - mx) : 0.0f;
    p[j] = e;
    sum += e;
  }
  red[t] = sum;
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int w = 128; w > 0; w >>= 1) {
    if (t < w) red[t] += red[t + w];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  const float inv = red[0] > 0.0f ? 1.0f / red[0] : 0.0f;
  for (int j = t; j < sk; j += 256) p[j] *= inv;
}

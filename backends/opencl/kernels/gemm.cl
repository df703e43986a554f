/* gemm.cl: per-head GEMM y[t, h, :] = x[t, h, :] @ w[h, :, :] for 16-bit
 * dtypes (CLBlast's half GEMM needs cl_khr_fp16, which NVIDIA lacks; f32 goes
 * to CLBlast). Tile: 64 x 64 outputs per group of 16 x 16 threads, each thread
 * 4 x 4 (rows ty + 16 m, cols tx + 16 n: conflict-free local reads); K in steps
 * of 16 through f32 local tiles. Accumulation f32.
 * Defines: X_DT W_DT Y_DT. */

#define X_RAW PA_CAT(PA_RAW_, X_DT)
#define W_RAW PA_CAT(PA_RAW_, W_DT)
#define Y_RAW PA_CAT(PA_RAW_, Y_DT)
#define LDX(AS, p, i) PA_CAT(PA_LD_, X_DT)(AS, p, i)
#define LDW(AS, p, i) PA_CAT(PA_LD_, W_DT)(AS, p, i)
#define STY(AS, p, i, v) PA_CAT(PA_ST_, Y_DT)(AS, p, i, v)
#define GT 64
#define GK 16

__kernel __attribute__((reqd_work_group_size(16, 16, 1))) void pa_head_gemm(
    __global const X_RAW *x, long x_off, long x_st, long x_sh,
    __global const W_RAW *w, long w_off, long w_sh, long w_sk, long w_sn,
    __global Y_RAW *y, long y_off, long y_st, long y_sh, int T, int K, int N) {
  __local float xs[GT][GK + 1];
  __local float wsh[GK][GT + 1];
  const int tx = get_local_id(0), ty = get_local_id(1), tid = ty * 16 + tx;
  const int n0 = get_group_id(0) * GT, t0 = get_group_id(1) * GT;
  const long h = get_group_id(2);
  float acc[4][4];
  for (int m = 0; m < 4; m++)
    for (int n = 0; n < 4; n++) acc[m][n] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += GK) {
    for (int e = tid; e < GT * GK; e += 256) {
      int r = e / GK, kk = e % GK, tt = t0 + r, k = k0 + kk;
      xs[r][kk] = (tt < T && k < K) ? LDX(__global, x, x_off + tt * x_st + h * x_sh + k) : 0.0f;
      int kr = e / GT, c = e % GT, nn = n0 + c, k2 = k0 + kr;
      wsh[kr][c] = (nn < N && k2 < K) ? LDW(__global, w, w_off + h * w_sh + k2 * w_sk + nn * w_sn) : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int kk = 0; kk < GK; kk++) {
      float a[4], bv[4];
      for (int m = 0; m < 4; m++) a[m] = xs[ty + 16 * m][kk];
      for (int n = 0; n < 4; n++) bv[n] = wsh[kk][tx + 16 * n];
      for (int m = 0; m < 4; m++)
        for (int n = 0; n < 4; n++) acc[m][n] = fma(a[m], bv[n], acc[m][n]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int m = 0; m < 4; m++) {
    int tt = t0 + ty + 16 * m;
    if (tt >= T) continue;
    for (int n = 0; n < 4; n++) {
      int nn = n0 + tx + 16 * n;
      if (nn < N) STY(__global, y, y_off + tt * y_st + h * y_sh + nn, acc[m][n]);
    }
  }
}

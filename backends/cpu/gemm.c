/* Per-head GEMM around MLA: y[t, h, :] = x[t, h, :] @ w[h, :, :].
 * It reuses the attention micro-kernels: with w's rows contiguous
 * (stride[2] == 1) it is P V (x rows broadcast against w rows); with w
 * transposed (stride[1] == 1) it is Q K^T (x rows dotted with w columns).
 * Threads take (head, block of GT tokens); K and N go in chunks so the f32
 * tiles live on the stack. */
#include <string.h>

#include "cpu.h"

#define GT 16
#define GK 256
#define GN 256

typedef struct gemm_job {
  const pa_cpu_kernels *kern;
  const pa_tensor *x, *w, *y;
  int64_t tblocks;
} gemm_job;

static char *at(const pa_tensor *t, int64_t e) {
  return pa_tensor_ptr_host(t) + e * (int64_t)pa_cpu_esize(t->dtype);
}

static void gemm_item(void *arg, int64_t item, int tid) {
  const gemm_job *g = arg;
  const pa_tensor *x = g->x, *w = g->w, *y = g->y;
  const pa_cpu_kernels *kern = g->kern;
  (void)tid;
  const int64_t T = x->shape[0], K = x->shape[2], N = w->shape[2];
  const int64_t h = item / g->tblocks, t0 = (item % g->tblocks) * GT;
  const int rows = (int)(T - t0 < GT ? T - t0 : GT);
  const int rows_contig = w->stride[2] == 1;
  float xs[GT * GK], ys[GT * GN];
  const char *ptr[GK > GN ? GK : GN];

  for (int64_t n0 = 0; n0 < N; n0 += GN) {
    int nc = (int)(N - n0 < GN ? N - n0 : GN);
    memset(ys, 0, sizeof ys);
    for (int64_t k0 = 0; k0 < K; k0 += GK) {
      int kc = (int)(K - k0 < GK ? K - k0 : GK);
      for (int r = 0; r < rows; r++)
        kern->load(x->dtype, at(x, (t0 + r) * x->stride[0] + h * x->stride[1] + k0), xs + r * GK,
                   kc, 1.0f);
      if (rows_contig) {
        for (int kk = 0; kk < kc; kk++)
          ptr[kk] = at(w, h * w->stride[0] + (k0 + kk) * w->stride[1] + n0);
        kern->pv(rows, kc, nc, xs, GK, 1, ptr, w->dtype, NULL, ys, GN);
      } else {
        for (int nn = 0; nn < nc; nn++)
          ptr[nn] = at(w, h * w->stride[0] + (n0 + nn) * w->stride[2] + k0);
        kern->qk(rows, nc, kc, xs, GK, ptr, w->dtype, ys, GN, k0 > 0);
      }
    }
    for (int r = 0; r < rows; r++)
      kern->store(y->dtype, ys + r * GN, at(y, (t0 + r) * y->stride[0] + h * y->stride[1] + n0), nc,
                  1.0f);
  }
}

pa_status pa_cpu_head_gemm(pa_context *ctx, const pa_tensor *x, const pa_tensor *w, pa_tensor *y) {
  pa_cpu_state *st = pa_cpu(ctx);
  gemm_job g = {st->kern, x, w, y, (x->shape[0] + GT - 1) / GT};
  pa_pool_run(st->pool, x->shape[1] * g.tblocks, gemm_item, &g);
  return PA_OK;
}

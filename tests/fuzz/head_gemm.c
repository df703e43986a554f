/* libFuzzer harness: bytes -> x [T, H, K], w [H, K, N] (plain or transposed
 * view), y [T, H, N] with their shapes, strides, offsets and dtypes for
 * pa_head_gemm on the CPU backend. Buffers sized exactly (fuzz_util.h). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pa_context *ctx = fuzz_ctx();
  bytes b = {data, size};
  int64_t T = take(&b, 6), H = 1 + take(&b, 4);
  int64_t K = take(&b, 16) == 0 ? 0 : 1 + take(&b, 70),
          N = take(&b, 16) == 0 ? 0 : 1 + take(&b, 70);
  if (take(&b, 32) == 0) K = 128, N = 512;
  pa_dtype dt = (pa_dtype)take(&b, 3), ydt = take(&b, 3) == 0 ? PA_F32 : dt;
  pa_tensor x, w, y;
  int64_t xs[3] = {T, H, K}, ys[3] = {T, H, N};
  make(ctx, &b, &x, dt, 3, xs);
  if (take(&b, 2)) {
    int64_t ws[3] = {H, K, N};
    make(ctx, &b, &w, dt, 3, ws);
  } else { /* stored [H, N, K], seen as [H, K, N] */
    int64_t ws[3] = {H, N, K};
    make(ctx, &b, &w, dt, 3, ws);
    swap_dims(&w, 1, 2);
  }
  make(ctx, &b, &y, ydt, 3, ys);
  if (take(&b, 64) == 0) swap_dims(&x, 0, 1);
  if (pa_head_gemm(ctx, &x, &w, &y) == PA_OK) pa_context_synchronize(ctx);
  pa_tensor *ts[] = {&x, &w, &y};
  destroy_all(ts, 3);
  return 0;
}

/* libFuzzer harness: bytes -> one of the three merges (pa_merge_state_pair,
 * pa_merge_states, pa_merge_states_varlen) with its shapes, strides, offsets,
 * dtypes, LSE values (raw bytes give NaN and inf) and, for varlen, an indptr
 * (monotone, or not); runs on the CPU backend. Buffers sized exactly
 * (fuzz_util.h). */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pa_context *ctx = fuzz_ctx();
  bytes b = {data, size};
  unsigned op = take(&b, 3);
  int64_t T = take(&b, 6), H = 1 + take(&b, 4), D = take(&b, 24) == 0 ? 0 : 1 + take(&b, 70);
  pa_dtype dt = (pa_dtype)take(&b, 3), odt = take(&b, 4) == 0 ? PA_F32 : dt;
  pa_tensor v, s, idx, out, lo, a2, l2;
  memset(&idx, 0, sizeof idx), memset(&a2, 0, sizeof a2), memset(&l2, 0, sizeof l2);
  int64_t os[3] = {T, H, D}, ls[2] = {T, H};
  if (op == 0) {
    make(ctx, &b, &v, dt, 3, os);
    make(ctx, &b, &s, PA_F32, 2, ls);
    make(ctx, &b, &a2, dt, 3, os);
    make(ctx, &b, &l2, PA_F32, 2, ls);
  } else if (op == 1) {
    int64_t N = take(&b, 5), vs[4] = {T, N, H, D}, ss[3] = {T, N, H};
    make(ctx, &b, &v, dt, 4, vs);
    make(ctx, &b, &s, PA_F32, 3, ss);
  } else {
    /* T rows, P partials split among them by indptr */
    int32_t ip[8] = {0};
    int64_t R = T < 7 ? T : 7;
    for (int64_t r = 0; r < R; r++)
      ip[r + 1] = ip[r] + (take(&b, 32) == 0 ? (int32_t)take(&b, 9) - 4 : (int32_t)take(&b, 4));
    if (take(&b, 32) == 0) ip[0] = (int32_t)take(&b, 3) - 1;
    int64_t P = ip[R] > 0 ? ip[R] : 0;
    if (take(&b, 24) == 0) P = P + (int64_t)take(&b, 3) - 1;
    if (P < 0) P = 0;
    int64_t vs[3] = {P, H, D}, ss[2] = {P, H}, is[1] = {R + 1};
    os[0] = R, ls[0] = R;
    make(ctx, &b, &v, dt, 3, vs);
    make(ctx, &b, &s, PA_F32, 2, ss);
    make(ctx, &b, &idx, PA_I32, 1, is);
    put_i32(&idx, ip, R + 1);
  }
  make(ctx, &b, &out, odt, 3, os);
  make(ctx, &b, &lo, PA_F32, 2, ls);
  if (take(&b, 4) == 0) pa_buffer_destroy(lo.buf), lo.buf = NULL; /* skip lse_out */
  pa_status st;
  if (op == 0)
    st = pa_merge_state_pair(ctx, &v, &s, &a2, &l2, &out, &lo);
  else if (op == 1)
    st = pa_merge_states(ctx, &v, &s, &out, &lo);
  else
    st = pa_merge_states_varlen(ctx, &v, &s, &idx, &out, &lo);
  if (st == PA_OK) pa_context_synchronize(ctx);
  pa_tensor *ts[] = {&v, &s, &idx, &out, &lo, &a2, &l2};
  destroy_all(ts, sizeof ts / sizeof ts[0]);
  return 0;
}

/* decode_loop: the shape of an inference engine's decode step with polyattn.
 *
 * A paged KV cache ([pages, page_size, kv_heads, head_dim], f32) holds a small
 * batch of requests. Every step appends one token's K and V per request
 * (taking a fresh page when one fills up), plans the batch (the lengths
 * changed), and runs GQA decode attention on the default backend (CUDA, then
 * an OpenCL GPU, then the CPU; PA_BACKEND=cpu|cuda|opencl overrides).
 * It prints the backend, the time per step and a checksum of the outputs.
 *
 *   ./decode_loop [steps]
 */
#include <polyattn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 4, HQ = 32, HKV = 8, D = 128, PAGE = 16, MAX_LEN = 1024 };
enum { MAX_PAGES = MAX_LEN / PAGE, NUM_PAGES = BATCH * MAX_PAGES };

#define CHECK(call)                                                                                \
  do {                                                                                             \
    pa_status s_ = (call);                                                                         \
    if (s_ != PA_OK) {                                                                             \
      fprintf(stderr, "%s:%d %s: %s (%s)\n", __FILE__, __LINE__, #call, pa_status_str(s_),         \
              ctx ? pa_context_last_error(ctx) : "");                                              \
      return 1;                                                                                    \
    }                                                                                              \
  } while (0)

static float rnd(unsigned *state) { /* deterministic, so checksums compare across backends */
  *state = *state * 1664525u + 1013904223u;
  return (float)(*state >> 8) / 8388608.0f - 1.0f;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

int main(int argc, char **argv) {
  int steps = argc > 1 ? atoi(argv[1]) : 64;
  pa_context *ctx = NULL;
  CHECK(pa_context_create(NULL, &ctx)); /* default: best backend present */
  pa_device_info info;
  CHECK(pa_context_info(ctx, &info));
  printf("backend %s, device %s\n", pa_backend_name(pa_context_backend(ctx)), info.name);

  /* The cache and its page table. Pages are handed out as requests grow. */
  const size_t token_floats = (size_t)HKV * D;
  pa_buffer *k_cache, *v_cache, *block_table_buf, *q_buf, *out_buf, *ws = NULL;
  CHECK(pa_buffer_create(ctx, (size_t)NUM_PAGES * PAGE * token_floats * sizeof(float), &k_cache));
  CHECK(pa_buffer_create(ctx, (size_t)NUM_PAGES * PAGE * token_floats * sizeof(float), &v_cache));
  CHECK(pa_buffer_create(ctx, sizeof(int32_t) * BATCH * MAX_PAGES, &block_table_buf));
  CHECK(pa_buffer_create(ctx, sizeof(float) * BATCH * HQ * D, &q_buf));
  CHECK(pa_buffer_create(ctx, sizeof(float) * BATCH * HQ * D, &out_buf));
  size_t ws_size = 0;

  int32_t block_table[BATCH][MAX_PAGES] = {{0}};
  int32_t len_q[BATCH], len_k[BATCH] = {100, 37, 250, 5}; /* prompts already in the cache */
  int next_page = 0;
  unsigned seed = 1;
  static float kv[2][PAGE * HKV * D];

  /* Fill the prompts' K/V (a real engine's prefill would write these). */
  for (int b = 0; b < BATCH; b++) {
    for (int p = 0; p * PAGE < len_k[b]; p++) {
      block_table[b][p] = next_page++;
      for (int x = 0; x < 2; x++)
        for (size_t i = 0; i < (size_t)PAGE * token_floats; i++) kv[x][i] = rnd(&seed);
      size_t off = (size_t)block_table[b][p] * PAGE * token_floats * sizeof(float);
      CHECK(pa_buffer_write(k_cache, off, kv[0], sizeof kv[0]));
      CHECK(pa_buffer_write(v_cache, off, kv[1], sizeof kv[1]));
    }
    len_q[b] = 1;
  }

  pa_attention_desc desc;
  pa_attention_desc_init(&desc, HQ, HKV, D, PA_F32);
  desc.page_size = PAGE;

  pa_attention_args args;
  memset(&args, 0, sizeof args);
  int64_t q_shape[3] = {BATCH, HQ, D}, kv_shape[4] = {NUM_PAGES, PAGE, HKV, D};
  int64_t bt_shape[2] = {BATCH, MAX_PAGES};
  CHECK(pa_tensor_init(&args.q, q_buf, 0, PA_F32, 3, q_shape));
  CHECK(pa_tensor_init(&args.out, out_buf, 0, PA_F32, 3, q_shape));
  CHECK(pa_tensor_init(&args.k, k_cache, 0, PA_F32, 4, kv_shape));
  CHECK(pa_tensor_init(&args.v, v_cache, 0, PA_F32, 4, kv_shape));
  CHECK(pa_tensor_init(&args.block_table, block_table_buf, 0, PA_I32, 2, bt_shape));

  static float q[BATCH * HQ * D], out[BATCH * HQ * D];
  double checksum = 0, ms = 0;
  for (int step = 0; step < steps; step++) {
    /* Append this step's token to every request: K/V into its slot, a new
     * page when the last one is full. */
    for (int b = 0; b < BATCH && len_k[b] < MAX_LEN; b++) {
      int pos = len_k[b]++;
      if (pos % PAGE == 0) block_table[b][pos / PAGE] = next_page++;
      for (int x = 0; x < 2; x++)
        for (size_t i = 0; i < token_floats; i++) kv[x][i] = rnd(&seed);
      size_t off = ((size_t)block_table[b][pos / PAGE] * PAGE + pos % PAGE) * token_floats * 4;
      CHECK(pa_buffer_write(k_cache, off, kv[0], token_floats * sizeof(float)));
      CHECK(pa_buffer_write(v_cache, off, kv[1], token_floats * sizeof(float)));
    }
    CHECK(pa_buffer_write(block_table_buf, 0, block_table, sizeof block_table));
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) q[i] = rnd(&seed);
    CHECK(pa_buffer_write(q_buf, 0, q, sizeof q));

    double t0 = now_ms();
    /* Plan: host work for this batch's lengths (splits, work list). */
    pa_batch batch = {BATCH, len_q, len_k, NULL, NULL};
    pa_plan *plan = NULL;
    CHECK(pa_attention_plan(ctx, &desc, &batch, &plan));
    if (pa_plan_workspace_size(plan) > ws_size) { /* grow the workspace, never shrink */
      pa_buffer_destroy(ws);
      ws_size = pa_plan_workspace_size(plan);
      CHECK(pa_buffer_create(ctx, ws_size, &ws));
    }
    CHECK(pa_attention_run(plan, &args, ws)); /* enqueues; never waits */
    CHECK(pa_context_synchronize(ctx));
    ms += now_ms() - t0;
    pa_plan_destroy(plan);

    CHECK(pa_buffer_read(out_buf, 0, out, sizeof out));
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) checksum += out[i];
  }
  printf("%d steps, %.3f ms per step (plan + attention), lengths %d %d %d %d\n", steps,
         steps ? ms / steps : 0.0, len_k[0], len_k[1], len_k[2], len_k[3]);
  printf("checksum %.6f\n", checksum);

  pa_buffer_destroy(ws);
  pa_buffer_destroy(out_buf);
  pa_buffer_destroy(q_buf);
  pa_buffer_destroy(block_table_buf);
  pa_buffer_destroy(v_cache);
  pa_buffer_destroy(k_cache);
  pa_context_destroy(ctx);
  return 0;
}

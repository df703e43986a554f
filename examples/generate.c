/* generate: what an inference engine does with polyattn, end to end.
 *
 * A tiny decoder-only transformer with random weights (4 layers, 8 query
 * heads sharing 2 KV heads, head dim 64, RoPE, RMSNorm, SiLU MLP, tied
 * embeddings over 256 byte tokens) serves 4 prompts at once: one ragged
 * prefill of all prompts, then one decode step per generated token, greedy.
 * Keys and values live in a paged cache on the device (pages handed out as
 * sequences grow, a block table per sequence); attention runs on the chosen
 * backend; the small GEMMs around it run here on the host.
 * Greedy decoding of the same weights gives the same tokens on every backend.
 *
 *   ./generate [--backend auto|cpu|cuda|opencl] [--steps N]
 */
#include <math.h>
#include <polyattn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { LAYERS = 4, HQ = 8, HKV = 2, D = 64, DM = HQ * D, DKV = HKV * D, FF = 1024, VOCAB = 256 };
enum { BATCH = 4, PAGE = 16 };
static const char *const PROMPTS[BATCH] = {"polyattn", "a paged KV cache",
                                           "greedy decoding of random weights", "GQA 8/2"};

#define CHECK(call)                                                                                \
  do {                                                                                             \
    pa_status s_ = (call);                                                                         \
    if (s_ != PA_OK) {                                                                             \
      fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #call,                                 \
              e->ctx ? pa_context_last_error(e->ctx) : pa_status_str(s_));                         \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

typedef struct {
  float *wq, *wk, *wv, *wo, *w1, *w3, *w2; /* [in, out], row-major */
} layer;

typedef struct {
  pa_context *ctx;
  layer l[LAYERS];
  float *emb;                                   /* [VOCAB, DM], also the output head */
  pa_buffer *k_cache[LAYERS], *v_cache[LAYERS]; /* [pages, PAGE, HKV, D] f32 */
  pa_buffer *table_buf, *q_buf, *out_buf;
  pa_buffer *k_new, *v_new, *slot_buf; /* a step's new K/V rows and their slots */
  int max_pages, next_page;            /* pages per sequence; the page allocator */
  int32_t *table;                      /* [BATCH, max_pages] */
  int32_t len[BATCH];                  /* tokens in the cache per sequence */
  double attn_ms;                      /* time in polyattn calls (append, run, read) */
} engine;

static unsigned seed = 12345;
static float rnd(void) { /* deterministic: every backend gets the same weights */
  seed = seed * 1664525u + 1013904223u;
  return (float)(seed >> 8) / 8388608.0f - 1.0f;
}

static float *weights(int rows, int cols) {
  float *w = malloc(sizeof(float) * rows * cols), s = sqrtf(3.0f / rows);
  if (!w) exit(1);
  for (int i = 0; i < rows * cols; i++) w[i] = s * rnd();
  return w;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* y[T, N] = x[T, K] @ w[K, N] */
static void matmul(const float *x, int T, int K, const float *w, int N, float *y) {
  memset(y, 0, sizeof(float) * T * N);
  for (int t = 0; t < T; t++)
    for (int k = 0; k < K; k++) {
      const float a = x[(size_t)t * K + k], *wr = w + (size_t)k * N;
      float *yr = y + (size_t)t * N;
      for (int n = 0; n < N; n++) yr[n] += a * wr[n];
    }
}

static void rmsnorm(const float *x, int T, float *y) {
  for (int t = 0; t < T; t++) {
    double ss = 0;
    for (int i = 0; i < DM; i++) ss += (double)x[t * DM + i] * x[t * DM + i];
    float r = (float)(1.0 / sqrt(ss / DM + 1e-6));
    for (int i = 0; i < DM; i++) y[t * DM + i] = x[t * DM + i] * r;
  }
}

/* Rotary embedding (rotate-half form) of heads [T, H, D] at positions pos. */
static void rope(float *x, int T, int H, const int32_t *pos) {
  for (int t = 0; t < T; t++)
    for (int h = 0; h < H; h++) {
      float *v = x + ((size_t)t * H + h) * D;
      for (int i = 0; i < D / 2; i++) {
        double a = pos[t] * pow(10000.0, -2.0 * i / D);
        float c = (float)cos(a), s = (float)sin(a), x0 = v[i], x1 = v[i + D / 2];
        v[i] = x0 * c - x1 * s;
        v[i + D / 2] = x0 * s + x1 * c;
      }
    }
}

/* Writes T new tokens' keys and values [T, HKV, D] into layer l's paged cache
 * at slots (page * PAGE + offset), on the device. */
static void cache_append(engine *e, int l, int T, const float *k, const float *v,
                         const int32_t *slots) {
  const int64_t rows[3] = {T, HKV, D}, cache[4] = {BATCH * e->max_pages, PAGE, HKV, D}, n[1] = {T};
  pa_kv_append_args a = {0};
  CHECK(pa_buffer_write(e->k_new, 0, k, sizeof(float) * T * DKV));
  CHECK(pa_buffer_write(e->v_new, 0, v, sizeof(float) * T * DKV));
  CHECK(pa_buffer_write(e->slot_buf, 0, slots, sizeof(int32_t) * T));
  CHECK(pa_tensor_init(&a.k, e->k_new, 0, PA_F32, 3, rows));
  CHECK(pa_tensor_init(&a.v, e->v_new, 0, PA_F32, 3, rows));
  CHECK(pa_tensor_init(&a.slot_mapping, e->slot_buf, 0, PA_I32, 1, n));
  CHECK(pa_tensor_init(&a.k_cache, e->k_cache[l], 0, PA_F32, 4, cache));
  CHECK(pa_tensor_init(&a.v_cache, e->v_cache[l], 0, PA_F32, 4, cache));
  CHECK(pa_kv_append(e->ctx, &a));
}

/* Runs the model on T new tokens (seqlens_q[b] of sequence b, in order) and
 * writes each sequence's greedy next token. Grows the cache by T tokens. */
static void forward(engine *e, const int32_t *tokens, const int32_t *seqlens_q, int32_t *next) {
  int T = 0;
  for (int b = 0; b < BATCH; b++) T += seqlens_q[b];
  float *x = malloc(sizeof(float) * T * DM), *h = malloc(sizeof(float) * T * DM),
        *q = malloc(sizeof(float) * T * DM), *k = malloc(sizeof(float) * T * DKV),
        *v = malloc(sizeof(float) * T * DKV), *att = malloc(sizeof(float) * T * DM),
        *a = malloc(sizeof(float) * T * FF), *g = malloc(sizeof(float) * T * FF);
  int32_t *pos = malloc(sizeof(int32_t) * T), *slots = malloc(sizeof(int32_t) * T);
  if (!x || !h || !q || !k || !v || !att || !a || !g || !pos || !slots) exit(1);

  /* Positions, pages for the new tokens, their cache slots. */
  int32_t seqlens_k[BATCH];
  for (int b = 0, t = 0; b < BATCH; b++) {
    for (int i = 0; i < seqlens_q[b]; i++, t++) {
      int p = e->len[b] + i;
      if (p % PAGE == 0) {
        if (p / PAGE >= e->max_pages) exit(1);
        e->table[b * e->max_pages + p / PAGE] = e->next_page++;
      }
      pos[t] = p;
      slots[t] = e->table[b * e->max_pages + p / PAGE] * PAGE + p % PAGE;
    }
    seqlens_k[b] = e->len[b] + seqlens_q[b];
  }
  double t0 = now_ms();
  CHECK(pa_buffer_write(e->table_buf, 0, e->table, sizeof(int32_t) * BATCH * e->max_pages));

  /* One plan serves every layer of this step: same batch, same shapes. */
  pa_attention_desc desc;
  pa_attention_desc_init(&desc, HQ, HKV, D, PA_F32);
  desc.causal = 1;
  desc.page_size = PAGE;
  pa_batch batch = {BATCH, seqlens_q, seqlens_k, NULL, NULL};
  pa_plan *plan;
  CHECK(pa_attention_plan(e->ctx, &desc, &batch, &plan));
  pa_attention_args args = {0};
  const int64_t qs[3] = {T, HQ, D}, cs[4] = {e->max_pages * BATCH, PAGE, HKV, D},
                ts[2] = {BATCH, e->max_pages};
  CHECK(pa_tensor_init(&args.q, e->q_buf, 0, PA_F32, 3, qs));
  CHECK(pa_tensor_init(&args.out, e->out_buf, 0, PA_F32, 3, qs));
  CHECK(pa_tensor_init(&args.block_table, e->table_buf, 0, PA_I32, 2, ts));
  e->attn_ms += now_ms() - t0;

  for (int t = 0; t < T; t++)
    memcpy(x + (size_t)t * DM, e->emb + (size_t)tokens[t] * DM, sizeof(float) * DM);
  for (int l = 0; l < LAYERS; l++) {
    const layer *w = &e->l[l];
    rmsnorm(x, T, h);
    matmul(h, T, DM, w->wq, DM, q);
    matmul(h, T, DM, w->wk, DKV, k);
    matmul(h, T, DM, w->wv, DKV, v);
    rope(q, T, HQ, pos);
    rope(k, T, HKV, pos);

    t0 = now_ms();
    cache_append(e, l, T, k, v, slots);
    CHECK(pa_tensor_init(&args.k, e->k_cache[l], 0, PA_F32, 4, cs));
    CHECK(pa_tensor_init(&args.v, e->v_cache[l], 0, PA_F32, 4, cs));
    CHECK(pa_buffer_write(e->q_buf, 0, q, sizeof(float) * T * DM));
    CHECK(pa_attention_run(plan, &args, NULL));
    CHECK(pa_buffer_read(e->out_buf, 0, att, sizeof(float) * T * DM)); /* ordered after the run */
    e->attn_ms += now_ms() - t0;

    matmul(att, T, DM, w->wo, DM, h);
    for (int i = 0; i < T * DM; i++) x[i] += h[i];
    rmsnorm(x, T, h);
    matmul(h, T, DM, w->w1, FF, a);
    matmul(h, T, DM, w->w3, FF, g);
    for (int i = 0; i < T * FF; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * g[i];
    matmul(a, T, FF, w->w2, DM, h);
    for (int i = 0; i < T * DM; i++) x[i] += h[i];
  }
  pa_plan_destroy(plan);

  /* Greedy next token from each sequence's last position (tied head). */
  for (int b = 0, t = -1; b < BATCH; b++) {
    t += seqlens_q[b];
    rmsnorm(x + (size_t)t * DM, 1, h);
    int best = 0;
    float best_logit = -INFINITY;
    for (int tok = 0; tok < VOCAB; tok++) {
      float s = 0;
      for (int i = 0; i < DM; i++) s += h[i] * e->emb[(size_t)tok * DM + i];
      if (s > best_logit) best_logit = s, best = tok;
    }
    next[b] = best;
    e->len[b] = seqlens_k[b];
  }
  free(x), free(h), free(q), free(k), free(v), free(att), free(a), free(g), free(pos), free(slots);
}

int main(int argc, char **argv) {
  pa_backend backend = PA_BACKEND_AUTO;
  int steps = 32;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
      steps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
      const char *b = argv[++i];
      backend = !strcmp(b, "cpu")      ? PA_BACKEND_CPU
                : !strcmp(b, "cuda")   ? PA_BACKEND_CUDA
                : !strcmp(b, "opencl") ? PA_BACKEND_OPENCL
                : !strcmp(b, "auto")   ? PA_BACKEND_AUTO
                                       : (pa_backend)-1;
      if ((int)backend < 0) {
        fprintf(stderr, "--backend %s: expected auto, cpu, cuda or opencl\n", b);
        return 2;
      }
    } else {
      fprintf(stderr, "usage: %s [--backend auto|cpu|cuda|opencl] [--steps N]\n", argv[0]);
      return 2;
    }
  }
  if (steps < 1 || steps > 100000) {
    fprintf(stderr, "--steps %d: expected 1 to 100000\n", steps);
    return 2;
  }

  engine eng = {0}, *e = &eng;
  pa_context_desc cd;
  pa_context_desc_init(&cd);
  cd.backend = backend;
  CHECK(pa_context_create(&cd, &e->ctx));
  pa_device_info info;
  CHECK(pa_context_info(e->ctx, &info));
  printf("backend %s, device %s\n", pa_backend_name(pa_context_backend(e->ctx)), info.name);

  for (int l = 0; l < LAYERS; l++) {
    layer *w = &e->l[l];
    w->wq = weights(DM, DM), w->wk = weights(DM, DKV), w->wv = weights(DM, DKV);
    w->wo = weights(DM, DM), w->w1 = weights(DM, FF), w->w3 = weights(DM, FF);
    w->w2 = weights(FF, DM);
  }
  e->emb = weights(VOCAB, DM);

  int32_t prompt_len[BATCH], total = 0, longest = 0;
  for (int b = 0; b < BATCH; b++) {
    prompt_len[b] = (int32_t)strlen(PROMPTS[b]);
    total += prompt_len[b];
    longest = prompt_len[b] > longest ? prompt_len[b] : longest;
  }
  e->max_pages = (longest + steps + PAGE - 1) / PAGE;
  const size_t cache_bytes = sizeof(float) * BATCH * e->max_pages * PAGE * DKV;
  for (int l = 0; l < LAYERS; l++) {
    CHECK(pa_buffer_create(e->ctx, cache_bytes, &e->k_cache[l]));
    CHECK(pa_buffer_create(e->ctx, cache_bytes, &e->v_cache[l]));
  }
  const int max_tokens = total > BATCH ? total : BATCH;
  CHECK(pa_buffer_create(e->ctx, sizeof(int32_t) * BATCH * e->max_pages, &e->table_buf));
  CHECK(pa_buffer_create(e->ctx, sizeof(float) * max_tokens * DM, &e->q_buf));
  CHECK(pa_buffer_create(e->ctx, sizeof(float) * max_tokens * DM, &e->out_buf));
  CHECK(pa_buffer_create(e->ctx, sizeof(float) * max_tokens * DKV, &e->k_new));
  CHECK(pa_buffer_create(e->ctx, sizeof(float) * max_tokens * DKV, &e->v_new));
  CHECK(pa_buffer_create(e->ctx, sizeof(int32_t) * max_tokens, &e->slot_buf));
  e->table = calloc((size_t)BATCH * e->max_pages, sizeof(int32_t));
  int32_t *tokens = malloc(sizeof(int32_t) * max_tokens),
          *out = malloc(sizeof(int32_t) * BATCH * steps);
  if (!e->table || !tokens || !out) return 1;

  /* Prefill: every prompt in one ragged batch. */
  for (int b = 0, t = 0; b < BATCH; b++)
    for (int i = 0; i < prompt_len[b]; i++) tokens[t++] = (unsigned char)PROMPTS[b][i];
  int32_t next[BATCH], ones[BATCH] = {1, 1, 1, 1};
  double t0 = now_ms();
  forward(e, tokens, prompt_len, next);
  double prefill_ms = now_ms() - t0, prefill_attn = e->attn_ms;
  memcpy(out, next, sizeof next);

  /* Decode: one token per sequence per step. */
  const int tty = isatty(STDERR_FILENO);
  e->attn_ms = 0;
  t0 = now_ms();
  for (int s = 1; s < steps; s++) {
    forward(e, next, ones, next);
    memcpy(out + s * BATCH, next, sizeof next);
    if (tty && (s % 8 == 0 || s == steps - 1))
      fprintf(stderr, "\rdecode %d/%d steps, %.0f tokens/s ", s, steps - 1,
              s * BATCH / ((now_ms() - t0) * 1e-3));
  }
  double decode_ms = now_ms() - t0;
  if (tty) fputc('\n', stderr);

  unsigned hash = 2166136261u; /* FNV-1a over all generated tokens */
  for (int b = 0; b < BATCH; b++) {
    printf("seq %d (%2d prompt tokens):", b, prompt_len[b]);
    for (int s = 0; s < steps; s++) {
      hash = (hash ^ (unsigned)out[s * BATCH + b]) * 16777619u;
      if (s < 16) printf(" %d", out[s * BATCH + b]);
    }
    printf("%s\n", steps > 16 ? " ..." : "");
  }
  printf("prefill: %d tokens in %.1f ms = %.0f tokens/s (attention %.0f%%)\n", total, prefill_ms,
         total / (prefill_ms * 1e-3), 100 * prefill_attn / prefill_ms);
  if (steps > 1)
    printf("decode:  %d steps x %d sequences in %.1f ms = %.0f tokens/s (attention %.0f%%)\n",
           steps - 1, BATCH, decode_ms, (steps - 1) * BATCH / (decode_ms * 1e-3),
           100 * e->attn_ms / decode_ms);
  printf("tokens: %d generated, fnv1a %08x\n", steps * BATCH, hash);

  for (int l = 0; l < LAYERS; l++) {
    layer *w = &e->l[l];
    free(w->wq), free(w->wk), free(w->wv), free(w->wo), free(w->w1), free(w->w3), free(w->w2);
    pa_buffer_destroy(e->k_cache[l]);
    pa_buffer_destroy(e->v_cache[l]);
  }
  free(e->emb), free(e->table), free(tokens), free(out);
  pa_buffer_destroy(e->table_buf);
  pa_buffer_destroy(e->q_buf);
  pa_buffer_destroy(e->out_buf);
  pa_buffer_destroy(e->k_new);
  pa_buffer_destroy(e->v_new);
  pa_buffer_destroy(e->slot_buf);
  pa_context_destroy(e->ctx);
  return 0;
}

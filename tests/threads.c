/* Threads: 8 threads, each with its own context, plan and run different
 * shapes in a loop; every output must be bit-identical to the one the same
 * case gave on one thread. A ninth thread swaps the log callback meanwhile
 * (pa_set_log_callback is thread-safe, polyattn.h). Run under
 * ThreadSanitizer by scripts/test.sh (CPU target; the OpenCL target needs an
 * instrumented driver). */
#ifdef PA_TSAN_MAIN
/* Criterion does not start under ThreadSanitizer (Snaipe/Criterion#274): the
 * TSan build runs this file through its own main with these stand-ins. */
#include <stdio.h>
#include <stdlib.h>
static int tsan_failed;
#define cr_assert(c, ...)                                                                          \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "FAIL: " __VA_ARGS__);                                                       \
      fputc('\n', stderr);                                                                         \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)
#define cr_expect(c, ...)                                                                          \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "FAIL: " __VA_ARGS__);                                                       \
      fputc('\n', stderr);                                                                         \
      tsan_failed = 1;                                                                             \
    }                                                                                              \
  } while (0)
#define cr_log_info(...) (fprintf(stderr, __VA_ARGS__), fputc('\n', stderr))
#else
#include <criterion/criterion.h>
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attn_case.h"

#define THREADS 8
#define ROUNDS 3

/* clang-format off */
/* Shapes of cross_backend.c: decode with splits, paged GQA, prefill, padded. */
static const attn_case cases[] = {
  {.name = "splits3",      .batch = 2, .lq = {1, 2},    .lk = {1025, 203},  .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_F32, .causal = 1, .num_splits = 3, .opts = AO_LSE},
  {.name = "g7_f16_paged", .batch = 2, .lq = {3, 1},    .lk = {203, 7},     .hq = 14, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1, .page_size = 64, .opts = AO_LSE},
  {.name = "p113_causal",  .batch = 1, .lq = {113},     .lk = {113},        .hq = 4, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "padded",       .batch = 3, .lq = {7, 1, 3}, .lk = {113, 7, 203}, .hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .layout = AL_PADDED, .opts = AO_LSE},
  {.name = "pg16_hnd_d59", .batch = 1, .lq = {3},       .lk = {77},         .hq = 2, .hkv = 1, .dqk = 59, .dtype = PA_F32, .causal = 1, .page_size = 16, .opts = AO_LSE | AO_HND},
};
/* clang-format on */
#define NCASES ((int)(sizeof cases / sizeof cases[0]))

typedef struct result {
  unsigned char *out, *lse; /* whole buffers as downloaded */
  size_t out_bytes, lse_bytes;
} result;

static result single[NCASES];
static pa_context_desc ctx_desc;
static atomic_int mismatches, failures, logged;
static atomic_bool done;
static char first_problem[1024];
static pthread_mutex_t problem_lock = PTHREAD_MUTEX_INITIALIZER;

static void problem(const char *what, const char *name, const char *msg) {
  pthread_mutex_lock(&problem_lock);
  if (!first_problem[0])
    snprintf(first_problem, sizeof first_problem, "%.60s %.60s: %.800s", what, name,
             msg ? msg : "");
  pthread_mutex_unlock(&problem_lock);
}

/* Runs case c on ctx; on success copies the downloaded out/lse into r. */
static bool run_case(pa_context *ctx, int c, result *r) {
  attn_problem p;
  pa_status s = attn_setup(&p, ctx, &cases[c]);
  if (s == PA_OK) s = attn_execute(&p, NULL, NULL);
  if (s != PA_OK) {
    problem("run", cases[c].name, p.msg);
    attn_free(&p);
    return false;
  }
  r->out_bytes = p.out.bytes;
  r->out = malloc(r->out_bytes);
  memcpy(r->out, p.out.back, r->out_bytes);
  r->lse_bytes = p.lse.host ? p.lse.bytes : 0;
  r->lse = r->lse_bytes ? malloc(r->lse_bytes) : NULL;
  if (r->lse) memcpy(r->lse, p.lse.back, r->lse_bytes);
  attn_free(&p);
  return true;
}

static void result_free(result *r) {
  free(r->out);
  free(r->lse);
  memset(r, 0, sizeof *r);
}

static void *worker(void *arg) {
  int t = (int)(intptr_t)arg;
  pa_context *ctx = NULL;
  pa_status s = pa_context_create(&ctx_desc, &ctx);
  if (s != PA_OK) {
    atomic_fetch_add(&failures, 1);
    problem("context", "", pa_status_str(s));
    return NULL;
  }
  for (int round = 0; round < ROUNDS; round++)
    for (int i = 0; i < NCASES; i++) {
      int c = (t + i) % NCASES; /* threads run different shapes at once */
      result r = {0};
      if (!run_case(ctx, c, &r)) {
        atomic_fetch_add(&failures, 1);
        continue;
      }
      if (r.out_bytes != single[c].out_bytes || memcmp(r.out, single[c].out, r.out_bytes) ||
          r.lse_bytes != single[c].lse_bytes ||
          (r.lse_bytes && memcmp(r.lse, single[c].lse, r.lse_bytes))) {
        atomic_fetch_add(&mismatches, 1);
        problem("bits differ from the single-threaded run", cases[c].name, "");
      }
      result_free(&r);
    }
  pa_context_destroy(ctx);
  return NULL;
}

static void count_log(int level, const char *msg, void *user) {
  (void)level, (void)msg;
  atomic_fetch_add((atomic_int *)user, 1);
}

/* Swaps the log callback (and its user pointer) while the workers plan. */
static void *log_swapper(void *arg) {
  (void)arg;
  static atomic_int other;
  while (!atomic_load(&done)) {
    pa_set_log_callback(count_log, &other);
    pa_set_log_callback(count_log, &logged);
  }
  return NULL;
}

#ifdef PA_TSAN_MAIN
static pa_context *open_target(const char *target) {
  const tu_target *tg = tu_target_find(target);
  static char opts[64];
  snprintf(opts, sizeof opts, "cpu.isa=%s", tg->isa ? tg->isa : "auto");
  pa_context_desc d = {.backend = tg->backend, .device = -1, .options = tg->isa ? opts : NULL};
  pa_context *ctx = NULL;
  return pa_context_create(&d, &ctx) == PA_OK ? ctx : NULL;
}
#else
#define open_target tu_open_or_skip
#endif

static void threads(const char *target) {
  pa_context *ctx = open_target(target);
  if (!ctx) return;                      /* TSan main: ISA not on this host */
  const tu_target *tg = tu_target_find(target);
  /* the workers' contexts take the target's ISA as the reference did */
  static char opts[64];
  snprintf(opts, sizeof opts, "cpu.isa=%s", tg->isa ? tg->isa : "auto");
  ctx_desc = (pa_context_desc){.backend = tg->backend,
                               .device = -1,
                               .cache_dir = getenv("PA_TEST_CACHE_DIR"),
                               .options = tg->backend == PA_BACKEND_CPU ? opts : NULL};
  for (int c = 0; c < NCASES; c++)
    cr_assert(run_case(ctx, c, &single[c]), "[%s] single-threaded: %s", target, first_problem);
  pa_context_destroy(ctx);

  pa_set_log_callback(count_log, &logged);
  pthread_t th[THREADS], swapper;
  cr_assert(pthread_create(&swapper, NULL, log_swapper, NULL) == 0, "pthread_create");
  for (int t = 0; t < THREADS; t++)
    cr_assert(pthread_create(&th[t], NULL, worker, (void *)(intptr_t)t) == 0, "pthread_create");
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  atomic_store(&done, true);
  pthread_join(swapper, NULL);
  pa_set_log_callback(NULL, NULL);

  cr_expect(atomic_load(&failures) == 0 && atomic_load(&mismatches) == 0,
            "[%s] %d threads x %d runs: %d failed, %d not bit-identical; first: %s", target,
            THREADS, ROUNDS * NCASES, atomic_load(&failures), atomic_load(&mismatches),
            first_problem);
  cr_log_info("[%s] %d threads x %d runs each, bit-identical to one thread (%d log calls)", target,
              THREADS, ROUNDS * NCASES, atomic_load(&logged));
  for (int c = 0; c < NCASES; c++) result_free(&single[c]);
}

#ifdef PA_TSAN_MAIN
int main(void) {
  threads("cpu_avx2");
  atomic_store(&done, false);
  threads("cpu_scalar");
  return tsan_failed;
}
#else
Test(cpu_avx2, threads, .timeout = 300) { threads("cpu_avx2"); }
Test(cpu_scalar, threads, .timeout = 300) { threads("cpu_scalar"); }
Test(opencl, threads, .timeout = 300) { threads("opencl"); }
#endif

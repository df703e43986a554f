/* Workers sleep on a condition variable between jobs; a job is published by
 * bumping a generation counter. Items are claimed one at a time through an
 * atomic counter, so uneven items (causal tiles, ragged requests) balance
 * themselves. */
#include "pool.h"
#include "fault.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

typedef struct worker {
  pa_pool *pool;
  int tid;
  pthread_t thread;
} worker;

struct pa_pool {
  int threads;
  int started; /* workers actually running */
  worker *workers;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  uint64_t generation;
  int busy; /* workers still inside the current job */
  bool quit;
  /* the current job */
  pa_pool_fn fn;
  void *arg;
  int64_t n;
  atomic_llong next;
};

static void drain(pa_pool *p, int tid) {
  for (;;) {
    long long i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
    if (i >= p->n) return;
    p->fn(p->arg, (int64_t)i, tid);
  }
}

static void *worker_main(void *opaque) {
  worker *w = opaque;
  pa_pool *p = w->pool;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit && p->generation == seen) pthread_cond_wait(&p->wake, &p->mu);
    if (p->quit) break;
    seen = p->generation;
    pthread_mutex_unlock(&p->mu);
    drain(p, w->tid);
    pthread_mutex_lock(&p->mu);
    if (--p->busy == 0) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

pa_status pa_pool_create(int threads, pa_pool **out) {
  if (threads < 1) threads = 1;
  pa_pool *p = PA_FAULT_OR(calloc(1, sizeof *p));
  if (!p) return PA_ERR_OUT_OF_MEMORY;
  p->threads = threads;
  p->workers = calloc((size_t)threads, sizeof *p->workers);
  if (!p->workers) {
    free(p);
    return PA_ERR_OUT_OF_MEMORY;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->next, 0);
  for (int t = 1; t < threads; t++) {
    worker *w = &p->workers[t];
    w->pool = p;
    w->tid = t;
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      p->threads = t; /* fewer threads than asked: still correct */
      break;
    }
    p->started++;
  }
  *out = p;
  return PA_OK;
}

void pa_pool_destroy(pa_pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->quit = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int t = 1; t <= p->started; t++) pthread_join(p->workers[t].thread, NULL);
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
  free(p->workers);
  free(p);
}

int pa_pool_threads(const pa_pool *p) { return p->threads; }

void pa_pool_run(pa_pool *p, int64_t n, pa_pool_fn fn, void *arg) {
  if (n <= 0) return;
  if (n == 1 || p->started == 0) { /* not worth waking anyone */
    for (int64_t i = 0; i < n; i++) fn(arg, i, 0);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  atomic_store_explicit(&p->next, 0, memory_order_relaxed);
  p->busy = p->started;
  p->generation++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  drain(p, 0);
  pthread_mutex_lock(&p->mu);
  while (p->busy > 0) pthread_cond_wait(&p->done, &p->mu);
  pthread_mutex_unlock(&p->mu);
}

/* A small pthread pool owned by a CPU context. pa_pool_run hands out item
 * indices 0..n-1 through an atomic counter to the workers and the calling
 * thread (tid 0); it returns when all items are done. */
#ifndef PA_CPU_POOL_H
#define PA_CPU_POOL_H

#include <stdint.h>

#include "polyattn.h"

typedef struct pa_pool pa_pool;
typedef void (*pa_pool_fn)(void *arg, int64_t item, int tid);

/* threads >= 1 (the caller counts as one). */
pa_status pa_pool_create(int threads, pa_pool **out);
void pa_pool_destroy(pa_pool *pool);
int pa_pool_threads(const pa_pool *pool);
void pa_pool_run(pa_pool *pool, int64_t n, pa_pool_fn fn, void *arg);

#endif

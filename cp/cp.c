/* The communicator handle, error messages and the shard arithmetic shared by
 * decode and ring prefill. */
#include "cp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

pa_status cp_fail(pa_cp *cp, pa_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cp->msg, sizeof cp->msg, fmt, ap);
  va_end(ap);
  return st;
}

pa_status cp_ctx_fail(pa_cp *cp, pa_status st, const char *what) {
  return cp_fail(cp, st, "%s: %s (%s)", what, pa_context_last_error(cp->ctx), pa_status_str(st));
}

pa_status cp_agree(pa_cp *cp, pa_status st) {
  int *all = malloc(sizeof(int) * (size_t)cp->size);
  if (!all) return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
  int mine = (int)st;
  pa_status ct = cp->tp->host_allgather(cp, &mine, all, sizeof mine);
  if (ct == PA_OK && st == PA_OK) {
    for (int r = 0; r < cp->size; r++)
      if (all[r] != PA_OK) {
        ct = cp_fail(cp, (pa_status)all[r], "rank %d failed (%s); see its pa_cp_last_error", r,
                     pa_status_str((pa_status)all[r]));
        break;
      }
  }
  free(all);
  return st != PA_OK ? st : ct;
}

pa_status cp_create(pa_context *ctx, const cp_transport *tp, void *impl, int rank, int size,
                    pa_cp **out) {
  pa_cp *cp = calloc(1, sizeof *cp);
  if (!cp) return PA_ERR_OUT_OF_MEMORY;
  cp->ctx = ctx;
  cp->tp = tp;
  cp->impl = impl;
  cp->rank = rank;
  cp->size = size;
  *out = cp;
  return PA_OK;
}

void pa_cp_destroy(pa_cp *cp) {
  if (!cp) return;
  if (cp->tp->destroy) cp->tp->destroy(cp);
  free(cp);
}

int pa_cp_rank(const pa_cp *cp) { return cp ? cp->rank : -1; }
int pa_cp_size(const pa_cp *cp) { return cp ? cp->size : 0; }
const char *pa_cp_transport(const pa_cp *cp) { return cp ? cp->tp->name : ""; }
const char *pa_cp_last_error(const pa_cp *cp) { return cp ? cp->msg : "cp is NULL"; }

/* Units of a request: pages (or tokens when not paged). */
static int32_t units(int32_t len, int unit) { return (int32_t)(((int64_t)len + unit - 1) / unit); }

void pa_cp_shard_owner(pa_cp_shard shard, int32_t u, int32_t n, int size, int *rank,
                       int32_t *local_index) {
  int r;
  int32_t li;
  if (shard == PA_CP_SHARD_INTERLEAVED) {
    r = u % size;
    li = u / size;
  } else {
    /* the r with r*n/R <= u < (r+1)*n/R */
    r = (int)(((int64_t)u * size + size - 1) / (n > 0 ? n : 1));
    while (r > 0 && (int64_t)r * n / size > u) r--;
    while (r + 1 < size && (int64_t)(r + 1) * n / size <= u) r++;
    li = u - (int32_t)((int64_t)r * n / size);
  }
  if (rank) *rank = r;
  if (local_index) *local_index = li;
}

int32_t pa_cp_shard_len(pa_cp_shard shard, int32_t len, int page_size, int rank, int size) {
  if (len <= 0 || size <= 0 || rank < 0 || rank >= size) return 0;
  int unit = page_size > 0 ? page_size : 1;
  int32_t n = units(len, unit), first, last; /* owned units [first, last) or strided */
  int32_t tail = len - (n - 1) * unit;       /* tokens of the last unit */
  int32_t count;
  bool owns_last;
  if (shard == PA_CP_SHARD_INTERLEAVED) {
    count = n > rank ? (n - 1 - rank) / size + 1 : 0;
    owns_last = (n - 1) % size == rank;
  } else {
    first = (int32_t)((int64_t)rank * n / size);
    last = (int32_t)((int64_t)(rank + 1) * n / size);
    count = last - first;
    owns_last = count > 0 && last == n;
  }
  return owns_last ? (count - 1) * unit + tail : count * unit;
}

void pa_cp_zigzag_shard(int rank, int size, int batch_size, const int32_t *seqlens,
                        int32_t *local_len, int32_t *chunk_start, int32_t *chunk_len) {
  int64_t C = 2 * (int64_t)size;
  for (int b = 0; b < batch_size; b++) {
    int64_t L = seqlens[b] > 0 ? seqlens[b] : 0;
    int64_t c[2] = {rank, C - 1 - rank}, tot = 0;
    for (int i = 0; i < 2; i++) {
      int64_t s = c[i] * L / C, e = (c[i] + 1) * L / C;
      if (chunk_start) chunk_start[2 * b + i] = (int32_t)s;
      if (chunk_len) chunk_len[2 * b + i] = (int32_t)(e - s);
      tot += e - s;
    }
    if (local_len) local_len[b] = (int32_t)tot;
  }
}

void pa_cp_plan_destroy(pa_cp_plan *plan) {
  if (plan) cp_plan_free(plan);
}

void cp_plan_free(pa_cp_plan *p) {
  for (int i = 0; i < p->nsub; i++) {
    pa_plan_destroy(p->sub[i].plan);
    free(p->sub[i].page0);
    free(p->sub[i].npages);
    free(p->sub[i].hmask);
  }
  free(p->sub);
  free(p->mrow);
  for (int u = 0; u < p->nunit; u++) pa_plan_destroy(p->unit[u]);
  free(p->unit);
  free(p->ustep);
  free(p->rows);
  free(p->plen);
  free(p->hbt);
  pa_buffer_destroy(p->scratch);
  free(p);
}

pa_status cp_check_same_after(pa_cp *cp, pa_status st, const int64_t *rec, const char *const *names,
                              int n) {
  if (st == PA_OK) return cp_check_same(cp, rec, names, n);
  char keep[sizeof cp->msg];
  memcpy(keep, cp->msg, sizeof keep);
  cp_check_same(cp, rec, names, n);
  memcpy(cp->msg, keep, sizeof keep);
  return st;
}

pa_status cp_check_same(pa_cp *cp, const int64_t *rec, const char *const *names, int n) {
  int64_t *all = malloc(sizeof(int64_t) * (size_t)n * (size_t)cp->size);
  if (!all) return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
  pa_status st = cp->tp->host_allgather(cp, rec, all, sizeof(int64_t) * (size_t)n);
  for (int r = 1; st == PA_OK && r < cp->size; r++)
    for (int i = 0; i < n; i++)
      if (all[(size_t)r * n + i] != all[i]) {
        st = cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                     "ranks disagree: %s=%lld on rank %d but %lld on rank 0", names[i],
                     (long long)all[(size_t)r * n + i], r, (long long)all[i]);
        break;
      }
  free(all);
  return st;
}

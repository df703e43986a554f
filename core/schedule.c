/* The run order of a plan's work list, from what the kernel choice says of
 * itself (per-item overhead, head grouping): the one place a schedule is
 * ordered; backends run the list as it is. */
#include <stdlib.h>

#include "schedule.h"

typedef struct ranked {
  int64_t cost, plain; /* rows x (keys + overhead), rows x keys */
  int32_t index;       /* position in the list as built */
} ranked;

/* Longer items first: the GPU block scheduler and the CPU pool both take work
 * in list order, so the tail of a launch holds the short items. */
static int by_cost(const void *pa, const void *pb) {
  const ranked *a = pa, *b = pb;
  if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
  if (a->plain != b->plain) return a->plain > b->plain ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index; /* stable */
}

/* Items alike in everything but the KV head (same request, rows, split and
 * keys) form a run; a run is cut into head groups. */
typedef struct group_key {
  int32_t b, row0, rows, split, kv_begin, kv_end, hk, item;
} group_key;

static int same_run(const group_key *a, const group_key *b) {
  return a->b == b->b && a->row0 == b->row0 && a->rows == b->rows && a->split == b->split &&
         a->kv_begin == b->kv_begin && a->kv_end == b->kv_end;
}

static int by_group(const void *pa, const void *pb) {
  const group_key *a = pa, *b = pb;
  const int32_t ka[7] = {a->b, a->row0, a->rows, a->split, a->kv_begin, a->kv_end, a->hk};
  const int32_t kb[7] = {b->b, b->row0, b->rows, b->split, b->kv_begin, b->kv_end, b->hk};
  for (int i = 0; i < 7; i++)
    if (ka[i] != kb[i]) return ka[i] < kb[i] ? -1 : 1;
  return 0;
}

/* Group order: the (request, KV head) runs, heaviest run first, each run's
 * groups heaviest first. A thread's next group then mostly rereads the keys
 * of its last one (causal prefill: the tiles of one head) while they are
 * still cached, and the small groups still come last. */
typedef struct group_rank {
  int64_t run, cost;
  int32_t b, hk, index;
} group_rank;

static int by_rank(const void *pa, const void *pb) {
  const group_rank *a = pa, *b = pb;
  if (a->run != b->run) return a->run > b->run ? -1 : 1;
  if (a->b != b->b) return a->b < b->b ? -1 : 1;
  if (a->hk != b->hk) return a->hk < b->hk ? -1 : 1;
  if (a->cost != b->cost) return a->cost > b->cost ? -1 : 1;
  return a->index < b->index ? -1 : a->index > b->index;
}

/* Regroups the cost-ordered list w[0..n) into head groups, in group order,
 * writing the result to out and each group's size into its first item. */
static pa_status group_heads(pa_context *ctx, const pa_plan *p, const pa_work *w, int n,
                             pa_work *out) {
  const int group_rows = p->choice.head_group_rows, group_max = p->choice.head_group_max;
  group_key *keys = malloc((size_t)n * sizeof *keys);
  group_rank *rank = malloc((size_t)n * sizeof *rank);
  int32_t *first = malloc((size_t)n * sizeof *first), *size = malloc((size_t)n * sizeof *size);
  int32_t *items = malloc((size_t)n * sizeof *items);
  pa_status st = PA_OK;
  if (!keys || !rank || !first || !size || !items) {
    st = pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "plan: head groups of %d work items", n);
    goto done;
  }
  int ne = 0, ni = 0, ng = 0;
  for (int i = 0; i < n; i++)
    if (w[i].rows <= group_rows)
      keys[ne++] = (group_key){w[i].b,        w[i].row0,   w[i].rows, w[i].split,
                               w[i].kv_begin, w[i].kv_end, w[i].hk,   i};
  qsort(keys, (size_t)ne, sizeof *keys, by_group);
  /* Groups are coarse: 3 runs of alike items on 2 units take as long as 4.
   * Cut each run into k head groups, the least k that gives every unit the
   * same number of groups, or at least 4 each (then the imbalance is small);
   * never below one head. (b3 on 2 units: 6 groups of 4 heads.) */
  int runs = 0;
  for (int i = 0; i < ne; i++) runs += !i || !same_run(&keys[i - 1], &keys[i]);
  const int units = ctx->props.compute_units, heads = p->desc.num_kv_heads;
  int k = (heads + group_max - 1) / group_max;
  while (runs > 0 && k < heads && (runs * k) % units != 0 && runs * k < 4 * units) k++;
  const int cap = (heads + k - 1) / k;
  for (int i = 0; i < ne; i++) {
    if (!i || !same_run(&keys[i - 1], &keys[i]) || size[ng - 1] == cap) {
      first[ng] = ni;
      size[ng++] = 0;
    }
    items[ni++] = keys[i].item;
    size[ng - 1]++;
  }
  for (int i = 0; i < n; i++)
    if (w[i].rows > group_rows) {
      first[ng] = ni;
      size[ng++] = 1;
      items[ni++] = i;
    }
  for (int i = 0; i < ng; i++) {
    const pa_work *x = &w[items[first[i]]];
    rank[i] =
        (group_rank){0, (int64_t)x->rows * (x->kv_end - x->kv_begin) * size[i], x->b, x->hk, i};
  }
  qsort(rank, (size_t)ng, sizeof *rank, by_rank); /* runs together, heaviest first in each */
  for (int i = 0, r0 = 0; i <= ng; i++)
    if (i == ng || rank[i].b != rank[r0].b || rank[i].hk != rank[r0].hk) {
      for (int j = r0; j < i; j++) rank[j].run = rank[r0].cost;
      r0 = i;
    }
  qsort(rank, (size_t)ng, sizeof *rank, by_rank);
  for (int i = 0, o = 0; i < ng; i++) {
    const int g = rank[i].index;
    for (int j = 0; j < size[g]; j++) {
      out[o] = w[items[first[g] + j]];
      out[o++].group = j == 0 ? size[g] : 0;
    }
  }
done:
  free(keys);
  free(rank);
  free(first);
  free(size);
  free(items);
  return st;
}

pa_status pa_schedule_order(pa_context *ctx, pa_plan *p) {
  const int n = p->num_work;
  if (n < 2) {
    for (int i = 0; i < n; i++) p->work[i].group = 1;
    return PA_OK;
  }
  ranked *r = malloc((size_t)n * sizeof *r);
  pa_work *sorted = malloc((size_t)n * sizeof *sorted);
  if (!r || !sorted) {
    free(r);
    free(sorted);
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "plan: order of %d work items", n);
  }
  const int64_t over = p->choice.item_overhead > 0 ? p->choice.item_overhead : 0;
  for (int i = 0; i < n; i++) {
    const pa_work *w = &p->work[i];
    const int64_t keys = w->kv_end > w->kv_begin ? w->kv_end - w->kv_begin : 0;
    r[i] = (ranked){(int64_t)w->rows * (keys + over), (int64_t)w->rows * keys, i};
  }
  qsort(r, (size_t)n, sizeof *r, by_cost);
  for (int i = 0; i < n; i++) {
    sorted[i] = p->work[r[i].index];
    sorted[i].group = 1;
  }
  free(r);
  pa_status st = PA_OK;
  const bool grouped = p->choice.head_group_rows > 0 && p->choice.head_group_max > 0 &&
                       p->op == PA_OP_ATTENTION && p->desc.num_kv_heads > 1;
  if (grouped)
    st = group_heads(ctx, p, sorted, n, p->work);
  else
    for (int i = 0; i < n; i++) p->work[i] = sorted[i];
  free(sorted);
  return st;
}

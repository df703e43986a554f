#include <stdlib.h>

#include "split.h"

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int pow2_floor(int64_t x) {
  int p = 1;
  while ((int64_t)p * 2 <= x && p < (1 << 30)) p *= 2;
  return p;
}

/* Chunk for n splits of len keys, aligned; the count follows from the chunk so
 * that no split is empty. */
static pa_split from_count(int32_t len, int64_t n, int align) {
  pa_split s;
  int64_t chunk = ceil_div(len, n);
  chunk = ceil_div(chunk, align) * align;
  if (chunk > INT32_MAX) chunk = (INT32_MAX / align) * align; /* lengths near 2^31 */
  s.kv_chunk = (int)chunk;
  s.num_splits = (int)ceil_div(len, chunk);
  return s;
}

pa_split pa_choose_split(const pa_split_input *in) {
  int align = in->kv_align > 0 ? in->kv_align : 1;
  int32_t len = in->len_k;
  if (len <= 0) return (pa_split){.num_splits = 1, .kv_chunk = align};

  if (in->deterministic) {
    int64_t chunk = in->kv_chunk > 0 ? in->kv_chunk : PA_DEFAULT_KV_CHUNK;
    /* At most 2^30 + align by the descriptor's limit, so the cast is exact. */
    chunk = ceil_div(chunk, align) * align;
    return (pa_split){.num_splits = (int)ceil_div(len, chunk), .kv_chunk = (int)chunk};
  }
  if (in->user_splits >= 1) return from_count(len, in->user_splits, align);

  int64_t wave = (int64_t)in->compute_units * in->slots_per_unit;
  int64_t target = 2 * wave;
  int64_t natural = in->natural_items > 0 ? in->natural_items : 1;
  /* A batch that nearly fills one wave unsplit gains nothing from a second
   * wave of half-length items plus a combine (MLA b64 on 132 SMs: 128 items,
   * 1 split 0.331 ms against 2 splits 0.394 ms on an H200). */
  int n = natural * 10 >= 9 * wave || natural >= target ? 1 : pow2_floor(target / natural);
  if (n > in->max_splits) n = pow2_floor(in->max_splits);
  int64_t min_kv = in->min_kv_per_split > 0 ? in->min_kv_per_split : 1;
  int by_len = pow2_floor(len / min_kv > 0 ? len / min_kv : 1);
  if (n > by_len) n = by_len;
  return from_count(len, n, align);
}

/* Loads of the slots as a binary min-heap; returns the makespan of the
 * items (costs sorted heaviest first). */
static int by_desc(const void *a, const void *b) {
  const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

static int64_t makespan(int64_t *cost, int64_t n, int64_t *heap, int slots) {
  qsort(cost, (size_t)n, sizeof *cost, by_desc);
  for (int i = 0; i < slots; i++) heap[i] = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < n; i++) {
    const int64_t t = heap[0] + cost[i]; /* the least loaded slot takes it */
    if (t > worst) worst = t;
    int k = 0;
    for (;;) { /* sift the new load down */
      int c = 2 * k + 1;
      if (c >= slots) break;
      if (c + 1 < slots && heap[c + 1] < heap[c]) c++;
      if (heap[c] >= t) break;
      heap[k] = heap[c];
      k = c;
    }
    heap[k] = t;
  }
  return worst;
}

/* Items of chunk c (splits[b] from c when c > 0, else the rule's); -1 when a
 * request would need more than max_splits. */
static int64_t build(const pa_balance_input *in, int64_t c, int64_t *cost, int64_t cap) {
  int64_t n = 0;
  for (int b = 0; b < in->n; b++) {
    const int64_t len = in->len_k[b];
    if (len <= 0 || in->items[b] <= 0) continue;
    const int64_t ns = c > 0 ? ceil_div(len, c) : in->cur_splits[b];
    if (ns > in->max_splits) return -1;
    const int64_t ch = c > 0 ? c : ceil_div(len, ns);
    for (int64_t s = 0; s < ns; s++) {
      const int64_t keys = len - s * ch < ch ? len - s * ch : ch;
      const int64_t w = keys + in->overhead + (ns > 1 ? in->split_overhead : 0);
      for (int i = 0; i < in->items[b]; i++) {
        if (n >= cap) return -1;
        cost[n++] = w;
      }
    }
  }
  return n;
}

int pa_balance_chunk(const pa_balance_input *in) {
  const int align = in->align > 0 ? in->align : 1, slots = in->slots;
  if (in->n <= 0 || slots < 1) return 0;
  int64_t natural = 0, longest = 0;
  for (int b = 0; b < in->n; b++)
    if (in->len_k[b] > 0) {
      natural += in->items[b];
      if (in->len_k[b] > longest) longest = in->len_k[b];
    }
  if (natural == 0 || natural > 4 * (int64_t)slots) return 0;
  int64_t rule = 0;
  for (int b = 0; b < in->n; b++)
    if (in->len_k[b] > 0) rule += (int64_t)in->items[b] * in->cur_splits[b];
  const int64_t cap = (rule > 8 * (int64_t)slots ? rule : 8 * (int64_t)slots) + 1;
  int64_t *cost = malloc((size_t)cap * sizeof *cost), *heap = malloc((size_t)slots * sizeof *heap);
  int best = 0;
  if (!cost || !heap) goto done; /* a heuristic: keep the rule */
  int64_t n = build(in, 0, cost, cap);
  if (n <= 0) goto done;
  const int64_t keep = makespan(cost, n, heap, slots);
  int64_t best_t = keep;
  const int64_t top = ceil_div(longest, align);
  for (int waves = 1; waves <= 8; waves++) {
    int64_t lo = 1, hi = top; /* least multiple m of align with items(m) <= waves * slots */
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      const int64_t k = build(in, mid * align, cost, (int64_t)waves * slots + 1);
      if (k >= 0 && k <= (int64_t)waves * slots)
        hi = mid;
      else
        lo = mid + 1;
    }
    if (lo * align > INT32_MAX) continue;
    n = build(in, lo * align, cost, cap);
    if (n <= 0) continue;
    const int64_t t = makespan(cost, n, heap, slots);
    if (t < best_t) {
      best_t = t;
      best = (int)(lo * align);
    }
  }
  if (best_t * 100 > keep * 97) best = 0;
done:
  free(cost);
  free(heap);
  return best;
}

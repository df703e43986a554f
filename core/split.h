/* Split selection (flash decoding): how many KV chunks one request's keys are
 * cut into, so that the device has about two waves of work. */
#ifndef PA_CORE_SPLIT_H
#define PA_CORE_SPLIT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct pa_split_input {
  int compute_units;       /* from pa_device_props */
  int slots_per_unit;
  int min_kv_per_split;
  int max_splits;
  int64_t natural_items;   /* work items of the whole batch with no split */
  int32_t len_k;           /* this request's keys */
  int user_splits;         /* desc num_splits: 0 auto, 1 none, n: at most n */
  bool deterministic;
  int kv_chunk;            /* deterministic chunk (0: PA_DEFAULT_KV_CHUNK) */
  int kv_align;            /* chunk is a multiple of this (>= 1) */
} pa_split_input;

typedef struct pa_split {
  int num_splits; /* >= 1; ceil(len_k / kv_chunk) when len_k > 0 */
  int kv_chunk;   /* >= 1 */
} pa_split;

#define PA_DEFAULT_KV_CHUNK 1024

/* Rules, in order:
 * - deterministic: kv_chunk fixed (rounded up to kv_align), splits follow
 *   from len_k alone, so a request's result is independent of the batch;
 * - user_splits >= 1: that many (fewer only when len_k has too few keys for
 *   so many aligned chunks);
 * - auto: no split when natural_items already fills 90% of one wave
 *   (compute_units * slots_per_unit items); else target two waves; the
 *   factor is the largest power of two with natural_items * factor <= target,
 *   capped by max_splits and by len_k / min_kv_per_split (also a power of two).
 * The chunk is ceil(len_k / splits) rounded up to kv_align; the count is then
 * recomputed from it, so no split is empty. len_k == 0 gives one split. */
pa_split pa_choose_split(const pa_split_input *in);

/* One KV chunk for the whole batch (FlashMLA's idea: the batch's keys cut
 * into equal work, not each request into the same number of splits). Each
 * candidate chunk c (a multiple of align) gives request b ceil(len_k[b] / c)
 * splits of `items[b]` work items each; the device takes items heaviest
 * first, each to the least loaded of `slots` (the GPU block scheduler, the
 * CPU pool), an item costing its keys + overhead (+ split_overhead when its
 * request is split: partials and the combine). Candidates: for 1..8 waves,
 * the least c whose items fit; the rule's own splits (cur_splits) compete.
 * Returns the best chunk when its simulated makespan is at least 3% below the
 * rule's, else 0 (keep the rule). Bounded work: 0 when the batch has more
 * than 4 waves of unsplit items. */
typedef struct pa_balance_input {
  int n;                   /* requests */
  const int32_t *len_k;    /* keys (0: no work) */
  const int32_t *items;    /* work items per split of each request */
  const int32_t *cur_splits;
  int slots;               /* compute_units * slots_per_unit */
  int align, max_splits;
  int overhead, split_overhead; /* keys */
} pa_balance_input;

int pa_balance_chunk(const pa_balance_input *in);

#endif

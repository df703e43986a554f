/* Which of a decode shard's keys each query sees, as pieces of local keys.
 *
 * Key positions are global: local key j of a rank is global key g(j) (its
 * shard's units in global order). A query sees a union of at most two global
 * ranges (the sink tokens, the causal/windowed band), which map to at most
 * two ranges of local keys because g is increasing. Cutting the local keys at
 * every range end gives segments that each query sees wholly or not at all:
 * segments seen by every query of the request become unmasked pieces (no
 * mask, nothing outside them computed), segments seen by some become masked
 * pieces (a small additive mask, the only way to give each query its own
 * range within one request), segments seen by none are skipped. Masked
 * pieces stay small: they hold the band's ends (at most seqlens_q keys each)
 * and, on paged shards, the start of an unmasked piece up to its next page. */
#include <stdlib.h>

#include "cp.h"

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* The global key ranges [iv[2k], iv[2k+1]) that query position p of a
 * request of L keys sees; returns their count (0..2), sorted, disjoint. */
static int visible_ranges(const pa_attention_desc *d, int64_t L, int64_t p, int64_t iv[4]) {
  const int64_t hic = d->causal ? min64(p + 1, L) : L;
  if (d->window_left < 0 && d->window_right < 0) {
    iv[0] = 0;
    iv[1] = max64(hic, 0);
    return iv[1] > 0;
  }
  int64_t lo = d->window_left >= 0 ? max64(0, p - d->window_left) : 0;
  int64_t hi = d->window_right >= 0 ? min64(L, p + d->window_right + 1) : L;
  hi = min64(hi, hic);
  int64_t st = min64(d->sink_tokens > 0 ? d->sink_tokens : 0, hic);
  int n = 0;
  if (st > 0) {
    iv[0] = 0;
    iv[1] = st;
    n = 1;
  }
  if (lo < hi) {
    if (n && lo <= iv[1]) {
      iv[1] = max64(iv[1], hi);
    } else {
      iv[2 * n] = lo;
      iv[2 * n + 1] = hi;
      n++;
    }
  }
  return n;
}

void cp_shard_geom_init(cp_shard_geom *g, pa_cp_shard shard, int64_t L, int page_size, int rank,
                        int size) {
  g->shard = shard;
  g->L = L;
  g->unit = page_size > 0 ? page_size : 1;
  g->rank = rank;
  g->size = size;
  g->n = (L + g->unit - 1) / g->unit;
  g->nl = pa_cp_shard_len(shard, (int32_t)L, page_size, rank, size);
  g->first = (int64_t)rank * g->n / size * g->unit;
}

int64_t cp_shard_below(const cp_shard_geom *g, int64_t x) {
  x = min64(max64(x, 0), g->L);
  if (g->shard == PA_CP_SHARD_CONTIGUOUS) return min64(max64(x - g->first, 0), g->nl);
  const int64_t ux = x / g->unit;
  int64_t c = ux > g->rank ? ((ux - 1 - g->rank) / g->size + 1) * g->unit : 0;
  if (ux % g->size == g->rank && ux < g->n) c += x - ux * g->unit;
  return min64(c, g->nl);
}

int64_t cp_shard_global(const cp_shard_geom *g, int64_t j) {
  if (g->shard == PA_CP_SHARD_CONTIGUOUS) return g->first + j;
  const int64_t li = j / g->unit;
  return (g->rank + li * g->size) * g->unit + j % g->unit;
}

bool cp_decode_sees(const pa_attention_desc *d, const cp_shard_geom *g, int64_t sq, int64_t i,
                    int64_t j) {
  int64_t iv[4], x = cp_shard_global(g, j);
  int n = visible_ranges(d, g->L, g->L - sq + i, iv);
  for (int k = 0; k < n; k++)
    if (x >= iv[2 * k] && x < iv[2 * k + 1]) return true;
  return false;
}

static int cmp64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int cp_decode_pieces(const pa_attention_desc *d, const cp_shard_geom *g, int64_t sq,
                     cp_piece **out) {
  *out = NULL;
  if (g->nl == 0 || sq == 0) return 0;
  /* Local ranges of each query, then every range end as a cut. */
  int64_t *rl = malloc(sizeof(int64_t) * (size_t)(4 * sq));
  int *nr = malloc(sizeof(int) * (size_t)sq);
  int64_t *cut = malloc(sizeof(int64_t) * (size_t)(4 * sq + 2));
  cp_piece *pc = malloc(sizeof(cp_piece) * (size_t)(8 * sq + 4));
  if (!rl || !nr || !cut || !pc) {
    free(rl), free(nr), free(cut), free(pc);
    return -1;
  }
  int nc = 0, np = 0;
  cut[nc++] = 0;
  cut[nc++] = g->nl;
  for (int64_t i = 0; i < sq; i++) {
    int64_t iv[4];
    nr[i] = visible_ranges(d, g->L, g->L - sq + i, iv);
    for (int k = 0; k < 2 * nr[i]; k++) cut[nc++] = rl[4 * i + k] = cp_shard_below(g, iv[k]);
  }
  qsort(cut, (size_t)nc, sizeof *cut, cmp64);
  for (int c = 0; c + 1 < nc; c++) {
    const int64_t s = cut[c], e = cut[c + 1];
    if (s == e) continue;
    int64_t seen = 0;
    for (int64_t i = 0; i < sq; i++)
      for (int k = 0; k < nr[i]; k++)
        if (s >= rl[4 * i + 2 * k] && s < rl[4 * i + 2 * k + 1]) seen++;
    if (!seen) continue;
    const bool masked = seen < sq;
    if (np && pc[np - 1].e == s && pc[np - 1].masked == masked) {
      pc[np - 1].e = (int32_t)e;
    } else {
      pc[np++] = (cp_piece){(int32_t)s, (int32_t)e, masked};
    }
  }
  /* Paged: an unmasked piece starts on a page (its block-table row starts
   * there); the keys before its first page boundary join a masked piece. */
  if (d->page_size > 0) {
    const int32_t ps = d->page_size;
    for (int k = 0; k < np; k++) {
      cp_piece *p = &pc[k];
      if (p->masked || p->s % ps == 0) continue;
      int32_t b = (p->s / ps + 1) * ps;
      if (b >= p->e) {
        p->masked = true;
        continue;
      }
      for (int m = np; m > k; m--) pc[m] = pc[m - 1];
      np++;
      pc[k] = (cp_piece){p->s, b, true};
      pc[k + 1].s = b;
    }
  }
  /* Neighbouring masked pieces are one. */
  int w = 0;
  for (int k = 0; k < np; k++) {
    if (w && pc[w - 1].masked && pc[k].masked && pc[w - 1].e == pc[k].s)
      pc[w - 1].e = pc[k].e;
    else
      pc[w++] = pc[k];
  }
  free(rl), free(nr), free(cut);
  *out = pc;
  return w;
}

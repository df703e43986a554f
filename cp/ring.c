/* Ring prefill: zig-zag shards of Q, K, V; the K/V block in hand is attended
 * while the next one travels from the previous rank; partial states merge as
 * they arrive.
 *
 * With causal masking, rank r's query chunks are A = r and B = 2R-1-r, and
 * the block of rank src holds key chunks src and 2R-1-src. Chunk pairs are
 * visible (key chunk < query chunk), diagonal (equal) or hidden (greater):
 *   step 0 (src = r): causal over the local [A|B] against [kA|kB], which is
 *     exactly the diagonal of A and of B plus B over kA;
 *   src < r: A and B both see all of kA and none of kB;
 *   src > r: A sees nothing, B sees all of kA and kB.
 * Each step is one non-causal attention over a batch whose requests are the
 * ranges above (a request with no keys gives O = 0, LSE = -inf), so every
 * rank does about the same work at every step. Each unit writes its state in
 * o_dtype (the kernels of plain attention) with an f32 LSE; the running
 * state the units merge into is f32, the last merge writes out. */
#include <stdlib.h>
#include <string.h>

#include "cp.h"

typedef struct shard_rows {
  int32_t *len, *a, *cu; /* [B] local length, [B] chunk A length, [B+1] local starts */
  int32_t *cs, *cl;      /* [2B] global start and length of chunks A and B */
} shard_rows;

static void rows_of(int rank, int size, int B, const int32_t *seqlens, shard_rows *s) {
  pa_cp_zigzag_shard(rank, size, B, seqlens, s->len, s->cs, s->cl);
  s->cu[0] = 0;
  for (int b = 0; b < B; b++) {
    s->a[b] = s->cl[2 * b];
    s->cu[b + 1] = s->cu[b] + s->len[b];
  }
}

static pa_status check_prefill(pa_cp *cp, const pa_attention_desc *d, const pa_batch *b) {
  if (!d || !b) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "desc and batch must not be NULL");
  if (b->batch_size < 0)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "batch.batch_size=%d is negative", b->batch_size);
  if (!b->seqlens_q)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "batch.seqlens_q (global lengths) is NULL");
  if (b->cu_seqlens_q || b->cu_seqlens_k)
    return cp_fail(cp, PA_ERR_UNSUPPORTED,
                   "batch.cu_seqlens_q/k: ring prefill packs each rank's shard, give seqlens only");
  for (int i = 0; i < b->batch_size; i++) {
    if (b->seqlens_q[i] < 0)
      return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "batch.seqlens_q[%d]=%d is negative", i,
                     b->seqlens_q[i]);
    if (b->seqlens_k && b->seqlens_k[i] != b->seqlens_q[i])
      return cp_fail(cp, PA_ERR_UNSUPPORTED,
                     "batch.seqlens_k[%d]=%d but seqlens_q[%d]=%d: ring prefill is "
                     "self-attention over one sharded sequence",
                     i, b->seqlens_k[i], i, b->seqlens_q[i]);
  }
  if (d->flags & (PA_HAS_ALIBI | PA_HAS_MASK))
    return cp_fail(cp, PA_ERR_UNSUPPORTED,
                   "desc.flags=0x%x: ALiBi and dense masks are not supported by ring prefill",
                   d->flags);
  if (d->causal != 0 && d->causal != 1)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "desc.causal=%d must be 0 or 1", d->causal);
  if (d->window_left < -1 || d->window_right < -1 || d->sink_tokens < 0)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "desc.window_left=%d window_right=%d sink_tokens=%d: windows are >= 0 or -1, "
                   "sink_tokens >= 0",
                   d->window_left, d->window_right, d->sink_tokens);
  if (d->page_size < 0)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "desc.page_size=%d is negative", d->page_size);
  return PA_OK;
}

/* The attention plan of step s (KV block of rank src). */
static pa_status plan_step(pa_cp_plan *p, int s, const shard_rows *me, const shard_rows *src_rows,
                           int src, pa_plan **out) {
  pa_cp *cp = p->cp;
  const int B = p->B, R = cp->size, r = cp->rank;
  pa_attention_desc d = p->desc;
  if (R > 1) d.flags |= PA_RETURN_LSE; /* partial states, in o_dtype */
  if (s > 0) {
    d.causal = 0;
    d.flags &= ~(unsigned)PA_HAS_SINKS; /* the sink term counts once */
  }
  pa_status st;
  if (s == 0 || !p->desc.causal) {
    pa_batch b = {B, NULL, NULL, me->cu, src_rows->cu};
    st = pa_attention_plan(cp->ctx, &d, &b, out);
  } else if (src < r) { /* all local queries over chunk A of src */
    pa_batch b = {B, NULL, src_rows->a, me->cu, src_rows->cu};
    st = pa_attention_plan(cp->ctx, &d, &b, out);
  } else { /* chunk A of ours sees nothing, chunk B sees the whole block */
    int32_t *cq = malloc(sizeof(int32_t) * (2 * (size_t)B + 1));
    int32_t *ck = malloc(sizeof(int32_t) * (2 * (size_t)B + 1));
    if (!cq || !ck) {
      free(cq);
      free(ck);
      return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    }
    for (int b = 0; b < B; b++) {
      cq[2 * b] = me->cu[b];
      cq[2 * b + 1] = me->cu[b] + me->a[b];
      ck[2 * b] = ck[2 * b + 1] = src_rows->cu[b];
    }
    cq[2 * B] = me->cu[B];
    ck[2 * B] = src_rows->cu[B];
    pa_batch b = {2 * B, NULL, NULL, cq, ck};
    st = pa_attention_plan(cp->ctx, &d, &b, out);
    free(cq);
    free(ck);
  }
  return st == PA_OK ? st : cp_ctx_fail(cp, st, "step attention plan");
}

static pa_status add_unit(pa_cp_plan *p, int s, pa_plan *pl) {
  if (p->nunit == p->cap) {
    int cap = p->cap ? 2 * p->cap : 8;
    pa_plan **u = realloc(p->unit, sizeof *u * (size_t)cap);
    if (u) p->unit = u;
    int *us = u ? realloc(p->ustep, sizeof *us * (size_t)cap) : NULL;
    if (us) p->ustep = us;
    if (!u || !us) return cp_fail(p->cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    p->cap = cap;
  }
  p->unit[p->nunit] = pl;
  p->ustep[p->nunit++] = s;
  return PA_OK;
}

/* ---- windows ------------------------------------------------------------
 * With a window, a pair of chunks (queries Q = [qs, qe), keys K = [ks, ke),
 * global positions) sees a band j in [p - Y, p + X] (Y = window_left,
 * X = 0 if causal else window_right; unbounded sides are INF), and the sink
 * tokens only the causal bound. A piece is the part of a pair that any query
 * sees: keys outside the band and queries that see none are cut off, pairs
 * wholly outside are skipped. A local request of those keys, its queries
 * bottom-right aligned (p + D with D = ke - qe), takes the band as a local
 * window Y + D / X - D (causal when X - D = 0), both >= 0 after the cuts;
 * a piece every query sees wholly needs neither. Pieces with the same local
 * mask and increasing rows form one attention (a unit), the other rows of it
 * being requests without keys; each unit's state merges into the rank's. */
#define CP_INF ((int64_t)1 << 40)

typedef struct cp_rpiece {
  int64_t q0, qn, k0, kn; /* local query rows, rows of the KV block */
  int causal, wl, wr;
} cp_rpiece;

static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* The piece of queries [qs, qe) (local row qrow) over keys [ks, ke) (block row
 * krow) under band X, Y; false when nothing is seen. */
static bool band_piece(int64_t qs, int64_t qe, int64_t qrow, int64_t ks, int64_t ke, int64_t krow,
                       int64_t X, int64_t Y, cp_rpiece *pc) {
  if (qs >= qe || ks >= ke) return false;
  int64_t q0 = imax(qs, ks - X), q1 = imin(qe, ke + Y);
  if (q0 >= q1) return false;
  int64_t k0 = imax(ks, q0 - Y), k1 = imin(ke, q1 + X);
  if (k0 >= k1) return false;
  const int64_t D = k1 - q1;
  const bool low = k0<q1 - 1 - Y, high = k1 - 1> q0 + X; /* bounds that cut something */
  *pc = (cp_rpiece){qrow + (q0 - qs), q1 - q0, krow + (k0 - ks), k1 - k0, 0, -1, -1};
  if (low) pc->wl = (int)(Y + D);
  if (high && X - D == 0)
    pc->causal = 1;
  else if (high)
    pc->wr = (int)(X - D);
  return true;
}

/* One attention over the given pieces (increasing rows) and requests
 * without keys for every other local row. */
static pa_status plan_window_group(pa_cp_plan *p, int s, const cp_rpiece *const *pcs, int n,
                                   int64_t krows) {
  pa_cp *cp = p->cp;
  const int64_t T = p->Tr;
  const size_t cap = 2 * (size_t)n + 2;
  int32_t *cq = malloc(sizeof(int32_t) * cap), *lq = malloc(sizeof(int32_t) * cap);
  int32_t *ck = malloc(sizeof(int32_t) * cap), *lk = malloc(sizeof(int32_t) * cap);
  pa_status st = PA_OK;
  if (!cq || !lq || !ck || !lk) {
    st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    goto done;
  }
  int m = 0;
  int64_t cur_q = 0, cur_k = 0;
  for (int i = 0; i <= n; i++) {
    const int64_t q0 = i < n ? pcs[i]->q0 : T;
    if (q0 > cur_q || (i == n && m == 0)) {
      cq[m] = (int32_t)cur_q, lq[m] = (int32_t)(q0 - cur_q), ck[m] = (int32_t)cur_k, lk[m] = 0;
      m++;
    }
    if (i == n) break;
    cq[m] = (int32_t)pcs[i]->q0, lq[m] = (int32_t)pcs[i]->qn;
    ck[m] = (int32_t)pcs[i]->k0, lk[m] = (int32_t)pcs[i]->kn;
    m++;
    cur_q = pcs[i]->q0 + pcs[i]->qn;
    cur_k = pcs[i]->k0 + pcs[i]->kn;
  }
  cq[m] = (int32_t)T;
  ck[m] = (int32_t)imax(krows, cur_k);
  pa_attention_desc d = p->desc;
  d.flags |= PA_RETURN_LSE;
  d.causal = n ? pcs[0]->causal : 0;
  d.window_left = n ? pcs[0]->wl : -1;
  d.window_right = n ? pcs[0]->wr : -1;
  d.sink_tokens = 0;                                /* sink keys are pieces of their own */
  if (p->nunit) d.flags &= ~(unsigned)PA_HAS_SINKS; /* the sink term counts once */
  pa_batch b = {m, lq, lk, cq, ck};
  pa_plan *pl = NULL;
  if ((st = pa_attention_plan(cp->ctx, &d, &b, &pl)) != PA_OK)
    st = cp_ctx_fail(cp, st, "window piece attention plan");
  else if ((st = add_unit(p, s, pl)) != PA_OK)
    pa_plan_destroy(pl);
done:
  free(cq), free(lq), free(ck), free(lk);
  return st;
}

/* Step s of a windowed ring: the pieces of (our chunks) x (src's chunks),
 * grouped into units. */
static pa_status plan_window_step(pa_cp_plan *p, int s, const shard_rows *me,
                                  const shard_rows *src) {
  const pa_attention_desc *d = &p->desc;
  const int B = p->B;
  const int64_t Y = d->window_left >= 0 ? d->window_left : CP_INF;
  const int64_t X = d->causal ? 0 : d->window_right >= 0 ? d->window_right : CP_INF;
  const int64_t Xs = d->causal ? 0 : CP_INF, st_tok = d->sink_tokens;
  cp_rpiece *pc = malloc(sizeof *pc * (size_t)(8 * B + 1));
  int *grp = malloc(sizeof(int) * (size_t)(8 * B + 1));
  const cp_rpiece **sel = malloc(sizeof *sel * (size_t)(8 * B + 1));
  pa_status st = PA_OK;
  if (!pc || !grp || !sel) {
    st = cp_fail(p->cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    goto done;
  }
  int n = 0;
  for (int b = 0; b < B; b++)
    for (int qc = 0; qc < 2; qc++) {
      const int64_t qs = me->cs[2 * b + qc], qe = qs + me->cl[2 * b + qc];
      const int64_t qrow = me->cu[b] + (qc ? me->a[b] : 0);
      for (int kc = 0; kc < 2; kc++) {
        const int64_t ks = src->cs[2 * b + kc], ke = ks + src->cl[2 * b + kc];
        const int64_t krow = src->cu[b] + (kc ? src->a[b] : 0), sk = imin(imax(st_tok, ks), ke);
        /* sink tokens [ks, sk): the causal bound only; the rest: the band */
        if (band_piece(qs, qe, qrow, ks, sk, krow, Xs, CP_INF, &pc[n])) n++;
        if (band_piece(qs, qe, qrow, sk, ke, krow + (sk - ks), X, Y, &pc[n])) n++;
      }
    }
  /* Greedy grouping: same local mask, rows increasing in q and in k. */
  int ngrp = 0;
  for (int i = 0; i < n; i++) {
    grp[i] = -1;
    for (int g = 0; g < ngrp && grp[i] < 0; g++) {
      const cp_rpiece *last = NULL;
      for (int j = 0; j < i; j++)
        if (grp[j] == g) last = &pc[j];
      if (last->causal == pc[i].causal && last->wl == pc[i].wl && last->wr == pc[i].wr &&
          last->q0 + last->qn <= pc[i].q0 && last->k0 + last->kn <= pc[i].k0)
        grp[i] = g;
    }
    if (grp[i] < 0) grp[i] = ngrp++;
  }
  for (int g = 0; g < ngrp && st == PA_OK; g++) {
    int m = 0;
    for (int i = 0; i < n; i++)
      if (grp[i] == g) sel[m++] = &pc[i];
    st = plan_window_group(p, s, sel, m, src->cu[B]);
  }
  if (st == PA_OK && s == 0 && ngrp == 0) st = plan_window_group(p, 0, NULL, 0, src->cu[B]);
done:
  free(pc), free(grp), free(sel);
  return st;
}

pa_status pa_cp_prefill_plan(pa_cp *cp, const pa_attention_desc *desc, const pa_batch *batch,
                             pa_cp_plan **out) {
  if (!cp) return PA_ERR_INVALID_ARGUMENT;
  cp->msg[0] = 0;
  if (!out) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  pa_status st = check_prefill(cp, desc, batch);
  const int B = st == PA_OK ? batch->batch_size : -1;
  int64_t rec[] = {st,
                   B,
                   desc ? desc->num_q_heads : 0,
                   desc ? desc->num_kv_heads : 0,
                   desc ? desc->head_dim_qk : 0,
                   desc ? desc->head_dim_v : 0,
                   desc ? desc->q_dtype * 16 + desc->kv_dtype * 4 + desc->o_dtype : 0,
                   desc ? desc->causal : 0,
                   desc ? desc->window_left : 0,
                   desc ? desc->window_right : 0,
                   desc ? desc->sink_tokens : 0,
                   desc ? (int64_t)desc->flags : 0,
                   desc ? desc->page_size : 0,
                   B >= 0 ? cp_hash_i32(batch->seqlens_q, B) : 0};
  static const char *const names[] = {"status",
                                      "batch.batch_size",
                                      "desc.num_q_heads",
                                      "desc.num_kv_heads",
                                      "desc.head_dim_qk",
                                      "desc.head_dim_v",
                                      "desc dtypes (q*16+kv*4+o)",
                                      "desc.causal",
                                      "desc.window_left",
                                      "desc.window_right",
                                      "desc.sink_tokens",
                                      "desc.flags",
                                      "desc.page_size",
                                      "hash of batch.seqlens_q"};
  if ((st = cp_check_same_after(cp, st, rec, names, CP_N(rec))) != PA_OK) return st;

  const int R = cp->size, r = cp->rank;
  pa_cp_plan *p = calloc(1, sizeof *p);
  size_t nb = (size_t)B + 1;
  int32_t *mem = calloc(14 * nb, sizeof(int32_t));
  if (p) p->rows = calloc((size_t)R, sizeof *p->rows);
  if (!p || !mem || !p->rows) {
    free(mem);
    if (p) cp_plan_free((p->cp = cp, p));
    return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  p->cp = cp;
  p->kind = CP_PREFILL;
  p->desc = *desc;
  if (R > 1) { /* paged shards are gathered into the packed ring slot */
    p->ps = desc->page_size;
    p->desc.page_size = 0;
  }
  p->B = B;
  p->Hq = desc->num_q_heads;
  p->Hkv = desc->num_kv_heads;
  p->Dqk = desc->head_dim_qk;
  p->Dv = desc->head_dim_v ? desc->head_dim_v : desc->head_dim_qk;
  shard_rows me = {mem, mem + nb, mem + 2 * nb, mem + 6 * nb, mem + 8 * nb},
             other = {mem + 3 * nb, mem + 4 * nb, mem + 5 * nb, mem + 10 * nb, mem + 12 * nb};
  rows_of(r, R, B, batch->seqlens_q, &me);
  p->Tr = me.cu[B];
  int64_t maxp = 0;
  if (p->ps) {
    for (int b = 0; b < B; b++)
      if ((me.len[b] + p->ps - 1) / p->ps > maxp) maxp = (me.len[b] + p->ps - 1) / p->ps;
    p->plen = malloc(sizeof(int32_t) * (size_t)(B + 1));
    p->hbt = malloc(sizeof(int32_t) * (size_t)(B * maxp + 1));
    p->hbt_cols = maxp;
    if (!p->plen || !p->hbt) st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    for (int b = 0; p->plen && b < B; b++) p->plen[b] = me.len[b];
  }
  int64_t lmax = 0;
  for (int s = 0; s < R && st == PA_OK; s++) {
    int src = (r - s + R) % R;
    rows_of(src, R, B, batch->seqlens_q, &other);
    p->rows[src] = other.cu[B];
    if (p->rows[src] > lmax) lmax = p->rows[src];
    const bool window = desc->window_left >= 0 || desc->window_right >= 0;
    if (R > 1 && window) {
      st = plan_window_step(p, s, &me, &other);
    } else {
      pa_plan *pl = NULL;
      if ((st = plan_step(p, s, &me, &other, src, &pl)) == PA_OK &&
          (st = add_unit(p, s, pl)) != PA_OK)
        pa_plan_destroy(pl);
    }
  }
  /* The last unit writes out: a lone unit gets an empty one after it. */
  if (st == PA_OK && R > 1 && p->nunit == 1) st = plan_window_group(p, R - 1, NULL, 0, 0);
  free(mem);

  const size_t kes = pa_dtype_size(desc->kv_dtype), oes = pa_dtype_size(desc->o_dtype);
  const int64_t Hq = p->Hq, Hkv = p->Hkv, Dv = p->Dv;
  p->slot_v = cp_align((size_t)(lmax * Hkv * p->Dqk) * kes);
  p->slot_bytes = cp_align(p->slot_v + (size_t)(lmax * Hkv * Dv) * kes);
  p->acc_lse = cp_state_lse(p->Tr, Hq, Dv, 4);
  p->acc_bytes = cp_align(cp_state_bytes(p->Tr, Hq, Dv, 4));
  p->stepo_lse = cp_state_lse(p->Tr, Hq, Dv, oes);
  p->slot_off[0] = 0;
  p->slot_off[1] = p->slot_bytes;
  p->acc_off[0] = 2 * p->slot_bytes;
  p->acc_off[1] = p->acc_off[0] + p->acc_bytes;
  p->stepo_off = p->acc_off[1] + p->acc_bytes;
  size_t total = R > 1 ? p->stepo_off + cp_state_bytes(p->Tr, Hq, Dv, oes) : 0;
  if (st == PA_OK && total && (st = pa_buffer_create(cp->ctx, total, &p->scratch)) != PA_OK)
    st = cp_ctx_fail(cp, st, "scratch buffer");
  st = cp_agree(cp, st);
  if (st != PA_OK) {
    cp_plan_free(p);
    return st;
  }
  *out = p;
  return PA_OK;
}

static pa_status check_rows(pa_cp *cp, const char *name, const pa_tensor *t, pa_dtype dt,
                            int64_t rows, int64_t heads, int64_t dim, bool row_packed) {
  if (!t->buf || t->ndim != 3 || t->shape[0] != rows || t->shape[1] != heads ||
      t->shape[2] != dim || t->dtype != dt)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "%s: %s [%lld, %lld, %lld] (ndim %d), want %s [%lld, %lld, %lld] for this "
                   "rank's shard",
                   name, pa_dtype_name(t->dtype), (long long)t->shape[0], (long long)t->shape[1],
                   (long long)t->shape[2], t->ndim, pa_dtype_name(dt), (long long)rows,
                   (long long)heads, (long long)dim);
  if (row_packed && rows &&
      (t->stride[2] != 1 || t->stride[1] != dim || t->stride[0] < heads * dim))
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "%s.stride=[%lld, %lld, %lld]: a K/V row travels whole, needs [>=%lld, %lld, 1]",
                   name, (long long)t->stride[0], (long long)t->stride[1], (long long)t->stride[2],
                   (long long)(heads * dim), (long long)dim);
  size_t es = pa_dtype_size(dt);
  if (rows &&
      t->offset + ((size_t)((rows - 1) * t->stride[0] + heads * dim)) * es > pa_buffer_size(t->buf))
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "%s: rows end past its buffer of %zu bytes", name,
                   pa_buffer_size(t->buf));
  return PA_OK;
}

/* ---- paged shards --------------------------------------------------------
 * A rank's K/V pages are gathered into its ring slot before step 0: the slot
 * is the packed block that travels anyway (the packed path copies its rows
 * there too), so paging costs no extra copy, the other ranks need neither
 * our block table nor our page pool, and every step attends a packed block.
 * One 2-D copy per run of consecutive pages (NHD rows) or per page and head
 * (HND, where a token's heads are not adjacent). The block table is read on
 * the host (a blocking read of B rows; on NCCL a sync of the stream). */
static pa_status check_pages(pa_cp *cp, const char *name, const pa_tensor *t, pa_dtype dt, int ps,
                             int64_t heads, int64_t dim) {
  const size_t es = pa_dtype_size(dt);
  if (!t->buf || t->ndim != 4 || t->shape[1] != ps || t->shape[2] != heads || t->shape[3] != dim ||
      t->dtype != dt || t->stride[3] != 1 || t->shape[0] < 1 || t->stride[0] < 0 ||
      t->stride[1] < 0 || t->stride[2] < 0)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "%s: %s [%lld, %lld, %lld, %lld] stride[3]=%lld (ndim %d), want paged %s "
                   "[>=1, %d, %lld, %lld] with stride[3] = 1",
                   name, pa_dtype_name(t->dtype), (long long)t->shape[0], (long long)t->shape[1],
                   (long long)t->shape[2], (long long)t->shape[3], (long long)t->stride[3], t->ndim,
                   pa_dtype_name(dt), ps, (long long)heads, (long long)dim);
  const size_t end = t->offset + ((size_t)((t->shape[0] - 1) * t->stride[0] +
                                           (ps - 1) * t->stride[1] + (heads - 1) * t->stride[2]) +
                                  (size_t)dim) *
                                     es;
  if (end > pa_buffer_size(t->buf))
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "%s: pages end at byte %zu past its buffer of %zu",
                   name, end, pa_buffer_size(t->buf));
  return PA_OK;
}

static pa_status gather_one(pa_cp_plan *p, const pa_tensor *t, int64_t dim, cp_region dst) {
  pa_cp *cp = p->cp;
  const size_t es = pa_dtype_size(t->dtype), rowb = (size_t)(p->Hkv * dim) * es;
  const int64_t ps = p->ps, maxp = p->hbt_cols;
  const bool nhd = t->stride[2] == dim || p->Hkv == 1;
  int64_t row = 0;
  pa_status st = PA_OK;
  for (int b = 0; b < p->B && st == PA_OK; b++) {
    const int64_t len = p->plen[b], np = (len + ps - 1) / ps;
    const int32_t *bt = p->hbt + b * maxp;
    for (int64_t i = 0, e; i < np && st == PA_OK; i = e) {
      e = i + 1; /* pages i..e-1 adjacent in memory: one copy of their rows */
      if (nhd && t->stride[0] == ps * t->stride[1])
        while (e < np && bt[e] == bt[e - 1] + 1) e++;
      const size_t n = (size_t)(e * ps < len ? e * ps : len) - (size_t)(i * ps);
      const size_t src = t->offset + (size_t)(bt[i] * t->stride[0]) * es;
      const cp_region to = {dst.buf, dst.off + (size_t)(row + i * ps) * rowb};
      if (nhd)
        st = cp->tp->copy2d(cp, (cp_region){t->buf, src}, (size_t)t->stride[1] * es, to, rowb, n,
                            rowb);
      for (int64_t h = 0; !nhd && h < p->Hkv && st == PA_OK; h++)
        st = cp->tp->copy2d(cp, (cp_region){t->buf, src + (size_t)(h * t->stride[2]) * es},
                            (size_t)t->stride[1] * es,
                            (cp_region){to.buf, to.off + (size_t)(h * dim) * es}, rowb, n,
                            (size_t)dim * es);
    }
    row += len;
  }
  return st;
}

static pa_status gather_paged(pa_cp_plan *p, const pa_attention_args *args, cp_region slot) {
  pa_cp *cp = p->cp;
  const pa_attention_desc *d = &p->desc;
  const int B = p->B, ps = p->ps;
  const int64_t maxp = p->hbt_cols;
  if (!maxp) return PA_OK; /* an empty shard reads no page */
  pa_status st = check_pages(cp, "k", &args->k, d->kv_dtype, ps, p->Hkv, p->Dqk);
  if (st == PA_OK) st = check_pages(cp, "v", &args->v, d->kv_dtype, ps, p->Hkv, p->Dv);
  if (st != PA_OK) return st;
  const pa_tensor *t = &args->block_table;
  if (!t->buf || t->ndim != 2 || t->dtype != PA_I32 || t->shape[0] != B || t->shape[1] < maxp ||
      t->stride[1] != 1 || t->stride[0] < maxp ||
      t->offset + ((size_t)((B - 1) * t->stride[0] + maxp)) * 4 > pa_buffer_size(t->buf))
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "block_table: %s [%lld, %lld] stride [%lld, %lld] (ndim %d), want i32 [%d, >= "
                   "%lld] with stride[1] = 1 inside its buffer (this rank's pages)",
                   pa_dtype_name(t->dtype), (long long)t->shape[0], (long long)t->shape[1],
                   (long long)t->stride[0], (long long)t->stride[1], t->ndim, B, (long long)maxp);
  for (int b = 0; b < B && st == PA_OK; b++)
    if (pa_buffer_read(t->buf, t->offset + (size_t)(b * t->stride[0]) * 4, p->hbt + b * maxp,
                       (size_t)maxp * 4) != PA_OK)
      st = cp_ctx_fail(cp, PA_ERR_BACKEND, "block_table read");
  const int64_t P = args->k.shape[0] < args->v.shape[0] ? args->k.shape[0] : args->v.shape[0];
  for (int b = 0; b < B && st == PA_OK; b++)
    for (int64_t i = 0; i < (p->plen[b] + ps - 1) / ps && st == PA_OK; i++)
      if (p->hbt[b * maxp + i] < 0 || p->hbt[b * maxp + i] >= P)
        st = cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                     "block_table[%d][%lld]=%d: outside the %lld pages of k and v", b, (long long)i,
                     p->hbt[b * maxp + i], (long long)P);
  if (st == PA_OK) st = gather_one(p, &args->k, p->Dqk, slot);
  if (st == PA_OK) st = gather_one(p, &args->v, p->Dv, (cp_region){slot.buf, slot.off + p->slot_v});
  return st;
}

pa_status pa_cp_prefill_run(pa_cp_plan *p, const pa_attention_args *args) {
  if (!p || p->kind != CP_PREFILL) return PA_ERR_INVALID_ARGUMENT;
  pa_cp *cp = p->cp;
  cp->msg[0] = 0;
  if (!args) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "args is NULL");
  const int R = cp->size, r = cp->rank;
  const int64_t T = p->Tr, Hq = p->Hq, Hkv = p->Hkv, Dqk = p->Dqk, Dv = p->Dv;
  const pa_attention_desc *d = &p->desc;
  const bool want_lse = d->flags & PA_RETURN_LSE;
  const size_t kes = pa_dtype_size(d->kv_dtype);
  const bool paged = p->ps || d->page_size; /* d->page_size: one rank, paged plan */
  pa_status st = check_rows(cp, "q", &args->q, d->q_dtype, T, Hq, Dqk, false);
  if (st == PA_OK && !paged) st = check_rows(cp, "k", &args->k, d->kv_dtype, T, Hkv, Dqk, R > 1);
  if (st == PA_OK && !paged) st = check_rows(cp, "v", &args->v, d->kv_dtype, T, Hkv, Dv, R > 1);
  if (st == PA_OK) st = check_rows(cp, "out", &args->out, d->o_dtype, T, Hq, Dv, false);
  if (st == PA_OK && want_lse &&
      (!args->lse.buf || args->lse.ndim != 2 || args->lse.shape[0] != T ||
       args->lse.shape[1] != Hq || args->lse.dtype != PA_F32))
    st = cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                 "lse: shape [%lld, %lld] (ndim %d), want f32 [%lld, %lld]",
                 (long long)args->lse.shape[0], (long long)args->lse.shape[1], args->lse.ndim,
                 (long long)T, (long long)Hq);
  if (R == 1) {
    if (st == PA_OK && (st = pa_attention_run(p->unit[0], args, NULL)) != PA_OK)
      st = cp_ctx_fail(cp, st, "attention");
    return st;
  }
  /* Our own block into slot 0: it leaves for the next rank at step 0. */
  cp_region slot[2] = {{p->scratch, p->slot_off[0]}, {p->scratch, p->slot_off[1]}};
  if (st == PA_OK && p->ps) {
    st = gather_paged(p, args, slot[0]);
  } else if (st == PA_OK && T) {
    st = cp->tp->copy2d(cp, (cp_region){args->k.buf, args->k.offset},
                        (size_t)args->k.stride[0] * kes, slot[0], (size_t)(Hkv * Dqk) * kes,
                        (size_t)T, (size_t)(Hkv * Dqk) * kes);
    if (st == PA_OK)
      st = cp->tp->copy2d(cp, (cp_region){args->v.buf, args->v.offset},
                          (size_t)args->v.stride[0] * kes,
                          (cp_region){p->scratch, p->slot_off[0] + p->slot_v},
                          (size_t)(Hkv * Dv) * kes, (size_t)T, (size_t)(Hkv * Dv) * kes);
  }
  if (cp->tp->run_agree) st = cp_agree(cp, st);
  if (st != PA_OK) return st;

  const int next = (r + 1) % R, prev = (r - 1 + R) % R;
  /* Unit 0 writes acc 0 in o_dtype (first0); merges: f32 acc ping-pong. */
  pa_tensor acc_o[2], acc_l[2], first0, first0_l, so, sl;
  for (int i = 0; i < 2; i++)
    cp_state_view(p->scratch, p->acc_off[i], p->acc_lse, PA_F32, T, Hq, Dv, &acc_o[i], &acc_l[i]);
  cp_state_view(p->scratch, p->acc_off[0], p->acc_lse, d->o_dtype, T, Hq, Dv, &first0, &first0_l);
  cp_state_view(p->scratch, p->stepo_off, p->stepo_lse, d->o_dtype, T, Hq, Dv, &so, &sl);
  /* A block's bytes as sent: K rows, then V rows at slot_v. */
#define BLOCK_BYTES(rows) (p->slot_v + (size_t)((rows)*Hkv * Dv) * kes)
  int u = 0;
  for (int s = 0; s < R; s++) {
    const int src = (r - s + R) % R, src_next = (r - s - 1 + 2 * R) % R;
    if (s + 1 < R && (st = cp->tp->exchange_start(cp, slot[s % 2], BLOCK_BYTES(p->rows[src]), next,
                                                  slot[(s + 1) % 2], BLOCK_BYTES(p->rows[src_next]),
                                                  prev)) != PA_OK)
      return st;
    pa_attention_args a = *args;
    if (s > 0 || p->ps) {
      a.block_table = (pa_tensor){0};
      const int64_t L = p->rows[src];
      a.k = cp_view(p->scratch, slot[s % 2].off, d->kv_dtype, 3, (int64_t[]){L, Hkv, Dqk},
                    (int64_t[]){Hkv * Dqk, Dqk, 1});
      a.v = cp_view(p->scratch, slot[s % 2].off + p->slot_v, d->kv_dtype, 3,
                    (int64_t[]){L, Hkv, Dv}, (int64_t[]){Hkv * Dv, Dv, 1});
    }
    for (; u < p->nunit && p->ustep[u] == s; u++) {
      a.out = u == 0 ? first0 : so;
      a.lse = u == 0 ? first0_l : sl;
      if ((st = pa_attention_run(p->unit[u], &a, NULL)) != PA_OK)
        return cp_ctx_fail(cp, st, "step attention");
      if (u == 0) continue;
      pa_tensor out = args->out, lse = args->lse, none = {0};
      const bool last = u == p->nunit - 1;
      st = pa_merge_state_pair(
          cp->ctx, u == 1 ? &first0 : &acc_o[(u - 1) % 2], u == 1 ? &first0_l : &acc_l[(u - 1) % 2],
          &so, &sl, last ? &out : &acc_o[u % 2], last ? (want_lse ? &lse : &none) : &acc_l[u % 2]);
      if (st != PA_OK) return cp_ctx_fail(cp, st, "merge of a step's state");
    }
    if (s + 1 < R && (st = cp->tp->exchange_wait(cp)) != PA_OK) return st;
  }
#undef BLOCK_BYTES
  return PA_OK;
}

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
 * rank does about the same work at every step. */
#include <stdlib.h>
#include <string.h>

#include "cp.h"

typedef struct shard_rows {
  int32_t *len, *a, *cu; /* [B] local length, [B] chunk A length, [B+1] local starts */
} shard_rows;

static void rows_of(int rank, int size, int B, const int32_t *seqlens, shard_rows *s) {
  int32_t *cl = malloc(sizeof(int32_t) * 2 * (size_t)(B ? B : 1));
  pa_cp_zigzag_shard(rank, size, B, seqlens, s->len, NULL, cl);
  s->cu[0] = 0;
  for (int b = 0; b < B; b++) {
    s->a[b] = cl[2 * b];
    s->cu[b + 1] = s->cu[b] + s->len[b];
  }
  free(cl);
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
  if (d->window_left >= 0 || d->window_right >= 0)
    return cp_fail(cp, PA_ERR_UNSUPPORTED,
                   "desc.window_left=%d window_right=%d: ring prefill takes no window",
                   d->window_left, d->window_right);
  if (d->page_size)
    return cp_fail(cp, PA_ERR_UNSUPPORTED,
                   "desc.page_size=%d: ring prefill takes packed K/V shards", d->page_size);
  return PA_OK;
}

/* The attention plan of step s (KV block of rank src). */
static pa_status plan_step(pa_cp_plan *p, int s, const shard_rows *me, const shard_rows *src_rows,
                           int src, pa_plan **out) {
  pa_cp *cp = p->cp;
  const int B = p->B, R = cp->size, r = cp->rank;
  pa_attention_desc d = p->desc;
  if (R > 1) { /* partial states: f32 with LSE */
    d.flags |= PA_RETURN_LSE;
    d.o_dtype = PA_F32;
  }
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
                   desc ? (int64_t)desc->flags : 0,
                   B >= 0 ? cp_hash_i32(batch->seqlens_q, B) : 0};
  static const char *const names[] = {"status",
                                      "batch.batch_size",
                                      "desc.num_q_heads",
                                      "desc.num_kv_heads",
                                      "desc.head_dim_qk",
                                      "desc.head_dim_v",
                                      "desc dtypes (q*16+kv*4+o)",
                                      "desc.causal",
                                      "desc.flags",
                                      "hash of batch.seqlens_q"};
  if ((st = cp_check_same_after(cp, st, rec, names, CP_N(rec))) != PA_OK) return st;

  const int R = cp->size, r = cp->rank;
  pa_cp_plan *p = calloc(1, sizeof *p);
  size_t nb = (size_t)B + 1;
  int32_t *mem = calloc(6 * nb, sizeof(int32_t));
  if (p) {
    p->step = calloc((size_t)R, sizeof *p->step);
    p->rows = calloc((size_t)R, sizeof *p->rows);
  }
  if (!p || !mem || !p->step || !p->rows) {
    free(mem);
    if (p) cp_plan_free((p->cp = cp, p));
    return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  p->cp = cp;
  p->kind = CP_PREFILL;
  p->desc = *desc;
  p->B = B;
  p->Hq = desc->num_q_heads;
  p->Hkv = desc->num_kv_heads;
  p->Dqk = desc->head_dim_qk;
  p->Dv = desc->head_dim_v ? desc->head_dim_v : desc->head_dim_qk;
  shard_rows me = {mem, mem + nb, mem + 2 * nb}, other = {mem + 3 * nb, mem + 4 * nb, mem + 5 * nb};
  rows_of(r, R, B, batch->seqlens_q, &me);
  p->Tr = me.cu[B];
  int64_t lmax = 0;
  for (int s = 0; s < R && st == PA_OK; s++) {
    int src = (r - s + R) % R;
    rows_of(src, R, B, batch->seqlens_q, &other);
    p->rows[src] = other.cu[B];
    if (p->rows[src] > lmax) lmax = p->rows[src];
    st = plan_step(p, s, &me, &other, src, &p->step[s]);
  }
  free(mem);

  const size_t kes = pa_dtype_size(desc->kv_dtype);
  const int64_t Hq = p->Hq, Hkv = p->Hkv, Dv = p->Dv;
  p->slot_v = cp_align((size_t)(lmax * Hkv * p->Dqk) * kes);
  p->slot_bytes = cp_align(p->slot_v + (size_t)(lmax * Hkv * Dv) * kes);
  p->acc_lse = cp_align((size_t)(p->Tr * Hq * Dv) * 4);
  p->acc_bytes = cp_align(p->acc_lse + (size_t)(p->Tr * Hq) * 4);
  p->slot_off[0] = 0;
  p->slot_off[1] = p->slot_bytes;
  p->acc_off[0] = 2 * p->slot_bytes;
  p->acc_off[1] = p->acc_off[0] + p->acc_bytes;
  p->stepo_off = p->acc_off[1] + p->acc_bytes;
  size_t total = R > 1 ? p->stepo_off + p->acc_bytes : 0;
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
  pa_status st = check_rows(cp, "q", &args->q, d->q_dtype, T, Hq, Dqk, false);
  if (st == PA_OK) st = check_rows(cp, "k", &args->k, d->kv_dtype, T, Hkv, Dqk, R > 1);
  if (st == PA_OK) st = check_rows(cp, "v", &args->v, d->kv_dtype, T, Hkv, Dv, R > 1);
  if (st == PA_OK) st = check_rows(cp, "out", &args->out, d->o_dtype, T, Hq, Dv, false);
  if (st == PA_OK && want_lse &&
      (!args->lse.buf || args->lse.ndim != 2 || args->lse.shape[0] != T ||
       args->lse.shape[1] != Hq || args->lse.dtype != PA_F32))
    st = cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                 "lse: shape [%lld, %lld] (ndim %d), want f32 [%lld, %lld]",
                 (long long)args->lse.shape[0], (long long)args->lse.shape[1], args->lse.ndim,
                 (long long)T, (long long)Hq);
  if (R == 1) {
    if (st == PA_OK && (st = pa_attention_run(p->step[0], args, NULL)) != PA_OK)
      st = cp_ctx_fail(cp, st, "attention");
    return st;
  }
  /* Our own block into slot 0: it leaves for the next rank at step 0. */
  cp_region slot[2] = {{p->scratch, p->slot_off[0]}, {p->scratch, p->slot_off[1]}};
  if (st == PA_OK && T) {
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
  pa_tensor acc_o[2], acc_l[2], so, sl;
  for (int i = 0; i < 2; i++) {
    acc_o[i] = cp_view(p->scratch, p->acc_off[i], PA_F32, 3, (int64_t[]){T, Hq, Dv},
                       (int64_t[]){Hq * Dv, Dv, 1});
    acc_l[i] = cp_view(p->scratch, p->acc_off[i] + p->acc_lse, PA_F32, 2, (int64_t[]){T, Hq},
                       (int64_t[]){Hq, 1});
  }
  so = cp_view(p->scratch, p->stepo_off, PA_F32, 3, (int64_t[]){T, Hq, Dv},
               (int64_t[]){Hq * Dv, Dv, 1});
  sl = cp_view(p->scratch, p->stepo_off + p->acc_lse, PA_F32, 2, (int64_t[]){T, Hq},
               (int64_t[]){Hq, 1});
  /* A block's bytes as sent: K rows, then V rows at slot_v. */
#define BLOCK_BYTES(rows) (p->slot_v + (size_t)((rows)*Hkv * Dv) * kes)
  for (int s = 0; s < R; s++) {
    const int src = (r - s + R) % R, src_next = (r - s - 1 + 2 * R) % R;
    if (s + 1 < R && (st = cp->tp->exchange_start(cp, slot[s % 2], BLOCK_BYTES(p->rows[src]), next,
                                                  slot[(s + 1) % 2], BLOCK_BYTES(p->rows[src_next]),
                                                  prev)) != PA_OK)
      return st;
    pa_attention_args a = *args;
    if (s > 0) {
      const int64_t L = p->rows[src];
      a.k = cp_view(p->scratch, slot[s % 2].off, d->kv_dtype, 3, (int64_t[]){L, Hkv, Dqk},
                    (int64_t[]){Hkv * Dqk, Dqk, 1});
      a.v = cp_view(p->scratch, slot[s % 2].off + p->slot_v, d->kv_dtype, 3,
                    (int64_t[]){L, Hkv, Dv}, (int64_t[]){Hkv * Dv, Dv, 1});
    }
    a.out = s == 0 ? acc_o[0] : so;
    a.lse = s == 0 ? acc_l[0] : sl;
    if ((st = pa_attention_run(p->step[s], &a, NULL)) != PA_OK)
      return cp_ctx_fail(cp, st, "step attention");
    if (s > 0) {
      pa_tensor out = args->out, lse = args->lse, none = {0};
      bool last = s == R - 1;
      st = pa_merge_state_pair(cp->ctx, &acc_o[(s - 1) % 2], &acc_l[(s - 1) % 2], &so, &sl,
                               last ? &out : &acc_o[s % 2],
                               last ? (want_lse ? &lse : &none) : &acc_l[s % 2]);
      if (st != PA_OK) return cp_ctx_fail(cp, st, "merge of a step's state");
    }
    if (s + 1 < R && (st = cp->tp->exchange_wait(cp)) != PA_OK) return st;
  }
#undef BLOCK_BYTES
  return PA_OK;
}

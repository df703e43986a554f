/* Decode context parallelism: local attention over this rank's KV shard with
 * LSE into partials in o_dtype (LSE f32), then a combine across ranks
 * (all-gather + merge, or all-to-all by heads + merge [+ all-gather of the
 * merged heads]); merges accumulate in f32. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp.h"

static pa_status check_decode(pa_cp *cp, const pa_attention_desc *d, const pa_batch *b, int shard,
                              int combine) {
  if (!d || !b) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "desc and batch must not be NULL");
  if (shard != PA_CP_SHARD_CONTIGUOUS && shard != PA_CP_SHARD_INTERLEAVED)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "shard=%d is not a pa_cp_shard", shard);
  if (combine < PA_CP_COMBINE_ALLGATHER || combine > PA_CP_COMBINE_HEADS_GATHER)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "combine=%d is not a pa_cp_combine", combine);
  if (b->batch_size < 0)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "batch.batch_size=%d is negative", b->batch_size);
  if (!b->seqlens_q || !b->seqlens_k)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "batch.seqlens_q and batch.seqlens_k (global lengths) are both needed");
  if (b->cu_seqlens_q || b->cu_seqlens_k)
    return cp_fail(cp, PA_ERR_UNSUPPORTED,
                   "batch.cu_seqlens_q/k: decode context parallelism takes packed q and the "
                   "shard's own K layout, give seqlens only");
  if (d->flags & (PA_HAS_ALIBI | PA_HAS_MASK))
    return cp_fail(cp, PA_ERR_UNSUPPORTED,
                   "desc.flags=0x%x: ALiBi and dense masks depend on key positions, which a "
                   "shard does not keep",
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
  for (int i = 0; i < b->batch_size; i++)
    if (b->seqlens_q[i] < 0 || b->seqlens_k[i] < 0)
      return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                     "batch.seqlens_q[%d]=%d seqlens_k[%d]=%d: negative", i, b->seqlens_q[i], i,
                     b->seqlens_k[i]);
  if (combine != PA_CP_COMBINE_ALLGATHER && d->num_q_heads % cp->size)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "desc.num_q_heads=%d is not a multiple of the communicator size %d "
                   "(combine by heads)",
                   d->num_q_heads, cp->size);
  return PA_OK;
}

/* The local attentions of this rank: the k-th unmasked piece of every
 * request in sub k, then the k-th masked piece in sub nfull + k (pieces.c).
 * Without windows or several causal queries, that is one sub over all the
 * shard's keys, run on the caller's tensors as they are. Places masks and
 * shifted block tables in scratch from *base on. */
static pa_status plan_subs(pa_cp_plan *p, const pa_batch *batch, pa_cp_shard shard, size_t *base) {
  pa_cp *cp = p->cp;
  const pa_attention_desc *d = &p->desc;
  const int B = p->B, ps = d->page_size;
  pa_status st = PA_OK;
  cp_piece **pcs = calloc((size_t)B + 1, sizeof *pcs);
  int *npc = calloc((size_t)B + 1, sizeof *npc);
  cp_shard_geom *geo = calloc((size_t)B + 1, sizeof *geo);
  int32_t *lens = calloc((size_t)B + 1, sizeof *lens), *cu = calloc((size_t)B + 1, sizeof *cu);
  int32_t *start = calloc((size_t)B + 1, sizeof *start);
  const cp_piece **pick = calloc((size_t)B + 1, sizeof *pick);
  int nfull = 0, nmask = 0;
  if (!pcs || !npc || !geo || !lens || !cu || !start || !pick) {
    st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    goto done;
  }
  for (int b = 0; b < B && st == PA_OK; b++) {
    cp_shard_geom_init(&geo[b], shard, batch->seqlens_k[b], ps, cp->rank, cp->size);
    npc[b] = cp_decode_pieces(d, &geo[b], batch->seqlens_q[b], &pcs[b]);
    if (npc[b] < 0) st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    int nf = 0, nm = 0;
    for (int k = 0; k < npc[b]; k++) pcs[b][k].masked ? nm++ : nf++;
    if (nf > nfull) nfull = nf;
    if (nm > nmask) nmask = nm;
  }
  if (st != PA_OK) goto done;
  if (nfull + nmask == 0) nfull = 1; /* nothing seen here: O = 0, LSE = -inf (or the sink) */
  p->sub = calloc((size_t)(nfull + nmask), sizeof *p->sub);
  if (!p->sub) {
    st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    goto done;
  }
  p->nsub = nfull + nmask;
  for (int u = 0; u < p->nsub && st == PA_OK; u++) {
    cp_sub *q = &p->sub[u];
    q->masked = u >= nfull;
    const int want = q->masked ? u - nfull : u;
    bool shifted = false, cut = false;
    int64_t msk = 1, msq = 1, cols = 1, rows = 0;
    for (int b = 0; b < B; b++) {
      int seen = 0;
      pick[b] = NULL;
      for (int k = 0; k < npc[b] && !pick[b]; k++)
        if (pcs[b][k].masked == q->masked && seen++ == want) pick[b] = &pcs[b][k];
      const int32_t s0 = pick[b] ? (ps && q->masked ? pick[b]->s / ps * ps : pick[b]->s) : 0;
      start[b] = s0;
      lens[b] = pick[b] ? pick[b]->e - s0 : 0;
      cu[b] = (int32_t)rows + s0;
      rows += geo[b].nl;
      shifted |= s0 > 0;
      cut |= lens[b] != geo[b].nl; /* packed K: rows of the shard's layout, not back to back */
      if (lens[b] > msk) msk = lens[b];
      if (batch->seqlens_q[b] > msq) msq = batch->seqlens_q[b];
      if (ps && pick[b] && (lens[b] + s0 + ps - 1) / ps - s0 / ps > cols)
        cols = (lens[b] + s0 + ps - 1) / ps - s0 / ps;
    }
    cu[B] = (int32_t)rows;
    pa_attention_desc in = *d;
    /* o_dtype stays the caller's: partials in the model dtype take the same
     * kernels as plain attention (f32 ones would not on tensor cores). */
    in.flags |= PA_RETURN_LSE;
    in.causal = 0; /* a piece's keys are all seen (or masked) */
    in.window_left = in.window_right = -1;
    in.sink_tokens = 0;
    if (q->masked) in.flags |= PA_HAS_MASK;
    if (cp->rank != 0 || u != 0) in.flags &= ~(unsigned)PA_HAS_SINKS; /* counts once */
    pa_batch lb = {B, batch->seqlens_q, lens, NULL, !ps && (shifted || cut) ? cu : NULL};
    if ((st = pa_attention_plan(cp->ctx, &in, &lb, &q->plan)) != PA_OK) {
      st = cp_ctx_fail(cp, st, "local attention plan");
      break;
    }
    if (ps && shifted) { /* block-table rows from each piece's first page */
      q->page0 = calloc((size_t)B + 1, sizeof *q->page0);
      q->npages = calloc((size_t)B + 1, sizeof *q->npages);
      if (!q->page0 || !q->npages) {
        st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
        break;
      }
      for (int b = 0; b < B; b++) {
        q->page0[b] = start[b] / ps;
        q->npages[b] = pick[b] ? (start[b] + lens[b] + ps - 1) / ps - q->page0[b] : 0;
      }
      q->bt_cols = cols;
      q->bt_off = *base;
      *base += cp_align((size_t)(B * cols) * 4);
    }
    if (q->masked) { /* 0 where query i sees key start + j of the piece, else -inf */
      q->msq = msq;
      q->msk = msk;
      q->mask_off = *base;
      *base += cp_align((size_t)(B * msq * msk) * 4);
      q->hmask = malloc((size_t)(B * msq * msk) * 4 + 4);
      if (!q->hmask) {
        st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
        break;
      }
      for (int64_t x = 0; x < B * msq * msk; x++) q->hmask[x] = -INFINITY;
      for (int b = 0; b < B; b++)
        for (int64_t i = 0; pick[b] && i < batch->seqlens_q[b]; i++)
          for (int64_t j = pick[b]->s; j < pick[b]->e; j++)
            if (cp_decode_sees(d, &geo[b], batch->seqlens_q[b], i, j))
              q->hmask[(b * msq + i) * msk + (j - start[b])] = 0.f;
    }
  }
  if (p->nsub > 1) { /* the f32 running state (two) and a sub's state in o_dtype */
    const int64_t T = p->T, Hq = p->Hq, Dv = p->Dv;
    const size_t es = pa_dtype_size(d->o_dtype);
    p->acc_lse = cp_state_lse(T, Hq, Dv, 4);
    p->acc_bytes = cp_align(cp_state_bytes(T, Hq, Dv, 4));
    p->acc_off[0] = *base;
    p->acc_off[1] = p->acc_off[0] + p->acc_bytes;
    p->stepo_off = p->acc_off[1] + p->acc_bytes;
    p->stepo_lse = cp_state_lse(T, Hq, Dv, es);
    *base = p->stepo_off + cp_align(cp_state_bytes(T, Hq, Dv, es));
  }
done:
  for (int b = 0; pcs && b < B; b++) free(pcs[b]);
  free(pcs), free(npc), free(geo), free(lens), free(cu), free(start), free(pick);
  return st;
}

size_t cp_decode_part_bytes(int64_t T, int64_t Hq, int64_t Dv, pa_dtype o_dtype) {
  return cp_align(cp_state_bytes(T, Hq, Dv, pa_dtype_size(o_dtype)) + CP_STATUS_BYTES);
}

size_t cp_decode_layout(pa_cp_plan *p, size_t base) {
  const int64_t R = p->cp->size, T = p->T, Hq = p->Hq, Hs = p->Hs, Dv = p->Dv;
  const size_t es = pa_dtype_size(p->desc.o_dtype);
  p->part_off = 0;
  if (p->combine == PA_CP_COMBINE_ALLGATHER) { /* the partial state itself travels */
    p->blk = cp_state_bytes(T, Hq, Dv, es) + CP_STATUS_BYTES;
    p->gath_off = base;
    return p->gath_off + (size_t)R * p->blk;
  }
  p->blk = cp_state_bytes(T, Hs, Dv, es) + CP_STATUS_BYTES;
  p->send_off = base;
  p->gath_off = p->send_off + cp_align((size_t)R * p->blk);
  p->mo_off = p->gath_off + cp_align((size_t)R * p->blk);
  p->blk2 = cp_state_bytes(T, Hs, Dv, es);
  p->gath2_off = p->mo_off + cp_align(p->blk2);
  return p->combine == PA_CP_COMBINE_HEADS ? p->mo_off : p->gath2_off + (size_t)R * p->blk2;
}

pa_status pa_cp_decode_plan(pa_cp *cp, const pa_attention_desc *desc, const pa_batch *batch,
                            pa_cp_shard shard, pa_cp_combine combine, pa_cp_plan **out) {
  if (!cp) return PA_ERR_INVALID_ARGUMENT;
  cp->msg[0] = 0;
  if (!out) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  pa_status st = check_decode(cp, desc, batch, (int)shard, (int)combine);
  /* Agreement first (even after a local failure) so no rank waits alone. */
  const int B = st == PA_OK ? batch->batch_size : -1;
  int64_t rec[] = {st,
                   B,
                   desc ? desc->num_q_heads : 0,
                   desc ? desc->num_kv_heads : 0,
                   desc ? desc->head_dim_qk : 0,
                   desc ? desc->head_dim_v : 0,
                   desc ? desc->q_dtype * 16 + desc->kv_dtype * 4 + desc->o_dtype : 0,
                   desc ? desc->page_size : 0,
                   desc ? (int64_t)desc->flags : 0,
                   desc ? desc->causal : 0,
                   desc ? desc->window_left : 0,
                   desc ? desc->window_right : 0,
                   desc ? desc->sink_tokens : 0,
                   shard,
                   combine,
                   B >= 0 ? (int64_t)cp_hash_i32(batch->seqlens_q, B) : 0,
                   B >= 0 ? (int64_t)cp_hash_i32(batch->seqlens_k, B) : 0};
  static const char *const names[] = {"status",
                                      "batch.batch_size",
                                      "desc.num_q_heads",
                                      "desc.num_kv_heads",
                                      "desc.head_dim_qk",
                                      "desc.head_dim_v",
                                      "desc dtypes (q*16+kv*4+o)",
                                      "desc.page_size",
                                      "desc.flags",
                                      "desc.causal",
                                      "desc.window_left",
                                      "desc.window_right",
                                      "desc.sink_tokens",
                                      "shard",
                                      "combine",
                                      "hash of batch.seqlens_q",
                                      "hash of batch.seqlens_k"};
  if ((st = cp_check_same_after(cp, st, rec, names, CP_N(rec))) != PA_OK) return st;

  pa_cp_plan *p = calloc(1, sizeof *p);
  if (!p) return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
  p->cp = cp;
  p->kind = CP_DECODE;
  p->desc = *desc;
  p->B = B;
  p->combine = combine;
  p->Hq = desc->num_q_heads;
  p->Dv = desc->head_dim_v ? desc->head_dim_v : desc->head_dim_qk;
  p->Hs = combine == PA_CP_COMBINE_ALLGATHER ? p->Hq : p->Hq / cp->size;
  for (int b = 0; b < B; b++) p->T += batch->seqlens_q[b];
  /* The partial state; each block ends with the sender's run status: ranks
   * agree on success inside the collective they make anyway. */
  size_t base = cp_decode_part_bytes(p->T, p->Hq, p->Dv, desc->o_dtype);
  st = plan_subs(p, batch, shard, &base);
  const size_t total = cp_decode_layout(p, base);
  if (st == PA_OK && (st = pa_buffer_create(cp->ctx, total ? total : 256, &p->scratch)) != PA_OK)
    st = cp_ctx_fail(cp, st, "scratch buffer");
  for (int u = 0; st == PA_OK && u < p->nsub; u++) {
    cp_sub *q = &p->sub[u];
    if (q->hmask && (st = pa_buffer_write(p->scratch, q->mask_off, q->hmask,
                                          (size_t)(B * q->msq * q->msk) * 4)) != PA_OK)
      st = cp_ctx_fail(cp, st, "masks of the pieces");
    free(q->hmask);
    q->hmask = NULL;
  }
  /* Plans fail together: a rank out of memory must not leave others waiting. */
  st = cp_agree(cp, st);
  if (st != PA_OK) {
    cp_plan_free(p);
    return st;
  }
  *out = p;
  return PA_OK;
}

static const char *const combine_name[] = {"ALLGATHER", "HEADS", "HEADS_GATHER"};

/* out / lse of the combine: [T, H, Dv] and [T, H]. */
pa_status cp_decode_check_out(pa_cp_plan *p, const pa_tensor *o, const pa_tensor *l) {
  pa_cp *cp = p->cp;
  const int64_t H = p->combine == PA_CP_COMBINE_HEADS ? p->Hs : p->Hq;
  if (!o->buf || o->ndim != 3 || o->shape[0] != p->T || o->shape[1] != H || o->shape[2] != p->Dv)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "out: ndim=%d shape=[%lld, %lld, %lld], want [%lld, %lld, %lld] (combine %s)",
                   o->ndim, (long long)o->shape[0], (long long)o->shape[1], (long long)o->shape[2],
                   (long long)p->T, (long long)H, (long long)p->Dv, combine_name[p->combine]);
  if (o->dtype != p->desc.o_dtype)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "out.dtype=%s but desc.o_dtype=%s",
                   pa_dtype_name(o->dtype), pa_dtype_name(p->desc.o_dtype));
  bool lse = p->desc.flags & PA_RETURN_LSE;
  if (lse &&
      (!l->buf || l->ndim != 2 || l->shape[0] != p->T || l->shape[1] != H || l->dtype != PA_F32))
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "lse: ndim=%d shape=[%lld, %lld] dtype=%s, want f32 [%lld, %lld]", l->ndim,
                   (long long)l->shape[0], (long long)l->shape[1], pa_dtype_name(l->dtype),
                   (long long)p->T, (long long)H);
  if (p->combine == PA_CP_COMBINE_HEADS_GATHER &&
      (o->stride[2] != 1 || o->stride[1] != p->Dv || (lse && l->stride[1] != 1)))
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "out.stride=[%lld, %lld, %lld]: HEADS_GATHER writes whole rows of heads, "
                   "needs stride[1]=%lld, stride[2]=1 (and lse.stride[1]=1)",
                   (long long)o->stride[0], (long long)o->stride[1], (long long)o->stride[2],
                   (long long)p->Dv);
  return PA_OK;
}

/* The run status rides in the last bytes of each block (transports that
 * agree: MPI); NCCL runs do not agree (polyattn_nccl.h). */
static pa_status put_status(pa_cp_plan *p, size_t block_end, pa_status st) {
  int32_t v = (int32_t)st;
  if (!p->cp->tp->run_agree) return PA_OK;
  pa_status ws = pa_buffer_write(p->scratch, block_end - CP_STATUS_BYTES, &v, sizeof v);
  return ws == PA_OK ? ws : cp_ctx_fail(p->cp, ws, "status word");
}

/* After the collective: every rank's status, the same decision everywhere. */
static pa_status check_status(pa_cp_plan *p, size_t first_end, pa_status mine) {
  pa_cp *cp = p->cp;
  if (!cp->tp->run_agree) return mine;
  for (int r = 0; r < cp->size; r++) {
    int32_t v = 0;
    pa_status rs =
        pa_buffer_read(p->scratch, first_end + (size_t)r * p->blk - CP_STATUS_BYTES, &v, sizeof v);
    if (rs != PA_OK) return cp_ctx_fail(cp, rs, "status word");
    if (v != PA_OK && mine == PA_OK)
      return cp_fail(cp, (pa_status)v, "rank %d failed (%s); see its pa_cp_last_error", r,
                     pa_status_str((pa_status)v));
  }
  return mine;
}

/* The R gathered blocks at off, blk bytes apart (a multiple of 16). */
static pa_status merge(pa_cp_plan *p, size_t off, size_t blk, pa_tensor *out, pa_tensor *lse) {
  pa_cp *cp = p->cp;
  const int64_t T = p->T, R = cp->size, H = p->Hs, D = p->Dv;
  const pa_dtype dt = p->desc.o_dtype;
  const size_t es = pa_dtype_size(dt);
  pa_tensor v = cp_view(p->scratch, off, dt, 4, (int64_t[]){T, R, H, D},
                        (int64_t[]){H * D, (int64_t)(blk / es), D, 1});
  pa_tensor s = cp_view(p->scratch, off + cp_state_lse(T, H, D, es), PA_F32, 3,
                        (int64_t[]){T, R, H}, (int64_t[]){H, (int64_t)(blk / 4), 1});
  pa_status st = pa_merge_states(cp->ctx, &v, &s, out, lse);
  return st == PA_OK ? st : cp_ctx_fail(cp, st, "merge of the ranks' states");
}

/* The caller's block table, when subs read it from shifted rows. */
static pa_status check_table(pa_cp_plan *p, const pa_tensor *t) {
  int64_t need = 0;
  for (int u = 0; u < p->nsub; u++)
    for (int b = 0; p->sub[u].page0 && b < p->B; b++)
      if (p->sub[u].npages[b] && p->sub[u].page0[b] + p->sub[u].npages[b] > need)
        need = p->sub[u].page0[b] + p->sub[u].npages[b];
  if (!need) return PA_OK;
  if (!t->buf || t->ndim != 2 || t->dtype != PA_I32 || t->shape[0] != p->B || t->shape[1] < need ||
      t->stride[1] != 1 ||
      t->offset + ((size_t)((p->B - 1) * t->stride[0]) + (size_t)need) * 4 > pa_buffer_size(t->buf))
    return cp_fail(p->cp, PA_ERR_INVALID_ARGUMENT,
                   "block_table: %s [%lld, %lld] stride [%lld, %lld] (ndim %d), want i32 [%d, >= "
                   "%lld] with stride[1] = 1 inside its buffer (the window's pieces read rows "
                   "from their first page)",
                   pa_dtype_name(t->dtype), (long long)t->shape[0], (long long)t->shape[1],
                   (long long)t->stride[0], (long long)t->stride[1], t->ndim, p->B,
                   (long long)need);
  return PA_OK;
}

/* This rank's partial state [T, Hq, Dv] + LSE at part_off: the subs run in
 * order, each merged into the state so far. One sub writes part; several
 * write o_dtype states (the first into acc 0, the others into stepo) merged
 * into an f32 running state (acc ping-pong), the last merge into part. */
static pa_status local_step(pa_cp_plan *p, const pa_attention_args *args) {
  pa_cp *cp = p->cp;
  const int64_t T = p->T, Hq = p->Hq, D = p->Dv, B = p->B;
  const pa_dtype dt = p->desc.o_dtype;
  const int n = p->nsub;
  pa_status st = check_table(p, &args->block_table);
  if (st != PA_OK) return st;
  /* part, acc 0 / 1 (f32), acc 0 as o_dtype, stepo */
  pa_tensor o[5], l[5];
  cp_state_view(p->scratch, p->part_off, cp_state_lse(T, Hq, D, pa_dtype_size(dt)), dt, T, Hq, D,
                &o[0], &l[0]);
  for (int i = 0; n > 1 && i < 2; i++)
    cp_state_view(p->scratch, p->acc_off[i], p->acc_lse, PA_F32, T, Hq, D, &o[1 + i], &l[1 + i]);
  if (n > 1) {
    cp_state_view(p->scratch, p->acc_off[0], p->acc_lse, dt, T, Hq, D, &o[3], &l[3]);
    cp_state_view(p->scratch, p->stepo_off, p->stepo_lse, dt, T, Hq, D, &o[4], &l[4]);
  }
  for (int u = 0; u < n; u++) {
    const cp_sub *q = &p->sub[u];
    pa_attention_args a = *args;
    if (q->masked)
      a.mask = cp_view(p->scratch, q->mask_off, PA_F32, 4, (int64_t[]){B, 1, q->msq, q->msk},
                       (int64_t[]){q->msq * q->msk, q->msq * q->msk, q->msk, 1});
    if (q->page0) {
      /* One 2-D copy per run of requests whose rows start at the same page. */
      const pa_tensor *t = &args->block_table;
      for (int64_t b = 0, e; b < B; b = e) {
        int32_t np = q->npages[b];
        for (e = b + 1; e < B && q->page0[e] == q->page0[b]; e++)
          if (q->npages[e] > np) np = q->npages[e];
        if (np &&
            (st = cp->tp->copy2d(
                 cp, (cp_region){t->buf, t->offset + (size_t)(b * t->stride[0] + q->page0[b]) * 4},
                 (size_t)(e - b > 1 ? t->stride[0] : np) * 4,
                 (cp_region){p->scratch, q->bt_off + (size_t)(b * q->bt_cols) * 4},
                 (size_t)q->bt_cols * 4, (size_t)(e - b), (size_t)np * 4)) != PA_OK)
          return st;
      }
      a.block_table = cp_view(p->scratch, q->bt_off, PA_I32, 2, (int64_t[]){B, q->bt_cols},
                              (int64_t[]){q->bt_cols, 1});
    }
    const int dst = n == 1 ? 0 : u == 0 ? 3 : 4;
    a.out = o[dst];
    a.lse = l[dst];
    if ((st = pa_attention_run(q->plan, &a, NULL)) != PA_OK)
      return cp_ctx_fail(cp, st, "local attention");
    const int prev = u == 1 ? 3 : 1 + ((u - 1) & 1), next = u == n - 1 ? 0 : 1 + (u & 1);
    if (u > 0 && (st = pa_merge_state_pair(cp->ctx, &o[prev], &l[prev], &o[4], &l[4], &o[next],
                                           &l[next])) != PA_OK)
      return cp_ctx_fail(cp, st, "merge of the pieces' states");
  }
  return PA_OK;
}

pa_status cp_decode_combine(pa_cp_plan *p, pa_tensor out, pa_tensor lse, pa_status mine) {
  pa_cp *cp = p->cp;
  const int64_t T = p->T, R = cp->size, Hq = p->Hq, Hs = p->Hs, D = p->Dv;
  const size_t es = pa_dtype_size(p->desc.o_dtype);
  const bool want_lse = p->desc.flags & PA_RETURN_LSE;
  pa_status st = mine;

  pa_tensor *lse_out = want_lse ? &lse : &(pa_tensor){0};
  cp_region part = {p->scratch, p->part_off}, gath = {p->scratch, p->gath_off};
  if (p->combine == PA_CP_COMBINE_ALLGATHER) {
    if ((st = put_status(p, p->part_off + p->blk, mine)) != PA_OK ||
        (st = cp->tp->allgather(cp, part, gath, p->blk)) != PA_OK ||
        (st = check_status(p, p->gath_off + p->blk, mine)) != PA_OK)
      return st;
    return merge(p, p->gath_off, p->blk, &out, lse_out);
  }
  /* By heads: pack [T, Hq] rows into one [T, Hs] block per destination. */
  const size_t lse0 = p->part_off + cp_state_lse(T, Hq, D, es);
  for (int64_t r = 0; r < R; r++) {
    cp_region dst = {p->scratch, p->send_off + (size_t)r * p->blk};
    if ((st = cp->tp->copy2d(cp, (cp_region){p->scratch, p->part_off + (size_t)(r * Hs * D) * es},
                             (size_t)(Hq * D) * es, dst, (size_t)(Hs * D) * es, (size_t)T,
                             (size_t)(Hs * D) * es)) != PA_OK)
      return st;
    dst.off += cp_state_lse(T, Hs, D, es);
    if ((st = cp->tp->copy2d(cp, (cp_region){p->scratch, lse0 + (size_t)(r * Hs) * 4},
                             (size_t)Hq * 4, dst, (size_t)Hs * 4, (size_t)T, (size_t)Hs * 4)) !=
            PA_OK ||
        (st = put_status(p, p->send_off + (size_t)(r + 1) * p->blk, mine)) != PA_OK)
      return st;
  }
  if ((st = cp->tp->alltoall(cp, (cp_region){p->scratch, p->send_off}, gath, p->blk)) != PA_OK ||
      (st = check_status(p, p->gath_off + p->blk, mine)) != PA_OK)
    return st;
  if (p->combine == PA_CP_COMBINE_HEADS) return merge(p, p->gath_off, p->blk, &out, lse_out);

  /* HEADS_GATHER: merge our heads into a block, gather every rank's block,
   * scatter the blocks into the caller's [T, Hq] rows. */
  const size_t mlse = p->mo_off + cp_state_lse(T, Hs, D, es);
  pa_tensor mo = cp_view(p->scratch, p->mo_off, p->desc.o_dtype, 3, (int64_t[]){T, Hs, D},
                         (int64_t[]){Hs * D, D, 1});
  pa_tensor ml = cp_view(p->scratch, mlse, PA_F32, 2, (int64_t[]){T, Hs}, (int64_t[]){Hs, 1});
  if ((st = merge(p, p->gath_off, p->blk, &mo, &ml)) != PA_OK ||
      (st = cp->tp->allgather(cp, (cp_region){p->scratch, p->mo_off},
                              (cp_region){p->scratch, p->gath2_off}, p->blk2)) != PA_OK)
    return st;
  for (int64_t r = 0; r < R && st == PA_OK; r++) {
    size_t src = p->gath2_off + (size_t)r * p->blk2;
    st = cp->tp->copy2d(cp, (cp_region){p->scratch, src}, (size_t)(Hs * D) * es,
                        (cp_region){out.buf, out.offset + (size_t)(r * Hs * D) * es},
                        (size_t)out.stride[0] * es, (size_t)T, (size_t)(Hs * D) * es);
    if (st == PA_OK && want_lse)
      st = cp->tp->copy2d(cp, (cp_region){p->scratch, src + (mlse - p->mo_off)}, (size_t)Hs * 4,
                          (cp_region){lse.buf, lse.offset + (size_t)(r * Hs) * 4},
                          (size_t)lse.stride[0] * 4, (size_t)T, (size_t)Hs * 4);
  }
  return st;
}

pa_status pa_cp_decode_run(pa_cp_plan *p, const pa_attention_args *args) {
  if (!p || p->kind != CP_DECODE) return PA_ERR_INVALID_ARGUMENT;
  pa_cp *cp = p->cp;
  cp->msg[0] = 0;
  if (!args) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "args is NULL");
  pa_status st = cp_decode_check_out(p, &args->out, &args->lse);
  if (st == PA_OK) st = local_step(p, args);
  if (!cp->tp->run_agree && st != PA_OK) return st;
  return cp_decode_combine(p, args->out, args->lse, st);
}

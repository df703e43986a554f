/* Decode context parallelism: local attention over this rank's KV shard with
 * LSE into f32 partials, then a combine across ranks (all-gather + merge, or
 * all-to-all by heads + merge [+ all-gather of the merged heads]). */
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
  if (d->window_left >= 0 || d->window_right >= 0)
    return cp_fail(cp, PA_ERR_UNSUPPORTED,
                   "desc.window_left=%d window_right=%d: windows depend on key positions, "
                   "which a shard does not keep",
                   d->window_left, d->window_right);
  for (int i = 0; i < b->batch_size; i++) {
    if (b->seqlens_q[i] < 0 || b->seqlens_k[i] < 0)
      return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                     "batch.seqlens_q[%d]=%d seqlens_k[%d]=%d: negative", i, b->seqlens_q[i], i,
                     b->seqlens_k[i]);
    if (d->causal && b->seqlens_q[i] > 1)
      return cp_fail(cp, PA_ERR_UNSUPPORTED,
                     "desc.causal with batch.seqlens_q[%d]=%d: causal decode over shards takes "
                     "one query per request",
                     i, b->seqlens_q[i]);
  }
  if (combine != PA_CP_COMBINE_ALLGATHER && d->num_q_heads % cp->size)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "desc.num_q_heads=%d is not a multiple of the communicator size %d "
                   "(combine by heads)",
                   d->num_q_heads, cp->size);
  return PA_OK;
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
                                      "shard",
                                      "combine",
                                      "hash of batch.seqlens_q",
                                      "hash of batch.seqlens_k"};
  if ((st = cp_check_same_after(cp, st, rec, names, CP_N(rec))) != PA_OK) return st;

  pa_cp_plan *p = calloc(1, sizeof *p);
  int32_t *lk = calloc((size_t)B + 1, sizeof *lk);
  if (!p || !lk) {
    free(p);
    free(lk);
    return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  p->cp = cp;
  p->kind = CP_DECODE;
  p->desc = *desc;
  p->B = B;
  p->combine = combine;
  p->Hq = desc->num_q_heads;
  p->Dv = desc->head_dim_v ? desc->head_dim_v : desc->head_dim_qk;
  p->Hs = combine == PA_CP_COMBINE_ALLGATHER ? p->Hq : p->Hq / cp->size;
  for (int b = 0; b < B; b++) {
    lk[b] = pa_cp_shard_len(shard, batch->seqlens_k[b], desc->page_size, cp->rank, cp->size);
    p->T += batch->seqlens_q[b];
  }
  pa_attention_desc in = *desc;
  in.flags |= PA_RETURN_LSE;
  in.o_dtype = PA_F32;
  in.causal = 0; /* one query: every key of the shard is visible */
  if (cp->rank != 0) in.flags &= ~(unsigned)PA_HAS_SINKS; /* the sink term counts once */
  pa_batch lb = {B, batch->seqlens_q, lk, NULL, NULL};
  st = pa_attention_plan(cp->ctx, &in, &lb, &p->inner);
  free(lk);
  if (st != PA_OK) st = cp_ctx_fail(cp, st, "local attention plan");

  const int64_t R = cp->size, T = p->T, Hq = p->Hq, Hs = p->Hs, Dv = p->Dv;
  const size_t es = pa_dtype_size(desc->o_dtype);
  size_t part = (size_t)(T * Hq * (Dv + 1)) * 4, total;
  p->part_off = 0;
  /* Each block ends with the sender's run status: ranks agree on success
   * inside the collective they make anyway. */
  part += CP_STATUS_BYTES;
  if (combine == PA_CP_COMBINE_ALLGATHER) {
    p->blk = part;
    p->gath_off = cp_align(part);
    total = p->gath_off + (size_t)R * p->blk;
  } else {
    p->blk = (size_t)(T * Hs * (Dv + 1)) * 4 + CP_STATUS_BYTES;
    p->send_off = cp_align(part);
    p->gath_off = p->send_off + cp_align((size_t)R * p->blk);
    p->mo_off = p->gath_off + cp_align((size_t)R * p->blk);
    p->blk2 = cp_align((size_t)(T * Hs * Dv) * es) + (size_t)(T * Hs) * 4;
    p->gath2_off = p->mo_off + cp_align(p->blk2);
    total = combine == PA_CP_COMBINE_HEADS ? p->mo_off : p->gath2_off + (size_t)R * p->blk2;
  }
  if (st == PA_OK && (st = pa_buffer_create(cp->ctx, total ? total : 256, &p->scratch)) != PA_OK)
    st = cp_ctx_fail(cp, st, "scratch buffer");
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
static pa_status check_out(pa_cp_plan *p, const pa_attention_args *a, int64_t H) {
  pa_cp *cp = p->cp;
  const pa_tensor *o = &a->out, *l = &a->lse;
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

static pa_status merge(pa_cp_plan *p, size_t off, size_t blk, pa_tensor *out, pa_tensor *lse) {
  pa_cp *cp = p->cp;
  const int64_t T = p->T, R = cp->size, H = p->Hs, D = p->Dv;
  const int64_t bs = (int64_t)blk / 4;
  pa_tensor v =
      cp_view(p->scratch, off, PA_F32, 4, (int64_t[]){T, R, H, D}, (int64_t[]){H * D, bs, D, 1});
  pa_tensor s = cp_view(p->scratch, off + (size_t)(T * H * D) * 4, PA_F32, 3, (int64_t[]){T, R, H},
                        (int64_t[]){H, bs, 1});
  pa_status st = pa_merge_states(cp->ctx, &v, &s, out, lse);
  return st == PA_OK ? st : cp_ctx_fail(cp, st, "merge of the ranks' states");
}

pa_status pa_cp_decode_run(pa_cp_plan *p, const pa_attention_args *args) {
  if (!p || p->kind != CP_DECODE) return PA_ERR_INVALID_ARGUMENT;
  pa_cp *cp = p->cp;
  cp->msg[0] = 0;
  if (!args) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "args is NULL");
  const int64_t T = p->T, R = cp->size, Hq = p->Hq, Hs = p->Hs, D = p->Dv;
  const size_t es = pa_dtype_size(p->desc.o_dtype);
  const bool want_lse = p->desc.flags & PA_RETURN_LSE;
  pa_status st = check_out(p, args, p->combine == PA_CP_COMBINE_HEADS ? Hs : Hq);
  if (st == PA_OK) {
    pa_attention_args a = *args;
    a.out = cp_view(p->scratch, p->part_off, PA_F32, 3, (int64_t[]){T, Hq, D},
                    (int64_t[]){Hq * D, D, 1});
    a.lse = cp_view(p->scratch, p->part_off + (size_t)(T * Hq * D) * 4, PA_F32, 2,
                    (int64_t[]){T, Hq}, (int64_t[]){Hq, 1});
    if ((st = pa_attention_run(p->inner, &a, NULL)) != PA_OK)
      st = cp_ctx_fail(cp, st, "local attention");
  }
  if (!cp->tp->run_agree && st != PA_OK) return st;
  const pa_status mine = st;

  pa_tensor out = args->out, lse = args->lse;
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
  const size_t lse0 = p->part_off + (size_t)(T * Hq * D) * 4;
  for (int64_t r = 0; r < R; r++) {
    cp_region dst = {p->scratch, p->send_off + (size_t)r * p->blk};
    if ((st = cp->tp->copy2d(cp, (cp_region){p->scratch, p->part_off + (size_t)(r * Hs * D) * 4},
                             (size_t)(Hq * D) * 4, dst, (size_t)(Hs * D) * 4, (size_t)T,
                             (size_t)(Hs * D) * 4)) != PA_OK)
      return st;
    dst.off += (size_t)(T * Hs * D) * 4;
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
  const size_t mlse = p->mo_off + cp_align((size_t)(T * Hs * D) * es);
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

/* MLA decode context parallelism: pa_mla over this rank's pages of the
 * latent cache with LSE into partials in o_dtype (LSE f32), then the decode
 * combine (decode.c). */
#include <stdlib.h>

#include "cp.h"

static pa_status check_mla(pa_cp *cp, const pa_mla_desc *d, const pa_batch *b, int shard,
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
                   "batch.cu_seqlens_q/k: MLA decode context parallelism takes packed q, give "
                   "seqlens only");
  if (d->causal != 0 && d->causal != 1)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "desc.causal=%d must be 0 or 1", d->causal);
  if (d->page_size < 1)
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "desc.page_size=%d: MLA caches are paged",
                   d->page_size);
  if (d->num_heads < 1 || (combine != PA_CP_COMBINE_ALLGATHER && d->num_heads % cp->size))
    return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                   "desc.num_heads=%d: must be >= 1 and, combined by heads, a multiple of the "
                   "communicator size %d",
                   d->num_heads, cp->size);
  for (int i = 0; i < b->batch_size; i++)
    if (b->seqlens_q[i] < 0 || b->seqlens_k[i] < 0)
      return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                     "batch.seqlens_q[%d]=%d seqlens_k[%d]=%d: negative", i, b->seqlens_q[i], i,
                     b->seqlens_k[i]);
  return PA_OK;
}

/* The local batch: a request whose queries see different prefixes of the
 * shard (causal, several queries, the rank with the last keys) becomes one
 * request per query; mrow says which caller block-table row each reads. */
static pa_status plan_local(pa_cp_plan *p, const pa_batch *batch, pa_cp_shard shard, size_t *base) {
  pa_cp *cp = p->cp;
  const pa_mla_desc *d = &p->mla;
  const int B = p->B, ps = d->page_size;
  size_t n = 0;
  for (int b = 0; b < B; b++) n += (size_t)(batch->seqlens_q[b] > 1 ? batch->seqlens_q[b] : 1);
  int32_t *lq = calloc(n + 1, sizeof *lq), *lk = calloc(n + 1, sizeof *lk);
  int32_t *row = calloc(n + 1, sizeof *row);
  pa_status st = PA_OK;
  if (!lq || !lk || !row) {
    st = cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
    goto done;
  }
  int m = 0;
  bool split = false;
  int64_t cols = 1;
  for (int b = 0; b < B; b++) {
    cp_shard_geom g;
    cp_shard_geom_init(&g, shard, batch->seqlens_k[b], ps, cp->rank, cp->size);
    const int32_t sq = batch->seqlens_q[b];
    bool whole = !d->causal || sq <= 1 || cp_shard_below(&g, g.L - sq + 1) == g.nl;
    if (whole) {
      lq[m] = sq, lk[m] = (int32_t)g.nl, row[m++] = b;
    } else {
      split = true;
      for (int32_t i = 0; i < sq; i++) {
        const int64_t pos = g.L - sq + i; /* sees global keys [0, pos] */
        lq[m] = 1, lk[m] = (int32_t)cp_shard_below(&g, pos < 0 ? 0 : pos + 1), row[m++] = b;
      }
    }
    if ((g.nl + ps - 1) / ps > cols) cols = (g.nl + ps - 1) / ps;
  }
  pa_mla_desc in = *d;
  in.flags |= PA_RETURN_LSE; /* o_dtype stays the caller's: the fast MLA kernels want q's */
  in.causal = 0;             /* every key of a (split) request is seen */
  pa_batch lb = {m, lq, lk, NULL, NULL};
  if ((st = pa_mla_plan(cp->ctx, &in, &lb, &p->sub[0].plan)) != PA_OK) {
    st = cp_ctx_fail(cp, st, "local MLA plan");
    goto done;
  }
  if (split) {
    p->mrow = row;
    row = NULL;
    p->mn = m;
    p->mcols = cols;
    p->mbt_off = *base;
    *base += cp_align((size_t)(m * cols) * 4);
  }
done:
  free(lq), free(lk), free(row);
  return st;
}

pa_status pa_cp_mla_decode_plan(pa_cp *cp, const pa_mla_desc *desc, const pa_batch *batch,
                                pa_cp_shard shard, pa_cp_combine combine, pa_cp_plan **out) {
  if (!cp) return PA_ERR_INVALID_ARGUMENT;
  cp->msg[0] = 0;
  if (!out) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  pa_status st = check_mla(cp, desc, batch, (int)shard, (int)combine);
  const int B = st == PA_OK ? batch->batch_size : -1;
  int64_t rec[] = {st,
                   B,
                   desc ? desc->num_heads : 0,
                   desc ? desc->head_dim_ckv : 0,
                   desc ? desc->head_dim_kpe : 0,
                   desc ? desc->q_dtype * 16 + desc->kv_dtype * 4 + desc->o_dtype : 0,
                   desc ? desc->page_size : 0,
                   desc ? desc->causal : 0,
                   desc ? (int64_t)desc->flags : 0,
                   shard,
                   combine,
                   B >= 0 ? cp_hash_i32(batch->seqlens_q, B) : 0,
                   B >= 0 ? cp_hash_i32(batch->seqlens_k, B) : 0};
  static const char *const names[] = {"status",
                                      "batch.batch_size",
                                      "desc.num_heads",
                                      "desc.head_dim_ckv",
                                      "desc.head_dim_kpe",
                                      "desc dtypes (q*16+kv*4+o)",
                                      "desc.page_size",
                                      "desc.causal",
                                      "desc.flags",
                                      "shard",
                                      "combine",
                                      "hash of batch.seqlens_q",
                                      "hash of batch.seqlens_k"};
  if ((st = cp_check_same_after(cp, st, rec, names, CP_N(rec))) != PA_OK) return st;

  pa_cp_plan *p = calloc(1, sizeof *p);
  if (p) p->sub = calloc(1, sizeof *p->sub);
  if (!p || !p->sub) {
    free(p);
    return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "out of host memory");
  }
  p->nsub = 1;
  p->cp = cp;
  p->kind = CP_MLA_DECODE;
  p->mla = *desc;
  /* The attention-shaped fields the combine reads. */
  p->desc.num_q_heads = desc->num_heads;
  p->desc.num_kv_heads = 1;
  p->desc.head_dim_qk = desc->head_dim_ckv + desc->head_dim_kpe;
  p->desc.head_dim_v = desc->head_dim_ckv;
  p->desc.o_dtype = desc->o_dtype;
  p->desc.flags = desc->flags & PA_RETURN_LSE;
  p->B = B;
  p->combine = combine;
  p->Hq = desc->num_heads;
  p->Dv = desc->head_dim_ckv;
  p->Hs = combine == PA_CP_COMBINE_ALLGATHER ? p->Hq : p->Hq / cp->size;
  for (int b = 0; b < B; b++) p->T += batch->seqlens_q[b];
  size_t base = cp_decode_part_bytes(p->T, p->Hq, p->Dv, desc->o_dtype);
  st = plan_local(p, batch, shard, &base);
  const size_t total = cp_decode_layout(p, base);
  if (st == PA_OK && (st = pa_buffer_create(cp->ctx, total ? total : 256, &p->scratch)) != PA_OK)
    st = cp_ctx_fail(cp, st, "scratch buffer");
  st = cp_agree(cp, st);
  if (st != PA_OK) {
    cp_plan_free(p);
    return st;
  }
  *out = p;
  return PA_OK;
}

/* This rank's partial state at part_off. */
static pa_status local_mla(pa_cp_plan *p, const pa_mla_args *args) {
  pa_cp *cp = p->cp;
  const int64_t T = p->T, H = p->Hq, D = p->Dv;
  pa_mla_args a = *args;
  pa_status st;
  if (p->mrow) { /* block-table rows for the requests split by query */
    const pa_tensor *t = &args->block_table;
    if (!t->buf || t->ndim != 2 || t->dtype != PA_I32 || t->shape[0] != p->B ||
        t->shape[1] < p->mcols || t->stride[1] != 1 ||
        t->offset + ((size_t)((p->B - 1) * t->stride[0] + p->mcols)) * 4 > pa_buffer_size(t->buf))
      return cp_fail(cp, PA_ERR_INVALID_ARGUMENT,
                     "block_table: %s [%lld, %lld] stride [%lld, %lld] (ndim %d), want i32 [%d, "
                     ">= %lld] with stride[1] = 1 inside its buffer",
                     pa_dtype_name(t->dtype), (long long)t->shape[0], (long long)t->shape[1],
                     (long long)t->stride[0], (long long)t->stride[1], t->ndim, p->B,
                     (long long)p->mcols);
    const size_t rb = (size_t)p->mcols * 4;
    for (int e = 0; e < p->mn; e++)
      if ((st = cp->tp->copy2d(
               cp, (cp_region){t->buf, t->offset + (size_t)(p->mrow[e] * t->stride[0]) * 4}, rb,
               (cp_region){p->scratch, p->mbt_off + (size_t)e * rb}, rb, 1, rb)) != PA_OK)
        return st;
    a.block_table = cp_view(p->scratch, p->mbt_off, PA_I32, 2, (int64_t[]){p->mn, p->mcols},
                            (int64_t[]){p->mcols, 1});
  }
  const pa_dtype dt = p->desc.o_dtype;
  cp_state_view(p->scratch, p->part_off, cp_state_lse(T, H, D, pa_dtype_size(dt)), dt, T, H, D,
                &a.out, &a.lse);
  if ((st = pa_mla_run(p->sub[0].plan, &a, NULL)) != PA_OK) return cp_ctx_fail(cp, st, "local MLA");
  return PA_OK;
}

pa_status pa_cp_mla_decode_run(pa_cp_plan *p, const pa_mla_args *args) {
  if (!p || p->kind != CP_MLA_DECODE) return PA_ERR_INVALID_ARGUMENT;
  pa_cp *cp = p->cp;
  cp->msg[0] = 0;
  if (!args) return cp_fail(cp, PA_ERR_INVALID_ARGUMENT, "args is NULL");
  pa_status st = cp_decode_check_out(p, &args->out, &args->lse);
  if (st == PA_OK) st = local_mla(p, args);
  if (!cp->tp->run_agree && st != PA_OK) return st;
  return cp_decode_combine(p, args->out, args->lse, st);
}

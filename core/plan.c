#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "plan.h"
#include "schedule.h"
#include "split.h"

#define PA_MAX_TOKENS ((int64_t)INT32_MAX)
#define ALIGN 256

static size_t align_up(size_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

/* Lengths and starts from whichever of seqlens / cu_seqlens the batch gave. */
static pa_status read_lengths(pa_context *ctx, const char *which, int B, const int32_t *len,
                              const int32_t *cu, pa_req *reqs, bool is_q, int64_t *min_tokens) {
  if (!len && !cu)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "batch.seqlens_%s and batch.cu_seqlens_%s are both NULL", which, which);
  if (cu && cu[0] < 0)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "batch.cu_seqlens_%s[0]=%d is negative", which,
                   cu[0]);
  int64_t start = 0, need = 0;
  for (int b = 0; b < B; b++) {
    int64_t slot = -1, l;
    if (cu) {
      if (cu[b + 1] < cu[b])
        return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                       "batch.cu_seqlens_%s is not monotone: [%d]=%d > [%d]=%d", which, b, cu[b],
                       b + 1, cu[b + 1]);
      start = cu[b];
      slot = (int64_t)cu[b + 1] - cu[b];
    }
    l = len ? len[b] : slot;
    if (l < 0)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "batch.seqlens_%s[%d]=%lld is negative", which,
                     b, (long long)l);
    if (slot >= 0 && l > slot)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                     "batch.seqlens_%s[%d]=%lld exceeds its cu_seqlens_%s slot of %lld", which, b,
                     (long long)l, which, (long long)slot);
    if (start + l > PA_MAX_TOKENS)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                     "batch %s tokens exceed %lld at request %d", which, (long long)PA_MAX_TOKENS, b);
    if (is_q) {
      reqs[b].q_start = (int32_t)start;
      reqs[b].len_q = (int32_t)l;
    } else {
      reqs[b].k_start = (int32_t)start;
      reqs[b].len_k = (int32_t)l;
    }
    if (start + l > need) need = start + l;
    if (!cu) start += l;
  }
  *min_tokens = need;
  return PA_OK;
}

/* Keys any row of tokens [i0, i1] can see: a superset the kernel masks again. */
static void visible_range(const pa_attention_desc *d, int64_t i0, int64_t i1, int64_t len_q,
                          int64_t len_k, int64_t *lo, int64_t *hi) {
  int64_t off = len_k - len_q;
  int64_t h = len_k;
  if (d->causal && i1 + off + 1 < h) h = i1 + off + 1;
  /* The right window edge binds only where no sink token lies beyond it. */
  if (d->window_right >= 0 && i1 + off + d->window_right + 1 < h) {
    int64_t w = i1 + off + d->window_right + 1;
    h = w > d->sink_tokens ? w : (d->sink_tokens < h ? d->sink_tokens : h);
  }
  int64_t l = 0;
  if (d->sink_tokens == 0 && d->window_left >= 0 && i0 + off - d->window_left > 0)
    l = i0 + off - d->window_left;
  if (h < 0) h = 0;
  if (l > h) l = h;
  *lo = l;
  *hi = h;
}

/* Work items per compute unit in a wave: the kernel's own count where its
 * choice gives one, else the context's. */
static int slots_per_unit(const pa_plan *p) {
  return p->choice.slots_per_unit > 0 ? p->choice.slots_per_unit : p->ctx->props.slots_per_unit;
}

/* The split inputs of request b (the rule in core/split.h). */
static pa_split_input split_input(const pa_plan *p, int b, int64_t natural, int align) {
  const pa_context *ctx = p->ctx;
  const pa_req *r = &p->reqs[b];
  return (pa_split_input){
      .compute_units = ctx->props.compute_units,
      .slots_per_unit = slots_per_unit(p),
      .min_kv_per_split = ctx->props.min_kv_per_split,
      .max_splits = ctx->props.max_splits,
      .natural_items = natural,
      .len_k = r->len_q > 0 ? r->len_k : 0,
      .user_splits = p->desc.num_splits,
      .deterministic = (p->desc.flags & PA_DETERMINISTIC) != 0,
      .kv_chunk = p->desc.kv_chunk,
      .kv_align = align,
  };
}

/* Where the kernel asks for it (choice.balance_splits) and the plan splits
 * by the auto rule: one chunk for the batch (pa_balance_chunk), 0 to keep
 * the rule, -1 when out of memory (failed with a message). */
static int balance_chunk(const pa_plan *p, int64_t natural, int tile, int align) {
  const int B = p->batch_size;
  if (!p->choice.balance_splits || B == 0 || p->desc.num_splits != 0 ||
      (p->desc.flags & PA_DETERMINISTIC))
    return 0;
  int32_t *v = PA_FAULT_OR(malloc((size_t)B * 3 * sizeof *v));
  if (!v) {
    pa_fail(p->ctx, PA_ERR_OUT_OF_MEMORY, "plan: split balance of %d requests", B);
    return -1;
  }
  const int per = p->choice.kv_heads_per_item > 1 ? p->choice.kv_heads_per_item : 1;
  const int heads = (p->desc.num_kv_heads + per - 1) / per;
  for (int b = 0; b < B; b++) {
    const pa_split_input in = split_input(p, b, natural, align);
    v[b] = in.len_k;
    v[B + b] = (int32_t)(heads * (((int64_t)p->reqs[b].len_q * p->group + tile - 1) / tile));
    v[2 * B + b] = pa_choose_split(&in).num_splits;
  }
  const pa_balance_input bi = {
      .n = B,
      .len_k = v,
      .items = v + B,
      .cur_splits = v + 2 * B,
      .slots = p->ctx->props.compute_units * slots_per_unit(p),
      .align = align,
      .max_splits = p->ctx->props.max_splits,
      .overhead = p->choice.item_overhead,
      .split_overhead = p->choice.split_overhead,
  };
  const int c = pa_balance_chunk(&bi);
  free(v);
  return c;
}

pa_status pa_plan_build(pa_plan *p, const pa_batch *batch) {
  pa_context *ctx = p->ctx;
  const pa_attention_desc *d = &p->desc;
  if (!batch) return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "batch is NULL");
  int B = batch->batch_size;
  if (B < 0 || B > (1 << 24))
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "batch.batch_size=%d must be 0..%d", B, 1 << 24);
  p->batch_size = B;
  p->ragged_q_host = batch->cu_seqlens_q != NULL;
  p->reqs = PA_FAULT_OR(calloc(B > 0 ? (size_t)B : 1, sizeof *p->reqs));
  if (!p->reqs) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "plan requests");
  pa_status st = read_lengths(ctx, "q", B, batch->seqlens_q, batch->cu_seqlens_q, p->reqs, true,
                              &p->min_q_tokens);
  if (st == PA_OK)
    st = read_lengths(ctx, "k", B, batch->seqlens_k, batch->cu_seqlens_k, p->reqs, false,
                      &p->min_k_tokens);
  if (st != PA_OK) return st;
  for (int b = 0; b < B; b++) {
    p->total_q += p->reqs[b].len_q;
    if (p->reqs[b].len_q > p->max_len_q) p->max_len_q = p->reqs[b].len_q;
    if (p->reqs[b].len_k > p->max_len_k) p->max_len_k = p->reqs[b].len_k;
    if ((int64_t)p->reqs[b].len_q * p->group > INT32_MAX)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                     "batch.seqlens_q[%d]=%d x %d query heads per KV head exceeds %d packed rows",
                     b, p->reqs[b].len_q, p->group, INT32_MAX);
  }
  /* A window at least as wide as any sequence is no window: say so, so that
   * kernels never form diag +- window near the int range. */
  pa_attention_desc *dw = &p->desc;
  int64_t widest = (int64_t)p->max_len_q + p->max_len_k;
  if (dw->window_left >= widest) dw->window_left = -1;
  if (dw->window_right >= widest) dw->window_right = -1;

  st = ctx->ops->select ? ctx->ops->select(ctx, p, &p->choice)
                        : pa_fail(ctx, PA_ERR_UNSUPPORTED, "backend %s has no attention kernels",
                                  ctx->ops->name);
  if (st != PA_OK) return st;
  int tile = p->choice.q_tile_rows > 0 ? p->choice.q_tile_rows : 64;
  int align = p->choice.kv_align > 0 ? p->choice.kv_align : 1;
  int g = p->group, Hkv = d->num_kv_heads, Hq = d->num_q_heads;

  /* Natural parallelism: units of work with no split (a unit may run several
   * KV heads at once, as the backend says). */
  int heads_per_item = p->choice.kv_heads_per_item > 1 ? p->choice.kv_heads_per_item : 1;
  int64_t head_units = (Hkv + heads_per_item - 1) / heads_per_item;
  int64_t natural = 0;
  for (int b = 0; b < B; b++)
    natural += head_units * (((int64_t)p->reqs[b].len_q * g + tile - 1) / tile);

  const int bal = balance_chunk(p, natural, tile, align);
  if (bal < 0) return PA_ERR_OUT_OF_MEMORY;
  int64_t num_work = 0, part_rows = 0, num_combine = 0;
  for (int b = 0; b < B; b++) {
    pa_req *r = &p->reqs[b];
    const pa_split_input in = split_input(p, b, natural, align);
    pa_split s = pa_choose_split(&in);
    if (bal > 0 && in.len_k > 0) s = (pa_split){(int)((in.len_k + bal - 1) / bal), bal};
    r->num_splits = s.num_splits;
    r->kv_chunk = s.kv_chunk;
    r->part_row = -1;
    if (s.num_splits > 1) {
      r->part_row = (int32_t)part_rows;
      part_rows += (int64_t)s.num_splits * r->len_q * Hq;
      num_combine += r->len_q;
      if (part_rows > PA_MAX_TOKENS)
        return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                       "batch too large: %lld partial rows for the split KV", (long long)part_rows);
    }
    num_work += (int64_t)Hkv * (((int64_t)r->len_q * g + tile - 1) / tile) * s.num_splits;
  }
  if (num_work > PA_MAX_TOKENS)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "batch too large: %lld work items",
                   (long long)num_work);

  p->num_work = (int)num_work;
  p->num_combine = (int)num_combine;
  p->work = PA_FAULT_OR(calloc(num_work ? (size_t)num_work : 1, sizeof *p->work));
  p->combine = PA_FAULT_OR(calloc(num_combine ? (size_t)num_combine : 1, sizeof *p->combine));
  if (!p->work || !p->combine) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "plan work list");

  int64_t w = 0, c = 0;
  for (int b = 0; b < B; b++) {
    const pa_req *r = &p->reqs[b];
    int64_t rows_total = (int64_t)r->len_q * g;
    for (int64_t row0 = 0; row0 < rows_total; row0 += tile) {
      int rows = (int)(rows_total - row0 < tile ? rows_total - row0 : tile);
      int64_t lo, hi;
      visible_range(d, row0 / g, (row0 + rows - 1) / g, r->len_q, r->len_k, &lo, &hi);
      for (int hk = 0; hk < Hkv; hk++) {
        for (int s = 0; s < r->num_splits; s++) {
          int64_t kb = (int64_t)s * r->kv_chunk, ke = kb + r->kv_chunk;
          if (ke > r->len_k) ke = r->len_k;
          if (kb < lo) kb = lo;
          if (ke > hi) ke = hi;
          if (ke < kb) ke = kb;
          p->work[w] = (pa_work){.b = b,
                                 .hk = hk,
                                 .row0 = (int32_t)row0,
                                 .rows = rows,
                                 .split = s,
                                 .kv_begin = (int32_t)kb,
                                 .kv_end = (int32_t)ke};
          w++;
        }
      }
    }
    if (r->num_splits > 1)
      for (int i = 0; i < r->len_q; i++) p->combine[c++] = (pa_combine){.b = b, .i = i};
  }
  st = pa_schedule_order(ctx, p);
  if (st != PA_OK) return st;

  /* Workspace: partial O (f32 [part_rows, Dv]) then partial LSE (f32 [part_rows]). */
  p->part_rows = part_rows;
  uint64_t o_bytes;
  if (__builtin_mul_overflow((uint64_t)part_rows, (uint64_t)d->head_dim_v * 4, &o_bytes))
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "workspace size overflows");
  p->ws_o_offset = 0;
  p->ws_lse_offset = align_up(o_bytes);
  p->ws_size = part_rows ? p->ws_lse_offset + align_up((size_t)part_rows * 4) : 0;
  if (p->ws_size) {
    st = pa_buffer_create(ctx, p->ws_size, &p->own_ws);
    if (st != PA_OK) return st;
  }

  /* Schedule upload: reqs | work | combine, each 256-byte aligned. */
  p->sched_req_off = 0;
  p->sched_work_off = align_up((size_t)(B ? B : 1) * sizeof(pa_req));
  p->sched_combine_off = p->sched_work_off + align_up((size_t)(num_work ? num_work : 1) * sizeof(pa_work));
  size_t sched_bytes =
      p->sched_combine_off + align_up((size_t)(num_combine ? num_combine : 1) * sizeof(pa_combine));
  st = pa_buffer_create(ctx, sched_bytes, &p->schedule);
  if (st == PA_OK && B) st = pa_buffer_write(p->schedule, p->sched_req_off, p->reqs, (size_t)B * sizeof(pa_req));
  if (st == PA_OK && num_work)
    st = pa_buffer_write(p->schedule, p->sched_work_off, p->work, (size_t)num_work * sizeof(pa_work));
  if (st == PA_OK && num_combine)
    st = pa_buffer_write(p->schedule, p->sched_combine_off, p->combine,
                         (size_t)num_combine * sizeof(pa_combine));
  if (st != PA_OK) return st;
  if (ctx->ops->plan_ready) {
    pa_plan_state ps = {NULL, NULL};
    st = ctx->ops->plan_ready(ctx, p, &ps);
    p->backend_data = ps.data;
    p->backend_free = ps.free_fn;
  }
  if (st == PA_OK)
    pa_log(2, "plan: %s B=%d work=%d combine=%d ws=%zu kernel=%s",
           p->op == PA_OP_MLA ? "mla" : "attention", B, p->num_work, p->num_combine, p->ws_size,
           p->choice.name ? p->choice.name : "?");
  return st;
}

pa_status pa_plan_begin_run(pa_plan *p, pa_op op, const void *args, pa_buffer *user,
                            pa_buffer **ws) {
  static const char *const makers[] = {"pa_attention_plan", "pa_mla_plan"};
  *ws = NULL;
  if (!p) return pa_fail(NULL, PA_ERR_INVALID_ARGUMENT, "plan is NULL");
  if (p->op != op)
    return pa_fail(p->ctx, PA_ERR_INVALID_ARGUMENT, "plan was made by %s, not %s", makers[p->op],
                   makers[op]);
  if (!args) return pa_fail(p->ctx, PA_ERR_INVALID_ARGUMENT, "args is NULL");
  if (!p->ws_size) return PA_OK;
  if (!user) {
    *ws = p->own_ws;
    return PA_OK;
  }
  if (user->ctx != p->ctx)
    return pa_fail(p->ctx, PA_ERR_INVALID_ARGUMENT, "workspace belongs to another context");
  if (user->size < p->ws_size)
    return pa_fail(p->ctx, PA_ERR_WORKSPACE_TOO_SMALL, "workspace size=%zu but the plan needs %zu",
                   user->size, p->ws_size);
  *ws = user;
  return PA_OK;
}

pa_status pa_plan_check_pages(const pa_plan *p, const pa_tensor *bt, int64_t num_pages,
                              const char *name) {
  if (!p->ctx->props.host_memory) return PA_OK;
  const int32_t *t = (const int32_t *)pa_tensor_ptr_host(bt);
  int ps = p->desc.page_size;
  for (int b = 0; b < p->batch_size; b++) {
    int64_t used = ((int64_t)p->reqs[b].len_k + ps - 1) / ps;
    if (p->reqs[b].len_q == 0) continue;
    for (int64_t j = 0; j < used; j++) {
      int32_t page = t[b * bt->stride[0] + j * bt->stride[1]];
      if (page < 0 || page >= num_pages)
        return pa_fail(p->ctx, PA_ERR_INVALID_ARGUMENT,
                       "%s[%d][%lld]=%d is outside the cache's %lld pages", name, b, (long long)j,
                       page, (long long)num_pages);
    }
  }
  return PA_OK;
}

pa_status pa_check_workspace_apart(const pa_plan *p, const pa_buffer *ws, const pa_named *outs,
                                   int n_outs, const pa_named *ins, int n_ins) {
  if (!ws || ws == p->own_ws) return PA_OK;
  for (int k = 0; k < n_outs + n_ins; k++) {
    const pa_named *n = k < n_outs ? &outs[k] : &ins[k - n_outs];
    if (n->t && n->t->buf == ws)
      return pa_fail(p->ctx, PA_ERR_INVALID_ARGUMENT,
                     "workspace is %s's buffer: the split partials would overwrite it", n->name);
  }
  return PA_OK;
}

size_t pa_plan_workspace_size(const pa_plan *plan) { return plan ? plan->ws_size : 0; }

int pa_plan_num_splits(const pa_plan *plan, int b) {
  if (!plan || b < 0 || b >= plan->batch_size) return 0;
  return plan->reqs[b].num_splits;
}

const char *pa_plan_kernel_name(const pa_plan *plan) {
  return plan && plan->choice.name ? plan->choice.name : "";
}

void pa_plan_destroy(pa_plan *plan) {
  if (!plan) return;
  if (plan->backend_free) plan->backend_free(plan->backend_data);
  free(plan->choice.variant);
  pa_buffer_destroy(plan->schedule);
  pa_buffer_destroy(plan->own_ws);
  free(plan->reqs);
  free(plan->work);
  free(plan->combine);
  free(plan);
}

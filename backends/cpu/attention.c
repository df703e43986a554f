/* The attention driver shared by attention and MLA: runs the plan's work
 * list (one item per thread at a time, a fixed order inside each item) and
 * then its combine list.
 *
 * One work item: R packed rows (R <= PA_CPU_Q_TILE) of (b, hk) against keys
 * [kv_begin, kv_end) in blocks of PA_CPU_BLOCK_KV keys. Q rows are converted
 * once to f32 (pre-scaled); per block, S = Q K^T, the score terms, an
 * online-softmax step and O = alpha O + P V, all in f32 scratch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "cpu.h"
#include "fault.h"

#define BK PA_CPU_BLOCK_KV

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Scratch layout of one thread, in this order. */
typedef struct att_scratch {
  float *q, *o, *s, *m, *l, *alpha;
  int32_t *tok, *head;
  const char **kp[2][2], **vp[2]; /* [buffer][segment]: this block and the next */
  float *kf, *vf, *qrow;           /* transposed mode: K and V rows as f32, one Q row */
  const float **kfp[2];            /* per segment */
  const char **vfp;
  uint32_t *qp, *pvw; /* bf16 path: Q^T as bf16 pairs, pv_tb's packing space */
  uint16_t *qb;       /* grouped bf16 decode: Q rows as given */
  float qk_scale;     /* ... and the scale of its scores (K's fp8 scale included) */
} att_scratch;

static int round16(int n) { return (n + 15) & ~15; }

/* full = 0: the lean layout of one head of a group (no transposed path, one
 * pointer buffer). */
static size_t carve(void *base, int R, int dqk, int dv, int full, att_scratch *sc) {
  size_t off = 0;
  const int Rc = round16(R), F = full ? 1 : 0;
  char *p = base;
#define TAKE(field, type, count)                                                                   \
  do {                                                                                             \
    if (sc) sc->field = (type)(void *)(p + off);                                                   \
    off += up64((size_t)(count) * sizeof(*sc->field));                                             \
  } while (0)
  TAKE(q, float *, (size_t)Rc * dqk);
  TAKE(o, float *, (size_t)R * dv);
  TAKE(s, float *, (size_t)Rc * BK);
  TAKE(m, float *, R);
  TAKE(l, float *, R);
  TAKE(alpha, float *, R);
  TAKE(tok, int32_t *, R);
  TAKE(head, int32_t *, R);
  TAKE(kp[0][0], const char **, BK);
  TAKE(kp[0][1], const char **, BK);
  TAKE(kp[1][0], const char **, BK);
  TAKE(kp[1][1], const char **, BK * F);
  TAKE(vp[0], const char **, BK);
  TAKE(vp[1], const char **, BK);
  TAKE(kf, float *, (size_t)BK * (dqk + 32) * F);
  TAKE(vf, float *, (size_t)BK * (dv + 16) * F);
  TAKE(vfp, const char **, BK * F);
  TAKE(qrow, float *, dqk * F);
  TAKE(kfp[0], const float **, BK * F);
  TAKE(kfp[1], const float **, BK * F);
  TAKE(qp, uint32_t *, (size_t)Rc * (dqk / 2 + 2) * F);
  TAKE(pvw, uint32_t *, (size_t)(BK / 2) * (Rc + dv + 16) * F);
  TAKE(qb, uint16_t *, (size_t)R * dqk);
#undef TAKE
  return off;
}

size_t pa_cpu_attention_scratch(const pa_plan *plan, const pa_cpu_groups *gr) {
  const int R = plan->choice.q_tile_rows > 0 ? plan->choice.q_tile_rows : PA_CPU_Q_TILE;
  const int dqk = plan->desc.head_dim_qk, dv = plan->desc.head_dim_v;
  size_t one = carve(NULL, R, dqk, dv, 1, NULL);
  size_t group = gr ? (size_t)gr->max_heads * carve(NULL, PA_CPU_GROUP_ROWS, dqk, dv, 0, NULL) : 0;
  return one > group ? one : group;
}

typedef struct att_job {
  const pa_plan *plan;
  const pa_cpu_kernels *kern;
  const pa_cpu_state *st;
  const pa_cpu_att_io *io;
  int dq[2];
  const int32_t *bt;
  int64_t bt_s0, bt_s1;
  const float *sinks, *alibi, *mask;
  int64_t sinks_s, alibi_s, mask_s[4];
  int mask_heads;
  float *ws_o, *ws_lse;
  const float *k_scale, *v_scale; /* fp8: dequantisation scales, [1] or [Hkv] */
  int64_t k_scale_s, v_scale_s;   /* 0 for one scale per tensor */
  int prefetch;                   /* dev.cpu.prefetch: bytes ahead in run_group */
  int pf_address;                 /* dev.cpu.prefetch_order=address */
} att_job;

/* fp8 K/V: K's scale multiplies Q (s = q . (c k) = (c q) . k), V's the
 * output rows (sum p (c v) = c sum p v), so the kernels see raw codes. */
static float kv_scale(const float *t, int64_t s, int hk) { return t ? t[hk * s] : 1.0f; }

/* e4m3 K/V where the kernels offer PA_CPU_E4M3_LO (non-transposed path, one
 * segment): Q and the output rows carry the 2^8, and each chunk of rows
 * free of NaN codes takes the cheap read. A chunk with one takes the exact
 * read, its scores (or its P, for V) scaled by 2^-8 into the same domain:
 * power-of-two scalings, so the same roundings. */
#define E4M3_LO_SCALE 256.0f

static int e4m3_lo(const pa_cpu_kernels *kern, const pa_tensor *t) {
  return kern->e4m3_nan && t->dtype == PA_FP8_E4M3;
}

static void qk_chunk(const pa_cpu_kernels *kern, int lo, int R, int n, int D, const float *q,
                     int64_t ldq, const char *const *kp, pa_dtype kt, float *s, int64_t lds) {
  if (!lo) {
    kern->qk(R, n, D, q, ldq, kp, kt, s, lds, 0);
  } else if (!kern->e4m3_nan(kp, n, D)) {
    kern->qk(R, n, D, q, ldq, kp, PA_CPU_E4M3_LO, s, lds, 0);
  } else {
    kern->qk(R, n, D, q, ldq, kp, PA_FP8_E4M3, s, lds, 0);
    for (int r = 0; r < R; r++)
      for (int j = 0; j < n; j++) s[r * lds + j] *= 1.0f / E4M3_LO_SCALE;
  }
}

static void pv_chunk(const pa_cpu_kernels *kern, int lo, int R, int n, int D, float *p, int64_t prs,
                     const char *const *vp, pa_dtype vt, const float *alpha, float *o,
                     int64_t ldo) {
  if (lo && kern->e4m3_nan(vp, n, D)) {
    for (int r = 0; r < R; r++)
      for (int j = 0; j < n; j++) p[r * prs + j] *= 1.0f / E4M3_LO_SCALE;
  } else if (lo) {
    vt = PA_CPU_E4M3_LO;
  }
  kern->pv(R, n, D, p, prs, 1, vp, vt, alpha, o, ldo);
}

static const char *row_ptr(const pa_tensor *t, const pa_req *rq, int32_t b, int64_t i, int h) {
  int64_t e = pa_row_offset(t, b, rq->q_start, i) + (int64_t)h * pa_head_stride(t);
  return pa_tensor_ptr_host(t) + e * (int64_t)pa_cpu_esize(t->dtype);
}

/* Row addresses of keys [j0, j0 + n) of one K/V tensor: one block-table
 * lookup per page, not per key (the division per key cost as much as the
 * dot products in decode). */
static void key_ptrs(const att_job *jb, const pa_tensor *t, const pa_req *rq, int32_t b, int64_t j0,
                     int n, int hk, const char **out) {
  const int64_t es = (int64_t)pa_cpu_esize(t->dtype);
  const char *base = pa_tensor_ptr_host(t) + (int64_t)hk * pa_head_stride(t) * es;
  const int ps = jb->plan->desc.page_size;
  if (ps <= 0) {
    const int64_t first = pa_row_offset(t, b, rq->k_start, j0);
    const int64_t step = t->ndim == 4 ? t->stride[1] : t->stride[0];
    for (int jj = 0; jj < n; jj++) out[jj] = base + (first + jj * step) * es;
    return;
  }
  for (int64_t j = j0; j < j0 + n;) {
    const int32_t page = jb->bt[(int64_t)b * jb->bt_s0 + (j / ps) * jb->bt_s1];
    const int64_t in = j % ps, cnt = ps - in < j0 + n - j ? ps - in : j0 + n - j;
    const char *p = base + ((int64_t)page * t->stride[0] + in * t->stride[1]) * es;
    for (int64_t c = 0; c < cnt; c++) out[j - j0 + c] = p + c * t->stride[1] * es;
    j += cnt;
  }
}

/* Paged rows are scattered (a page per block-table entry, heads
 * interleaved), which the hardware prefetchers do not follow: ask for the
 * next block's rows while this one computes (without: 2-3x slower decode).
 * prefetcht1 measured on par with or slightly ahead of t0 and leaves L1 to
 * the block being computed. */
#define PF_CHUNK 8

static void prefetch_rows(const char *const *rows, int n, int64_t bytes) {
  for (int jj = 0; jj < n; jj++)
    for (int64_t x = 0; x < bytes; x += 64) __builtin_prefetch(rows[jj] + x, 0, 2);
}
/* 0: no key of the block is visible to any row; 1: some; 2: all (no
 * per-element test needed). Rows cover tokens [imin, imax]. */
static int block_visibility(const pa_attention_desc *d, int64_t imin, int64_t imax, int64_t j0,
                            int64_t j1, int64_t off) {
  int64_t jl = j1 - 1;
  if (d->causal && j0 > imax + off) return 0;
  int windowed = d->window_left >= 0 || d->window_right >= 0;
  if (windowed && j0 >= d->sink_tokens) {
    if (d->window_left >= 0 && jl < imin + off - d->window_left) return 0;
    if (d->window_right >= 0 && j0 > imax + off + d->window_right) return 0;
  }
  if (d->causal && jl > imin + off) return 1;
  if (windowed && jl >= d->sink_tokens) {
    if (d->window_left >= 0 && j0 < imax + off - d->window_left) return 1;
    if (d->window_right >= 0 && jl > imin + off + d->window_right) return 1;
  }
  return 2;
}

/* pa_visible() as bounds per row, so the diagonal blocks of a causal tile do
 * not pay a call per score: key j is visible to the row's token iff
 * j <= chi && (j < sink_tokens || (lo <= j && j <= whi)). Sink tokens are
 * exempt from both window edges, not from causality. */
typedef struct row_bounds {
  int64_t chi, lo, whi;
} row_bounds;

static row_bounds row_window(const pa_attention_desc *d, int64_t i, int64_t off) {
  int64_t diag = i + off;
  return (row_bounds){.chi = d->causal ? diag : INT64_MAX,
                      .lo = d->window_left >= 0 ? diag - d->window_left : INT64_MIN,
                      .whi = d->window_right >= 0 ? diag + d->window_right : INT64_MAX};
}

/* The score terms after scale * q.k, in the order of polyattn.h. */
/* Score (r, jj) sits at s[r * rs + jj * js]. */
static void score_terms(const att_job *jb, int32_t b, int R, const int32_t *tok, const int32_t *head,
                        int64_t j0, int n, int64_t off, int check_visible, float *s, int64_t rs,
                        int64_t js) {
  const pa_attention_desc *d = &jb->plan->desc;
  const float cap = d->softcap;
  const int64_t sinkt = d->sink_tokens;
  for (int r = 0; r < R; r++) {
    int64_t i = tok[r];
    int h = head[r];
    float *row = s + (int64_t)r * rs;
    const row_bounds rb = row_window(d, i, off);
    if (cap != 0.0f)
      for (int jj = 0; jj < n; jj++) row[jj * js] = cap * tanhf(row[jj * js] / cap);
    if (jb->alibi) {
      const float slope = jb->alibi[h * jb->alibi_s];
      for (int jj = 0; jj < n; jj++) row[jj * js] -= slope * fabsf((float)(i + off - (j0 + jj)));
    }
    if (jb->mask) {
      const float *mrow = jb->mask + b * jb->mask_s[0] +
                          (jb->mask_heads == 1 ? 0 : h) * jb->mask_s[1] + i * jb->mask_s[2];
      for (int jj = 0; jj < n; jj++) row[jj * js] += mrow[(j0 + jj) * jb->mask_s[3]];
    }
    if (check_visible) /* last, so no term can turn a hidden key finite */
      for (int jj = 0; jj < n; jj++) {
        int64_t j = j0 + jj;
        if (j > rb.chi || (j >= sinkt && (j < rb.lo || j > rb.whi))) row[jj * js] = -INFINITY;
      }
  }
}

/* Rows, Q (pre-scaled f32; transposed for the transposed path) and the
 * softmax state of one work item. */
static void item_begin(const att_job *jb, const pa_work *w, att_scratch *sc, int trans,
                       float qmul) {
  const pa_plan *pl = jb->plan;
  const pa_cpu_att_io *io = jb->io;
  const pa_req *rq = &pl->reqs[w->b];
  const int R = w->rows, g = pl->group, dqk = pl->desc.head_dim_qk, dv = pl->desc.head_dim_v;
  const int Rp = round16(R);
  const float qscale = pl->scale * kv_scale(jb->k_scale, jb->k_scale_s, w->hk) * qmul;
  for (int r = 0; r < R; r++) {
    int pr = w->row0 + r;
    sc->tok[r] = pr / g;
    sc->head[r] = w->hk * g + pr % g;
    int col = 0;
    for (int sg = 0; sg < io->nseg; sg++) {
      const char *src = row_ptr(io->q[sg], rq, w->b, sc->tok[r], sc->head[r]);
      if (!trans) {
        jb->kern->load(io->q[sg]->dtype, src, sc->q + (int64_t)r * dqk + col, jb->dq[sg], qscale);
      } else {
        jb->kern->load(io->q[sg]->dtype, src, sc->qrow, jb->dq[sg], qscale);
        for (int x = 0; x < jb->dq[sg]; x++) sc->q[(int64_t)(col + x) * Rp + r] = sc->qrow[x];
      }
      col += jb->dq[sg];
    }
    sc->m[r] = -INFINITY;
    sc->l[r] = 0.0f;
  }
  if (trans)
    for (int x = 0; x < dqk; x++)
      for (int r = R; r < Rp; r++) sc->q[(int64_t)x * Rp + r] = 0.0f;
  if (trans == 2) { /* bf16 pairs of Q^T per segment (an odd last dim pairs with 0) */
    int col = 0, pb = 0;
    for (int sg = 0; sg < io->nseg; sg++) {
      const int dq = jb->dq[sg];
      for (int t = 0; t < (dq + 1) / 2; t++)
        for (int r = 0; r < Rp; r++) {
          const float *q0 = sc->q + (int64_t)(col + 2 * t) * Rp + r;
          uint32_t hi = 2 * t + 1 < dq ? pa_f32_to_bf16(q0[Rp]) : 0;
          sc->qp[(int64_t)(pb + t) * Rp + r] = pa_f32_to_bf16(q0[0]) | hi << 16;
        }
      col += dq;
      pb += (dq + 1) / 2;
    }
  }
  memset(sc->o, 0, (size_t)R * dv * sizeof(float));
}

/* The item's bf16 Q rows as given, for kern->bf16->qk_db. */
static void item_q_bf16(const att_job *jb, const pa_work *w, att_scratch *sc) {
  const pa_req *rq = &jb->plan->reqs[w->b];
  const int dqk = jb->plan->desc.head_dim_qk;
  for (int r = 0; r < w->rows; r++)
    memcpy(sc->qb + (int64_t)r * dqk, row_ptr(jb->io->q[0], rq, w->b, sc->tok[r], sc->head[r]),
           (size_t)dqk * sizeof *sc->qb);
}

/* The item's rows out: a partial state for a split request, else O and LSE
 * with the sink in the denominator. */
static void item_end(const att_job *jb, const pa_work *w, const att_scratch *sc, float omul) {
  const pa_plan *pl = jb->plan;
  const pa_attention_desc *d = &pl->desc;
  const pa_cpu_kernels *kern = jb->kern;
  const pa_cpu_att_io *io = jb->io;
  const pa_req *rq = &pl->reqs[w->b];
  const int R = w->rows, dv = d->head_dim_v, Hq = d->num_q_heads;
  const float vs = kv_scale(jb->v_scale, jb->v_scale_s, w->hk) * omul;
  for (int r = 0; r < R; r++) {
    float m = sc->m[r], l = sc->l[r];
    float *orow = sc->o + (int64_t)r * dv;
    int64_t i = sc->tok[r];
    int h = sc->head[r];
    if (rq->num_splits > 1) { /* partial state; the sink joins in the combine */
      int64_t p = (int64_t)rq->part_row + ((int64_t)w->split * rq->len_q + i) * Hq + h;
      float lse = l > 0.0f ? m + logf(l) : -INFINITY;
      kern->load(PA_F32, orow, jb->ws_o + p * dv, dv, l > 0.0f ? vs / l : 0.0f);
      jb->ws_lse[p] = lse;
      continue;
    }
    float sink = jb->sinks ? jb->sinks[h * jb->sinks_s] : -INFINITY;
    float mm = m > sink ? m : sink, lse = -INFINITY, scale = 0.0f;
    if (mm != -INFINITY) {
      float a = m == -INFINITY ? 0.0f : expf(m - mm);
      float den = l * a + (sink == -INFINITY ? 0.0f : expf(sink - mm));
      lse = mm + logf(den);
      scale = a / den * vs;
    }
    kern->store(d->o_dtype, orow, (void *)row_ptr(io->out, rq, w->b, i, h), dv, scale);
    if (io->lse)
      ((float *)pa_tensor_ptr_host(io->lse))[pa_lse_offset(io->lse, w->b, rq->q_start, i, h)] = lse;
  }
}

static void run_item(void *arg, int64_t item, int tid) {
  const att_job *jb = arg;
  const pa_plan *pl = jb->plan;
  const pa_attention_desc *d = &pl->desc;
  const pa_cpu_kernels *kern = jb->kern;
  const pa_cpu_att_io *io = jb->io;
  const pa_work *w = &pl->work[item];
  const pa_req *rq = &pl->reqs[w->b];
  const int R = w->rows, dqk = d->head_dim_qk, dv = d->head_dim_v;
  const int64_t off = (int64_t)rq->len_k - rq->len_q;
  if (R <= 0) return;
  att_scratch sc;
  carve(pa_cpu_scratch(jb->st, tid), R, dqk, dv, 1, &sc);

  /* Tiles of many rows take the transposed path where the ISA has one:
   * Q is stored [d][Rp] and the scores [j][Rp], Rp = R rounded up to 16. */
  int trans = kern->qk_t && R >= 32;
  /* 2: bf16 dot products (K and V both bf16, where the ISA has them) */
  if (trans && kern->bf16 && io->v->dtype == PA_BF16) {
    trans = 2;
    for (int sg = 0; sg < io->nseg; sg++)
      if (io->k[sg]->dtype != PA_BF16) trans = 1;
  }

  const int Rp = round16(R);
  const int lo_k = !trans && io->nseg == 1 && e4m3_lo(kern, io->k[0]);
  const int lo_v = !trans && io->nseg == 1 && io->v != io->k[0] && e4m3_lo(kern, io->v);
  item_begin(jb, w, &sc, trans, lo_k ? E4M3_LO_SCALE : 1.0f);

  const int64_t imin = sc.tok[0], imax = sc.tok[R - 1];
  const int terms = d->softcap != 0.0f || jb->alibi || jb->mask;
  const int64_t vbytes = (int64_t)dv * pa_cpu_esize(io->v->dtype);
  /* Few rows per block (decode) leave its memory latency exposed; many rows
   * (prefill) reuse a block long enough for the hardware to keep up, and
   * there the prefetches only cost issue slots. */
  const int prefetch = R <= 16;
  int cur = 0, have_next = 0;
  for (int64_t j0 = w->kv_begin; j0 < w->kv_end; j0 += BK) {
    int n = (int)(w->kv_end - j0 < BK ? w->kv_end - j0 : BK);
    int vis = block_visibility(d, imin, imax, j0, j0 + n, off);
    if (vis == 0) { /* all -inf: the softmax step would change nothing */
      have_next = 0;
      continue;
    }
    if (!have_next) {
      for (int sg = 0; sg < io->nseg; sg++)
        key_ptrs(jb, io->k[sg], rq, w->b, j0, n, w->hk, sc.kp[cur][sg]);
      key_ptrs(jb, io->v, rq, w->b, j0, n, w->hk, sc.vp[cur]);
    }
    /* the next block's rows, resolved and prefetched now */
    int64_t j1 = j0 + BK;
    int n1 = (int)(w->kv_end - j1 < BK ? w->kv_end - j1 : BK);
    have_next = n1 > 0;
    if (have_next) {
      for (int sg = 0; sg < io->nseg; sg++)
        key_ptrs(jb, io->k[sg], rq, w->b, j1, n1, w->hk, sc.kp[cur ^ 1][sg]);
      key_ptrs(jb, io->v, rq, w->b, j1, n1, w->hk, sc.vp[cur ^ 1]);
    }
    const int pf_n = prefetch && have_next ? n1 : 0; /* next-block rows to prefetch */
    int col = 0;
    if (!trans) {
      /* The kernels go over the block in chunks of PF_CHUNK keys, each
       * chunk issuing the prefetches of the same keys of the next block:
       * a burst of a whole block's prefetches stalls on the line fill
       * buffers, spread out they overlap the arithmetic. Chunking changes
       * no result: scores are independent, and O passes between PV chunks
       * through exact f32 stores. */
      for (int c = 0; c < n; c += PF_CHUNK) {
        const int nc = n - c < PF_CHUNK ? n - c : PF_CHUNK;
        col = 0;
        for (int sg = 0; sg < io->nseg; sg++) {
          if (c < pf_n)
            prefetch_rows(sc.kp[cur ^ 1][sg] + c, pf_n - c < nc ? pf_n - c : nc,
                          (int64_t)jb->dq[sg] * pa_cpu_esize(io->k[sg]->dtype));
          if (io->nseg == 1)
            qk_chunk(kern, lo_k, R, nc, dqk, sc.q, dqk, sc.kp[cur][0] + c, io->k[0]->dtype,
                     sc.s + c, BK);
          else
            kern->qk(R, nc, jb->dq[sg], sc.q + col, dqk, sc.kp[cur][sg] + c, io->k[sg]->dtype,
                     sc.s + c, BK, sg > 0);
          col += jb->dq[sg];
        }
      }
      if (vis == 1 || terms)
        score_terms(jb, w->b, R, sc.tok, sc.head, j0, n, off, vis == 1, sc.s, BK, 1);
      kern->softmax(R, n, sc.s, BK, sc.m, sc.l, sc.alpha);
      for (int c = 0; c < n; c += PF_CHUNK) {
        const int nc = n - c < PF_CHUNK ? n - c : PF_CHUNK;
        if (c < pf_n && io->v != io->k[0])
          prefetch_rows(sc.vp[cur ^ 1] + c, pf_n - c < nc ? pf_n - c : nc, vbytes);
        pv_chunk(kern, lo_v, R, nc, dv, sc.s + c, BK, sc.vp[cur] + c, io->v->dtype,
                 c == 0 ? sc.alpha : NULL, sc.o, dv);
      }
      for (int sg = 0; sg < io->nseg; sg++) /* a next block longer than this one */
        if (pf_n > n) prefetch_rows(sc.kp[cur ^ 1][sg] + n, pf_n - n,
                                    (int64_t)jb->dq[sg] * pa_cpu_esize(io->k[sg]->dtype));
      if (pf_n > n && io->v != io->k[0]) prefetch_rows(sc.vp[cur ^ 1] + n, pf_n - n, vbytes);
    } else if (trans == 2) {
      for (int sg = 0, pb = 0; sg < io->nseg; sg++) {
        kern->bf16->qk_tb(R, n, jb->dq[sg], sc.qp + (int64_t)pb * Rp, Rp, sc.kp[cur][sg], sc.s, Rp,
                          sg > 0);
        pb += (jb->dq[sg] + 1) / 2;
      }
      if (vis == 1 || terms)
        score_terms(jb, w->b, R, sc.tok, sc.head, j0, n, off, vis == 1, sc.s, 1, Rp);
      kern->softmax_t(R, n, sc.s, Rp, sc.m, sc.l, sc.alpha);
      kern->bf16->pv_tb(R, n, dv, sc.s, Rp, sc.vp[cur], sc.alpha, sc.o, dv, sc.pvw);
    } else {
      for (int sg = 0; sg < io->nseg; sg++) {
        const int dq = jb->dq[sg];
        /* K rows copied (f32) or converted into rows dq + 16 floats apart:
         * a head's rows in the cache are often 4 KB apart (8 heads x d128
         * f32), all in the same few L1 sets; padded, they spread over all
         * of them (f32 prefill d128 s2048: 5% faster than reading in place). */
        const int64_t kb = (int64_t)dq * pa_cpu_esize(io->k[sg]->dtype);
        for (int jj = 0; jj < n; jj++) {
          float *dst = sc.kf + (int64_t)BK * (col + 16 * sg) + (int64_t)jj * (dq + 16);
          if (jj < n1) prefetch_rows(sc.kp[cur ^ 1][sg] + jj, 1, kb);
          kern->load(io->k[sg]->dtype, sc.kp[cur][sg][jj], dst, dq, 1.0f);
          sc.kfp[sg][jj] = dst;
        }
        kern->qk_t(R, n, dq, sc.q + (int64_t)col * Rp, Rp, sc.kfp[sg], sc.s, Rp, sg > 0);
        col += dq;
      }
      if (vis == 1 || terms)
        score_terms(jb, w->b, R, sc.tok, sc.head, j0, n, off, vis == 1, sc.s, 1, Rp);
      kern->softmax_t(R, n, sc.s, Rp, sc.m, sc.l, sc.alpha);
      /* V rows as f32 once per block (not once per 4-row group inside pv:
       * bf16 prefill 5% faster, MLA decode 8%), padded as K; MLA's V is its
       * K rows, already converted. */
      for (int jj = 0; jj < n; jj++) {
        if (io->v == io->k[0]) {
          sc.vfp[jj] = (const char *)(const void *)sc.kfp[0][jj];
        } else {
          float *dst = sc.vf + (int64_t)jj * (dv + 16);
          if (jj < n1) prefetch_rows(sc.vp[cur ^ 1] + jj, 1, vbytes);
          kern->load(io->v->dtype, sc.vp[cur][jj], dst, dv, 1.0f);
          sc.vfp[jj] = (const char *)(const void *)dst;
        }
      }
      kern->pv(R, n, dv, sc.s, 1, Rp, sc.vfp, PA_F32, sc.alpha, sc.o, dv);
    }
    cur ^= 1;
  }

  item_end(jb, w, &sc, lo_v ? E4M3_LO_SCALE : 1.0f);
}

/* The grouped path: the items of one (request, rows, split) for up to
 * PA_CPU_GROUP_MAX KV heads run in lockstep, chunk by chunk of keys, each
 * head keeping its own Q, O and softmax state. Per key, the heads' K (or V)
 * rows sit side by side (NHD: one 2 KB run for 8 heads of d128 bf16), so
 * together they read whole pages; one head at a time reads 256 bytes every
 * 2 KB across the whole cache, a pattern this host's memory serves at about
 * half the rate (pure reads, one core: 6.7 vs 12.2 GB/s). Software
 * prefetches one head turn ahead are still needed (without: 6.1 GB/s per
 * core in decode, with: 10.2). Same arithmetic as run_item: scores are
 * independent, PV sums keys in order through exact f32 stores of O. */
/* Keys per head turn: 8 keys x 8 heads of d128 bf16 is half a page of K
 * or V, read before the next half. 8 measured 3-5% ahead of 16; 4 worse. */
#define GROUP_CHUNK 8

/* Prefetches rows [x, x + cnt) of the group's key stream as one head reads
 * it: K of the block, then V of the block (phase 0), or V of the block,
 * then K of the next block (phase 1). Always inlined: as a function of
 * prefetches only, GCC's pure/const analysis drops its calls. */
static inline __attribute__((always_inline)) void pf_stream(const att_scratch *sc, int cur,
                                                            int phase, int x, int cnt, int n,
                                                            int n1, int64_t kbytes,
                                                            int64_t vbytes) {
  for (int y = x; y < x + cnt; y++) {
    const char *row;
    int64_t bytes;
    if (phase == 0) {
      if (y < n) row = sc->kp[cur][0][y], bytes = kbytes;
      else if (y - n < n) row = sc->vp[cur][y - n], bytes = vbytes;
      else return;
    } else {
      if (y < n) row = sc->vp[cur][y], bytes = vbytes;
      else if (y - n < n1) row = sc->kp[cur ^ 1][0][y - n], bytes = kbytes;
      else return;
    }
    for (int64_t b = 0; b < bytes; b += 64) __builtin_prefetch(row + b, 0, 2);
  }
}

/* The prefetches for head turn t of a phase (a turn: one head's
 * GROUP_CHUNK keys; the turns go head by head, then to the next chunk),
 * issued pf_turns turns before it: as head h reads keys [c, c + nc),
 * t = (c / GROUP_CHUNK) * nh + h + pf_turns.
 * The distance is a byte count, dev.cpu.prefetch (8 KB) of K/V rows in
 * flight, so the cheap-to-compute dtypes (fp8, bf16) keep enough misses
 * outstanding: one turn (2 KB of bf16 d128) left the memory latency exposed
 * (bench/RESULTS.md, issue 16). by_address (dev.cpu.prefetch_order, the
 * default): the same rows, but key by key over the heads, i.e. in address
 * order (NHD), which the L2 stream prefetcher follows; on a Zen 3 (whose
 * software prefetches all fill L1) decode of 16-bit K/V at groups 1 and 4
 * ran 1.13-1.43x faster so (median of 6 interleaved rounds), 64/8 and f32
 * K/V the same (bench/RESULTS.md). */
static inline __attribute__((always_inline)) void pf_turn(const att_scratch *sc, int nh,
                                                          int by_address, int cur, int phase, int t,
                                                          int n, int n1, int64_t kbytes,
                                                          int64_t vbytes) {
  if (by_address) { /* turn t's share of rows, key by key over the heads */
    for (int r = t * GROUP_CHUNK; r < (t + 1) * GROUP_CHUNK; r++)
      pf_stream(&sc[r % nh], cur, phase, r / nh, 1, n, n1, kbytes, vbytes);
    return;
  }
  pf_stream(&sc[t % nh], cur, phase, (t / nh) * GROUP_CHUNK, GROUP_CHUNK, n, n1, kbytes, vbytes);
}

static void run_group(void *arg, int64_t gi, int tid) {
  const att_job *jb = arg;
  const pa_plan *pl = jb->plan;
  const pa_cpu_groups *gr = pl->backend_data;
  const int32_t *items = gr->items + gr->first[gi];
  const int nh = gr->size[gi];
  if (nh == 1) {
    run_item(arg, items[0], tid);
    return;
  }
  const pa_attention_desc *d = &pl->desc;
  const pa_cpu_kernels *kern = jb->kern;
  const pa_cpu_att_io *io = jb->io;
  const pa_work *w = &pl->work[items[0]]; /* rows, split and keys are the group's */
  const pa_req *rq = &pl->reqs[w->b];
  const int R = w->rows, dqk = d->head_dim_qk, dv = d->head_dim_v;
  const int64_t off = (int64_t)rq->len_k - rq->len_q;
  const int64_t kbytes = (int64_t)dqk * pa_cpu_esize(io->k[0]->dtype),
                vbytes = (int64_t)dv * pa_cpu_esize(io->v->dtype);
  if (R <= 0) return;
  att_scratch sc[PA_CPU_GROUP_MAX];
  const size_t per = carve(NULL, PA_CPU_GROUP_ROWS, dqk, dv, 0, NULL);
  char *base = pa_cpu_scratch(jb->st, tid);
  const int lo_k = e4m3_lo(kern, io->k[0]), lo_v = e4m3_lo(kern, io->v);
  /* bf16 Q and K (or fp8 K, converted to bf16 exactly) with vdpbf16ps:
   * half the f32 FMAs of QK, exact products. 2: fp8 K. */
  const pa_cpu_bf16_kernels *bk = io->q[0]->dtype == PA_BF16 ? kern->bf16 : NULL;
  int db = 0;
  if (bk && bk->qk_db && io->k[0]->dtype == PA_BF16) db = 1;
  if (bk && bk->qk_db8 && pa_dtype_is_fp8(io->k[0]->dtype)) db = 2;
  const int64_t turn = (int64_t)GROUP_CHUNK * (kbytes > vbytes ? kbytes : vbytes);
  /* by address, the rows a head turn reads are prefetched a whole chunk
   * (nh turns) later than by turn: the distance counts from there */
  int pf_turns = (int)((jb->prefetch + turn - 1) / turn) + (jb->pf_address ? nh : 0);
  for (int h = 0; h < nh; h++) {
    carve(base + (size_t)h * per, PA_CPU_GROUP_ROWS, dqk, dv, 0, &sc[h]);
    item_begin(jb, &pl->work[items[h]], &sc[h], 0, lo_k ? E4M3_LO_SCALE : 1.0f);
    if (db) {
      item_q_bf16(jb, &pl->work[items[h]], &sc[h]);
      sc[h].qk_scale = pl->scale * kv_scale(jb->k_scale, jb->k_scale_s, pl->work[items[h]].hk);
    }
  }
  const int64_t imin = sc[0].tok[0], imax = sc[0].tok[R - 1];
  const int terms = d->softcap != 0.0f || jb->alibi || jb->mask;
  int cur = 0, have = 0;
  for (int64_t j0 = w->kv_begin; j0 < w->kv_end; j0 += BK) {
    const int n = (int)(w->kv_end - j0 < BK ? w->kv_end - j0 : BK);
    const int vis = block_visibility(d, imin, imax, j0, j0 + n, off);
    if (vis == 0) {
      have = 0;
      continue;
    }
    const int64_t j1 = j0 + BK;
    const int n1 = j1 < w->kv_end ? (int)(w->kv_end - j1 < BK ? w->kv_end - j1 : BK) : 0;
    for (int h = 0; h < nh; h++) {
      const int hk = pl->work[items[h]].hk;
      if (!have) {
        key_ptrs(jb, io->k[0], rq, w->b, j0, n, hk, sc[h].kp[cur][0]);
        key_ptrs(jb, io->v, rq, w->b, j0, n, hk, sc[h].vp[cur]);
      }
      if (n1 > 0) {
        key_ptrs(jb, io->k[0], rq, w->b, j1, n1, hk, sc[h].kp[cur ^ 1][0]);
        key_ptrs(jb, io->v, rq, w->b, j1, n1, hk, sc[h].vp[cur ^ 1]);
      }
    }
    if (!have) /* the turns before the first prefetch distance */
      for (int t = 0; t < pf_turns; t++)
        pf_turn(sc, nh, jb->pf_address, cur, 0, t, n, n1, kbytes, vbytes);
    for (int c = 0; c < n; c += GROUP_CHUNK) {
      const int nc = n - c < GROUP_CHUNK ? n - c : GROUP_CHUNK;
      for (int h = 0; h < nh; h++) {
        pf_turn(sc, nh, jb->pf_address, cur, 0, (c / GROUP_CHUNK) * nh + h + pf_turns, n, n1,
                kbytes, vbytes);
        if (db == 2)
          bk->qk_db8(io->k[0]->dtype, R, nc, dqk, sc[h].qb, dqk, sc[h].kp[cur][0] + c,
                     sc[h].s + c, BK, sc[h].qk_scale);
        else if (db)
          bk->qk_db(R, nc, dqk, sc[h].qb, dqk, sc[h].kp[cur][0] + c, sc[h].s + c, BK,
                    sc[h].qk_scale);
        else
          qk_chunk(kern, lo_k, R, nc, dqk, sc[h].q, dqk, sc[h].kp[cur][0] + c, io->k[0]->dtype,
                   sc[h].s + c, BK);
      }
    }
    for (int h = 0; h < nh; h++) {
      if (vis == 1 || terms)
        score_terms(jb, w->b, R, sc[h].tok, sc[h].head, j0, n, off, vis == 1, sc[h].s, BK, 1);
      kern->softmax(R, n, sc[h].s, BK, sc[h].m, sc[h].l, sc[h].alpha);
    }
    for (int c = 0; c < n; c += GROUP_CHUNK) {
      const int nc = n - c < GROUP_CHUNK ? n - c : GROUP_CHUNK;
      for (int h = 0; h < nh; h++) {
        pf_turn(sc, nh, jb->pf_address, cur, 1, (c / GROUP_CHUNK) * nh + h + pf_turns, n, n1,
                kbytes, vbytes);
        pv_chunk(kern, lo_v, R, nc, dv, sc[h].s + c, BK, sc[h].vp[cur] + c, io->v->dtype,
                 c == 0 ? sc[h].alpha : NULL, sc[h].o, dv);
      }
    }
    have = n1 > 0;
    if (have) cur ^= 1;
  }
  for (int h = 0; h < nh; h++)
    item_end(jb, &pl->work[items[h]], &sc[h], lo_v ? E4M3_LO_SCALE : 1.0f);
}

/* The plan's head groups, as core ordered the work list (pa_work.group). */
static void groups_free(void *p) {
  pa_cpu_groups *g = p;
  if (!g) return;
  free(g->first);
  free(g->size);
  free(g->items);
  free(g);
}

pa_status pa_cpu_plan_groups(pa_context *ctx, const pa_plan *pl, pa_plan_state *out) {
  const int n = pl->num_work;
  if (pl->choice.head_group_rows <= 0 || pl->op != PA_OP_ATTENTION || pl->desc.num_kv_heads < 2 ||
      n < 2)
    return PA_OK;
  pa_cpu_groups *g = PA_FAULT_OR(calloc(1, sizeof *g));
  if (g) {
    g->first = malloc((size_t)n * sizeof *g->first);
    g->size = malloc((size_t)n * sizeof *g->size);
    g->items = malloc((size_t)n * sizeof *g->items);
  }
  if (!g || !g->first || !g->size || !g->items) {
    groups_free(g);
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cpu: head groups of %d work items", n);
  }
  for (int i = 0; i < n; i++) {
    g->items[i] = i;
    if (pl->work[i].group < 1) continue;
    g->first[g->count] = i;
    g->size[g->count++] = pl->work[i].group;
    if (pl->work[i].group > g->max_heads) g->max_heads = pl->work[i].group;
  }
  out->data = g;
  out->free_fn = groups_free;
  if (g->max_heads > 1)
    pa_log(3, "cpu: %d work items in %d head groups (up to %d heads)", n, g->count, g->max_heads);
  return PA_OK;
}

typedef struct split_states {
  const att_job *jb;
  int64_t p0, step; /* partial row of split 0, rows between splits */
} split_states;

static void get_split(const void *ctx, int k, const void **o, pa_dtype *t, float *lse) {
  const split_states *ss = ctx;
  int64_t p = ss->p0 + (int64_t)k * ss->step;
  *o = ss->jb->ws_o + p * ss->jb->plan->desc.head_dim_v;
  *t = PA_F32;
  *lse = ss->jb->ws_lse[p];
}

static void run_combine(void *arg, int64_t item, int tid) {
  const att_job *jb = arg;
  const pa_plan *pl = jb->plan;
  const pa_combine *c = &pl->combine[item];
  const pa_req *rq = &pl->reqs[c->b];
  const int Hq = pl->desc.num_q_heads;
  (void)tid;
  for (int h = 0; h < Hq; h++) {
    split_states ss = {jb, (int64_t)rq->part_row + (int64_t)c->i * Hq + h, (int64_t)rq->len_q * Hq};
    float sink = jb->sinks ? jb->sinks[h * jb->sinks_s] : -INFINITY;
    float lse;
    pa_cpu_merge_rule(jb->kern, rq->num_splits, get_split, &ss, sink, pl->desc.head_dim_v,
                      (void *)row_ptr(jb->io->out, rq, c->b, c->i, h), pl->desc.o_dtype, &lse);
    if (jb->io->lse)
      ((float *)pa_tensor_ptr_host(jb->io->lse))[pa_lse_offset(jb->io->lse, c->b, rq->q_start,
                                                                c->i, h)] = lse;
  }
}

pa_status pa_cpu_run_attention(pa_context *ctx, const pa_plan *plan, const pa_cpu_att_io *io,
                               pa_buffer *ws) {
  pa_cpu_state *st = pa_cpu(ctx);
  /* normally reserved by plan_ready; this only allocates for a plan that skipped it */
  pa_status s = pa_cpu_reserve(ctx, pa_cpu_attention_scratch(plan, plan->backend_data));
  if (s != PA_OK) return s;

  att_job jb;
  memset(&jb, 0, sizeof jb);
  jb.plan = plan;
  jb.kern = st->kern;
  jb.st = st;
  jb.io = io;
  jb.prefetch = ctx->cfg.dev_cpu_prefetch;
  jb.pf_address = ctx->cfg.dev_cpu_prefetch_order == PA_CFG_PF_ADDRESS;
  for (int sg = 0; sg < io->nseg; sg++) jb.dq[sg] = (int)io->q[sg]->shape[io->q[sg]->ndim - 1];
  if (io->nseg == 1) jb.dq[0] = plan->desc.head_dim_qk;
  if (io->block_table && io->block_table->buf) {
    jb.bt = (const int32_t *)(void *)pa_tensor_ptr_host(io->block_table);
    jb.bt_s0 = io->block_table->stride[0];
    jb.bt_s1 = io->block_table->stride[1];
  }
  if (io->sinks) {
    jb.sinks = (const float *)(void *)pa_tensor_ptr_host(io->sinks);
    jb.sinks_s = io->sinks->stride[0];
  }
  if (io->alibi) {
    jb.alibi = (const float *)(void *)pa_tensor_ptr_host(io->alibi);
    jb.alibi_s = io->alibi->stride[0];
  }
  if (io->mask) {
    jb.mask = (const float *)(void *)pa_tensor_ptr_host(io->mask);
    for (int k = 0; k < 4; k++) jb.mask_s[k] = io->mask->stride[k];
    jb.mask_heads = (int)io->mask->shape[1];
  }
  if (io->k_scale) {
    jb.k_scale = (const float *)(void *)pa_tensor_ptr_host(io->k_scale);
    jb.k_scale_s = io->k_scale->shape[0] > 1 ? io->k_scale->stride[0] : 0;
  }
  if (io->v_scale) {
    jb.v_scale = (const float *)(void *)pa_tensor_ptr_host(io->v_scale);
    jb.v_scale_s = io->v_scale->shape[0] > 1 ? io->v_scale->stride[0] : 0;
  }
  if (plan->part_rows > 0 && ws) {
    jb.ws_o = (float *)(void *)((char *)ws->handle + plan->ws_o_offset);
    jb.ws_lse = (float *)(void *)((char *)ws->handle + plan->ws_lse_offset);
  }
  const pa_cpu_groups *gr = plan->backend_data;
  if (gr)
    pa_pool_run(st->pool, gr->count, run_group, &jb);
  else
    pa_pool_run(st->pool, plan->num_work, run_item, &jb);
  pa_pool_run(st->pool, plan->num_combine, run_combine, &jb);
  return PA_OK;
}

pa_status pa_cpu_attention(pa_context *ctx, const pa_plan *plan, const pa_attention_args *a,
                           pa_buffer *ws) {
  const pa_attention_desc *d = &plan->desc;
  pa_cpu_att_io io;
  memset(&io, 0, sizeof io);
  io.nseg = 1;
  io.q[0] = &a->q;
  io.k[0] = &a->k;
  io.v = &a->v;
  io.out = &a->out;
  io.lse = (d->flags & PA_RETURN_LSE) ? &a->lse : NULL;
  io.block_table = d->page_size > 0 ? &a->block_table : NULL;
  io.sinks = (d->flags & PA_HAS_SINKS) ? &a->sinks : NULL;
  io.alibi = (d->flags & PA_HAS_ALIBI) ? &a->alibi_slopes : NULL;
  io.mask = (d->flags & PA_HAS_MASK) ? &a->mask : NULL;
  if (pa_dtype_is_fp8(d->kv_dtype)) {
    io.k_scale = &a->k_scale;
    io.v_scale = &a->v_scale;
  }
  return pa_cpu_run_attention(ctx, plan, &io, ws);
}

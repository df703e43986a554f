/* Internal: the communicator handle and the transport each wrapper fills in.
 * cp/ is built on polyattn's public API only (no core or backend headers):
 * it is one more layer over the single-device operations. */
#ifndef PA_CP_INTERNAL_H
#define PA_CP_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "polyattn_cp.h"

/* A region of a buffer of the cp's context. */
typedef struct cp_region {
  pa_buffer *buf;
  size_t off;
} cp_region;

/* Everything moves between buffers of the context; transports stage through
 * the host where the device is not host-visible (MPI with OpenCL). */
typedef struct cp_transport {
  const char *name;
  /* Blocking all-gather of small host data (plan-time agreement checks). */
  pa_status (*host_allgather)(pa_cp *cp, const void *src, void *dst, size_t bytes);
  /* dst gets [size][bytes], rank-major; ordered after the queue's work. */
  pa_status (*allgather)(pa_cp *cp, cp_region src, cp_region dst, size_t bytes);
  /* src [size][bytes] (block p goes to rank p) -> dst [size][bytes] (block p from p). */
  pa_status (*alltoall)(pa_cp *cp, cp_region src, cp_region dst, size_t bytes);
  /* Starts sending sbytes to rank `to` and receiving rbytes from `from`;
   * the queue's later work overlaps it until exchange_wait. */
  pa_status (*exchange_start)(pa_cp *cp, cp_region src, size_t sbytes, int to, cp_region dst,
                              size_t rbytes, int from);
  pa_status (*exchange_wait)(pa_cp *cp);
  /* Runs agree on their status before any collective (cheap on MPI; on
   * NCCL it would cost a device round trip, so plans validate instead). */
  bool run_agree;
  /* rows x row_bytes from src (rows src_pitch bytes apart) to dst (dst_pitch). */
  pa_status (*copy2d)(pa_cp *cp, cp_region src, size_t src_pitch, cp_region dst, size_t dst_pitch,
                      size_t rows, size_t row_bytes);
  void (*destroy)(pa_cp *cp);
} cp_transport;

struct pa_cp {
  pa_context *ctx;
  const cp_transport *tp;
  int rank, size;
  void *impl; /* the transport's state */
  char msg[512];
};

/* The public API has no error setter, so cp keeps its own message
 * (pa_cp_last_error).
 * cp_fail formats "cp: <message>" into the handle and returns st. */
pa_status cp_fail(pa_cp *cp, pa_status st, const char *fmt, ...);
/* After a failed pa_* call on the context: quotes its last error. */
pa_status cp_ctx_fail(pa_cp *cp, pa_status st, const char *what);
/* Collective: every rank learns whether all succeeded. A rank whose st is
 * bad keeps its message; the others get "rank k failed". Returns the worst. */
pa_status cp_agree(pa_cp *cp, pa_status st);

#define CP_N(a) ((int)(sizeof(a) / sizeof((a)[0])))
static inline size_t cp_align(size_t x) { return (x + 255) / 256 * 256; }
static inline size_t cp_align16(size_t x) { return (x + 15) / 16 * 16; }

/* A strided view of a buffer. */
static inline pa_tensor cp_view(pa_buffer *buf, size_t off, pa_dtype dt, int nd,
                                const int64_t *shape, const int64_t *stride) {
  pa_tensor t = {.buf = buf, .offset = off, .dtype = dt, .ndim = nd};
  for (int i = 0; i < nd; i++) {
    t.shape[i] = shape[i];
    t.stride[i] = stride[i];
  }
  return t;
}

/* Partial states: O [T, H, D] in the plan's o_dtype (the dtype the local
 * attention writes fastest, and half the bytes of f32 for f16/bf16), then
 * its f32 LSE [T, H] at cp_state_lse, each on 16 bytes so that state blocks
 * laid end to end keep both aligned. */
static inline size_t cp_state_lse(int64_t T, int64_t H, int64_t D, size_t es) {
  return cp_align16((size_t)(T * H * D) * es);
}
static inline size_t cp_state_bytes(int64_t T, int64_t H, int64_t D, size_t es) {
  return cp_state_lse(T, H, D, es) + cp_align16((size_t)(T * H) * 4);
}
/* The O and LSE views of the state at off (LSE at off + lse). */
static inline void cp_state_view(pa_buffer *buf, size_t off, size_t lse, pa_dtype dt, int64_t T,
                                 int64_t H, int64_t D, pa_tensor *o, pa_tensor *l) {
  *o = cp_view(buf, off, dt, 3, (int64_t[]){T, H, D}, (int64_t[]){H * D, D, 1});
  *l = cp_view(buf, off + lse, PA_F32, 2, (int64_t[]){T, H}, (int64_t[]){H, 1});
}

/* FNV-1a of lengths: ranks compare batches by it. */
static inline int64_t cp_hash_i32(const int32_t *x, int n) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; x && i < n; i++) h = (h ^ (uint32_t)x[i]) * 1099511628211ull;
  return (int64_t)(h & INT64_MAX);
}

/* ---- decode shards (pieces.c) ---- */
typedef struct cp_shard_geom {
  pa_cp_shard shard;
  int64_t L, unit, n, nl, first; /* global keys, unit, units, local keys, contiguous start */
  int rank, size;
} cp_shard_geom;
void cp_shard_geom_init(cp_shard_geom *g, pa_cp_shard shard, int64_t L, int page_size, int rank,
                        int size);
/* Local keys whose global position is below x (0 <= x <= L). */
int64_t cp_shard_below(const cp_shard_geom *g, int64_t x);
/* Global position of local key j. */
int64_t cp_shard_global(const cp_shard_geom *g, int64_t j);
/* Whether query i of sq (the last sq positions) sees local key j. */
bool cp_decode_sees(const pa_attention_desc *d, const cp_shard_geom *g, int64_t sq, int64_t i,
                    int64_t j);
/* Local keys [s, e) that every query of the request sees (masked 0) or
 * some (masked 1). */
typedef struct cp_piece {
  int32_t s, e;
  bool masked;
} cp_piece;
/* The request's pieces in key order (*out malloc'ed, NULL when 0); -1 when
 * out of memory. */
int cp_decode_pieces(const pa_attention_desc *d, const cp_shard_geom *g, int64_t sq,
                     cp_piece **out);

/* One local attention of a decode step: the k-th unmasked (or masked) piece
 * of every request. */
typedef struct cp_sub {
  pa_plan *plan;
  bool masked;
  int32_t *page0, *npages; /* paged, shifted: per request, first local page and count */
  size_t bt_off;           /* its block table in scratch ([B, bt_cols] i32), if shifted */
  int64_t bt_cols;
  size_t mask_off; /* masked: f32 [B, 1, msq, msk] in scratch */
  int64_t msq, msk;
  float *hmask; /* plan time only */
} cp_sub;

enum { CP_DECODE = 1, CP_PREFILL = 2, CP_MLA_DECODE = 3 };
enum { CP_STATUS_BYTES = 16 }; /* a status word at the end of a decode block */

struct pa_cp_plan {
  pa_cp *cp;
  int kind;
  pa_attention_desc desc; /* the caller's */
  int B;
  int64_t Hq, Dqk, Dv, Hkv;
  pa_buffer *scratch; /* partial states, gathered blocks, ring slots */
  /* decode */
  cp_sub *sub; /* [nsub]: run in order, states merged into the partial */
  int nsub;
  /* nsub > 1: acc_off[2] the f32 running state (ping-pong, LSE at acc_lse),
   * stepo_off a sub's state in o_dtype (LSE at stepo_lse). */
  /* MLA decode (sub[0] is its plan): requests split into one per query
   * (causal, several queries) read block-table row mrow[e] of the caller's. */
  pa_mla_desc mla;
  int32_t *mrow;
  int mn;
  int64_t mcols;
  size_t mbt_off;
  pa_cp_combine combine;
  int64_t T, Hs;
  size_t blk, part_off, send_off, gath_off, mo_off, blk2, gath2_off;
  /* prefill */
  pa_plan **unit; /* [nunit] attentions, in order: step ustep[u] (KV of rank r - s) */
  int *ustep, nunit, cap;
  int64_t *rows; /* [size]: local rows of each rank */
  int64_t Tr;    /* this rank's rows */
  int ps;        /* paged K/V shards: the caller's page_size (units plan packed) */
  int32_t *plen; /* paged: [B] this rank's local length of each request */
  int32_t *hbt;  /* paged: host copy of the block table rows read at run time */
  int64_t hbt_cols;
  /* ring slots; the f32 running state (acc_off, LSE at acc_lse) and a
   * unit's state in o_dtype (stepo_off, LSE at stepo_lse), shared by decode */
  size_t slot_off[2], slot_v, slot_bytes, acc_off[2], acc_lse, acc_bytes, stepo_off, stepo_lse;
};
void cp_plan_free(pa_cp_plan *p);

/* Decode, shared by attention and MLA (decode.c): the combine's scratch
 * layout from base on (returns the total), the check of out/lse against the
 * combine, and the combine of the partial state at part_off into out/lse
 * (mine: this rank's status so far). */
size_t cp_decode_layout(pa_cp_plan *p, size_t base);
/* Scratch bytes of the partial state at part_off (with its status word). */
size_t cp_decode_part_bytes(int64_t T, int64_t Hq, int64_t Dv, pa_dtype o_dtype);
pa_status cp_decode_check_out(pa_cp_plan *p, const pa_tensor *out, const pa_tensor *lse);
pa_status cp_decode_combine(pa_cp_plan *p, pa_tensor out, pa_tensor lse, pa_status mine);

/* Collective: n int64 fields agree on every rank (else every rank fails,
 * naming the first rank that differs from rank 0 and the field). */
pa_status cp_check_same(pa_cp *cp, const int64_t *rec, const char *const *names, int n);
/* cp_check_same after a local check that gave st: a failed rank still joins
 * the collective (the others would wait) but keeps its own status and message. */
pa_status cp_check_same_after(pa_cp *cp, pa_status st, const int64_t *rec, const char *const *names,
                              int n);

/* Common constructor for the wrappers. */
pa_status cp_create(pa_context *ctx, const cp_transport *tp, void *impl, int rank, int size,
                    pa_cp **out);

#endif

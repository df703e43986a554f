/* One attention test case: its description, the device tensors and host
 * images built from it, the float64 reference, and the comparison. Shared by
 * cross_backend.c, splits.c and invalid_args.c. */
#ifndef PA_TEST_ATTN_CASE_H
#define PA_TEST_ATTN_CASE_H

#include "util.h"

#define AC_MAX_B 8

/* How q/k/v (and the batch) are laid out. */
enum {
  AL_RAGGED = 0, /* [T, H, D] + cu_seqlens (paged K: seqlens_k) */
  AL_PADDED,     /* [B, S, H, D] with S > the longest request + seqlens */
  AL_GAPS,       /* ragged, cu_seqlens slots larger than the used seqlens */
  AL_LENS,       /* ragged, packed, only seqlens given */
};

enum {
  AO_LSE = 1u << 0,
  AO_SINKS = 1u << 1,
  AO_ALIBI = 1u << 2,
  AO_MASK = 1u << 3,          /* one mask head broadcast */
  AO_MASK_PER_HEAD = 1u << 4, /* mask with Hq heads */
  AO_MASK_NEGINF = 1u << 5,   /* a quarter of the mask entries are -inf */
  AO_HND = 1u << 6,           /* paged cache stored [pages, H, page, D] */
  AO_WINDOW = 1u << 7,        /* use wl / wr (else both -1) */
  AO_DETERMINISTIC = 1u << 8,
  AO_STRIDED = 1u << 9,       /* q/k/v/out rows (H + 2) * D apart, as in a packed QKV */
  AO_SCALE_HEAD = 1u << 10,   /* fp8 K/V: one scale per KV head (else one per tensor) */
};

typedef struct attn_case {
  const char *name;
  int batch;
  int32_t lq[AC_MAX_B], lk[AC_MAX_B];
  int hq, hkv;   /* hkv 0: hq */
  int dqk, dv;   /* dv 0: dqk */
  pa_dtype dtype; /* q, k, v and out */
  int causal;
  int wl, wr;    /* with AO_WINDOW */
  int sink_tokens;
  float scale, softcap;
  int page_size;
  int layout;
  unsigned opts;
  int num_splits, kv_chunk;
  pa_dtype kv8; /* PA_FP8_E4M3 / PA_FP8_E5M2: K/V in fp8 with scales; 0: dtype */
} attn_case;

typedef struct attn_problem {
  const attn_case *c;
  pa_context *ctx;
  int B, hq, hkv, dqk, dv, paged, hm;
  int32_t lq[AC_MAX_B], lk[AC_MAX_B];
  int32_t qstart[AC_MAX_B], kstart[AC_MAX_B];
  int32_t cu_q[AC_MAX_B + 1], cu_k[AC_MAX_B + 1];
  int sq_max, sk_max; /* longest used lengths (mask dims) */
  int64_t rowbase[AC_MAX_B + 1]; /* dense reference row of request b */
  pa_attention_desc desc;
  pa_batch batch;
  tu_tensor q, k, v, out, lse, bt, sinks, alibi, mask, k_scale, v_scale;
  pa_attention_args args;
  double *mask_d;
  double *o_ref, *lse_ref; /* [rows, hq, dv], [rows, hq] */
  int splits[AC_MAX_B];    /* from the last execute's plan */
  size_t ws_size;
  char msg[512];           /* last failure, with the context's last error */
} attn_problem;

/* Builds and uploads everything (seeded by the case name); out/lse poisoned. */
pa_status attn_setup(attn_problem *p, pa_context *ctx, const attn_case *c);
void attn_reference(attn_problem *p);
/* Poisons out/lse, plans with desc (NULL: p->desc), runs with ws (NULL: the
 * plan's own), synchronises, downloads out/lse. */
pa_status attn_execute(attn_problem *p, const pa_attention_desc *desc, pa_buffer *ws);
/* Compares against the reference; returns true if within tolerance, else
 * writes the reason (metrics and where) into why. */
bool attn_check(attn_problem *p, const char *target, char *why, size_t n);
/* Element offsets (elements, relative to the tensor start). */
int64_t attn_out_offset(const attn_problem *p, int b, int i, int h);
int64_t attn_lse_offset(const attn_problem *p, int b, int i, int h);
int64_t attn_q_offset(const attn_problem *p, int b, int i, int h);
/* kv: &p->k or &p->v; key j of request b, head h. */
int64_t attn_kv_offset(const attn_problem *p, const tu_tensor *kv, int b, int j, int h);
void attn_free(attn_problem *p);

#endif

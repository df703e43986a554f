/* polyattn context parallelism: attention over a sequence sharded across
 * ranks, combined by LSE (pa_merge_states). Built over polyattn's public API
 * and the caller's own communicator, wrapped by polyattn_mpi.h (MPI_Comm; CPU
 * and OpenCL contexts) or polyattn_nccl.h (ncclComm_t + stream; CUDA). The
 * library (libpolyattn_cp) is built when MPI or NCCL is found.
 *
 * Every function here is collective: all ranks of the communicator call it
 * in the same order with the same global arguments (desc, batch, mode). A
 * plan checks that they agree and fails on every rank otherwise, naming the
 * first disagreeing rank and field; the run functions enqueue on the
 * context's queue like pa_attention_run (on CPU/OpenCL over MPI they wait for
 * the transfers, which are host-side). A plan owns its scratch buffer
 * (partial states, gathered blocks, ring slots); over MPI with a device that
 * is not host memory, the first run also sizes host staging buffers.
 */
#ifndef POLYATTN_CP_H
#define POLYATTN_CP_H

#include "polyattn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A communicator borrowed by polyattn: made by pa_cp_create_mpi or
 * pa_cp_create_nccl; borrows the context and the communicator. */
typedef struct pa_cp pa_cp;
typedef struct pa_cp_plan pa_cp_plan;

PA_API void pa_cp_destroy(pa_cp *cp);
PA_API int pa_cp_rank(const pa_cp *cp);
PA_API int pa_cp_size(const pa_cp *cp);
/* "mpi" or "nccl". */
PA_API const char *pa_cp_transport(const pa_cp *cp);
/* The message of the last failure of a pa_cp_* call on this handle ("" if
 * none), naming the field and values (a context error is quoted with it);
 * owned by cp, valid until its next call. */
PA_API const char *pa_cp_last_error(const pa_cp *cp);

/* ---- decode context parallelism ----------------------------------------
 * Every rank holds the whole query (replicated) and a shard of each
 * request's KV, chosen by `shard` over units of page_size tokens (1 token
 * when page_size is 0):
 *   PA_CP_SHARD_CONTIGUOUS   rank r holds units [r*n/R, (r+1)*n/R) of n
 *   PA_CP_SHARD_INTERLEAVED  rank r holds units r, r+R, r+2R, ...
 * in their global order (local page i of a request is its i-th owned unit;
 * only the last global unit may be partial). Each rank attends over its
 * shard with LSE (partial O in o_dtype, LSE f32: the kernels of plain
 * attention; merges accumulate in f32), then the ranks combine:
 *   PA_CP_COMBINE_ALLGATHER  all-gather of partial O/LSE, merge of R
 *                            states on every rank: out [T, Hq, Dv]
 *   PA_CP_COMBINE_HEADS      all-to-all by heads (reduce-scatter of the
 *                            states), each rank merges Hq/R heads:
 *                            out [T, Hq/R, Dv] = heads [r*Hq/R, (r+1)*Hq/R)
 *   PA_CP_COMBINE_HEADS_GATHER  HEADS, then an all-gather of the merged
 *                            heads in o_dtype: out [T, Hq, Dv]
 * Key positions are global (a rank knows where its units sit), so causal
 * decode with several queries per request (MTP / speculative: bottom-right
 * over the global keys), sliding windows (window_left / window_right) and
 * sink_tokens work: a rank attends only to the keys its queries see, keys
 * outside every query's band are not computed (a shard wholly outside
 * gives an empty partial), and keys only some queries see (the band's ends)
 * take a small additive mask. softcap, scale, fp8 K/V scales, splits and
 * PA_DETERMINISTIC pass to the local attention; sinks count once (rank 0's
 * partial carries them). ALiBi and dense masks (PA_HAS_ALIBI, PA_HAS_MASK)
 * are refused with a message naming desc.flags. */
typedef enum pa_cp_shard {
  PA_CP_SHARD_CONTIGUOUS = 0,
  PA_CP_SHARD_INTERLEAVED = 1,
} pa_cp_shard;

typedef enum pa_cp_combine {
  PA_CP_COMBINE_ALLGATHER = 0,
  PA_CP_COMBINE_HEADS = 1,
  PA_CP_COMBINE_HEADS_GATHER = 2,
} pa_cp_combine;

/* Keys of a request of `len` global keys that `rank` of `size` holds. */
PA_API int32_t pa_cp_shard_len(pa_cp_shard shard, int32_t len, int page_size, int rank, int size);
/* The rank holding global unit u of a request of n units, and its local
 * index there (pages of a request are laid out in this local order). */
PA_API void pa_cp_shard_owner(pa_cp_shard shard, int32_t u, int32_t n, int size, int *rank,
                              int32_t *local_index);

/* batch: the GLOBAL batch, lengths only (seqlens_q, and seqlens_k of the
 * whole sequence); q and out are packed [T, H, D], local K/V are paged
 * (block_table over this rank's pages) or packed by the shard, so
 * cu_seqlens are refused. Caller owns *out. */
PA_API pa_status pa_cp_decode_plan(pa_cp *cp, const pa_attention_desc *desc, const pa_batch *batch,
                                   pa_cp_shard shard, pa_cp_combine combine, pa_cp_plan **out);
/* args: q (whole), this rank's k, v (and block_table when paged) of its
 * shard, out / lse as the combine mode says (f32 lse with PA_RETURN_LSE).
 * Outputs are untouched when any rank's run fails validation (MPI). */
PA_API pa_status pa_cp_decode_run(pa_cp_plan *plan, const pa_attention_args *args);

/* ---- MLA decode context parallelism --------------------------------------
 * pa_mla over sharded latent caches: q_nope / q_pe replicated, each rank's
 * pages of ckv / kpe (and its block_table) as `shard` says (page_size units),
 * partials with LSE combined as `combine` says: out [T, H, Dc] or
 * [T, H/R, Dc], lse f32 likewise with PA_RETURN_LSE. Several causal queries
 * per request (MTP) are bottom-right over the global keys (the rank holding
 * the last keys runs such a request as one request per query, each over its
 * own key prefix). batch: the GLOBAL lengths, seqlens only. */
PA_API pa_status pa_cp_mla_decode_plan(pa_cp *cp, const pa_mla_desc *desc, const pa_batch *batch,
                                       pa_cp_shard shard, pa_cp_combine combine, pa_cp_plan **out);
PA_API pa_status pa_cp_mla_decode_run(pa_cp_plan *plan, const pa_mla_args *args);

/* ---- ring prefill --------------------------------------------------------
 * Self-attention prefill (seqlens_q == seqlens_k) with Q, K, V sharded by
 * sequence in zig-zag order: request b of length L is cut into 2R chunks
 * (chunk c = tokens [c*L/(2R), (c+1)*L/(2R)) ), rank r holds chunks r and
 * 2R-1-r, one after the other, requests packed in batch order: q/k/v/out
 * [T_r, H, D] ragged, lse [T_r, Hq]. K/V blocks travel around the ring
 * (rank r sends to r+1) while the block in hand is attended; partial states
 * merge as they arrive. Causal pairs of chunks are fully visible, diagonal or
 * skipped, so every rank does the same work. head_dim_qk may differ from
 * head_dim_v (MLA prefill 192/128). Sliding windows and sink_tokens work
 * over global positions: chunk pairs outside the band are skipped (their
 * K/V still travel the ring), the others are cut to the band. Paged K/V
 * (desc.page_size > 0): k, v are this rank's page pools [P, page, Hkv, D]
 * (NHD or HND strides) and block_table i32 [B, >= pages] maps the pages of
 * request b's local tokens (its two chunks, in shard order); each rank
 * gathers its pages into the packed block that travels the ring (the same
 * one copy the packed path makes; its block table is read on the host).
 * ALiBi and dense masks are refused by name (ALiBi's bias is taken from
 * each local call's bottom-right alignment, which a chunk pair or a shard's
 * pages do not share with the global sequence: it needs a key-position
 * offset in pa_attention); sinks count once. */
/* Local lengths and starts of `rank`: local_len[b], chunk_start[2b] and
 * chunk_start[2b+1] the global token index where each held chunk starts,
 * chunk_len[2b], [2b+1] their lengths (any out pointer may be NULL). */
PA_API void pa_cp_zigzag_shard(int rank, int size, int batch_size, const int32_t *seqlens,
                               int32_t *local_len, int32_t *chunk_start, int32_t *chunk_len);
/* batch: the GLOBAL batch (seqlens_q, equal to seqlens_k if given). */
PA_API pa_status pa_cp_prefill_plan(pa_cp *cp, const pa_attention_desc *desc, const pa_batch *batch,
                                    pa_cp_plan **out);
/* args: this rank's q, k, v, out, lse (zig-zag shard). */
PA_API pa_status pa_cp_prefill_run(pa_cp_plan *plan, const pa_attention_args *args);

PA_API void pa_cp_plan_destroy(pa_cp_plan *plan);

#ifdef __cplusplus
}
#endif
#endif /* POLYATTN_CP_H */

/* MLA decode: the attention driver with two Q/K segments (K = ckv || kpe,
 * scores q_nope . ckv + q_pe . kpe) and V = ckv. The plan maps it to
 * Hq = H, Hkv = 1 (g = H), so each work item is a tile of (token, head)
 * rows that reads every latent KV row once for all of its heads. */
#include <string.h>

#include "cpu.h"

pa_status pa_cpu_mla(pa_context *ctx, const pa_plan *plan, const pa_mla_args *a, pa_buffer *ws) {
  pa_cpu_att_io io;
  memset(&io, 0, sizeof io);
  io.nseg = 2;
  io.q[0] = &a->q_nope;
  io.q[1] = &a->q_pe;
  io.k[0] = &a->ckv;
  io.k[1] = &a->kpe;
  io.v = &a->ckv;
  io.out = &a->out;
  io.lse = (plan->mla.flags & PA_RETURN_LSE) ? &a->lse : NULL;
  io.block_table = plan->desc.page_size > 0 ? &a->block_table : NULL;
  if (pa_dtype_is_fp8(plan->desc.kv_dtype)) io.k_scale = io.v_scale = &a->kv_scale;
  return pa_cpu_run_attention(ctx, plan, &io, ws);
}

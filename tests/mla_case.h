/* One MLA decode test case (absorbed DeepSeek latent attention), its tensors,
 * the float64 reference and the comparison. */
#ifndef PA_TEST_MLA_CASE_H
#define PA_TEST_MLA_CASE_H

#include "util.h"

#define MC_MAX_B 8

typedef struct mla_case {
  const char *name;
  int batch;
  int32_t lq[MC_MAX_B], lk[MC_MAX_B];
  int h, dc, dr;
  pa_dtype dtype;
  int page_size;
  int causal;
  int one_cache; /* ckv and kpe are two views of one [pages, page, dc+dr] cache */
  int lse;
  float scale;
  int num_splits;
  pa_dtype kv8; /* PA_FP8_E4M3 / PA_FP8_E5M2: ckv/kpe in fp8 with kv_scale; 0: dtype */
} mla_case;

typedef struct mla_problem {
  const mla_case *c;
  pa_context *ctx;
  int B, pages, max_pages;
  int32_t cu_q[MC_MAX_B + 1];
  pa_mla_desc desc;
  pa_batch batch;
  tu_tensor q_nope, q_pe, ckv, kpe, bt, out, lse, kv_scale;
  pa_mla_args args;
  double *o_ref, *lse_ref;
  char msg[512];
} mla_problem;

pa_status mla_setup(mla_problem *p, pa_context *ctx, const mla_case *c);
void mla_reference(mla_problem *p);
pa_status mla_execute(mla_problem *p);
bool mla_check(mla_problem *p, const char *target, char *why, size_t n);
void mla_free(mla_problem *p);

#endif

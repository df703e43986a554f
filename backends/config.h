/* The configuration of one context: every knob of every backend, parsed once
 * (core/config.c) from pa_context_desc.options and the environment, validated,
 * and handed to the backend through ctx->cfg before its create. Included by
 * backend.h; README.md's configuration table lists the same keys (a test
 * compares the two). */
#ifndef PA_CONFIG_H
#define PA_CONFIG_H

#include <stddef.h>

#include "polyattn.h"

/* Values of the enum keys: the index in the key's list of names. */
enum {
  PA_CFG_ISA_AUTO = 0,
  PA_CFG_ISA_SCALAR,
  PA_CFG_ISA_AVX2,
  PA_CFG_ISA_AVX512,
  PA_CFG_ISA_NEON,
  PA_CFG_ISA_AVX512BF16
};
enum { PA_CFG_PREFILL_AUTO = 0, PA_CFG_PREFILL_MMA, PA_CFG_PREFILL_WS };
enum { PA_CFG_PF_ADDRESS = 0, PA_CFG_PF_TURN };
enum { PA_CFG_MLA_AUTO = 0, PA_CFG_MLA_MMA, PA_CFG_MLA_SEESAW, PA_CFG_MLA_FAST };
enum { PA_CFG_DECODE_AUTO = 0, PA_CFG_DECODE_PORTABLE, PA_CFG_DECODE_EMU, PA_CFG_DECODE_OFF };
enum { PA_CFG_CLMLA_AUTO = 0, PA_CFG_CLMLA_PORTABLE, PA_CFG_CLMLA_EMU };
enum { PA_CFG_CLPREFILL_AUTO = 0, PA_CFG_CLPREFILL_PLAIN };

#define PA_CFG_STR 256

typedef struct pa_config {
  int cpu_isa;                    /* PA_CFG_ISA_* */
  int cuda_device;                /* -1: unset (device 0) */
  int cuda_prefill;               /* PA_CFG_PREFILL_* */
  int cuda_mla;                   /* PA_CFG_MLA_* */
  int cuda_decode_fuse;           /* 0/1: split decode merges in the decode kernel */
  int cuda_pdl;                   /* 0/1: programmatic dependent launch (sm_90+) */
  char opencl_device[PA_CFG_STR]; /* "" unset, "p:d" or a name substring */
  int opencl_ptx;                 /* 0/1: inline-PTX kernels after the probe */
  int opencl_decode;              /* PA_CFG_DECODE_* */
  int opencl_mla;                 /* PA_CFG_CLMLA_* */
  /* developer knobs (dev.*): tuning and testing, no compatibility promise */
  int dev_cpu_prefetch;     /* grouped CPU decode: K/V bytes prefetched ahead */
  int dev_cpu_prefetch_order; /* PA_CFG_PF_*: the order of those prefetches */
  int dev_cuda_slots;      /* work items per SM per wave */
  int dev_cuda_decode_slots; /* the same for the decode kernels */
  int dev_cuda_window_fast;  /* wgmma prefill: windows on the compact loop */
  int dev_cuda_fuse_loads; /* partials in flight per thread of the decode merge */
  int dev_cuda_mla_pf;     /* seesaw MLA: key tiles prefetched into L2 ahead */
  int dev_cuda_mla_fp8;    /* 0/1: fp8 ckv/kpe on the seesaw MLA kernel */
  int dev_cuda_mla_early_pb; /* 0/1: seesaw MLA hands P_B over right after writing it */
  int dev_cuda_mla_balance;  /* 0/1: MLA auto splits by pa_balance_chunk */
  int dev_cuda_ws_pingpong; /* 0/1: ws prefill consumers take turns issuing GEMMs */
  int dev_cuda_ws_release;  /* 0/1/2: ws prefill K/V stage release (0 together after PV) */
  int dev_cuda_ws_lazy;     /* 0/1: ws prefill skips O's rescale where no row max grew */
  int dev_cuda_ws_paged;    /* 0/1: ws prefill takes paged k/v */
  char dev_opencl_kernel_dir[PA_CFG_STR];
  char dev_opencl_build_options[PA_CFG_STR];
  int dev_opencl_tile_bq, dev_opencl_tile_bkv, dev_opencl_tile_rg, dev_opencl_tile_cg;
  int dev_opencl_prefill;       /* PA_CFG_CLPREFILL_* */
  int dev_opencl_prefill_warps; /* 0: by rows */
  int dev_opencl_prefill_bkv;   /* 0: 64 */
  int dev_opencl_decode_warps, dev_opencl_decode_stages, dev_opencl_decode_nc;
  int dev_opencl_decode_regs, dev_opencl_decode_cpage;
  int dev_opencl_mla_bn, dev_opencl_mla_nrg, dev_opencl_mla_pf, dev_opencl_mla_maxreg;
  int dev_opencl_mla_ldsm, dev_opencl_mla_cpa;
  /* fp8 paths of issue 12's speed step, opt-in until a GPU run has checked them */
  int dev_cuda_fp8_decode, dev_cuda_fp8_prefill, dev_cuda_append_vec, dev_opencl_fp8_decode;
} pa_config;

/* One key of the table (core/config.c). */
typedef enum pa_config_kind { PA_CFG_ENUM, PA_CFG_INT, PA_CFG_TEXT } pa_config_kind;
typedef struct pa_config_key {
  const char *key; /* "cuda.mla"; its variable is PA_ + upper case, '.' -> '_' */
  pa_config_kind kind;
  const char *values; /* ENUM: names "a|b|c" (index = value); INT: allowed "8|32" or NULL */
  int lo, hi;         /* INT without a list: range */
  const char *def;    /* default, as written in options */
  size_t offset;      /* field in pa_config */
  int process;        /* 1: read from the environment only, once per use, not per context */
  const char *doc;    /* one line for the README table */
} pa_config_key;

/* The table (n entries), for the README check. */
const pa_config_key *pa_config_keys(int *n);
/* Defaults, then the environment, then options ("key=value,key=value", may be
 * NULL); the first bad key or value fails with PA_ERR_INVALID_ARGUMENT naming
 * it (ctx may be NULL). */
pa_status pa_config_read(pa_context *ctx, const char *options, pa_config *cfg);
/* Process-wide keys, read where they are used: PA_BACKEND ("" if unset), and
 * PA_LOG as a level (-1 if unset). */
const char *pa_config_env_backend(void);
int pa_config_env_log(void);

#endif

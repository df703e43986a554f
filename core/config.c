/* The one reader of configuration: the table of keys, the environment and
 * pa_context_desc.options parsed into a typed pa_config (backends/config.h).
 * This is the library's only getenv. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define F(field) offsetof(pa_config, field)
#define B01 "0|1"

/* clang-format off */
static const pa_config_key keys[] = {
  {"backend", PA_CFG_TEXT, "cpu|cuda|opencl", 0, 0, "", 0, 1,
   "backend PA_BACKEND_AUTO takes (environment only)"},
  {"log", PA_CFG_TEXT, NULL, 0, 0, "", 0, 1,
   "notes on stderr up to this level: 0 errors, 1 warnings, 2 notes (the kernel each plan runs), "
   "3 debug; other text: 2 (environment only)"},
  {"cpu.isa", PA_CFG_ENUM, "auto|scalar|avx2|avx512|neon|avx512bf16", 0, 0, "auto", F(cpu_isa), 0,
   "CPU kernels for this ISA instead of the best the host runs"},
  {"dev.cpu.prefetch", PA_CFG_INT, NULL, 0, 1 << 20, "8192", F(dev_cpu_prefetch), 0,
   "grouped CPU decode: bytes of K/V rows prefetched ahead of the head turn being read (by "
   "address: ahead of the chunk being read)"},
  {"dev.cpu.prefetch_order", PA_CFG_ENUM, "address|turn", 0, 0, "address",
   F(dev_cpu_prefetch_order), 0,
   "grouped CPU decode: prefetch the rows key by key over the heads, in address order (address), "
   "or head turn by head turn as they are read (turn)"},
  {"cuda.device", PA_CFG_INT, NULL, 0, 1023, "0", F(cuda_device), 0,
   "CUDA device when desc.device is -1"},
  {"cuda.prefill", PA_CFG_ENUM, "auto|mma|ws", 0, 0, "auto", F(cuda_prefill), 0,
   "prefill kernel: auto (sm_90: the warp-specialised TMA kernel wherever it applies, with "
   "dev.cuda.ws_release=0 only for head dims other than 128/128 and paged k/v; wgmma for the "
   "rest of d 64/128; else mma.sync), mma, ws (the TMA kernel wherever it applies, else auto)"},
  {"cuda.mla", PA_CFG_ENUM, "auto|mma|seesaw|fast", 0, 0, "auto", F(cuda_mla), 0,
   "MLA decode kernel: auto (seesaw on sm_90, else mma), mma (mma.sync), seesaw, fast (mla_fast.cu, sm_90)"},
  {"cuda.decode_fuse", PA_CFG_INT, B01, 0, 0, "1", F(cuda_decode_fuse), 0,
   "split decode merges its splits in the decode kernel (0: combine kernel)"},
  {"cuda.pdl", PA_CFG_INT, B01, 0, 0, "1", F(cuda_pdl), 0,
   "programmatic dependent launch on sm_90+"},
  {"opencl.device", PA_CFG_TEXT, NULL, 0, 0, "", F(opencl_device), 0,
   "OpenCL device when desc.device is -1: platform:device indices or a name substring"},
  {"opencl.ptx", PA_CFG_INT, B01, 0, 0, "1", F(opencl_ptx), 0,
   "inline-PTX kernels (NVIDIA, after the probe); 0: portable kernels only"},
  {"opencl.decode", PA_CFG_ENUM, "auto|portable|emu|off", 0, 0, "auto", F(opencl_decode), 0,
   "decode kernel: auto, portable (pa_decode), emu (pa_decode_w with emulated PTX), off "
   "(attention tiles)"},
  {"opencl.mla", PA_CFG_ENUM, "auto|portable|emu", 0, 0, "auto", F(opencl_mla), 0,
   "MLA kernel: auto (mla_mma after the probe), portable, emu (mla_mma with emulated PTX)"},
  {"dev.cuda.slots", PA_CFG_INT, NULL, 1, 64, "1", F(dev_cuda_slots), 0,
   "work items per SM per wave in the split policy"},
  {"dev.cuda.decode_slots", PA_CFG_INT, NULL, 1, 64, "2", F(dev_cuda_decode_slots), 0,
   "decode kernels: work items per SM per wave in the split policy (memory-bound, so more "
   "than one block per SM)"},
  {"dev.cuda.window_fast", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_window_fast), 0,
   "wgmma prefill: sliding windows on the compact loop, masking only the tiles at the window's "
   "bounds (0: the per-key logit loop, 5.8x slower on an H100)"},
  {"dev.cuda.fuse_loads", PA_CFG_INT, "8|32", 0, 0, "32", F(dev_cuda_fuse_loads), 0,
   "partials in flight per thread of the in-kernel decode merge"},
  {"dev.cuda.fp8_decode", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_fp8_decode), 0,
   "fp8 K/V decode: 1 converts in registers from the fp8 ring, 0 through a per-warp 16-bit tile"},
  {"dev.cuda.fp8_prefill", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_fp8_prefill), 0,
   "fp8 K/V prefill on sm_90: 1 the wgmma kernel, 0 the mma.sync kernel"},
  {"dev.cuda.append_vec", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_append_vec), 0,
   "paged-cache append: 1 the vectorised kernel where rows are 16-byte aligned, 0 a block per row"},
  {"dev.opencl.fp8_decode", PA_CFG_INT, B01, 0, 0, "1", F(dev_opencl_fp8_decode), 0,
   "fp8 K/V decode: 1 pa_decode_w (NVIDIA or emulated), 0 the attention tile"},
  {"dev.cuda.mla_pf", PA_CFG_INT, NULL, 0, 16, "0", F(dev_cuda_mla_pf), 0,
   "cuda.mla=fast: 64-key tiles prefetched into L2 ahead of the shared-memory ring (0: none)"},
  {"dev.cuda.mla_early_pb", PA_CFG_INT, B01, 0, 0, "0", F(dev_cuda_mla_early_pb), 0,
   "cuda.mla=fast: P_B handed to warpgroup 0 as soon as it is written"},
  {"dev.cuda.mla_balance", PA_CFG_INT, B01, 0, 0, "0", F(dev_cuda_mla_balance), 0,
   "MLA on tensor cores: auto splits cut the batch's keys into one chunk where that balances the SMs better"},
  {"dev.cuda.mla_fp8", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_mla_fp8), 0,
   "fp8 ckv/kpe on mla_fast.cu (sm_90, widened in shared memory; 0: generic kernel)"},
  {"dev.cuda.ws_pingpong", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_ws_pingpong), 0,
   "ws prefill: the two consumer warpgroups take turns issuing their GEMMs"},
  {"dev.cuda.ws_release", PA_CFG_INT, "0|1|2", 0, 0, "1", F(dev_cuda_ws_release), 0,
   "ws prefill: 0 K and V of a stage released together after PV; 1 K after S and V after PV, one "
   "arrival per warpgroup, V loaded a tile behind K; 2 the same with every thread arriving"},
  {"dev.cuda.ws_lazy", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_ws_lazy), 0,
   "ws prefill, head dims up to 128: 1 skips O's rescale in a warp where no row max grew (the factor is exactly 1)"},
  {"dev.cuda.ws_paged", PA_CFG_INT, B01, 0, 0, "1", F(dev_cuda_ws_paged), 0,
   "ws prefill: paged k/v (page sizes that are multiples of 16) on the TMA kernel"},
  {"dev.opencl.kernel_dir", PA_CFG_TEXT, NULL, 0, 0, "", F(dev_opencl_kernel_dir), 0,
   "read kernels/*.cl from this folder instead of the embedded copies"},
  {"dev.opencl.build_options", PA_CFG_TEXT, NULL, 0, 0, "", F(dev_opencl_build_options), 0,
   "extra OpenCL compiler options, part of the program cache key (tests: -cl-opt-disable)"},
  {"dev.opencl.tile_bq", PA_CFG_INT, NULL, 0, 64, "0", F(dev_opencl_tile_bq), 0,
   "forced attention tile: rows (0: not forced; all four tile keys together)"},
  {"dev.opencl.tile_bkv", PA_CFG_INT, NULL, 0, 128, "0", F(dev_opencl_tile_bkv), 0,
   "forced attention tile: keys"},
  {"dev.opencl.tile_rg", PA_CFG_INT, NULL, 0, 64, "0", F(dev_opencl_tile_rg), 0,
   "forced attention tile: row groups"},
  {"dev.opencl.tile_cg", PA_CFG_INT, NULL, 0, 128, "0", F(dev_opencl_tile_cg), 0,
   "forced attention tile: column groups"},
  {"dev.opencl.prefill", PA_CFG_ENUM, "auto|plain", 0, 0, "auto", F(dev_opencl_prefill), 0,
   "prefill_mma.cl: auto (pipelined after the cp.async probe), plain (PIPE=0, 64 rows)"},
  {"dev.opencl.prefill_warps", PA_CFG_INT, "0|4|8", 0, 0, "0", F(dev_opencl_prefill_warps), 0,
   "pipelined prefill warps (0: 8 above 64 rows, else 4)"},
  {"dev.opencl.prefill_bkv", PA_CFG_INT, "0|32|64", 0, 0, "0", F(dev_opencl_prefill_bkv), 0,
   "pipelined prefill keys per stage (0: 64)"},
  {"dev.opencl.decode_warps", PA_CFG_INT, "1|2|4|8", 0, 0, "4", F(dev_opencl_decode_warps), 0,
   "pa_decode_w warps per work-group"},
  {"dev.opencl.decode_stages", PA_CFG_INT, NULL, 0, 8, "4", F(dev_opencl_decode_stages), 0,
   "most cp.async ring stages of pa_decode_w (0 or 1: K/V through registers)"},
  {"dev.opencl.decode_nc", PA_CFG_INT, B01, 0, 0, "0", F(dev_opencl_decode_nc), 0,
   "pa_decode_w register path loads K/V through ld.global.nc"},
  {"dev.opencl.decode_regs", PA_CFG_INT, NULL, 0, 255, "0", F(dev_opencl_decode_regs), 0,
   "register cap of pa_decode_w (0: none)"},
  {"dev.opencl.decode_cpage", PA_CFG_INT, B01, 0, 0, "1", F(dev_opencl_decode_cpage), 0,
   "compile the page size into the decode kernels"},
  {"dev.opencl.mla_bn", PA_CFG_INT, "16|32", 0, 0, "16", F(dev_opencl_mla_bn), 0,
   "mla_mma.cl keys per tile"},
  {"dev.opencl.mla_nrg", PA_CFG_INT, "1|2", 0, 0, "2", F(dev_opencl_mla_nrg), 0,
   "mla_mma.cl 16-row groups per work-group"},
  {"dev.opencl.mla_pf", PA_CFG_INT, B01, 0, 0, "0", F(dev_opencl_mla_pf), 0,
   "mla_mma.cl next key tile prefetched into registers (not with mla_cpa)"},
  {"dev.opencl.mla_maxreg", PA_CFG_INT, "0|128|168|200", 0, 0, "0", F(dev_opencl_mla_maxreg), 0,
   "mla_mma.cl register cap (0: none)"},
  {"dev.opencl.mla_ldsm", PA_CFG_INT, B01, 0, 0, "1", F(dev_opencl_mla_ldsm), 0,
   "mla_mma.cl B fragments by ldmatrix"},
  {"dev.opencl.mla_cpa", PA_CFG_INT, B01, 0, 0, "1", F(dev_opencl_mla_cpa), 0,
   "mla_mma.cl two key stages filled by cp.async"},
};
/* clang-format on */

const pa_config_key *pa_config_keys(int *n) {
  *n = (int)(sizeof keys / sizeof keys[0]);
  return keys;
}

static void env_name(const char *key, char *out, size_t n) {
  size_t j = (size_t)snprintf(out, n, "PA_");
  for (; *key && j + 1 < n; key++)
    out[j++] = *key == '.' ? '_' : (char)toupper((unsigned char)*key);
  out[j] = 0;
}

/* Index of name in "a|b|c" (len characters of it), or -1. */
static int list_index(const char *list, const char *name, size_t len) {
  int i = 0;
  for (const char *p = list;; i++) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && !strncmp(p, name, len)) return i;
    if (!bar) return -1;
    p = bar + 1;
  }
}

/* Sets key k from text v (len characters); `from` names the source for the
 * message ("options" or the variable). */
static pa_status set_value(pa_context *ctx, const pa_config_key *k, const char *v, size_t len,
                           const char *from, pa_config *cfg) {
  char text[PA_CFG_STR];
  if (len >= sizeof text)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s: %s value of %zu characters is too long", from,
                   k->key, len);
  memcpy(text, v, len);
  text[len] = 0;
  if (k->process) return PA_OK; /* read where used */
  char *field = (char *)cfg + k->offset;
  if (k->kind == PA_CFG_TEXT) {
    memcpy(field, text, len + 1);
    return PA_OK;
  }
  if (k->kind == PA_CFG_ENUM) {
    int i = list_index(k->values, text, len);
    if (i < 0)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s: %s=%s is not one of %s", from, k->key, text,
                     k->values);
    memcpy(field, &i, sizeof i);
    return PA_OK;
  }
  char *end = NULL;
  errno = 0;
  long x = strtol(text, &end, 10);
  bool ok = len > 0 && end && *end == 0 && errno == 0;
  if (ok && k->values) ok = list_index(k->values, text, len) >= 0;
  if (ok && !k->values) ok = x >= k->lo && x <= k->hi;
  if (!ok) {
    if (k->values)
      return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s: %s=%s is not one of %s", from, k->key, text,
                     k->values);
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "%s: %s=%s is not an integer in %d..%d", from,
                   k->key, text, k->lo, k->hi);
  }
  int xi = (int)x;
  memcpy(field, &xi, sizeof xi);
  return PA_OK;
}

static const pa_config_key *find_key(const char *name, size_t len) {
  for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
    if (strlen(keys[i].key) == len && !strncmp(keys[i].key, name, len)) return &keys[i];
  return NULL;
}

/* Relations between keys, checked once all are set. */
static pa_status check_together(pa_context *ctx, const pa_config *c) {
  int tile = (c->dev_opencl_tile_bq > 0) + (c->dev_opencl_tile_bkv > 0) +
             (c->dev_opencl_tile_rg > 0) + (c->dev_opencl_tile_cg > 0);
  if (tile != 0 && tile != 4)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "dev.opencl.tile_bq/_bkv/_rg/_cg=%d/%d/%d/%d: set all four or none",
                   c->dev_opencl_tile_bq, c->dev_opencl_tile_bkv, c->dev_opencl_tile_rg,
                   c->dev_opencl_tile_cg);
  if (tile == 4 && (c->dev_opencl_tile_bq % c->dev_opencl_tile_rg ||
                    c->dev_opencl_tile_bkv % c->dev_opencl_tile_cg ||
                    c->dev_opencl_tile_bq > c->dev_opencl_tile_rg * c->dev_opencl_tile_cg))
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "dev.opencl.tile_bq/_bkv/_rg/_cg=%d/%d/%d/%d: bq must be a multiple of rg, "
                   "bkv of cg, and bq <= rg * cg",
                   c->dev_opencl_tile_bq, c->dev_opencl_tile_bkv, c->dev_opencl_tile_rg,
                   c->dev_opencl_tile_cg);
  if (c->dev_opencl_mla_pf && c->dev_opencl_mla_cpa)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT,
                   "dev.opencl.mla_pf=1 and dev.opencl.mla_cpa=1: the kernel takes one of them");
  return PA_OK;
}

pa_status pa_config_read(pa_context *ctx, const char *options, pa_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  const int n = (int)(sizeof keys / sizeof keys[0]);
  pa_status st = PA_OK;
  for (int i = 0; i < n && st == PA_OK; i++)
    st = set_value(ctx, &keys[i], keys[i].def, strlen(keys[i].def), "default", cfg);
  cfg->cuda_device = -1; /* unset: the backend's default device */
  for (int i = 0; i < n && st == PA_OK; i++) {
    char var[96];
    env_name(keys[i].key, var, sizeof var);
    const char *v = getenv(var);
    if (v && *v) st = set_value(ctx, &keys[i], v, strlen(v), var, cfg);
  }
  for (const char *p = options; st == PA_OK && p && *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    if (len > 0) {
      const pa_config_key *k = eq ? find_key(p, (size_t)(eq - p)) : NULL;
      if (!eq)
        st = pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "options: \"%.*s\" is not key=value", (int)len,
                     p);
      else if (!k)
        st = pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "options: unknown key \"%.*s\"", (int)(eq - p),
                     p);
      else if (k->process)
        st = pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "options: %s is read from the environment only",
                     k->key);
      else
        st = set_value(ctx, k, eq + 1, len - (size_t)(eq + 1 - p), "options", cfg);
    }
    p = comma ? comma + 1 : p + len;
  }
  return st == PA_OK ? check_together(ctx, cfg) : st;
}

const char *pa_config_env_backend(void) {
  const char *v = getenv("PA_BACKEND");
  return v ? v : "";
}

int pa_config_env_log(void) {
  const char *v = getenv("PA_LOG");
  if (!v || !*v) return -1;
  /* PA_LOG=1 means "on", as such switches usually do: notes included */
  int n = (v[0] >= '0' && v[0] <= '9') ? atoi(v) : 2;
  return n == 1 ? 2 : n;
}

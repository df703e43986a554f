/* The shared case table, run on every compiled and available backend and on
 * every CPU ISA (suite = target: cpu_scalar, cpu_avx2, cpu_avx512, cpu_neon,
 * cuda, opencl; one Test per (target, case group)). A target that is not
 * compiled, has no device or lacks the ISA is skipped with the reason.
 *
 * Sizes are odd on purpose (lengths 1, 7, 113, 203, 1025; groups 1, 3, 7, 8,
 * 16; head dims from 1 to 256 incl. the generic 40, 59, 111). Every case is
 * checked against the float64 oracle (oracle.c) on inputs rounded to the
 * dtype, so the tolerance measures only the kernel's own error.
 *
 * Tolerances (util.c): rel-L2 per request, worst request, f32 1e-5, f16 2e-3,
 * bf16 1e-2; plus max-abs, no NaN/inf, LSE, guard bands and untouched inputs.
 * f32 stays at 1e-5 even for 1025-key sums: the worst measured on every
 * target here was 6.9e-7 (pg256), so no relaxation is justified. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "attn_case.h"
#include "mla_case.h"

/* clang-format off */
static const attn_case headdim_cases[] = {
  {.name = "d64",      .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d80",      .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 80,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d96",      .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 96,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d128",     .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d192",     .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 192, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d256",     .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 256, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d192v128", .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 192, .dv = 128, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
};

/* Head dims without a specialised kernel (generic paths), and the rarer dtypes. */
static const attn_case headdim_generic_cases[] = {
  {.name = "d40",      .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 40,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d59",      .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 59,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d111",     .batch = 3, .lq = {7, 1, 3}, .lk = {113, 203, 1025}, .hq = 4, .hkv = 2, .dqk = 111, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d160",     .batch = 2, .lq = {7, 1},    .lk = {113, 203},       .hq = 4, .hkv = 2, .dqk = 160, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d224",     .batch = 2, .lq = {7, 1},    .lk = {113, 203},       .hq = 4, .hkv = 2, .dqk = 224, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d1",       .batch = 2, .lq = {7, 1},    .lk = {113, 203},       .hq = 4, .hkv = 2, .dqk = 1,   .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "d59_f16",  .batch = 2, .lq = {7, 1},    .lk = {113, 203},       .hq = 4, .hkv = 2, .dqk = 59,  .dtype = PA_F16, .causal = 1, .opts = AO_LSE},
  {.name = "d111_bf16",.batch = 2, .lq = {7, 1},    .lk = {113, 203},       .hq = 4, .hkv = 2, .dqk = 111, .dtype = PA_BF16,.causal = 1, .opts = AO_LSE},
  {.name = "d192v128_bf16", .batch = 2, .lq = {113, 1}, .lk = {113, 203},   .hq = 2, .hkv = 1, .dqk = 192, .dv = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE},
};

static const attn_case prefill_cases[] = {
  {.name = "p113_causal",   .batch = 1, .lq = {113},         .lk = {113},         .hq = 4, .dqk = 64,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "p203_ragged3",  .batch = 3, .lq = {203, 7, 1},   .lk = {203, 7, 1},   .hq = 2, .hkv = 1, .dqk = 128, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "p1025_f16",     .batch = 1, .lq = {1025},        .lk = {1025},        .hq = 1, .dqk = 64,  .dtype = PA_F16, .causal = 1, .opts = AO_LSE},
  {.name = "sq_gt_skv",     .batch = 2, .lq = {113, 7},      .lk = {7, 1},        .hq = 2, .dqk = 64,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "noncausal_bf16",.batch = 1, .lq = {113},         .lk = {203},         .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .opts = AO_LSE},
  {.name = "chunked",       .batch = 2, .lq = {7, 113},      .lk = {203, 1025},   .hq = 2, .dqk = 128, .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "p1025_g4_bf16",  .batch = 1, .lq = {1025},        .lk = {1025},        .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE},
  {.name = "p203_g16_d256", .batch = 2, .lq = {203, 1},     .lk = {203, 1025},   .hq = 16, .hkv = 1, .dqk = 256, .dtype = PA_F16, .causal = 1, .opts = AO_LSE},
  {.name = "noncausal_sq_gt_skv", .batch = 1, .lq = {113},   .lk = {7},           .hq = 3, .hkv = 1, .dqk = 80, .dtype = PA_F16, .opts = AO_LSE},
};

/* Tile edges of the prefill kernels (64/128-row and 128-key tiles): lengths
 * around 64 and 128, sq > skv under causal, empty requests inside a ragged
 * batch, GQA groups 1..16, padded/gapped/strided rows, sinks, pages that
 * straddle tiles (16, 48, 8, HND 32), deterministic. */
static const attn_case tile_edge_cases[] = {
  {.name = "e_len1_65",     .batch = 4, .lq = {1, 63, 64, 65},  .lk = {1, 63, 64, 65},   .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE},
  {.name = "e_len127_129",  .batch = 3, .lq = {127, 128, 129},  .lk = {127, 129, 300},   .hq = 4, .hkv = 4, .dqk = 64,  .dtype = PA_F16,  .causal = 1, .opts = AO_LSE},
  {.name = "e_sq_gt_skv",   .batch = 2, .lq = {129, 65},        .lk = {63, 1},           .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE},
  {.name = "e_empty",       .batch = 5, .lq = {0, 129, 0, 65, 17}, .lk = {0, 200, 33, 0, 17}, .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE},
  {.name = "e_g1",          .batch = 2, .lq = {70, 129},        .lk = {300, 129},        .hq = 2, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1},
  {.name = "e_g5",          .batch = 2, .lq = {70, 129},        .lk = {300, 129},        .hq = 10, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1},
  {.name = "e_g8",          .batch = 2, .lq = {70, 129},        .lk = {300, 129},        .hq = 16, .hkv = 2, .dqk = 64,  .dtype = PA_BF16, .causal = 1},
  {.name = "e_g16",         .batch = 2, .lq = {70, 129},        .lk = {300, 129},        .hq = 16, .hkv = 1, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE},
  {.name = "e_noncausal",   .batch = 2, .lq = {200, 5},         .lk = {1000, 77},        .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_BF16, .opts = AO_LSE},
  {.name = "e_padded",      .batch = 2, .lq = {130, 65},        .lk = {257, 70},         .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .layout = AL_PADDED, .opts = AO_LSE},
  {.name = "e_gaps",        .batch = 2, .lq = {100, 64},        .lk = {300, 129},        .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_F16,  .causal = 1, .layout = AL_GAPS},
  {.name = "e_strided",     .batch = 2, .lq = {100, 30},        .lk = {300, 129},        .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE | AO_STRIDED},
  {.name = "e_sinks",       .batch = 2, .lq = {129, 40},        .lk = {129, 500},        .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE | AO_SINKS},
  {.name = "e_paged16",     .batch = 2, .lq = {129, 70},        .lk = {300, 1000},       .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .page_size = 16, .opts = AO_LSE},
  {.name = "e_paged48",     .batch = 2, .lq = {100, 65},        .lk = {250, 129},        .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_F16,  .causal = 1, .page_size = 48},
  {.name = "e_paged8",      .batch = 1, .lq = {70},             .lk = {200},             .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_BF16, .causal = 1, .page_size = 8},
  {.name = "e_paged_hnd",   .batch = 2, .lq = {65, 20},         .lk = {500, 33},         .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .page_size = 32, .opts = AO_LSE | AO_HND},
  {.name = "e_det_long",    .batch = 2, .lq = {1000, 513},      .lk = {1000, 2000},      .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE | AO_DETERMINISTIC},
};

static const attn_case gqa_cases[] = {
  {.name = "g1",        .batch = 3, .lq = {1, 1, 1}, .lk = {1025, 7, 113}, .hq = 4,  .hkv = 4, .dqk = 128, .dtype = PA_F32, .opts = AO_LSE},
  {.name = "g3",        .batch = 2, .lq = {1, 3},    .lk = {203, 1025},    .hq = 6,  .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1},
  {.name = "g7",        .batch = 1, .lq = {5},       .lk = {203},          .hq = 7,  .hkv = 1, .dqk = 64,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "g8_paged",  .batch = 2, .lq = {1, 1},    .lk = {1025, 113},    .hq = 16, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .page_size = 16},
  {.name = "g16",       .batch = 2, .lq = {2, 1},    .lk = {113, 1},       .hq = 16, .hkv = 1, .dqk = 96,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "g8_prefill",.batch = 1, .lq = {113},     .lk = {113},          .hq = 8,  .hkv = 1, .dqk = 64,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "g7_f16_paged", .batch = 2, .lq = {3, 1}, .lk = {203, 7},       .hq = 14, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1, .page_size = 64, .opts = AO_LSE},
  /* decodes that form CPU head groups (several KV heads per thread, attention.c's grouped driver) */
  {.name = "g4_grouped_long", .batch = 1, .lq = {1}, .lk = {8191}, .hq = 32, .hkv = 8, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .opts = AO_LSE},
  {.name = "g4_grouped_b8",   .batch = 8, .lq = {1, 1, 2, 1, 1, 1, 3, 1}, .lk = {1025, 203, 7, 64, 1, 113, 300, 16}, .hq = 32, .hkv = 8, .dqk = 128, .dtype = PA_F16, .causal = 1, .page_size = 64, .opts = AO_LSE | AO_SINKS},
  {.name = "g4_grouped_bf16_d59", .batch = 4, .lq = {1, 3, 2, 1}, .lk = {517, 1025, 33, 2047}, .hq = 32, .hkv = 8, .dqk = 59, .dtype = PA_BF16, .causal = 1, .page_size = 16, .opts = AO_LSE},
  {.name = "g8_grouped_f32_hnd", .batch = 4, .lq = {1, 1, 1, 1}, .lk = {517, 1025, 33, 2048}, .hq = 64, .hkv = 8, .dqk = 64, .dtype = PA_F32, .page_size = 16, .opts = AO_LSE | AO_HND},
};

static const attn_case paged_cases[] = {
  {.name = "pg1",          .batch = 2, .lq = {1, 3},    .lk = {7, 113},       .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_F32, .causal = 1, .page_size = 1,   .opts = AO_LSE},
  {.name = "pg16",         .batch = 3, .lq = {1, 1, 1}, .lk = {203, 1, 1025}, .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16,               .page_size = 16},
  {.name = "pg64_hnd",     .batch = 2, .lq = {7, 1},    .lk = {203, 64},      .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_BF16,.causal = 1, .page_size = 64,  .opts = AO_LSE | AO_HND},
  {.name = "pg256",        .batch = 2, .lq = {1, 113},  .lk = {1025, 113},    .hq = 2, .hkv = 2, .dqk = 80,  .dtype = PA_F32, .causal = 1, .page_size = 256, .opts = AO_LSE},
  {.name = "pg16_hnd_d59", .batch = 1, .lq = {3},       .lk = {77},           .hq = 2, .hkv = 1, .dqk = 59,  .dtype = PA_F32, .causal = 1, .page_size = 16,  .opts = AO_LSE | AO_HND},
  {.name = "pg16_prefill", .batch = 1, .lq = {203},     .lk = {203},          .hq = 2, .hkv = 1, .dqk = 64,  .dtype = PA_F32, .causal = 1, .page_size = 16,  .opts = AO_LSE},
  {.name = "pg16_batch8",  .batch = 8, .lq = {1, 1, 2, 1, 1, 3, 1, 1}, .lk = {1025, 1, 0, 203, 7, 113, 64, 16}, .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .page_size = 16, .opts = AO_LSE},
  {.name = "pg256_edges",  .batch = 4, .lq = {1, 1, 2, 1},  .lk = {256, 512, 255, 257}, .hq = 4, .hkv = 1, .dqk = 64, .dtype = PA_F16, .causal = 1, .page_size = 256, .opts = AO_LSE},
  {.name = "pg64_d192v128",.batch = 1, .lq = {7},       .lk = {203},          .hq = 2, .hkv = 1, .dqk = 192, .dv = 128, .dtype = PA_F32, .causal = 1, .page_size = 64, .opts = AO_LSE},
};

static const attn_case layout_cases[] = {
  {.name = "padded",        .batch = 3, .lq = {7, 1, 3},    .lk = {113, 7, 203},   .hq = 4, .hkv = 2, .dqk = 64,  .dtype = PA_F32, .causal = 1, .layout = AL_PADDED, .opts = AO_LSE},
  {.name = "padded_f16",    .batch = 2, .lq = {5, 9},       .lk = {33, 2},         .hq = 2, .hkv = 2, .dqk = 128, .dtype = PA_F16,               .layout = AL_PADDED},
  {.name = "padded_paged",  .batch = 2, .lq = {2, 1},       .lk = {40, 203},       .hq = 4, .hkv = 1, .dqk = 64,  .dtype = PA_F32, .causal = 1, .layout = AL_PADDED, .page_size = 16, .opts = AO_LSE},
  {.name = "gaps",          .batch = 3, .lq = {7, 1, 5},    .lk = {113, 203, 1},   .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_F32, .causal = 1, .layout = AL_GAPS, .opts = AO_LSE},
  {.name = "gaps_paged",    .batch = 2, .lq = {3, 2},       .lk = {40, 17},        .hq = 2, .hkv = 2, .dqk = 64,  .dtype = PA_BF16,.causal = 1, .layout = AL_GAPS, .page_size = 16, .opts = AO_LSE},
  {.name = "lens_only",     .batch = 2, .lq = {3, 7},       .lk = {50, 7},         .hq = 2, .hkv = 1, .dqk = 64,  .dtype = PA_F32, .causal = 1, .layout = AL_LENS, .opts = AO_LSE},
  {.name = "empty",         .batch = 4, .lq = {0, 7, 3, 0}, .lk = {5, 0, 113, 0},  .hq = 2, .hkv = 1, .dqk = 64,  .dtype = PA_F32, .causal = 1, .opts = AO_LSE},
  {.name = "empty_paged",   .batch = 3, .lq = {1, 1, 0},    .lk = {0, 17, 9},      .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F16, .page_size = 16, .opts = AO_LSE},
  {.name = "strided_ragged",.batch = 2, .lq = {7, 1},       .lk = {113, 203},      .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1, .opts = AO_LSE | AO_STRIDED},
  {.name = "strided_padded",.batch = 2, .lq = {3, 5},       .lk = {20, 9},         .hq = 2, .hkv = 1, .dqk = 64,  .dtype = PA_BF16, .layout = AL_PADDED, .opts = AO_LSE | AO_STRIDED},
  {.name = "strided_paged", .batch = 2, .lq = {4, 1},       .lk = {70, 33},        .hq = 6, .hkv = 3, .dqk = 96,  .dtype = PA_F32, .causal = 1, .page_size = 16, .opts = AO_LSE | AO_STRIDED},
  {.name = "empty_padded",  .batch = 2, .lq = {0, 4},       .lk = {3, 0},          .hq = 2, .hkv = 2, .dqk = 64,  .dtype = PA_F32, .layout = AL_PADDED, .opts = AO_LSE},
};

static const attn_case mask_cases[] = {
  {.name = "window_causal",   .batch = 1, .lq = {113},   .lk = {203},       .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .wl = 32, .wr = 0, .opts = AO_LSE | AO_WINDOW},
  {.name = "window_bidir",    .batch = 1, .lq = {113},   .lk = {113},       .hq = 2, .dqk = 64, .dtype = PA_F32, .wl = 16, .wr = 8, .opts = AO_LSE | AO_WINDOW},
  {.name = "window_sinktok",  .batch = 1, .lq = {203},   .lk = {203},       .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .wl = 32, .sink_tokens = 4, .opts = AO_LSE | AO_WINDOW},
  {.name = "window_decode",   .batch = 2, .lq = {1, 1},  .lk = {1025, 203}, .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1, .wl = 127, .sink_tokens = 3, .page_size = 16, .opts = AO_LSE | AO_WINDOW},
  /* Sink tokens are exempt from the right edge too (non-causal): one token per
   * 64-row tile, so the planner's per-tile key range is what is tested. */
  {.name = "window_right_sinktok", .batch = 1, .lq = {8}, .lk = {8},     .hq = 64, .hkv = 1, .dqk = 64, .dtype = PA_F32, .wl = 2, .wr = 0, .sink_tokens = 8, .opts = AO_LSE | AO_WINDOW},
  {.name = "window_bidir_sinktok", .batch = 1, .lq = {113}, .lk = {203}, .hq = 2, .dqk = 64, .dtype = PA_F32, .wl = 16, .wr = 4, .sink_tokens = 150, .opts = AO_LSE | AO_WINDOW},
  {.name = "window_diag",     .batch = 1, .lq = {7},     .lk = {7},         .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .wl = 0, .wr = 0, .opts = AO_LSE | AO_WINDOW},
  /* bf16/f16 d 64/128 with many packed rows: the wgmma kernel's compact loop masks windows at tile edges */
  {.name = "window_tc_causal", .batch = 2, .lq = {200, 40}, .lk = {450, 40}, .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_BF16, .causal = 1, .wl = 100, .wr = 0, .opts = AO_LSE | AO_WINDOW},
  {.name = "window_tc_bidir_sinktok", .batch = 1, .lq = {150}, .lk = {230}, .hq = 2, .hkv = 2, .dqk = 64, .dtype = PA_F16, .wl = 50, .wr = 30, .sink_tokens = 70, .opts = AO_LSE | AO_WINDOW},
  {.name = "window_tc_paged_sinktok", .batch = 2, .lq = {130, 1}, .lk = {300, 77}, .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .wl = 64, .sink_tokens = 5, .page_size = 16, .opts = AO_LSE | AO_WINDOW},
  {.name = "mask_bcast",      .batch = 2, .lq = {7, 1},  .lk = {113, 203},  .hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE | AO_MASK},
  {.name = "mask_heads",      .batch = 1, .lq = {5},     .lk = {33},        .hq = 3, .hkv = 1, .dqk = 80, .dtype = PA_F32, .opts = AO_LSE | AO_MASK_PER_HEAD},
  {.name = "mask_neginf",     .batch = 2, .lq = {7, 3},  .lk = {1, 9},      .hq = 2, .dqk = 64, .dtype = PA_F32, .opts = AO_LSE | AO_MASK | AO_MASK_NEGINF},
  {.name = "mask_bf16_paged", .batch = 2, .lq = {3, 1},  .lk = {40, 7},     .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .page_size = 16, .opts = AO_LSE | AO_MASK_PER_HEAD},
  {.name = "alibi_causal",    .batch = 1, .lq = {113},   .lk = {113},       .hq = 4, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE | AO_ALIBI},
  {.name = "alibi_decode",    .batch = 2, .lq = {1, 1},  .lk = {1025, 7},   .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16, .page_size = 16, .opts = AO_LSE | AO_ALIBI},
};

static const attn_case feature_cases[] = {
  {.name = "sinks_decode",  .batch = 2, .lq = {1, 1},  .lk = {203, 1},   .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F32, .opts = AO_LSE | AO_SINKS},
  {.name = "sinks_prefill", .batch = 1, .lq = {113},   .lk = {113},      .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE | AO_SINKS},
  {.name = "sinks_empty",   .batch = 2, .lq = {3, 1},  .lk = {0, 5},     .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .opts = AO_LSE | AO_SINKS},
  {.name = "softcap",       .batch = 2, .lq = {7, 1},  .lk = {113, 203}, .hq = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .scale = 0.5f, .softcap = 2.0f, .opts = AO_LSE},
  {.name = "softcap_bf16",  .batch = 1, .lq = {113},   .lk = {113},      .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .scale = 1.0f, .softcap = 30.0f, .opts = AO_LSE},
  {.name = "scale",         .batch = 2, .lq = {7, 1},  .lk = {113, 203}, .hq = 2, .dqk = 96, .dtype = PA_F32, .causal = 1, .scale = 0.3f, .opts = AO_LSE},
  {.name = "combo_bf16",    .batch = 2, .lq = {3, 1},  .lk = {203, 50},  .hq = 6, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .wl = 64, .sink_tokens = 2, .scale = 0.25f, .softcap = 5.0f, .page_size = 16, .opts = AO_LSE | AO_WINDOW | AO_ALIBI | AO_MASK_PER_HEAD | AO_SINKS},
  {.name = "combo_f32",     .batch = 2, .lq = {7, 1},  .lk = {113, 50},  .hq = 6, .hkv = 2, .dqk = 80, .dtype = PA_F32, .causal = 1, .wl = 40, .sink_tokens = 3, .scale = 0.25f, .softcap = 5.0f, .opts = AO_LSE | AO_WINDOW | AO_ALIBI | AO_MASK | AO_SINKS},
  {.name = "splits3",       .batch = 2, .lq = {1, 2},  .lk = {1025, 203},.hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_F32, .causal = 1, .num_splits = 3, .opts = AO_LSE},
  {.name = "splits7_paged", .batch = 2, .lq = {1, 1},  .lk = {1025, 7},  .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16, .page_size = 16, .num_splits = 7, .opts = AO_LSE},
  {.name = "deterministic", .batch = 2, .lq = {1, 7},  .lk = {1025, 203},.hq = 4, .hkv = 2, .dqk = 64, .dtype = PA_F32, .causal = 1, .kv_chunk = 64, .opts = AO_LSE | AO_DETERMINISTIC},
};

static const attn_case dtype_cases[] = {
  {.name = "prefill_f32",  .batch = 1, .lq = {113},     .lk = {113},           .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F32,  .causal = 1, .opts = AO_LSE},
  {.name = "prefill_f16",  .batch = 1, .lq = {113},     .lk = {113},           .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_F16,  .causal = 1, .opts = AO_LSE},
  {.name = "prefill_bf16", .batch = 1, .lq = {113},     .lk = {113},           .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .opts = AO_LSE},
  {.name = "decode_f32",   .batch = 3, .lq = {1, 1, 1}, .lk = {1025, 203, 7},  .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F32,  .page_size = 64, .opts = AO_LSE},
  {.name = "decode_f16",   .batch = 3, .lq = {1, 1, 1}, .lk = {1025, 203, 7},  .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16,  .page_size = 64, .opts = AO_LSE},
  {.name = "decode_bf16",  .batch = 3, .lq = {1, 1, 1}, .lk = {1025, 203, 7},  .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .page_size = 64, .opts = AO_LSE},
};

static const mla_case mla_cases[] = {
  {.name = "mla_mtp_f32",       .batch = 2, .lq = {4, 2},    .lk = {113, 203},     .h = 16,  .dc = 512, .dr = 64, .dtype = PA_F32,  .page_size = 16,  .causal = 1, .lse = 1},
  {.name = "mla_onecache_f16",  .batch = 1, .lq = {2},       .lk = {1025},         .h = 8,   .dc = 512, .dr = 64, .dtype = PA_F16,  .page_size = 256, .causal = 1, .one_cache = 1, .lse = 1},
  {.name = "mla_page1",         .batch = 2, .lq = {1, 3},    .lk = {7, 3},         .h = 4,   .dc = 512, .dr = 64, .dtype = PA_F32,  .page_size = 1,   .causal = 1, .lse = 1},
  {.name = "mla_empty",         .batch = 2, .lq = {1, 1},    .lk = {0, 33},        .h = 4,   .dc = 512, .dr = 64, .dtype = PA_F32,  .page_size = 16,  .lse = 1},
};

/* bf16 MLA apart: on PoCL each dtype compiles its own (large) MLA kernels. */
static const mla_case mla_bf16_cases[] = {
  {.name = "mla_decode_bf16",   .batch = 3, .lq = {1, 1, 1}, .lk = {203, 1025, 7}, .h = 16,  .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64},
  {.name = "mla_h128",          .batch = 1, .lq = {1},       .lk = {64},           .h = 128, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64,  .lse = 1},
  {.name = "mla_splits3_bf16",  .batch = 2, .lq = {3, 1},    .lk = {203, 113},     .h = 16,  .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 16,  .causal = 1, .one_cache = 1, .lse = 1, .num_splits = 3},
};

/* Latent shapes off DeepSeek's 512/64, for the tensor-core kernel's warp
 * split: Dc/32 odd (each warp's Dc/4 output dims end in one n-block of 8
 * instead of a pair) and (Dc + Dr)/16 = 0, 1, 2, 3 mod 4 (the four warps of
 * a row group get unequal k-steps; 128/16: one gets none). Few and small on
 * purpose, in three groups: the emulated PoCL runs build one kernel per
 * shape (10-50 s of CPU each). */
static const mla_case mla_odd_cases[] = {
  {.name = "mla_dc96_dr32_f16",   .batch = 2, .lq = {1, 1}, .lk = {37, 16},  .h = 8,  .dc = 96,  .dr = 32, .dtype = PA_F16,  .page_size = 16, .lse = 1},
  {.name = "mla_dc160_dr64_bf16", .batch = 2, .lq = {2, 1}, .lk = {40, 9},   .h = 5,  .dc = 160, .dr = 64, .dtype = PA_BF16, .page_size = 16, .causal = 1, .lse = 1},
};

/* DeepSeek's width less one pair of n-blocks: the largest kernel (about
 * half of these groups' build time), so a group of its own. */
static const mla_case mla_odd480_cases[] = {
  {.name = "mla_dc480_dr64_f16",  .batch = 1, .lq = {1},    .lk = {50},      .h = 4,  .dc = 480, .dr = 64, .dtype = PA_F16,  .page_size = 64, .one_cache = 1, .lse = 1},
};

static const mla_case mla_ksteps_cases[] = {
  {.name = "mla_dc128_dr16_bf16", .batch = 2, .lq = {3, 1}, .lk = {20, 48},  .h = 6,  .dc = 128, .dr = 16, .dtype = PA_BF16, .page_size = 16, .causal = 1, .lse = 1},
  {.name = "mla_dc96_dr80_f16",   .batch = 1, .lq = {1},    .lk = {45},      .h = 8,  .dc = 96,  .dr = 80, .dtype = PA_F16,  .page_size = 32, .lse = 1, .num_splits = 2},
};

/* fp8 K/V (scale per tensor or per KV head) against the oracle on the
 * dequantised values: decode, prefill, paged (NHD, HND), GQA, splits, MLA. */
static const attn_case fp8_cases[] = {
  {.name = "fp8_decode_e4m3",     .batch = 3, .lq = {1, 1, 1}, .lk = {1025, 203, 7}, .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .kv8 = PA_FP8_E4M3, .opts = AO_LSE},
  {.name = "fp8_decode_e5m2_head",.batch = 2, .lq = {1, 1},    .lk = {203, 1025},    .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16,  .page_size = 64, .kv8 = PA_FP8_E5M2, .opts = AO_LSE | AO_SCALE_HEAD},
  {.name = "fp8_gqa32_8_head",    .batch = 2, .lq = {1, 1},    .lk = {113, 1025},    .hq = 32, .hkv = 8, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_SCALE_HEAD},
  {.name = "fp8_prefill_e4m3",    .batch = 2, .lq = {113, 7},  .lk = {113, 203},     .hq = 4, .hkv = 2, .dqk = 128, .dtype = PA_BF16, .causal = 1, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_SCALE_HEAD},
  {.name = "fp8_prefill_f32_d64", .batch = 1, .lq = {203},     .lk = {203},          .hq = 2, .hkv = 1, .dqk = 64, .dtype = PA_F32, .causal = 1, .page_size = 16, .kv8 = PA_FP8_E5M2, .opts = AO_LSE},
  {.name = "fp8_paged_hnd_d59",   .batch = 2, .lq = {3, 1},    .lk = {77, 203},      .hq = 6, .hkv = 3, .dqk = 59, .dtype = PA_F16, .causal = 1, .page_size = 16, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_HND | AO_SCALE_HEAD},
  {.name = "fp8_splits5",         .batch = 2, .lq = {1, 2},    .lk = {1025, 203},    .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_BF16, .causal = 1, .page_size = 16, .num_splits = 5, .kv8 = PA_FP8_E4M3, .opts = AO_LSE},
  /* the CUDA decode kernel's paths: contiguous K/V (keys fetched one tile ahead), a page
   * size that is not a multiple of 16, a window (masked tiles with the permuted key order) */
  {.name = "fp8_decode_contig",   .batch = 2, .lq = {1, 1},    .lk = {77, 1031},     .hq = 8, .hkv = 2, .dqk = 128, .dtype = PA_F16, .kv8 = PA_FP8_E5M2, .opts = AO_LSE},
  {.name = "fp8_decode_pg8_win",  .batch = 2, .lq = {1, 1},    .lk = {203, 531},     .hq = 16, .hkv = 4, .dqk = 128, .dtype = PA_BF16, .page_size = 8, .wl = 100, .wr = 0, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_WINDOW | AO_SCALE_HEAD},
  {.name = "fp8_prefill_pg_win",  .batch = 2, .lq = {130, 64}, .lk = {300, 64},      .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_F16, .causal = 1, .wl = 70, .wr = 0, .page_size = 16, .kv8 = PA_FP8_E5M2, .opts = AO_LSE | AO_WINDOW | AO_SCALE_HEAD},
  {.name = "fp8_ragged_d80",      .batch = 2, .lq = {7, 1},    .lk = {113, 203},     .hq = 4, .hkv = 2, .dqk = 80, .dtype = PA_F32, .causal = 1, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_SCALE_HEAD},
  /* decodes that form CPU head groups (attention.c's grouped driver) */
  {.name = "fp8_grouped_long_e4m3", .batch = 1, .lq = {1}, .lk = {3001}, .hq = 32, .hkv = 8, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .kv8 = PA_FP8_E4M3, .opts = AO_LSE | AO_SCALE_HEAD},
  {.name = "fp8_grouped_b4_e5m2",   .batch = 4, .lq = {1, 1, 1, 2}, .lk = {1025, 203, 517, 64}, .hq = 16, .hkv = 4, .dqk = 128, .dtype = PA_F16, .page_size = 64, .kv8 = PA_FP8_E5M2, .opts = AO_LSE},
  {.name = "fp8_grouped_bf16_e5m2", .batch = 1, .lq = {1}, .lk = {2500}, .hq = 32, .hkv = 8, .dqk = 128, .dtype = PA_BF16, .page_size = 16, .kv8 = PA_FP8_E5M2, .opts = AO_LSE | AO_SCALE_HEAD},
};

static const mla_case fp8_mla_cases[] = {
  {.name = "fp8_mla_e4m3",        .batch = 3, .lq = {1, 1, 1}, .lk = {203, 1025, 7}, .h = 16, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64, .lse = 1, .kv8 = PA_FP8_E4M3},
  {.name = "fp8_mla_onecache_e5m2", .batch = 2, .lq = {2, 1},  .lk = {113, 203},     .h = 8,  .dc = 512, .dr = 64, .dtype = PA_F16, .page_size = 16, .causal = 1, .one_cache = 1, .lse = 1, .kv8 = PA_FP8_E5M2},
};
/* The shapes the sm_90 MLA kernel serves (Dc 512, Dr 64, f16/bf16): MTP 1, 2
 * and 4 query tokens (causal, heads x tokens packed into 64-row tiles), heads
 * 16..128, pages 16/32/64/128 and an odd 17, ragged lengths with 0 and 1,
 * forced splits; each run twice and compared bit for bit. */
static const mla_case mla_fast_cases[] = {
  {.name = "mla_fast_mtp1_h16_ragged", .batch = 4, .lq = {1, 1, 1, 1}, .lk = {0, 1, 777, 130}, .h = 16, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 16, .lse = 1},
  {.name = "mla_fast_mtp2_h32_p32",    .batch = 2, .lq = {2, 2},       .lk = {2, 1500},        .h = 32, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 32, .causal = 1, .lse = 1},
  {.name = "mla_fast_mtp4_h16_p128",   .batch = 3, .lq = {4, 4, 4},    .lk = {4, 300, 1100},   .h = 16, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 128, .causal = 1, .lse = 1},
  {.name = "mla_fast_mtp2_h64_f16",    .batch = 2, .lq = {2, 1},       .lk = {513, 65},        .h = 64, .dc = 512, .dr = 64, .dtype = PA_F16,  .page_size = 64, .causal = 1, .lse = 1},
  {.name = "mla_fast_mtp1_h128_ragged",.batch = 3, .lq = {1, 1, 1},    .lk = {1, 0, 1000},     .h = 128, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64, .lse = 1},
  {.name = "mla_fast_mtp4_h128_p17",   .batch = 1, .lq = {4},          .lk = {203},            .h = 128, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 17, .causal = 1, .lse = 1},
  {.name = "mla_fast_splits5_h128",    .batch = 2, .lq = {1, 2},       .lk = {1200, 300},      .h = 128, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64, .causal = 1, .lse = 1, .num_splits = 5},
};

/* The same shapes with fp8 ckv/kpe (CUDA: the seesaw kernel under
 * dev.cuda.mla_fp8=1, the generic kernel otherwise), run twice as above. */
static const mla_case fp8_mla_fast_cases[] = {
  {.name = "fp8_mla_fast_e4m3_h128_mtp2", .batch = 3, .lq = {2, 1, 2}, .lk = {2, 0, 900},  .h = 128, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64, .causal = 1, .lse = 1, .kv8 = PA_FP8_E4M3},
  {.name = "fp8_mla_fast_e5m2_f16_h64",   .batch = 2, .lq = {1, 2},    .lk = {513, 64},    .h = 64,  .dc = 512, .dr = 64, .dtype = PA_F16,  .page_size = 32, .causal = 1, .lse = 1, .kv8 = PA_FP8_E5M2},
  {.name = "fp8_mla_fast_e4m3_splits4",   .batch = 2, .lq = {1, 1},    .lk = {2000, 1},    .h = 128, .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 64, .lse = 1, .num_splits = 4, .kv8 = PA_FP8_E4M3},
  {.name = "fp8_mla_fast_onecache_p128",  .batch = 1, .lq = {2},       .lk = {300},        .h = 32,  .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 128, .causal = 1, .one_cache = 1, .lse = 1, .kv8 = PA_FP8_E4M3},
  {.name = "fp8_mla_fast_e5m2_h16_p16",   .batch = 2, .lq = {4, 1},    .lk = {777, 130},   .h = 16,  .dc = 512, .dr = 64, .dtype = PA_BF16, .page_size = 16, .causal = 1, .lse = 1, .kv8 = PA_FP8_E5M2},
};
/* clang-format on */

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static void run_attn(const char *target, const attn_case *cases, int n) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    attn_problem p;
    char why[1024];
    pa_status s = attn_setup(&p, ctx, &cases[i]);
    if (s == PA_OK) s = attn_execute(&p, NULL, NULL);
    if (s != PA_OK) {
      cr_expect(0, "[%s] case %s: %s", target, cases[i].name, p.msg);
    } else {
      attn_reference(&p);
      bool ok = attn_check(&p, target, why, sizeof why);
      cr_expect(ok, "%s", why);
      if (ok) cr_log_info("%s (%.0f ms)", why, now_ms() - t0);
    }
    attn_free(&p);
  }
  pa_context_destroy(ctx);
}

/* Bitwise determinism: the same problem run twice gives the same bytes
 * (O and LSE; the outputs are poisoned again before the second run). */
static void run_repeat(const char *target, const attn_case *cases, int n) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int i = 0; i < n; i++) {
    attn_problem p;
    pa_status s = attn_setup(&p, ctx, &cases[i]);
    if (s == PA_OK) s = attn_execute(&p, NULL, NULL);
    unsigned char *o0 = NULL, *l0 = NULL;
    if (s == PA_OK) {
      o0 = malloc(p.out.bytes);
      l0 = malloc(p.lse.bytes ? p.lse.bytes : 1);
      cr_assert(o0 && l0);
      memcpy(o0, p.out.back, p.out.bytes);
      if (p.lse.bytes) memcpy(l0, p.lse.back, p.lse.bytes);
      s = attn_execute(&p, NULL, NULL);
    }
    if (s != PA_OK) {
      cr_expect(0, "[%s] case %s: %s", target, cases[i].name, p.msg);
    } else {
      cr_expect(!memcmp(o0, p.out.back, p.out.bytes), "[%s] %s: O differs between two runs", target,
                cases[i].name);
      cr_expect(!p.lse.bytes || !memcmp(l0, p.lse.back, p.lse.bytes),
                "[%s] %s: LSE differs between two runs", target, cases[i].name);
    }
    free(o0);
    free(l0);
    attn_free(&p);
  }
  pa_context_destroy(ctx);
}

static void run_mla(const char *target, const mla_case *cases, int n) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    mla_problem p;
    char why[1024];
    pa_status s = mla_setup(&p, ctx, &cases[i]);
    if (s == PA_OK) s = mla_execute(&p);
    if (s != PA_OK) {
      cr_expect(0, "[%s] case %s: %s", target, cases[i].name, p.msg);
    } else {
      mla_reference(&p);
      bool ok = mla_check(&p, target, why, sizeof why);
      cr_expect(ok, "%s", why);
      if (ok) cr_log_info("%s (%.0f ms)", why, now_ms() - t0);
    }
    mla_free(&p);
  }
  pa_context_destroy(ctx);
}

/* The MLA table, each case run twice: both runs bitwise the same (out and
 * LSE), then checked against the oracle. */
static void run_mla_repeat(const char *target, const mla_case *cases, int n) {
  pa_context *ctx = tu_open_or_skip(target);
  for (int i = 0; i < n; i++) {
    double t0 = now_ms();
    mla_problem p;
    char why[1024];
    unsigned char *first = NULL, *first_lse = NULL;
    pa_status s = mla_setup(&p, ctx, &cases[i]);
    if (s == PA_OK) s = mla_execute(&p);
    if (s == PA_OK) {
      first = malloc(p.out.bytes);
      first_lse = malloc(p.lse.bytes ? p.lse.bytes : 1);
      cr_assert(first && first_lse, "out of host memory");
      memcpy(first, p.out.back, p.out.bytes);
      if (p.lse.bytes) memcpy(first_lse, p.lse.back, p.lse.bytes);
      s = mla_execute(&p);
    }
    if (s != PA_OK) {
      cr_expect(0, "[%s] case %s: %s", target, cases[i].name, p.msg);
    } else {
      cr_expect(!memcmp(first, p.out.back, p.out.bytes) &&
                    (!p.lse.bytes || !memcmp(first_lse, p.lse.back, p.lse.bytes)),
                "[%s] case %s: two runs of one plan differ bitwise", target, cases[i].name);
      mla_reference(&p);
      bool ok = mla_check(&p, target, why, sizeof why);
      cr_expect(ok, "%s", why);
      if (ok) cr_log_info("%s, repeat bitwise equal (%.0f ms)", why, now_ms() - t0);
    }
    free(first);
    free(first_lse);
    mla_free(&p);
  }
  pa_context_destroy(ctx);
}

#define GROUP_ON(tgt, group, runner, table)                                                       \
  Test(tgt, group, .timeout = 300) { runner(#tgt, table, TU_LEN(table)); }
#define GROUP(group, runner, table)                                                               \
  GROUP_ON(cpu_scalar, group, runner, table)                                                      \
  GROUP_ON(cpu_avx2, group, runner, table)                                                        \
  GROUP_ON(cpu_avx512, group, runner, table)                                                      \
  GROUP_ON(cpu_neon, group, runner, table)                                                        \
  GROUP_ON(cpu_avx512bf16, group, runner, table)                                                  \
  GROUP_ON(cuda, group, runner, table)                                                            \
  GROUP_ON(opencl, group, runner, table)

GROUP(headdim, run_attn, headdim_cases)
GROUP(headdim_generic, run_attn, headdim_generic_cases)
GROUP(prefill, run_attn, prefill_cases)
GROUP(gqa, run_attn, gqa_cases)
GROUP(tile_edges, run_attn, tile_edge_cases)
GROUP(tile_edges_repeat, run_repeat, tile_edge_cases)
GROUP(paged, run_attn, paged_cases)
GROUP(layout, run_attn, layout_cases)
GROUP(mask, run_attn, mask_cases)
GROUP(features, run_attn, feature_cases)
GROUP(dtype, run_attn, dtype_cases)
GROUP(mla, run_mla, mla_cases)
GROUP(mla_bf16, run_mla, mla_bf16_cases)
GROUP(mla_shapes_odd, run_mla, mla_odd_cases)
GROUP(mla_shapes_odd480, run_mla, mla_odd480_cases)
GROUP(mla_shapes_ksteps, run_mla, mla_ksteps_cases)
GROUP(fp8, run_attn, fp8_cases)
GROUP(fp8_mla, run_mla, fp8_mla_cases)
GROUP(mla_fast, run_mla_repeat, mla_fast_cases)
GROUP(fp8_mla_fast, run_mla_repeat, fp8_mla_fast_cases)

/* The CPU backend's vtable: context (ISA choice, thread pool, scratch),
 * host buffers, the kernel selector. The operations live in attention.c,
 * mla.c, merge.c and gemm.c. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */
#endif
#include "cpu.h"
#include "fault.h"

#ifdef __linux__
#include <sys/mman.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int online_cores(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

static int64_t host_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? (int64_t)pages * page : 0;
}

/* "model name" from /proc/cpuinfo where there is one, else "cpu". */
static void cpu_model(char *dst, size_t n) {
  snprintf(dst, n, "cpu");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f) return;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "model name", 10) != 0) continue;
    char *v = strchr(line, ':');
    if (!v) break;
    v++;
    while (*v == ' ' || *v == '\t') v++;
    v[strcspn(v, "\n")] = 0;
    if (*v) snprintf(dst, n, "%s", v);
    break;
  }
  fclose(f);
}

static void fill_info(pa_device_info *info, int threads, pa_cpu_isa isa) {
  memset(info, 0, sizeof *info);
  cpu_model(info->name, sizeof info->name);
  info->backend = PA_BACKEND_CPU;
  info->compute_units = threads;
  info->global_mem = host_memory();
#ifdef _SC_LEVEL2_CACHE_SIZE
  long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
  info->shared_mem = l2 > 0 ? l2 : 0;
#endif
  snprintf(info->features, sizeof info->features, "isa=%s", pa_cpu_isa_name(isa));
}

static pa_status cpu_device_count(int *count) {
  *count = 1;
  return PA_OK;
}

static pa_status cpu_device_info(int device, pa_device_info *info) {
  if (device != 0 && device != -1)
    return pa_fail(NULL, PA_ERR_NO_DEVICE, "cpu: device=%d but there is only device 0", device);
  fill_info(info, online_cores(), pa_cpu_isa_best());
  return PA_OK;
}

/* cpu.isa (PA_CPU_ISA) forces an ISA; otherwise the best the host runs. */
static pa_status choose_isa(pa_context *ctx, pa_cpu_isa *isa) {
  static const char *const names[] = {"auto", "scalar", "avx2", "avx512", "neon", "avx512bf16"};
  if (ctx->cfg.cpu_isa == PA_CFG_ISA_AUTO) {
    *isa = pa_cpu_isa_best();
    return PA_OK;
  }
  const char *env = names[ctx->cfg.cpu_isa];
  int want = pa_cpu_isa_parse(env);
  if (want < 0)
    return pa_fail(ctx, PA_ERR_UNSUPPORTED,
                   "cpu.isa=%s is not one of scalar, avx2, avx512, avx512bf16, neon", env);
  if (!pa_cpu_isa_kernels((pa_cpu_isa)want))
    return pa_fail(ctx, PA_ERR_UNSUPPORTED, "cpu.isa=%s: not built into this library", env);
  if (!pa_cpu_isa_host((pa_cpu_isa)want))
    return pa_fail(ctx, PA_ERR_UNSUPPORTED, "cpu.isa=%s: this CPU (or OS) does not support it",
                   env);
  *isa = (pa_cpu_isa)want;
  return PA_OK;
}

static pa_status cpu_create(pa_context *ctx, int device, const pa_context_desc *desc,
                            void **state) {
  if (device != 0 && device != -1)
    return pa_fail(ctx, PA_ERR_NO_DEVICE, "cpu: device=%d but there is only device 0", device);
  int threads = desc ? desc->num_threads : 0;
  if (threads < 0)
    return pa_fail(ctx, PA_ERR_INVALID_ARGUMENT, "num_threads=%d must be >= 0", threads);
  if (threads == 0) threads = online_cores();
  pa_cpu_isa isa = PA_ISA_SCALAR;
  pa_status s = choose_isa(ctx, &isa);
  if (s != PA_OK) return s;

  pa_cpu_state *st = PA_FAULT_OR(calloc(1, sizeof *st));
  if (!st) return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cpu: context state");
  if (pa_pool_create(threads, &st->pool) != PA_OK) {
    free(st);
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cpu: thread pool of %d", threads);
  }
  st->threads = pa_pool_threads(st->pool);
  st->isa = isa;
  st->kern = pa_cpu_isa_kernels(isa);

  fill_info(&ctx->info, st->threads, isa);
  /* Splits must not follow the thread count, or a result would change with
   * it (another split is another summation order): the split policy sees a
   * fixed number of units, at least PA_CPU_SPLIT_UNITS, so one long request
   * is cut into enough splits for every thread of any host up to that many
   * and the same splits whatever the thread count. */
  int units = PA_CPU_SPLIT_UNITS;
  while (units < st->threads) units *= 2;
  ctx->props.compute_units = units;
  ctx->props.slots_per_unit = 1;
  ctx->props.host_memory = 1;
  ctx->props.min_kv_per_split = 256;
  ctx->props.max_splits = 64;
  *state = st;
  pa_log(2, "cpu: %d threads, isa=%s", st->threads, pa_cpu_isa_name(isa));
  return PA_OK;
}

static void cpu_destroy(pa_context *ctx) {
  pa_cpu_state *st = pa_cpu(ctx);
  if (!st) return;
  pa_pool_destroy(st->pool);
  free(st->scratch);
  free(st);
  ctx->state = NULL;
}

pa_status pa_cpu_reserve(pa_context *ctx, size_t bytes) {
  pa_cpu_state *st = pa_cpu(ctx);
  bytes = (bytes + 63) & ~(size_t)63;
  if (bytes <= st->scratch_bytes) return PA_OK;
  if (bytes > SIZE_MAX / (size_t)st->threads)
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cpu: scratch of %zu bytes per thread", bytes);
  void *p = NULL;
  if (pa_fault_hit() || posix_memalign(&p, 64, bytes * (size_t)st->threads) != 0)
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cpu: scratch of %zu bytes x %d threads", bytes,
                   st->threads);
  free(st->scratch);
  st->scratch = p;
  st->scratch_bytes = bytes;
  return PA_OK;
}

/* Buffers of HUGE_BYTES and more (KV caches) sit on 2 MiB pages where the
 * kernel gives them (transparent huge pages, madvise mode included): a
 * decode walks a cache page by page, and on 4 KiB pages each 4 KiB of K
 * or V costs a TLB miss that the software prefetches wait behind. */
#define HUGE_BYTES ((size_t)4 << 20)
#define HUGE_ALIGN ((size_t)2 << 20)

static pa_status cpu_buf_alloc(pa_context *ctx, size_t bytes, void **handle) {
  void *p = NULL;
  const size_t align = bytes >= HUGE_BYTES ? HUGE_ALIGN : 64;
  if (pa_fault_hit() || posix_memalign(&p, align, bytes ? bytes : 64) != 0)
    return pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "cpu: buffer of %zu bytes", bytes);
#ifdef MADV_HUGEPAGE
  if (align == HUGE_ALIGN) (void)madvise(p, bytes & ~(HUGE_ALIGN - 1), MADV_HUGEPAGE);
#endif
  *handle = p;
  return PA_OK;
}

static void cpu_buf_free(pa_context *ctx, void *handle) {
  (void)ctx;
  free(handle);
}

static pa_status cpu_buf_write(pa_context *ctx, void *handle, size_t off, const void *src,
                               size_t n) {
  (void)ctx;
  if (n) memcpy((char *)handle + off, src, n);
  return PA_OK;
}

static pa_status cpu_buf_read(pa_context *ctx, void *handle, size_t off, void *dst, size_t n) {
  (void)ctx;
  if (n) memcpy(dst, (const char *)handle + off, n);
  return PA_OK;
}

/* One kernel family per ISA handles every head dim, dtype and mask; there is
 * nothing to refuse. */
static pa_status cpu_select(pa_context *ctx, const pa_plan *plan, pa_kernel_choice *choice) {
  const pa_cpu_state *st = pa_cpu(ctx);
  /* Decode-like plans run their items in head groups (attention.c): a thread
   * runs a whole group of up to PA_CPU_GROUP_MAX KV heads at once, so the
   * split policy counts groups, not heads, and cuts one request into as many
   * groups as two waves of PA_CPU_SPLIT_UNITS need (b1 32/8 L8192: 32 splits
   * of 256 keys, 32 groups of 8 heads, each reading whole pages). Other
   * plans: one item per thread. */
  const int hkv = plan->desc.num_kv_heads;
  const int grouped = plan->op == PA_OP_ATTENTION && hkv > 1 &&
                      (int64_t)plan->max_len_q * plan->group <= PA_CPU_GROUP_ROWS;
  choice->kv_heads_per_item = grouped ? (hkv < PA_CPU_GROUP_MAX ? hkv : PA_CPU_GROUP_MAX) : 1;
  /* Core cuts the work list into head groups and runs them in (request, KV
   * head) runs, heaviest first: a thread's next group then mostly rereads
   * the keys of its last one while they are still cached. */
  choice->head_group_rows = PA_CPU_GROUP_ROWS;
  choice->head_group_max = PA_CPU_GROUP_MAX;
  choice->q_tile_rows = PA_CPU_Q_TILE;
  choice->kv_align = PA_CPU_BLOCK_KV;
  choice->name = st->kern->name;
  return PA_OK;
}

static pa_status cpu_plan_ready(pa_context *ctx, const pa_plan *plan, pa_plan_state *state) {
  pa_status s = pa_cpu_plan_groups(ctx, plan, state);
  if (s == PA_OK) s = pa_cpu_reserve(ctx, pa_cpu_attention_scratch(plan, state->data));
  if (s != PA_OK && state->free_fn) state->free_fn(state->data);
  if (s != PA_OK) *state = (pa_plan_state){NULL, NULL};
  return s;
}

static pa_status cpu_synchronize(pa_context *ctx) {
  (void)ctx; /* work runs to completion inside each call */
  return PA_OK;
}

const pa_backend_ops pa_cpu_backend = {
    .abi_version = PA_BACKEND_ABI,
    .kind = PA_BACKEND_CPU,
    .name = "cpu",
    .device_count = cpu_device_count,
    .device_info = cpu_device_info,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .buf_wrap = NULL,
    .buf_unwrap = NULL,
    .buf_write = cpu_buf_write,
    .buf_read = cpu_buf_read,
    .select = cpu_select,
    .plan_ready = cpu_plan_ready,
    .attention = pa_cpu_attention,
    .mla = pa_cpu_mla,
    .merge = pa_cpu_merge,
    .head_gemm = pa_cpu_head_gemm,
    .synchronize = cpu_synchronize,
    .append = pa_cpu_append,
};

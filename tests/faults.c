/* Fault injection (built with -Dfault_injection=true, see core/fault.h): the
 * N-th allocation of the library fails, for N = 1, 2, ... through context
 * creation, buffers, plan, run, synchronise and destroy, on the CPU and on
 * OpenCL. Every failure must return PA_ERR_OUT_OF_MEMORY or PA_ERR_BACKEND
 * with a message, leave the output as it was, and leak nothing (LSan, in the
 * sanitizer build). The walk ends at the first N past the last allocation.
 *
 * Also on OpenCL: corrupt or truncated program-cache files are rebuilt, not
 * trusted; two processes sharing one cache folder both succeed. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <criterion/criterion.h>
#include <dirent.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attn_case.h"
#include "fault.h"

extern char **environ;

/* clang-format off */
/* GQA decode with forced splits (workspace, combine) and a paged prefill. */
static const attn_case fault_cases[] = {
  {.name = "splits3",      .batch = 2, .lq = {1, 2}, .lk = {1025, 203}, .hq = 4, .hkv = 1, .dqk = 128, .dtype = PA_F32, .causal = 1, .num_splits = 3, .opts = AO_LSE},
  {.name = "pg16_prefill", .batch = 1, .lq = {203}, .lk = {203},        .hq = 2, .hkv = 1, .dqk = 64,  .dtype = PA_F32, .causal = 1, .page_size = 16, .opts = AO_LSE},
  {.name = "g3",           .batch = 2, .lq = {1, 3}, .lk = {203, 1025}, .hq = 6, .hkv = 2, .dqk = 128, .dtype = PA_F16, .causal = 1},
};
/* clang-format on */

static bool is_alloc_failure(pa_status s) {
  return s == PA_ERR_OUT_OF_MEMORY || s == PA_ERR_BACKEND;
}

static const char *cache_dir(void) {
  const char *d = getenv("PA_TEST_CACHE_DIR");
  if (d && *d) mkdir(d, 0755);
  return d && *d ? d : NULL;
}

/* One pass with the N-th allocation failing. Returns true when no fault was
 * hit (the walk is over). */
static bool one_pass(const tu_target *t, const attn_case *c, long n) {
  pa_context_desc d = {.backend = t->backend, .device = -1, .cache_dir = cache_dir()};
  pa_context *ctx = NULL;
  pa_fault_arm(n);
  pa_status s = pa_context_create(&d, &ctx);
  if (s != PA_OK) {
    pa_fault_arm(0);
    cr_assert(is_alloc_failure(s), "[%s] N=%ld pa_context_create: %s", t->name, n,
              pa_status_str(s));
    cr_assert(ctx == NULL, "[%s] N=%ld: failed pa_context_create set *out", t->name, n);
    return false;
  }
  attn_problem p;
  s = attn_setup(&p, ctx, c);
  bool ran = false;
  if (s == PA_OK) {
    s = attn_execute(&p, NULL, NULL);
    ran = true;
  }
  long hits = pa_fault_hits();
  pa_fault_arm(0);
  bool over = hits < n;
  if (s != PA_OK) {
    cr_assert(!over, "[%s] N=%ld: %s failed without an injected fault: %s", t->name, n, c->name,
              p.msg);
    cr_expect(is_alloc_failure(s), "[%s] %s N=%ld: status %s (%s)", t->name, c->name, n,
              pa_status_str(s), p.msg);
    const char *msg = pa_context_last_error(ctx);
    cr_expect(msg && *msg, "[%s] %s N=%ld: %s without a message", t->name, c->name, n,
              pa_status_str(s));
    /* a failed plan or run leaves the output as it was: still poisoned */
    if (ran && p.out.buf) {
      cr_assert(tu_tensor_download(&p.out) == PA_OK);
      cr_expect(tu_unchanged(&p.out), "[%s] %s N=%ld: failed with %s but wrote the output", t->name,
                c->name, n, pa_status_str(s));
    }
  } else {
    attn_reference(&p);
    char why[1024];
    cr_expect(attn_check(&p, t->name, why, sizeof why), "N=%ld: %s", n, why);
  }
  attn_free(&p);
  pa_context_destroy(ctx);
  return over;
}

static void walk(const char *target) {
  pa_context_destroy(tu_open_or_skip(target)); /* skips when the target is absent */
  const tu_target *t = tu_target_find(target);
  for (int c = 0; c < TU_LEN(fault_cases); c++) {
    long n = 1;
    while (!one_pass(t, &fault_cases[c], n)) {
      n++;
      cr_assert(n < 2000, "[%s] %s: more than 2000 allocations?", target, fault_cases[c].name);
    }
    cr_log_info("[%s] %s: every one of %ld allocations failed once, cleanly", target,
                fault_cases[c].name, n - 1);
  }
}

Test(cpu_avx2, walk, .timeout = 300) { walk("cpu_avx2"); }
Test(cpu_scalar, walk, .timeout = 300) { walk("cpu_scalar"); }
Test(opencl, walk, .timeout = 300) { walk("opencl"); }

/* ---- the on-disk program cache ---- */

static void fresh_dir(char *dir, size_t n, const char *tag) { /* n <= 1100 */
  const char *base = getenv("PA_TEST_CACHE_DIR");
  snprintf(dir, n, "%s/../faults-%s-XXXXXX", base && *base ? base : "/tmp", tag);
  cr_assert(mkdtemp(dir) != NULL, "mkdtemp %s", dir);
}

static void remove_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  char path[1500];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    remove(path);
  }
  closedir(d);
  rmdir(dir);
}

/* Runs fault_cases[0..2) with a context on cache_dir; true when both pass. */
static bool run_with_cache(const char *dir, char *why, size_t n) {
  pa_context_desc d = {.backend = PA_BACKEND_OPENCL, .device = -1, .cache_dir = dir};
  pa_context *ctx = NULL;
  pa_status s = pa_context_create(&d, &ctx);
  if (s != PA_OK) {
    snprintf(why, n, "pa_context_create: %s", pa_status_str(s));
    return false;
  }
  bool ok = true;
  for (int c = 0; c < 2 && ok; c++) {
    attn_problem p;
    s = attn_setup(&p, ctx, &fault_cases[c]);
    if (s == PA_OK) s = attn_execute(&p, NULL, NULL);
    if (s != PA_OK) {
      snprintf(why, n, "%s: %s", fault_cases[c].name, p.msg);
      ok = false;
    } else {
      attn_reference(&p);
      ok = attn_check(&p, "opencl", why, n);
    }
    attn_free(&p);
  }
  pa_context_destroy(ctx);
  return ok;
}

Test(opencl, corrupt_cache, .timeout = 300) {
  pa_context_destroy(tu_open_or_skip("opencl"));
  char dir[1100], why[1024];
  fresh_dir(dir, sizeof dir, "corrupt");
  cr_assert(run_with_cache(dir, why, sizeof why), "cold: %s", why);
  /* every entry damaged: truncated to half, emptied, or bytes flipped mid-file */
  DIR *d = opendir(dir);
  cr_assert(d);
  struct dirent *e;
  int n = 0;
  char path[1500];
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    struct stat sb;
    cr_assert(stat(path, &sb) == 0);
    FILE *f = fopen(path, "r+b");
    cr_assert(f);
    if (n % 3 == 0) {
      cr_assert(ftruncate(fileno(f), sb.st_size / 2) == 0);
    } else if (n % 3 == 1) {
      cr_assert(ftruncate(fileno(f), 0) == 0);
    } else {
      fseek(f, sb.st_size / 2, SEEK_SET);
      char junk[64];
      memset(junk, 0x5A, sizeof junk);
      fwrite(junk, 1, sizeof junk, f);
    }
    fclose(f);
    n++;
  }
  closedir(d);
  cr_assert(n > 0, "no cache entries were written in %s", dir);
  cr_assert(run_with_cache(dir, why, sizeof why), "after damaging %d entries: %s", n, why);
  cr_log_info("opencl: %d damaged cache entries, the run still passed", n);
  remove_dir(dir);
}

/* Run by shared_cache_two_processes in two fresh processes (fork would copy
 * the driver's threads' locks); skipped otherwise. */
Test(opencl, shared_cache_child, .timeout = 300) {
  const char *dir = getenv("PA_TEST_SHARED_CACHE");
  if (!dir) cr_skip_test("runs only as a child of opencl/shared_cache_two_processes");
  pa_context_destroy(tu_open_or_skip("opencl"));
  char why[1024];
  cr_assert(run_with_cache(dir, why, sizeof why), "%s", why);
}

Test(opencl, shared_cache_two_processes, .timeout = 300) {
  pa_context_destroy(tu_open_or_skip("opencl"));
  char dir[1100], self[1024];
  fresh_dir(dir, sizeof dir, "shared");
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  cr_assert(n > 0, "readlink /proc/self/exe");
  self[n] = 0;
  cr_assert(setenv("PA_TEST_SHARED_CACHE", dir, 1) == 0);
  char *argv[] = {self, "--filter=opencl/shared_cache_child", "--jobs=1", NULL};
  /* our environment less Criterion's sandbox variables (BXFI_*: the child
   * would take itself for a sandboxed worker) */
  size_t ne = 0;
  while (environ[ne]) ne++;
  char **env = calloc(ne + 1, sizeof *env);
  cr_assert(env);
  for (size_t i = 0, j = 0; i < ne; i++)
    if (strncmp(environ[i], "BXFI_", 5)) env[j++] = environ[i];
  pid_t kids[2];
  for (int i = 0; i < 2; i++)
    cr_assert(posix_spawn(&kids[i], self, NULL, NULL, argv, env) == 0, "posix_spawn %s", self);
  free(env);
  for (int i = 0; i < 2; i++) {
    int st = 0;
    cr_assert(waitpid(kids[i], &st, 0) == kids[i]);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "process %d sharing %s failed (status %d)", i,
              dir, st);
  }
  unsetenv("PA_TEST_SHARED_CACHE");
  char why[1024];
  cr_expect(run_with_cache(dir, why, sizeof why), "third run, warm shared cache: %s", why);
  remove_dir(dir);
}

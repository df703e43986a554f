/* pa-bench cp-decode / cp-prefill: the context-parallel benches behind
 * pa-bench's flags. The benches themselves are separate programs built with
 * libpolyattn_cp (pa-cp-bench over MPI, pa-cp-bench-nccl over NCCL), so
 * pa-bench links neither MPI nor NCCL: this file maps the flags to their
 * arguments and execs the one next to pa-bench.
 *   MPI (CPU contexts): under a launcher already (OMPI_/PMI_/PMIX_ rank
 *   variables set) pa-bench becomes the rank's program in place (exec);
 *   otherwise it runs `mpirun --oversubscribe -np R` (PA_MPIRUN=prog: that
 *   launcher, given only -np R).
 *   NCCL (CUDA): one process, one thread per GPU, R GPUs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cp_cli.h"
#include "polyattn.h"

static void cp_usage(void) {
  fputs("usage: pa-bench cp-decode|cp-prefill [--ranks R] [--backend cpu|cuda|auto] [options]\n"
        "  --ranks R   MPI ranks (cpu, default 2) or GPUs (cuda, default all)\n"
        "  --backend   cpu: pa-cp-bench over MPI; cuda: pa-cp-bench-nccl; auto (default):\n"
        "              cuda when pa-cp-bench-nccl is built and a CUDA device is present\n"
        "  cp-decode:  --skv N keys per request  -b N  --hq N  --hkv N  -d N  --iters N\n"
        "  cp-prefill: --sq N sequence  --hq N  --hkv N  -d N  --iters N (causal, bf16)\n"
        "  PA_CP_WINDOW, PA_CP_QUERIES, PA_CP_COMBINE pass through (bench/cp_mpi.c)\n",
        stderr);
}

/* The directory of the running pa-bench, with a trailing '/'. */
static void self_dir(const char *argv0, char *dir, size_t n) {
  ssize_t len = readlink("/proc/self/exe", dir, n - 1);
  if (len <= 0) {
    snprintf(dir, n, "%s", argv0);
    len = (ssize_t)strlen(dir);
  }
  dir[len] = 0;
  char *slash = strrchr(dir, '/');
  if (slash)
    slash[1] = 0;
  else
    snprintf(dir, n, "./");
}

static int under_mpi_launcher(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "PMI_RANK"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}

int cp_cli_main(int argc, char **argv) {
  const int decode = strcmp(argv[1], "cp-decode") == 0;
  const char *backend = "auto";
  /* -1: the bench's default. */
  int ranks = -1, keys = -1, b = -1, hq = -1, hkv = -1, d = -1, iters = -1, seq = -1;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
    struct {
      const char *flag;
      int *dst;
    } ints[] = {{"--ranks", &ranks}, {"--skv", &keys}, {"-b", &b},          {"--hq", &hq},
                {"--hkv", &hkv},     {"-d", &d},       {"--iters", &iters}, {"--sq", &seq}};
    int m = 0, n = (int)(sizeof ints / sizeof ints[0]);
    while (m < n && strcmp(a, ints[m].flag)) m++;
    if (m < n && val) {
      *ints[m].dst = atoi(val);
      if (*ints[m].dst < 1) {
        fprintf(stderr, "pa-bench %s: %s=%s must be a positive integer\n", argv[1], a, val);
        return 2;
      }
      i++;
    } else if (!strcmp(a, "--backend") && val) {
      backend = argv[++i];
    } else {
      if (strcmp(a, "-h") && strcmp(a, "--help"))
        fprintf(stderr, "pa-bench %s: unknown or incomplete option '%s'\n", argv[1], a);
      cp_usage();
      return 2;
    }
  }
  char dir[4096], exe[4200];
  self_dir(argv[0], dir, sizeof dir - 32);
  int nccl = 0;
  if (!strcmp(backend, "cuda")) {
    nccl = 1;
  } else if (!strcmp(backend, "auto")) {
    int count = 0;
    snprintf(exe, sizeof exe, "%spa-cp-bench-nccl", dir);
    nccl = access(exe, X_OK) == 0 && pa_device_count(PA_BACKEND_CUDA, &count) == PA_OK && count > 0;
  } else if (strcmp(backend, "cpu")) {
    fprintf(stderr, "pa-bench %s: --backend %s: cpu (MPI), cuda (NCCL) or auto\n", argv[1],
            backend);
    return 2;
  }
  snprintf(exe, sizeof exe, "%spa-cp-bench%s", dir, nccl ? "-nccl" : "");
  if (access(exe, X_OK) != 0) {
    fprintf(stderr, "pa-bench %s: %s not found: it is built with %s (meson -D%s=enabled)\n",
            argv[1], exe, nccl ? "NCCL and CUDA" : "MPI", nccl ? "nccl" : "mpi");
    return 2;
  }

  /* Arguments of the bench, positional (see its header); a flag left out
   * takes the bench's default, so trailing ones may be dropped but inner
   * ones are filled with that same default. */
  char buf[12][16];
  char *args[24];
  int n = 0, nb = 0;
#define NUM(x, dflt) (snprintf(buf[nb], sizeof buf[nb], "%d", (x) > 0 ? (x) : (dflt)), buf[nb++])
  char np[16];
  snprintf(np, sizeof np, "%d", ranks > 0 ? ranks : 2);
  const int launch = !nccl && !under_mpi_launcher();
  const char *mpirun = getenv("PA_MPIRUN");
  if (launch) {
    args[n++] = (char *)(mpirun ? mpirun : "mpirun");
    if (!mpirun) args[n++] = "--oversubscribe";
    args[n++] = "-np";
    args[n++] = np;
  } else if (!nccl && ranks > 0) {
    const char *ws =
        getenv("OMPI_COMM_WORLD_SIZE") ? getenv("OMPI_COMM_WORLD_SIZE") : getenv("PMI_SIZE");
    if (ws && atoi(ws) != ranks) {
      fprintf(stderr, "pa-bench %s: --ranks %d but the launcher started %s ranks\n", argv[1], ranks,
              ws);
      return 2;
    }
  }
  args[n++] = exe;
  args[n++] = decode ? "decode" : "prefill";
  if (nccl) {
    args[n++] = ranks > 0 ? np : "64"; /* the bench caps it at the GPUs present */
    if (decode) {
      args[n++] = NUM(keys, 1 << 20), args[n++] = NUM(b, 1), args[n++] = NUM(hq, 32);
      args[n++] = NUM(hkv, 8), args[n++] = NUM(d, 128), args[n++] = NUM(iters, 50);
    } else {
      args[n++] = NUM(seq, 65536), args[n++] = NUM(hq, 32), args[n++] = NUM(hkv, 8);
      args[n++] = NUM(d, 128), args[n++] = NUM(iters, 5);
    }
  } else if (decode) {
    args[n++] = NUM(b, 8), args[n++] = NUM(hq, 32), args[n++] = NUM(hkv, 8);
    args[n++] = NUM(d, 128), args[n++] = NUM(keys, 4096), args[n++] = NUM(iters, 30);
  } else {
    args[n++] = NUM(seq, 4096), args[n++] = NUM(hq, 8), args[n++] = NUM(d, 128);
    args[n++] = NUM(iters, 5), args[n++] = NUM(hkv, hq > 0 ? hq : 8);
  }
#undef NUM
  args[n] = NULL;
  fflush(stdout);
  if (launch)
    execvp(args[0], args);
  else
    execv(exe, args);
  fprintf(stderr, "pa-bench %s: could not run %s\n", argv[1], launch ? args[0] : exe);
  return 2;
}

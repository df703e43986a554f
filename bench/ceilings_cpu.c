/* CPU ceilings measured in this run: f32 FMA throughput over all threads (the
 * widest ISA cpuid + xgetbv allow) and memory bandwidth (read stream and copy
 * over a buffer several times the last-level cache). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "ceilings_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define BENCH_X86 1
#endif

/* Scalar fallbacks: 8 independent chains. */
float bench_fma_scalar(long iters) {
  float a[8] = {1.f, 1.001f, 1.002f, 1.003f, 1.004f, 1.005f, 1.006f, 1.007f};
  for (long it = 0; it < iters; it++)
    for (int i = 0; i < 8; i++) a[i] = a[i] * 0.999999f + 1e-6f;
  return a[0] + a[1] + a[2] + a[3] + a[4] + a[5] + a[6] + a[7];
}

float bench_read_scalar(const float *p, size_t n) {
  const uint64_t *q = (const uint64_t *)(const void *)p;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (size_t i = 0; i < n / 2; i += 4) {
    s0 += q[i];
    s1 += q[i + 1];
    s2 += q[i + 2];
    s3 += q[i + 3];
  }
  return (float)(s0 ^ s1 ^ s2 ^ s3);
}

typedef float (*fma_fn)(long);
typedef float (*read_fn)(const float *, size_t);

typedef struct isa_choice {
  const char *name;
  fma_fn fma;
  read_fn read;
  double flops_per_iter;
} isa_choice;

static isa_choice pick_isa(void) {
  isa_choice c = {"scalar", bench_fma_scalar, bench_read_scalar, BENCH_SCALAR_FMA_FLOPS};
#ifdef BENCH_X86
  unsigned a, b, cx, d;
  if (!__get_cpuid(1, &a, &b, &cx, &d)) return c;
  int osxsave = (cx >> 27) & 1, fma = (cx >> 12) & 1, avx = (cx >> 28) & 1;
  if (!osxsave || !avx) return c;
  unsigned xlo, xhi;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  int ymm_os = (xlo & 0x6) == 0x6, zmm_os = (xlo & 0xe6) == 0xe6;
  unsigned b7 = 0;
  if (__get_cpuid_max(0, NULL) >= 7) __cpuid_count(7, 0, a, b7, cx, d);
  int avx2 = (b7 >> 5) & 1, avx512f = (b7 >> 16) & 1;
  const char *force = getenv("PA_BENCH_ISA"); /* "scalar", "avx2", "avx512" */
  if (avx512f && zmm_os && (!force || !strcmp(force, "avx512")))
    return (isa_choice){"avx512", bench_fma_avx512, bench_read_avx512, BENCH_AVX512_FMA_FLOPS};
  if (avx2 && fma && ymm_os && (!force || strcmp(force, "scalar")))
    return (isa_choice){"avx2", bench_fma_avx2, bench_read_avx2, BENCH_AVX2_FMA_FLOPS};
#endif
  return c;
}

/* All threads start together behind a barrier; thread 0 times the span
 * between two barriers, so the slowest thread sets the figure. */
typedef struct job {
  pthread_barrier_t *bar;
  isa_choice isa;
  int what; /* 0 fma, 1 read, 2 copy, 3 first touch */
  long iters;
  float *src, *dst;
  size_t n; /* floats for this thread */
  double seconds;
  volatile float sink;
} job;

static void *job_main(void *p) {
  job *j = p;
  pthread_barrier_wait(j->bar);
  double t0 = bench_now();
  switch (j->what) {
  case 0: j->sink = j->isa.fma(j->iters); break;
  case 1: j->sink = j->isa.read(j->src, j->n); break;
  case 2: memcpy(j->dst, j->src, j->n * sizeof(float)); break;
  default: memset(j->src, 1, j->n * sizeof(float)); break;
  }
  pthread_barrier_wait(j->bar);
  j->seconds = bench_now() - t0;
  return NULL;
}

/* Runs what on nt threads (thread 0 is the caller); returns thread 0's span. */
static double run_threads(int nt, job *jobs) {
  pthread_t th[256];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, (unsigned)nt);
  int started = 1;
  for (int i = 0; i < nt; i++) jobs[i].bar = &bar;
  for (int i = 1; i < nt; i++, started++)
    if (pthread_create(&th[i], NULL, job_main, &jobs[i]) != 0) break;
  if (started < nt) { /* could not start all: do not wait on a barrier forever */
    fprintf(stderr, "pa-bench: only %d of %d threads started\n", started, nt);
    exit(1);
  }
  job_main(&jobs[0]);
  for (int i = 1; i < nt; i++) pthread_join(th[i], NULL);
  pthread_barrier_destroy(&bar);
  return jobs[0].seconds;
}

static size_t llc_bytes(void) {
  long v = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
  v = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
  return v > 0 ? (size_t)v : (size_t)32 << 20;
}

void bench_ceilings_cpu(int threads, bench_ceilings *c) {
  memset(c, 0, sizeof *c);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int nt = threads > 0 ? threads : (int)(ncpu > 0 ? ncpu : 1);
  if (nt > 256) nt = 256;
  isa_choice isa = pick_isa();
  job jobs[256];

  /* FMA: calibrate to about 0.2 s, best of 3. */
  long iters = 1 << 20;
  for (;;) {
    for (int i = 0; i < nt; i++) jobs[i] = (job){.isa = isa, .what = 0, .iters = iters};
    double t = run_threads(nt, jobs);
    if (t > 0.05 || iters > (1L << 40)) break;
    iters *= 4;
  }
  double best = 1e30;
  for (int r = 0; r < 3; r++) {
    for (int i = 0; i < nt; i++) jobs[i] = (job){.isa = isa, .what = 0, .iters = iters * 4};
    double t = run_threads(nt, jobs);
    if (t < best) best = t;
  }
  c->flops = (double)nt * (double)iters * 4.0 * isa.flops_per_iter / best;
  snprintf(c->flops_what, sizeof c->flops_what, "f32 FMA (%s, %d threads)", isa.name, nt);

  /* Bandwidth: 4x the LLC, at least 256 MiB, at most 2 GiB; each thread
   * touches its own slice first so pages land near it. */
  size_t bytes = 4 * llc_bytes();
  if (bytes < ((size_t)256 << 20)) bytes = (size_t)256 << 20;
  if (bytes > ((size_t)2 << 30)) bytes = (size_t)2 << 30;
  size_t per =
      (bytes / sizeof(float) / 2 / (size_t)nt) & ~(size_t)1023; /* floats per thread per half */
  float *buf = NULL;
  if (posix_memalign((void **)&buf, 64, per * (size_t)nt * 2 * sizeof(float)) != 0) {
    snprintf(c->note, sizeof c->note, "no memory for the bandwidth buffer");
    return;
  }
  float *src = buf, *dst = buf + per * (size_t)nt;
  for (int i = 0; i < nt; i++)
    jobs[i] = (job){.isa = isa, .what = 3, .src = src + per * i, .n = per};
  run_threads(nt, jobs);
  for (int i = 0; i < nt; i++)
    jobs[i] = (job){.isa = isa, .what = 3, .src = dst + per * i, .n = per};
  run_threads(nt, jobs);

  double best_read = 1e30, best_copy = 1e30;
  for (int r = 0; r < 5; r++) {
    /* read both halves: 2x the bytes of one half */
    for (int i = 0; i < nt; i++)
      jobs[i] = (job){.isa = isa, .what = 1, .src = buf + 2 * per * i, .n = 2 * per};
    double t = run_threads(nt, jobs);
    if (t < best_read) best_read = t;
    for (int i = 0; i < nt; i++)
      jobs[i] = (job){.isa = isa, .what = 2, .src = src + per * i, .dst = dst + per * i, .n = per};
    t = run_threads(nt, jobs);
    if (t < best_copy) best_copy = t;
  }
  double half = (double)per * (double)nt * sizeof(float);
  c->read_bw = 2.0 * half / best_read;
  c->copy_bw = 2.0 * half / best_copy; /* read + write; write-allocate not counted */
  c->bw = c->read_bw;
  snprintf(c->bw_what, sizeof c->bw_what, "read stream");
  snprintf(c->note, sizeof c->note, "bandwidth over %.0f MiB (LLC %.0f MiB), %d threads",
           2.0 * half / (1 << 20), (double)llc_bytes() / (1 << 20), nt);
  free(buf);
}

/* The CPU ceiling kernels, one translation unit per ISA (each built with its
 * own flags, so the rest of pa-bench stays portable). */
#ifndef PA_BENCH_CEILINGS_CPU_H
#define PA_BENCH_CEILINGS_CPU_H

#include <stddef.h>

/* Runs iters rounds of independent FMA chains; returns a value that depends on
 * all of them (so nothing is optimised away). FLOPs per round: *_FMA_FLOPS. */
float bench_fma_scalar(long iters);
float bench_read_scalar(const float *p, size_t n);
#define BENCH_SCALAR_FMA_FLOPS (8 * 2)

#if defined(__x86_64__) || defined(__i386__)
float bench_fma_avx2(long iters);
float bench_read_avx2(const float *p, size_t n);
#define BENCH_AVX2_FMA_FLOPS (12 * 8 * 2)
float bench_fma_avx512(long iters);
float bench_read_avx512(const float *p, size_t n);
#define BENCH_AVX512_FMA_FLOPS (24 * 16 * 2)
#endif

#endif

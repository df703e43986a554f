/* Context parallelism over MPI, run by meson under mpirun (2 and 3 ranks,
 * oversubscribed) on the CPU (all cases) and OpenCL (the quick set: the
 * transport's host staging is the same for every case): cp_cases.c. Not
 * Criterion: its forked workers and MPI do not mix. Usage: test_cp_mpi
 * cpu|opencl. Exit 0 pass, 1 fail, 77 skip (no device). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_cases.h"
#include "polyattn_mpi.h"

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  pa_context *ctx = NULL;
  const char *target = argc > 1 ? argv[1] : "cpu";
  pa_backend be = strcmp(target, "opencl") == 0 ? PA_BACKEND_OPENCL : PA_BACKEND_CPU;
  int count = 0, skip = 0;
  pa_context_desc cd = {
      .backend = be, .device = -1, .num_threads = 1, .cache_dir = getenv("PA_TEST_CACHE_DIR")};
  if (!pa_backend_compiled(be) || pa_device_count(be, &count) != PA_OK || count == 0 ||
      pa_context_create(&cd, &ctx) != PA_OK)
    skip = 1;
  MPI_Allreduce(MPI_IN_PLACE, &skip, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (skip) {
    if (rank == 0) printf("SKIP: no %s device\n", target);
    pa_context_destroy(ctx);
    MPI_Finalize();
    return 77;
  }
  pa_cp *cp = NULL;
  if (pa_cp_create_mpi(ctx, MPI_COMM_WORLD, &cp) != PA_OK) {
    fprintf(stderr, "rank %d: pa_cp_create_mpi failed\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank == 0) printf("%s, %d ranks (%s)\n", target, size, pa_cp_transport(cp));

  int total[2];
  /* PA_CP_FULL=1: every case on OpenCL too (not in CI: PoCL compile time). */
  const bool quick = be == PA_BACKEND_OPENCL && !getenv("PA_CP_FULL");
  total[0] = cp_cases_run(ctx, cp, quick, &total[1]);
  MPI_Allreduce(MPI_IN_PLACE, total, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0)
    printf("%s: %d checks over %d ranks, %d failed\n", target, total[1], size, total[0]);
  pa_cp_destroy(cp);
  pa_context_destroy(ctx);
  MPI_Finalize();
  return total[0] ? 1 : 0;
}

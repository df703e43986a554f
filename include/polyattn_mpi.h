/* polyattn over MPI: context parallelism (polyattn_cp.h) on the caller's
 * MPI communicator, for CPU and OpenCL contexts (CUDA works too, staged
 * through host memory like OpenCL; polyattn_nccl.h is the way there). CPU
 * buffers go to MPI as they are.
 * Link libpolyattn_cp (built when meson finds MPI: -Dmpi=auto). */
#ifndef POLYATTN_MPI_H
#define POLYATTN_MPI_H

#include <mpi.h>

#include "polyattn_cp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Borrows ctx and comm (neither is freed by pa_cp_destroy); comm must stay
 * valid while the handle lives, and is used only from the thread calling
 * polyattn. Collective over comm. Caller owns *out. */
PA_API pa_status pa_cp_create_mpi(pa_context *ctx, MPI_Comm comm, pa_cp **out);

#ifdef __cplusplus
}
#endif
#endif /* POLYATTN_MPI_H */

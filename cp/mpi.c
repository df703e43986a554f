/* The MPI transport. CPU buffers are host memory and go to MPI directly; any
 * other backend's buffers are staged through host copies (pa_buffer_read /
 * pa_buffer_write, which order themselves after the queue's work). */
#include <stdlib.h>
#include <string.h>

#include "cp.h"
#include "polyattn_mpi.h"

typedef struct mpi_state {
  MPI_Comm comm;
  bool host; /* buffers are host pointers */
  MPI_Request req[2];
  /* staging (non-host backends) */
  void *stage[3];
  size_t stage_bytes[3];
  cp_region recv_dst;
  size_t recv_bytes;
} mpi_state;

static mpi_state *st_of(pa_cp *cp) { return (mpi_state *)cp->impl; }

static pa_status mpi_fail(pa_cp *cp, int err, const char *what) {
  char s[MPI_MAX_ERROR_STRING];
  int n = 0;
  MPI_Error_string(err, s, &n);
  return cp_fail(cp, PA_ERR_BACKEND, "%s: MPI error %d (%s)", what, err, s);
}

#define MPI_TRY(call, what)                                                                        \
  do {                                                                                             \
    int e_ = (call);                                                                               \
    if (e_ != MPI_SUCCESS) return mpi_fail(cp, e_, what);                                          \
  } while (0)

static char *host_ptr(cp_region r) { return (char *)pa_buffer_native(r.buf) + r.off; }

/* A host staging area of at least n bytes (slot i). */
static void *stage(pa_cp *cp, int i, size_t n) {
  mpi_state *s = st_of(cp);
  if (s->stage_bytes[i] < n) {
    void *q = realloc(s->stage[i], n);
    if (!q) return NULL;
    s->stage[i] = q;
    s->stage_bytes[i] = n;
  }
  return s->stage[i];
}

/* Host view of a region: the memory itself, or a staged copy (read when `in`). */
static pa_status map(pa_cp *cp, int i, cp_region r, size_t n, bool in, char **out) {
  if (st_of(cp)->host) {
    *out = host_ptr(r);
    return PA_OK;
  }
  if (!(*out = stage(cp, i, n ? n : 1)))
    return cp_fail(cp, PA_ERR_OUT_OF_MEMORY, "staging %zu bytes", n);
  pa_status st = in && n ? pa_buffer_read(r.buf, r.off, *out, n) : PA_OK;
  return st == PA_OK ? st : cp_ctx_fail(cp, st, "staging read");
}

static pa_status unmap(pa_cp *cp, cp_region r, const char *h, size_t n) {
  if (st_of(cp)->host || !n) return PA_OK;
  pa_status st = pa_buffer_write(r.buf, r.off, h, n);
  return st == PA_OK ? st : cp_ctx_fail(cp, st, "staging write");
}

/* The CPU backend runs at once; other queues finish before host access
 * through their blocking read/write. */

static pa_status mpi_host_allgather(pa_cp *cp, const void *src, void *dst, size_t bytes) {
  MPI_TRY(MPI_Allgather(src, (int)bytes, MPI_BYTE, dst, (int)bytes, MPI_BYTE, st_of(cp)->comm),
          "MPI_Allgather");
  return PA_OK;
}

static pa_status mpi_allgather(pa_cp *cp, cp_region src, cp_region dst, size_t bytes) {
  char *s, *d;
  pa_status st;
  if (bytes > INT32_MAX) return cp_fail(cp, PA_ERR_UNSUPPORTED, "all-gather of %zu bytes", bytes);
  if ((st = map(cp, 0, src, bytes, true, &s)) != PA_OK ||
      (st = map(cp, 1, dst, bytes * (size_t)cp->size, false, &d)) != PA_OK)
    return st;
  MPI_TRY(MPI_Allgather(s, (int)bytes, MPI_BYTE, d, (int)bytes, MPI_BYTE, st_of(cp)->comm),
          "MPI_Allgather");
  return unmap(cp, dst, d, bytes * (size_t)cp->size);
}

static pa_status mpi_alltoall(pa_cp *cp, cp_region src, cp_region dst, size_t bytes) {
  char *s, *d;
  pa_status st;
  size_t all = bytes * (size_t)cp->size;
  if (bytes > INT32_MAX) return cp_fail(cp, PA_ERR_UNSUPPORTED, "all-to-all of %zu bytes", bytes);
  if ((st = map(cp, 0, src, all, true, &s)) != PA_OK ||
      (st = map(cp, 1, dst, all, false, &d)) != PA_OK)
    return st;
  MPI_TRY(MPI_Alltoall(s, (int)bytes, MPI_BYTE, d, (int)bytes, MPI_BYTE, st_of(cp)->comm),
          "MPI_Alltoall");
  return unmap(cp, dst, d, all);
}

static pa_status mpi_exchange_start(pa_cp *cp, cp_region src, size_t sbytes, int to, cp_region dst,
                                    size_t rbytes, int from) {
  mpi_state *m = st_of(cp);
  char *s, *d;
  pa_status st;
  if (sbytes > INT32_MAX || rbytes > INT32_MAX)
    return cp_fail(cp, PA_ERR_UNSUPPORTED, "ring block of %zu bytes", sbytes);
  if ((st = map(cp, 0, src, sbytes, true, &s)) != PA_OK ||
      (st = map(cp, 2, dst, rbytes, false, &d)) != PA_OK)
    return st;
  m->recv_dst = dst;
  m->recv_bytes = rbytes;
  MPI_TRY(MPI_Irecv(d, (int)rbytes, MPI_BYTE, from, 14, m->comm, &m->req[0]), "MPI_Irecv");
  MPI_TRY(MPI_Isend(s, (int)sbytes, MPI_BYTE, to, 14, m->comm, &m->req[1]), "MPI_Isend");
  return PA_OK;
}

static pa_status mpi_exchange_wait(pa_cp *cp) {
  mpi_state *m = st_of(cp);
  MPI_TRY(MPI_Waitall(2, m->req, MPI_STATUSES_IGNORE), "MPI_Waitall");
  return unmap(cp, m->recv_dst, m->stage[2], m->recv_bytes);
}

static pa_status mpi_copy2d(pa_cp *cp, cp_region src, size_t sp, cp_region dst, size_t dp,
                            size_t rows, size_t row) {
  if (!rows || !row) return PA_OK;
  char *s, *d;
  pa_status st;
  size_t sn = (rows - 1) * sp + row, dn = (rows - 1) * dp + row;
  if ((st = map(cp, 0, src, sn, true, &s)) != PA_OK ||
      (st = map(cp, 1, dst, dn, dp != row, &d)) != PA_OK) /* keep the gaps of dst */
    return st;
  for (size_t i = 0; i < rows; i++) memcpy(d + i * dp, s + i * sp, row);
  return unmap(cp, dst, d, dn);
}

static void mpi_destroy(pa_cp *cp) {
  mpi_state *m = st_of(cp);
  for (int i = 0; i < 3; i++) free(m->stage[i]);
  free(m);
}

static const cp_transport mpi_transport = {
    .name = "mpi",
    .host_allgather = mpi_host_allgather,
    .allgather = mpi_allgather,
    .alltoall = mpi_alltoall,
    .exchange_start = mpi_exchange_start,
    .exchange_wait = mpi_exchange_wait,
    .run_agree = true,
    .copy2d = mpi_copy2d,
    .destroy = mpi_destroy,
};

pa_status pa_cp_create_mpi(pa_context *ctx, MPI_Comm comm, pa_cp **out) {
  if (!out) return PA_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (!ctx) return PA_ERR_INVALID_ARGUMENT;
  int init = 0, rank = 0, size = 0;
  MPI_Initialized(&init);
  if (!init || comm == MPI_COMM_NULL) return PA_ERR_INVALID_ARGUMENT;
  pa_backend be = pa_context_backend(ctx);
  if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
    return PA_ERR_INVALID_ARGUMENT;
  mpi_state *m = calloc(1, sizeof *m);
  if (!m) return PA_ERR_OUT_OF_MEMORY;
  m->comm = comm;
  m->host = be == PA_BACKEND_CPU;
  m->req[0] = m->req[1] = MPI_REQUEST_NULL;
  pa_status st = cp_create(ctx, &mpi_transport, m, rank, size, out);
  if (st != PA_OK) free(m);
  return st;
}

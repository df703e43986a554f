/* Programs compiled per (device, source hash, options): kept in memory for the
 * context's life and, when the context names a cache_dir, on disk as device
 * binaries (PoCL and driver compiles take seconds; a warm cache takes ms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl_backend.h"
#include "fault.h"

extern const char *const pa_cl_embedded_names[];
extern const char *const pa_cl_embedded_texts[];
extern const int pa_cl_embedded_count;

#define MAX_KERNELS 8

struct pa_cl_entry {
  pa_cl_entry *next;
  uint64_t hash; /* of device key, options and source */
  cl_program program;
  int num_kernels;
  char names[MAX_KERNELS][48];
  cl_kernel kernels[MAX_KERNELS];
};

static uint64_t fnv1a(uint64_t h, const char *s) {
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

const char *pa_cl_source(const char *name, bool *owned) {
  *owned = false;
  const char *dir = getenv("PA_OPENCL_KERNEL_DIR");
  if (dir && *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f) {
      fseek(f, 0, SEEK_END);
      long n = ftell(f);
      fseek(f, 0, SEEK_SET);
      char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
      if (text && fread(text, 1, (size_t)n, f) == (size_t)n) {
        text[n] = 0;
        fclose(f);
        *owned = true;
        return text;
      }
      free(text);
      fclose(f);
    }
    pa_log(1, "opencl: PA_OPENCL_KERNEL_DIR=%s has no readable %s; using the embedded copy", dir, name);
  }
  for (int i = 0; i < pa_cl_embedded_count; i++)
    if (!strcmp(pa_cl_embedded_names[i], name)) return pa_cl_embedded_texts[i];
  return NULL;
}

static void cache_path(const pa_cl_state *st, uint64_t hash, char *path, size_t n) {
  snprintf(path, n, "%s/polyattn-%016llx.clbin", st->cache_dir, (unsigned long long)hash);
}

/* A cache file is a header {magic, binary length, FNV-1a of the binary}
 * followed by the binary. Drivers trust the lengths inside a binary (PoCL
 * reads past a truncated one), so a file whose length or hash does not match
 * is rebuilt from source, never handed to the driver. */
#define CACHE_MAGIC 0x314C4341432D4150ull /* "PA-CACL1" */
typedef struct cache_header {
  uint64_t magic, length, hash;
} cache_header;

static uint64_t fnv1a_bytes(const unsigned char *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

static cl_program load_binary(pa_cl_state *st, uint64_t hash, const char *options) {
  char path[1200];
  cache_path(st, hash, path, sizeof path);
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  cache_header hd;
  unsigned char *bin = NULL;
  bool ok = n > (long)sizeof hd && fread(&hd, sizeof hd, 1, f) == 1 && hd.magic == CACHE_MAGIC &&
            hd.length == (uint64_t)n - sizeof hd && (bin = malloc(hd.length)) &&
            fread(bin, 1, hd.length, f) == hd.length && fnv1a_bytes(bin, hd.length) == hd.hash;
  fclose(f);
  cl_program prog = NULL;
  if (ok) {
    size_t len = (size_t)hd.length;
    const unsigned char *bins[1] = {bin};
    cl_int status, e;
    prog = clCreateProgramWithBinary(st->context, 1, &st->device, &len, bins, &status, &e);
    if (e != CL_SUCCESS || status != CL_SUCCESS) {
      if (e == CL_SUCCESS) clReleaseProgram(prog);
      prog = NULL;
    } else if (clBuildProgram(prog, 1, &st->device, options, NULL, NULL) != CL_SUCCESS) {
      clReleaseProgram(prog); /* stale or foreign binary: rebuild from source */
      prog = NULL;
    }
  } else {
    pa_log(2, "opencl: program cache entry %s is damaged; rebuilding it", path);
  }
  free(bin);
  return prog;
}

static void store_binary(pa_cl_state *st, uint64_t hash, cl_program prog) {
  size_t len = 0;
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof len, &len, NULL) != CL_SUCCESS || !len) return;
  unsigned char *bin = malloc(len);
  if (!bin) return;
  unsigned char *bins[1] = {bin};
  if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bins, bins, NULL) == CL_SUCCESS) {
    char path[1200], tmp[1300];
    cache_path(st, hash, path, sizeof path);
    /* pid and address: unique across processes sharing the cache folder */
    snprintf(tmp, sizeof tmp, "%s.%ld.%p.tmp", path, (long)getpid(), (void *)bin);
    FILE *f = fopen(tmp, "wb");
    if (f) {
      cache_header hd = {CACHE_MAGIC, len, fnv1a_bytes(bin, len)};
      bool ok = fwrite(&hd, sizeof hd, 1, f) == 1 && fwrite(bin, 1, len, f) == len;
      ok = fclose(f) == 0 && ok;
      /* rename is atomic: a concurrent reader sees the old file or the new one */
      if (!ok || rename(tmp, path) != 0) remove(tmp);
    }
  }
  free(bin);
}

static pa_status build(pa_context *ctx, const char *file, const char *text, const char *options,
                       uint64_t hash, cl_program *out) {
  pa_cl_state *st = pa_cl(ctx);
  if (pa_fault_hit())
    return pa_fail(ctx, PA_ERR_BACKEND, "opencl: building %s (%s): injected fault", file, options);
  if (st->cache_dir && (*out = load_binary(st, hash, options))) return PA_OK;
  cl_int e;
  cl_program prog = clCreateProgramWithSource(st->context, 1, &text, NULL, &e);
  if (e != CL_SUCCESS) return pa_cl_fail(ctx, e, "clCreateProgramWithSource");
  e = clBuildProgram(prog, 1, &st->device, options, NULL, NULL);
  if (e != CL_SUCCESS) {
    size_t n = 0;
    clGetProgramBuildInfo(prog, st->device, CL_PROGRAM_BUILD_LOG, 0, NULL, &n);
    char *log = malloc(n + 1);
    if (log) {
      log[0] = 0;
      clGetProgramBuildInfo(prog, st->device, CL_PROGRAM_BUILD_LOG, n, log, NULL);
      log[n] = 0;
    }
    clReleaseProgram(prog);
    pa_status s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: building %s (%s): %s (%d); build log:\n%s",
                          file, options, pa_cl_error_name(e), (int)e, log ? log : "(none)");
    free(log);
    return s;
  }
  if (st->cache_dir) store_binary(st, hash, prog);
  *out = prog;
  return PA_OK;
}

struct pa_cl_named {
  char file[32], defines[512], kernel[64];
  cl_kernel k;
  pa_cl_named *next;
};

/* A kernel met before, found without touching sources: merge and head GEMM
 * ask for theirs on every call, which must not allocate. */
static bool find_named(pa_cl_state *st, const char *file, const char *defines, const char *kernel,
                       cl_kernel *out) {
  pthread_mutex_lock(&st->lock);
  pa_cl_named *n = st->named;
  while (n && (strcmp(n->file, file) || strcmp(n->defines, defines) || strcmp(n->kernel, kernel)))
    n = n->next;
  if (n) *out = n->k;
  pthread_mutex_unlock(&st->lock);
  return n != NULL;
}

static void remember_named(pa_cl_state *st, const char *file, const char *defines,
                           const char *kernel, cl_kernel k) {
  if (strlen(file) >= sizeof st->named->file || strlen(defines) >= sizeof st->named->defines ||
      strlen(kernel) >= sizeof st->named->kernel)
    return; /* too long to key: such calls take the slow path */
  pa_cl_named *n = calloc(1, sizeof *n);
  if (!n) return;
  snprintf(n->file, sizeof n->file, "%s", file);
  snprintf(n->defines, sizeof n->defines, "%s", defines);
  snprintf(n->kernel, sizeof n->kernel, "%s", kernel);
  n->k = k;
  pthread_mutex_lock(&st->lock);
  n->next = st->named;
  st->named = n;
  pthread_mutex_unlock(&st->lock);
}

static pa_status kernel_from_source(pa_context *ctx, const char *file, const char *defines,
                                    const char *kernel, cl_kernel *out);

pa_status pa_cl_kernel(pa_context *ctx, const char *file, const char *defines, const char *kernel,
                       cl_kernel *out) {
  pa_cl_state *st = pa_cl(ctx);
  if (find_named(st, file, defines, kernel, out)) return PA_OK;
  pa_status s = kernel_from_source(ctx, file, defines, kernel, out);
  if (s == PA_OK) remember_named(st, file, defines, kernel, *out);
  return s;
}

/* The programs written on inline PTX get kernels/ptx.cl after common.cl
 * (which of its parts is active follows their defines). */
static bool uses_ptx(const char *file) {
  return !strcmp(file, "prefill_mma.cl") || !strcmp(file, "mla_mma.cl") || !strcmp(file, "decode.cl");
}

static pa_status kernel_from_source(pa_context *ctx, const char *file, const char *defines,
                                    const char *kernel, cl_kernel *out) {
  pa_cl_state *st = pa_cl(ctx);
  /* program text: common.cl, ptx.cl where used, the file, joined by newlines */
  const char *names[3] = {"common.cl", uses_ptx(file) ? "ptx.cl" : NULL, file};
  const char *parts[3] = {NULL, NULL, NULL};
  bool owned[3] = {false, false, false};
  char options[1024];
  const char *extra = getenv("PA_OPENCL_BUILD_OPTIONS");
  snprintf(options, sizeof options, "-cl-std=CL1.2 %s%s%s", defines, extra ? " " : "",
           extra ? extra : "");
  pa_status s = PA_OK;
  char *text = NULL;
  size_t len = 0;
  for (int i = 0; i < 3; i++) {
    if (!names[i]) continue;
    parts[i] = pa_cl_source(names[i], &owned[i]);
    if (!parts[i]) {
      s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: kernel source %s not found", names[i]);
      goto done;
    }
    len += strlen(parts[i]) + 1;
  }
  text = PA_FAULT_OR(malloc(len));
  if (!text) {
    s = pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: program text");
    goto done;
  }
  char *at = text;
  for (int i = 0; i < 3; i++) {
    if (!parts[i]) continue;
    size_t n = strlen(parts[i]);
    memcpy(at, parts[i], n);
    at += n;
    *at++ = '\n';
  }
  at[-1] = 0; /* the last part ends the text */
  uint64_t h = fnv1a(fnv1a(fnv1a(1469598103934665603ull, st->device_key), options), text);

  pthread_mutex_lock(&st->lock);
  pa_cl_entry *en = st->programs;
  while (en && en->hash != h) en = en->next;
  if (!en) {
    cl_program prog;
    s = build(ctx, file, text, options, h, &prog);
    if (s == PA_OK) {
      en = PA_FAULT_OR(calloc(1, sizeof *en));
      if (!en) {
        clReleaseProgram(prog);
        s = pa_fail(ctx, PA_ERR_OUT_OF_MEMORY, "opencl: program cache");
      } else {
        en->hash = h;
        en->program = prog;
        en->next = st->programs;
        st->programs = en;
        pa_log(3, "opencl: built %s (%s)", file, options);
      }
    }
  }
  if (s == PA_OK) {
    int i = 0;
    while (i < en->num_kernels && strcmp(en->names[i], kernel)) i++;
    if (i == en->num_kernels) {
      cl_int e;
      cl_kernel k = i < MAX_KERNELS ? clCreateKernel(en->program, kernel, &e) : NULL;
      if (i >= MAX_KERNELS) {
        s = pa_fail(ctx, PA_ERR_BACKEND, "opencl: too many kernels in %s", file);
      } else if (e != CL_SUCCESS) {
        s = pa_cl_fail(ctx, e, kernel);
      } else {
        snprintf(en->names[i], sizeof en->names[i], "%s", kernel);
        en->kernels[i] = k;
        en->num_kernels++;
      }
    }
    if (s == PA_OK) *out = en->kernels[i];
  }
  pthread_mutex_unlock(&st->lock);
done:
  free(text);
  for (int i = 0; i < 3; i++)
    if (owned[i]) free((void *)parts[i]);
  return s;
}

void pa_cl_cache_free(pa_cl_state *st) {
  while (st->named) { /* the kernels themselves belong to the program entries */
    pa_cl_named *next = st->named->next;
    free(st->named);
    st->named = next;
  }
  pa_cl_entry *en = st->programs;
  while (en) {
    pa_cl_entry *next = en->next;
    for (int i = 0; i < en->num_kernels; i++) clReleaseKernel(en->kernels[i]);
    clReleaseProgram(en->program);
    free(en);
    en = next;
  }
  st->programs = NULL;
}

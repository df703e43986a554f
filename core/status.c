/* Status strings, version, the last-error message and logging. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"

const char *pa_status_str(pa_status s) {
  switch (s) {
  case PA_OK: return "PA_OK";
  case PA_ERR_INVALID_ARGUMENT: return "PA_ERR_INVALID_ARGUMENT";
  case PA_ERR_UNSUPPORTED: return "PA_ERR_UNSUPPORTED";
  case PA_ERR_OUT_OF_MEMORY: return "PA_ERR_OUT_OF_MEMORY";
  case PA_ERR_NO_DEVICE: return "PA_ERR_NO_DEVICE";
  case PA_ERR_BACKEND: return "PA_ERR_BACKEND";
  case PA_ERR_WORKSPACE_TOO_SMALL: return "PA_ERR_WORKSPACE_TOO_SMALL";
  }
  return "PA_ERR_UNKNOWN";
}

void pa_version(int *major, int *minor, int *patch) {
  if (major) *major = PA_VERSION_MAJOR;
  if (minor) *minor = PA_VERSION_MINOR;
  if (patch) *patch = PA_VERSION_PATCH;
}

size_t pa_dtype_size(pa_dtype t) {
  switch (t) {
  case PA_F32: return 4;
  case PA_F16: return 2;
  case PA_BF16: return 2;
  case PA_I32: return 4;
  case PA_FP8_E4M3: return 1;
  case PA_FP8_E5M2: return 1;
  }
  return 0;
}

const char *pa_dtype_name(pa_dtype t) {
  switch (t) {
  case PA_F32: return "f32";
  case PA_F16: return "f16";
  case PA_BF16: return "bf16";
  case PA_I32: return "i32";
  case PA_FP8_E4M3: return "e4m3";
  case PA_FP8_E5M2: return "e5m2";
  }
  return "unknown";
}

const char *pa_backend_name(pa_backend b) {
  switch (b) {
  case PA_BACKEND_AUTO: return "auto";
  case PA_BACKEND_CPU: return "cpu";
  case PA_BACKEND_CUDA: return "cuda";
  case PA_BACKEND_OPENCL: return "opencl";
  }
  return "unknown";
}

/* The callback is process-wide. The lock pairs fn with its user pointer
 * and is held during the call, so once pa_set_log_callback returns the old
 * callback is never called again (polyattn.h). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static pa_log_fn log_fn;
static void *log_user;

void pa_set_log_callback(pa_log_fn fn, void *user) {
  pthread_mutex_lock(&log_lock);
  log_fn = fn;
  log_user = user;
  pthread_mutex_unlock(&log_lock);
}

static void emit(int level, const char *msg) {
  pthread_mutex_lock(&log_lock);
  if (log_fn) {
    log_fn(level, msg, log_user);
    pthread_mutex_unlock(&log_lock);
    return;
  }
  pthread_mutex_unlock(&log_lock);
  const char *env = getenv("PA_LOG");
  if (!env || !*env) return;
  /* PA_LOG=<level> prints notes up to that level; any other value means 2 (info). */
  int max = (env[0] >= '0' && env[0] <= '9') ? atoi(env) : 2;
  if (level <= max) fprintf(stderr, "polyattn: %s\n", msg);
}

void pa_log(int level, const char *fmt, ...) {
  char msg[PA_ERR_MSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  emit(level, msg);
}

/* The last failure on this thread, with or without a context (pa_last_error). */
static _Thread_local char thread_err[PA_ERR_MSG_LEN];

const char *pa_last_error(void) { return thread_err; }

pa_status pa_fail(pa_context *ctx, pa_status s, const char *fmt, ...) {
  char msg[PA_ERR_MSG_LEN - 64]; /* room for the status name in ctx->err */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(thread_err, sizeof thread_err, "%s: %s", pa_status_str(s), msg);
  if (ctx) snprintf(ctx->err, sizeof ctx->err, "%s: %s", pa_status_str(s), msg);
  /* With no context the log is the only place the message can go. */
  emit(ctx ? 3 : 1, msg);
  return s;
}

/* A tiny JSON writer for pa-bench: objects, arrays, strings, numbers. */
#include <math.h>

#include "bench.h"

static void sep(bench_json *j, const char *key) {
  if (j->depth > 0) {
    if (!j->first[j->depth]) fputc(',', j->f);
    j->first[j->depth] = 0;
    fputc('\n', j->f);
    for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
  }
  if (key) fprintf(j->f, "\"%s\": ", key);
}

static void put_escaped(FILE *f, const char *s) {
  fputc('"', f);
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

static void open_(bench_json *j, const char *key, char ch) {
  sep(j, key);
  fputc(ch, j->f);
  if (j->depth < 15) j->depth++;
  j->first[j->depth] = 1;
}

static void close_(bench_json *j, char ch) {
  j->depth--;
  fputc('\n', j->f);
  for (int i = 0; i < j->depth; i++) fputs("  ", j->f);
  fputc(ch, j->f);
  if (j->depth == 0) fputc('\n', j->f);
}

void json_begin_obj(bench_json *j, const char *key) { open_(j, key, '{'); }
void json_end_obj(bench_json *j) { close_(j, '}'); }
void json_begin_arr(bench_json *j, const char *key) { open_(j, key, '['); }
void json_end_arr(bench_json *j) { close_(j, ']'); }

void json_str(bench_json *j, const char *key, const char *v) {
  sep(j, key);
  put_escaped(j->f, v ? v : "");
}

/* NaN and inf are not JSON: they become null. */
void json_num(bench_json *j, const char *key, double v) {
  sep(j, key);
  if (isfinite(v))
    fprintf(j->f, "%.9g", v);
  else
    fputs("null", j->f);
}

void json_int(bench_json *j, const char *key, long long v) {
  sep(j, key);
  fprintf(j->f, "%lld", v);
}

/* The configuration reader (core/config.c): options and environment parsed
 * into pa_config, bad values refused with the key named, and README.md's
 * configuration table equal to the reader's table of keys. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

static const pa_config_key *key_named(const char *name) {
  int n = 0;
  const pa_config_key *k = pa_config_keys(&n);
  for (int i = 0; i < n; i++)
    if (!strcmp(k[i].key, name)) return &k[i];
  return NULL;
}

/* A README row: | `key` | `PA_VAR` | values | default | meaning | */
typedef struct row {
  char key[64], var[96], values[256], def[64];
} row;

/* Copies cell text without backticks and surrounding blanks. */
static void cell(const char *b, const char *e, char *out, size_t n) {
  while (b < e && (*b == ' ' || *b == '`')) b++;
  while (e > b && (e[-1] == ' ' || e[-1] == '`')) e--;
  size_t len = (size_t)(e - b) < n - 1 ? (size_t)(e - b) : n - 1;
  memcpy(out, b, len);
  out[len] = 0;
}

static int parse_row(const char *line, row *r) {
  if (strncmp(line, "| `", 3) != 0) return 0;
  const char *c[6];
  const char *p = line;
  for (int i = 0; i < 6; i++) {
    c[i] = strchr(p, '|');
    if (!c[i]) return 0;
    p = c[i] + 1;
  }
  cell(c[0] + 1, c[1], r->key, sizeof r->key);
  cell(c[1] + 1, c[2], r->var, sizeof r->var);
  cell(c[2] + 1, c[3], r->values, sizeof r->values);
  cell(c[3] + 1, c[4], r->def, sizeof r->def);
  return 1;
}

/* The README writes a list "a, b, c" (or a range "lo..hi", or "text"). */
static void expected_values(const pa_config_key *k, char *out, size_t n) {
  if (k->values) {
    size_t j = 0;
    for (const char *s = k->values; *s && j + 3 < n; s++) {
      if (*s == '|') {
        out[j++] = ',';
        out[j++] = ' ';
      } else {
        out[j++] = *s;
      }
    }
    out[j] = 0;
  } else if (k->kind == PA_CFG_INT) {
    snprintf(out, n, "%d..%d", k->lo, k->hi);
  } else {
    snprintf(out, n, "text");
  }
}

Test(config, readme_table_matches_reader) {
  const char *path = getenv("PA_TEST_README");
  cr_assert(path && *path, "PA_TEST_README is not set (tests/meson.build sets it)");
  FILE *f = fopen(path, "r");
  cr_assert(f, "cannot open %s", path);
  int n = 0;
  const pa_config_key *keys = pa_config_keys(&n);
  int seen[128] = {0};
  cr_assert(n <= 128);
  char line[1024];
  int in_section = 0, rows = 0;
  while (fgets(line, sizeof line, f)) {
    if (!strncmp(line, "### ", 4)) in_section = strstr(line, "Configuration") != NULL;
    row r;
    if (!in_section || !parse_row(line, &r)) continue;
    const pa_config_key *k = key_named(r.key);
    cr_assert(k, "README row `%s` is not a key of core/config.c", r.key);
    seen[k - keys]++;
    rows++;
    char var[96] = "PA_";
    size_t j = 3;
    for (const char *s = k->key; *s; s++)
      var[j++] = *s == '.' ? '_' : (char)toupper((unsigned char)*s);
    var[j] = 0;
    cr_expect_str_eq(r.var, var, "%s: README variable %s, reader %s", k->key, r.var, var);
    char want[256];
    expected_values(k, want, sizeof want);
    cr_expect_str_eq(r.values, want, "%s: README values \"%s\", reader \"%s\"", k->key, r.values,
                     want);
    const char *def = *k->def ? k->def : "unset";
    cr_expect_str_eq(r.def, def, "%s: README default \"%s\", reader \"%s\"", k->key, r.def, def);
  }
  fclose(f);
  for (int i = 0; i < n; i++)
    cr_expect(seen[i] == 1, "key %s appears %d times in README's configuration table", keys[i].key,
              seen[i]);
  cr_assert(rows == n, "README has %d rows, the reader %d keys", rows, n);
}

Test(config, defaults_env_and_options) {
  unsetenv("PA_CUDA_MLA");
  unsetenv("PA_OPENCL_DECODE");
  pa_config c;
  cr_assert_eq(pa_config_read(NULL, NULL, &c), PA_OK);
  cr_expect_eq(c.cuda_mla, PA_CFG_MLA_AUTO);
  cr_expect_eq(c.cuda_device, -1);
  cr_expect_eq(c.cuda_decode_fuse, 1);
  cr_expect_eq(c.dev_opencl_mla_bn, 16);
  cr_expect_eq(c.dev_opencl_decode_stages, 4);
  setenv("PA_CUDA_MLA", "mma", 1);
  setenv("PA_OPENCL_DECODE", "portable", 1);
  cr_assert_eq(pa_config_read(NULL, NULL, &c), PA_OK);
  cr_expect_eq(c.cuda_mla, PA_CFG_MLA_MMA);
  cr_expect_eq(c.opencl_decode, PA_CFG_DECODE_PORTABLE);
  /* options beat the environment */
  cr_assert_eq(pa_config_read(NULL, "cuda.mla=auto,opencl.device=NVIDIA,dev.opencl.mla_bn=32", &c),
               PA_OK);
  cr_expect_eq(c.cuda_mla, PA_CFG_MLA_AUTO);
  cr_expect_eq(c.opencl_decode, PA_CFG_DECODE_PORTABLE);
  cr_expect_str_eq(c.opencl_device, "NVIDIA");
  cr_expect_eq(c.dev_opencl_mla_bn, 32);
  unsetenv("PA_CUDA_MLA");
  unsetenv("PA_OPENCL_DECODE");
}

/* Each bad configuration fails with PA_ERR_INVALID_ARGUMENT and a message
 * that names the key (or the variable) and the value. */
Test(config, bad_values_name_the_key) {
  static const struct {
    const char *options, *says;
  } bad[] = {
      {"cuda.mla=turbo", "cuda.mla=turbo"},
      {"cuda.pdl=2", "cuda.pdl=2"},
      {"dev.cuda.slots=0", "dev.cuda.slots=0"},
      {"dev.cuda.slots=4x", "dev.cuda.slots=4x"},
      {"dev.opencl.mla_bn=24", "dev.opencl.mla_bn=24"},
      {"cuda.nope=1", "cuda.nope"},
      {"cuda.mla", "cuda.mla"},
      {"backend=cpu", "backend"},
      {"dev.opencl.tile_bq=16", "dev.opencl.tile_bq"},
      {"dev.opencl.mla_pf=1", "dev.opencl.mla_pf=1"},
  };
  pa_context *ctx = tu_open_cpu();
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    pa_config c;
    pa_status s = pa_config_read(ctx, bad[i].options, &c);
    cr_expect_eq(s, PA_ERR_INVALID_ARGUMENT, "options \"%s\": %s", bad[i].options,
                 pa_status_str(s));
    cr_expect(strstr(pa_context_last_error(ctx), bad[i].says) != NULL,
              "options \"%s\": message \"%s\" does not name \"%s\"", bad[i].options,
              pa_context_last_error(ctx), bad[i].says);
  }
  setenv("PA_CUDA_PDL", "yes", 1);
  pa_config c;
  cr_expect_eq(pa_config_read(ctx, NULL, &c), PA_ERR_INVALID_ARGUMENT);
  cr_expect(strstr(pa_context_last_error(ctx), "PA_CUDA_PDL") != NULL, "%s",
            pa_context_last_error(ctx));
  unsetenv("PA_CUDA_PDL");
  pa_context_destroy(ctx);

  /* through the API: no context, the status */
  pa_context_desc d = {.backend = PA_BACKEND_CPU, .device = -1, .options = "cpu.isa=sse"};
  pa_context *none = (pa_context *)1;
  cr_expect_eq(pa_context_create(&d, &none), PA_ERR_INVALID_ARGUMENT);
  cr_expect_null(none);
}

/* Criterion entry point shared by every suite: runs the tests as usual, then
 * exits 77 (meson's "skipped") when nothing passed or failed but something
 * was skipped, so a backend with no device shows as SKIP in `meson test`,
 * never as a silent pass. Run with --verbose to see each skip's reason. */
#include <criterion/criterion.h>
#include <criterion/hooks.h>

static size_t n_passed, n_skipped, n_failed;

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
  n_passed = stats->tests_passed;
  n_skipped = stats->tests_skipped;
  n_failed = stats->tests_failed + stats->tests_crashed;
}

int main(int argc, char *argv[]) {
  struct criterion_test_set *tests = criterion_initialize();
  int rc = 0;
  if (criterion_handle_args(argc, argv, true)) rc = !criterion_run_all_tests(tests);
  criterion_finalize(tests);
  if (rc == 0 && n_failed == 0 && n_passed == 0 && n_skipped > 0) return 77;
  return rc;
}

#!/usr/bin/env bash
# The test command (README, .ci/run): installs what is missing, then
#   1. builds with every backend this machine can compile (CUDA when nvcc is
#      found, OpenCL on PoCL) and runs the whole suite (not `--suite long`);
#   2. builds again with ASan + UBSan (CUDA off: its runtime and ASan do not
#      mix) and the test-only fault injection (tests/faults.c), and runs the
#      suite there, less the emulated NVIDIA OpenCL kernels (their host code
#      is the plain OpenCL path's; only device code differs, which ASan does
#      not see);
#   3. builds the CPU backend with ThreadSanitizer and runs the thread test;
#   4. runs each libFuzzer harness of tests/fuzz for a few seconds.
# Each step is one `step` call; its counts join the totals. The end lists the
# skipped tests by name with the reason their test printed, then one line
# "N passed, N failed" (timeouts, build failures, unexpected passes and leak
# reports count as failed) and exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
pa_install_deps

JOBS=$(nproc 2>/dev/null || echo 2)
PLAIN=${PA_TEST_BUILD:-build-test}
ASAN=${PA_TEST_ASAN_BUILD:-build-asan}
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/pa-test.XXXXXX")
echo "logs in $LOGS"
passed=0
failed=0
skipped=0
skip_list=()
T0=$(date +%s)

# Adds one meson test summary (from its log) to the totals.
count() {
  local log=$1 ok xfail fail xpass skip tmo
  num() { grep -E "^$1:" "$log" | tail -1 | awk '{print $NF}'; }
  ok=$(num "Ok")
  if [ -z "$ok" ]; then
    echo "no test summary in $log" >&2
    failed=$((failed + 1))
    return
  fi
  xfail=$(num "Expected Fail")
  fail=$(num "Fail")
  xpass=$(num "Unexpected Pass")
  skip=$(num "Skipped")
  tmo=$(num "Timeout")
  passed=$((passed + ok + ${xfail:-0}))
  failed=$((failed + ${fail:-0} + ${xpass:-0} + ${tmo:-0}))
  skipped=$((skipped + ${skip:-0}))
}

# Remembers each skipped test of a step as "step: test (first reason printed)".
note_skips() {
  local name=$1 testlog=$2
  [ -f "$testlog" ] || return
  local line
  while IFS= read -r line; do
    skip_list+=("$name: $line")
  done < <(awk '
    function flush() { if (skip) print t " (" (r == "" ? "no reason printed" : r) ")"; skip = 0; r = "" }
    /^==+ [0-9]+\/[0-9]+ ==+$/ { flush() }
    /^test: / { t = $NF }
    /^result: .*(exit status 77|SKIP)/ { skip = 1 }
    /^\[SKIP\] / && !/Test is disabled/ && r == "" { r = $0; sub(/^\[SKIP\] [^ ]+ /, "", r) }
    END { flush() }
  ' "$testlog")
}

# step NAME DIR MULTIPLIER "meson test arguments" meson-setup-options...
# Configures DIR, builds it, runs `meson test` there with the arguments, and
# adds its counts (and LeakSanitizer reports) to the totals.
step() {
  local name=$1 dir=$2 mult=$3 targs=$4 t=$SECONDS
  shift 4
  echo "== $name: configure ($*)"
  if ! pa_meson_setup "$dir" "$@" >"$LOGS/$name-setup.log" 2>&1; then
    tail -30 "$LOGS/$name-setup.log"
    echo "== $name: configure FAILED"
    failed=$((failed + 1))
    return
  fi
  grep -A6 "^  Backends" "$LOGS/$name-setup.log" | sed -n '2,4p'
  echo "== $name: build (-j$JOBS)"
  if ! ninja -C "$dir" -j"$JOBS" >"$LOGS/$name-build.log" 2>&1; then
    grep -E "error|FAILED" "$LOGS/$name-build.log" | head -30
    echo "== $name: build FAILED"
    failed=$((failed + 1))
    return
  fi
  echo "== $name: built in $((SECONDS - t)) s; meson test $targs"
  # shellcheck disable=SC2086
  meson test -C "$dir" --print-errorlogs --timeout-multiplier "$mult" --num-processes "$JOBS" \
    $targs 2>&1 | tee "$LOGS/$name-test.log" | grep -vE "^ *[0-9]+/[0-9]+ .* OK " || true
  count "$LOGS/$name-test.log"
  note_skips "$name" "$dir/meson-logs/testlog.txt"
  # Criterion reports a test as passed even when LeakSanitizer found a leak in
  # it, so leaks are counted from the full log.
  local leaks
  leaks=$(grep -c "ERROR: LeakSanitizer" "$dir/meson-logs/testlog.txt" 2>/dev/null || true)
  if [ "${leaks:-0}" -gt 0 ]; then
    grep -B2 -A12 "ERROR: LeakSanitizer" "$dir/meson-logs/testlog.txt" | head -60
    echo "== $name: $leaks LeakSanitizer report(s): counted as failed"
    failed=$((failed + leaks))
  fi
  echo "== $name: done in $((SECONDS - t)) s"
}

step plain "$PLAIN" 2 "--no-suite long" \
  -Dcuda="$(pa_cuda_option)" -Dnvidia_ptx="$(pa_cuda_ptx_option)" \
  -Dnvidia_sm80="$(pa_cuda_sm80_option)" -Dopencl=auto -Dbuildtype=release

# Arm: the CPU suites cross-built for aarch64 and run under qemu-user
# (scripts/test_arm.sh, NEON kernels); its meson summary joins the totals.
# PA_TEST_ARM=0 leaves it out.
if [ "${PA_TEST_ARM:-1}" = 1 ]; then
  echo "== arm: scripts/test_arm.sh"
  arm_t0=$(date +%s)
  scripts/test_arm.sh >"$LOGS/arm-test.log" 2>&1
  arm_rc=$?
  grep -E "^== arm|^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT|SKIP)" "$LOGS/arm-test.log"
  if [ $arm_rc = 77 ]; then
    # the host cannot run aarch64 test children (no binfmt_misc for qemu):
    # a visible skip of the whole step, not a failure of the project
    skipped=$((skipped + 1))
    skip_list+=("arm (NEON under qemu-user): this host has no binfmt_misc in a user namespace")
  else
    count "$LOGS/arm-test.log"
  fi
  echo "== arm: $(($(date +%s) - arm_t0)) s"
fi

# PoCL and the ICD loader keep allocations for the process lifetime; only
# those are suppressed (scripts/lsan.supp), our own leaks still fail.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:protect_shadow_gap=0:abort_on_error=0}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$PWD/scripts/lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
step sanitize "$ASAN" 4 "--no-suite long --no-suite opencl_emu" \
  -Dcuda=disabled -Dopencl=auto -Dbuildtype=debugoptimized \
  -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false -Dfault_injection=true

# ThreadSanitizer over the thread test, CPU contexts only (the OpenCL driver
# is not instrumented, so its internal locks would be reported).
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
step tsan "${PA_TEST_TSAN_BUILD:-build-tsan}" 4 "threads_tsan" \
  -Dcuda=disabled -Dopencl=disabled -Dbuildtype=debugoptimized -Db_sanitize=thread \
  -Db_lundef=false -Dbench=false -Dexamples=false

# libFuzzer harnesses (tests/fuzz: attention, MLA, merges, head GEMM,
# appends) through scripts/fuzz.sh, each for PA_TEST_FUZZ_SECS (default 8)
# on its seed corpus; each harness is one test of the totals. A visible skip
# where clang with libFuzzer is missing; PA_TEST_FUZZ_SECS=0 leaves it out.
fsecs=${PA_TEST_FUZZ_SECS:-8}
if [ "$fsecs" -gt 0 ]; then
  echo "== fuzz: scripts/fuzz.sh $fsecs (seconds per harness)"
  fuzz_t0=$(date +%s)
  PA_FUZZ_BUILD=${PA_TEST_FUZZ_BUILD:-build-fuzz} scripts/fuzz.sh "$fsecs" 1 >"$LOGS/fuzz.log" 2>&1
  frc=$?
  grep -v "^fuzz: clang" "$LOGS/fuzz.log" | tail -40
  if [ $frc = 77 ]; then
    skipped=$((skipped + 1))
    skip_list+=("fuzz: clang with libFuzzer (-fsanitize=fuzzer) not found")
  else
    fok=$(grep -c "^fuzz_.*: ok$" "$LOGS/fuzz.log")
    fbad=$(grep -c "^fuzz_.*FAILED" "$LOGS/fuzz.log")
    passed=$((passed + fok))
    failed=$((failed + fbad))
    # a failed build or setup runs no harness at all
    [ $frc != 0 ] && [ $((fok + fbad)) = 0 ] && failed=$((failed + 1))
  fi
  echo "== fuzz: $(($(date +%s) - fuzz_t0)) s"
fi

echo "== all steps: $(($(date +%s) - T0)) s"
if [ "$skipped" -gt 0 ]; then
  echo "$skipped skipped:"
  for s in "${skip_list[@]}"; do echo "  $s"; done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

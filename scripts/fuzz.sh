#!/usr/bin/env bash
# Fuzzing campaign: scripts/fuzz.sh [SECONDS per harness, default 60] [JOBS]
# Builds the libFuzzer harnesses of tests/fuzz with clang + ASan + UBSan in
# build-fuzz and runs each for the given time on its corpus (tests/fuzz/corpus/
# NAME seeds, new inputs kept in build-fuzz/corpus/NAME). Prints the number of
# executions per harness and exits non-zero on any crash (the reproducer is
# left as build-fuzz/crash-*; turn it into a regression case). Exits 77
# (a skip) when clang with libFuzzer is not there.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
SECS=${1:-60}
JOBS=${2:-1}
B=${PA_FUZZ_BUILD:-build-fuzz}
probe=$(mktemp "${TMPDIR:-/tmp}/pa-fuzz-probe.XXXXXX")
if ! command -v clang >/dev/null ||
  ! echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return 0; }' |
  clang -x c -fsanitize=fuzzer,address,undefined -o "$probe" - >/dev/null 2>&1; then
  rm -f "$probe"
  echo "fuzz: clang with libFuzzer (-fsanitize=fuzzer) not found: skipped"
  exit 77
fi
rm -f "$probe"
if [ ! -f "$B/build.ninja" ]; then
  CC=clang meson setup "$B" -Dfuzz=true -Dcuda=disabled -Dopencl=disabled -Dtests=disabled \
    -Dbench=false -Dexamples=false -Dbuildtype=debugoptimized \
    -Db_sanitize=address,undefined -Db_lundef=false >"${TMPDIR:-/tmp}/pa-fuzz-setup.log" 2>&1 ||
    { tail -20 "${TMPDIR:-/tmp}/pa-fuzz-setup.log"; exit 1; }
fi
ninja -C "$B" >/dev/null || exit 1
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
total=0
rc=0
for h in "$B"/tests/fuzz/fuzz_*; do
  [ -f "$h" ] && [ -x "$h" ] || continue
  name=${h##*/fuzz_}
  mkdir -p "$B/corpus/$name"
  log="$B/fuzz-$name.log"
  hrc=0
  (cd "$B" && "../$h" -max_total_time="$SECS" -jobs="$JOBS" -workers="$JOBS" -print_final_stats=1 \
    -timeout="${PA_FUZZ_TIMEOUT:-25}" "corpus/$name" "../tests/fuzz/corpus/$name") >"$log" 2>&1 ||
    hrc=1
  if [ "$JOBS" -gt 1 ]; then # libFuzzer's workers log to fuzz-0.log, ...
    cat "$B"/fuzz-[0-9]*.log >>"$log" 2>/dev/null
    rm -f "$B"/fuzz-[0-9]*.log
  fi
  n=$(grep "stat::number_of_executed_units" "$log" | awk '{s += $2} END {print s + 0}')
  total=$((total + n))
  crashes=$(grep -c "ERROR: \|==ERROR\|SUMMARY: .*Sanitizer" "$log")
  if [ $hrc != 0 ] || [ "$crashes" -gt 0 ]; then
    rc=1
    grep -m3 -A8 "ERROR: \|==ERROR\|runtime error" "$log"
    echo "fuzz_$name: $n executions in ${SECS}s, $crashes sanitizer/crash reports: FAILED (log $log)"
  else
    echo "fuzz_$name: $n executions in ${SECS}s, 0 sanitizer/crash reports: ok"
  fi
done
echo "fuzz: $total executions in all, $(date -u +%Y-%m-%d)"
exit $rc

#!/usr/bin/env bash
# One device call for the CUDA kernels: build, the CUDA suites, then pa-bench
# (variants by environment) and the peers on the same shapes; table last.
#   device call: carry [".device"], command: bash backends/cuda/devrun.sh
# Environment: TESTS=0 (skip tests), TEST_TIMEOUT (s, default 100),
# VARIANTS ("name:ENV=val ..." pairs run on prefill+decode, default below),
# PEERS=0 (skip sdpa.py), SANITIZE (test commands under compute-sanitizer).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -f .device/remote-setup.sh ] && source .device/remote-setup.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv,noheader; date -u
B=/tmp/b
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 3" # the 3 gencode targets in parallel
meson setup $B -Dcuda=enabled -Dopencl=disabled -Dexamples=false --buildtype=release >$OUT/build.log 2>&1 ||
  { tail -30 $OUT/build.log; exit 1; }
( time ninja -C $B -j16 ) >>$OUT/build.log 2>&1 || { grep -E "error|FAILED" $OUT/build.log | head -30; exit 1; }
grep real $OUT/build.log
if [ "${TESTS:-1}" = 1 ]; then
  timeout "${TEST_TIMEOUT:-100}" meson test -C $B --suite cuda --print-errorlogs >$OUT/test.log 2>&1
  echo "meson test --suite cuda rc=$?"
  timeout 60 meson test -C $B cuda_graph --print-errorlogs >>$OUT/test.log 2>&1
  echo "meson test cuda_graph rc=$?"
  grep -E "^ *[0-9]+/[0-9]+ |Ok:|Fail:|Skipped:|Timeout:" $OUT/test.log | head -14
  grep -E "FAIL|Assertion|failed" -A3 $OUT/test.log | grep -v "^--$" | head -30
fi
PB=$B/bench/pa-bench
: >$OUT/bench.txt
timeout 60 $PB prefill decode --backend cuda --json $OUT/pa_cuda.json >>$OUT/bench.txt 2>&1
for v in ${VARIANTS:-}; do
  name=${v%%:*}; envs=${v#*:}
  echo "== variant $name ($envs)" >>$OUT/bench.txt
  env ${envs//,/ } timeout 40 $PB prefill decode --backend cuda --no-ceilings --iters 20 >>$OUT/bench.txt 2>&1
done
if [ "${PEERS:-1}" = 1 ] && [ -s $OUT/pa_cuda.json ]; then
  timeout 90 python3 bench/peers/sdpa.py --from $OUT/pa_cuda.json --out $OUT/peers.json >$OUT/peers.txt 2>&1
  tail -8 $OUT/peers.txt
  python3 bench/peers/compare.py $OUT/pa_cuda.json --peers $OUT/peers.json --md $OUT/ratios.md 2>&1 | tail -12
fi
# SANITIZE: ";"-separated test commands, each under memcheck and racecheck.
if [ -n "${SANITIZE:-}" ]; then
  IFS=';' read -ra SANCMDS <<<"$SANITIZE"
  for cmd in "${SANCMDS[@]}"; do for tool in memcheck racecheck; do
    echo "== $tool $cmd" >>$OUT/san.log
    timeout "${SAN_TIMEOUT:-60}" compute-sanitizer --tool $tool --target-processes all --error-exitcode 9 $B/$cmd >>$OUT/san.log 2>&1
    echo "sanitizer $tool [$cmd] rc=$?"; grep -E "ERROR SUMMARY" $OUT/san.log | tail -1
  done; done
fi
echo "== pa-bench"; grep -vE "^\s*$" $OUT/bench.txt | cut -c1-150 | tail -40

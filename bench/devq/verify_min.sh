#!/usr/bin/env bash
# The smallest check of main's defaults (about 3 min): the CUDA cross-backend
# table, pa-bench prefill/decode, windowed prefill A/B, NCCL CP with one rank.
#   device call: carry [".device"], command: bash bench/devq/verify_min.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
O=${OUT:-/tmp/verify}; mkdir -p "$O"
source .device/remote-setup.sh >/dev/null 2>&1
B=build-vmin; PB=$B/bench/pa-bench
el() { echo "[t=${SECONDS}s]"; }
source bench/devq/checks.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 2"
mkdir -p "$O/cp"; (OUT=$O/cp timeout 150 bash bench/devq/cp14b.build.sh >"$O/cp_build.txt" 2>&1) &
cp_pid=$!
meson setup $B -Dcuda=enabled -Dnvidia_ptx=false -Dopencl=disabled -Dtests=enabled -Dexamples=false \
  -Dmpi=disabled -Dnccl=disabled --buildtype=release >"$O/setup.log" 2>&1 || { tail -30 "$O/setup.log"; exit 1; }
ninja -C $B -j16 tests/test_cross_backend bench/pa-bench >"$O/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$O/build.log" | head -30; exit 1; }
echo "== build ok $(el)"
timeout 50 $B/tests/test_cross_backend --filter='cuda/*' -j8 --verbose >"$O/xb.log" 2>&1
echo "cuda/* rc=$? $(grep Synthesis "$O/xb.log") $(el)"; grep -E "FAIL|Assert|differ" "$O/xb.log" | head -8
grep -E "\[cuda\] case window_tc" "$O/xb.log" | cut -c1-110
window_ab
echo "== pa-bench cuda $(el)"
timeout 40 $PB prefill decode --backend cuda --no-ceilings --iters 10 >"$O/pa.txt" 2>&1; echo "rc=$?"
grep -E "^(prefill|decode)" "$O/pa.txt" | cut -c1-125
timeout 12 $PB decode --backend cuda --no-ceilings --iters 10 --options dev.cuda.decode_slots=1 2>&1 | grep -E "^decode" | sed 's/^/slots=1 /' | cut -c1-125
wait $cp_pid; tail -1 "$O/cp_build.txt"
cp_one_rank "$O"
echo "== done $(el)"

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
echo "== windowed prefill, 32/8 d128 s32768 causal $(el)"
for v in "-1|" "4096|" "4096|dev.cuda.window_fast=0"; do
  w=${v%%|*}; opt=${v#*|}
  r=$(PA_LOG=2 timeout 15 $PB prefill --backend cuda --no-ceilings -b 1 --hq 32 --hkv 8 -d 128 --sq 32768 --skv 32768 \
    --causal 1 --window "$w" --iters 3 --warmup 1 ${opt:+--options $opt} 2>&1)
  echo "window $w ${opt:-defaults}: $(echo "$r" | grep -oE "kernel=[a-z_.0-9]*" | sort -u | tr '\n' ' ') $(echo "$r" | grep -E "^custom" | cut -c60-125)"
done
echo "== pa-bench cuda $(el)"
timeout 40 $PB prefill decode --backend cuda --no-ceilings --iters 10 >"$O/pa.txt" 2>&1; echo "rc=$?"
grep -E "^(prefill|decode)" "$O/pa.txt" | cut -c1-125
timeout 12 $PB decode --backend cuda --no-ceilings --iters 10 --options dev.cuda.decode_slots=1 2>&1 | grep -E "^decode" | sed 's/^/slots=1 /' | cut -c1-125
echo "== context parallelism over NCCL, one rank $(el)"
wait $cp_pid; tail -1 "$O/cp_build.txt"
if [ -x build-cp/tests/test_cp_nccl ]; then
  export NCCL_NVLS_ENABLE=0 PA_CP_RANKS=1
  timeout 40 build-cp/tests/test_cp_nccl >"$O/cp_test.txt" 2>&1; echo "test_cp_nccl rc=$? $(grep -E "checks" "$O/cp_test.txt" | tail -1)"
  timeout 15 build-cp/bench/pa-cp-bench-nccl decode 1 1048576 1 32 8 128 20 2>&1 | grep -E "^plain" | cut -c1-150
fi
echo "== done $(el)"

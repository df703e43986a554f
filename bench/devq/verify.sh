#!/usr/bin/env bash
# One GPU call that checks main's defaults after a promotion: build, every
# CUDA meson suite, the CUDA/OpenCL fp8 and window groups, pa-bench on the
# CUDA presets (prefill, decode, append, MLA) beside SDPA flash/cuDNN and
# FlashMLA, A/B of the knobs just changed, windowed prefill; summary last.
#   device call: carry [".device", ".peers"], command: bash bench/devq/verify.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
O=${OUT:-/tmp/verify}; mkdir -p "$O"
source .device/remote-setup.sh >/dev/null 2>&1
B=build-verify; PB=$B/bench/pa-bench; XB=$B/tests/test_cross_backend
el() { echo "[t=${SECONDS}s]"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; date -u; git log --oneline -1 2>/dev/null
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 3"
mkdir -p "$O/cp"; (OUT=$O/cp timeout 240 bash bench/devq/cp14b.build.sh >"$O/cp_build.txt" 2>&1) &
cp_pid=$!
[ -f $B/build.ninja ] || meson setup $B -Dcuda=enabled -Dopencl=enabled -Dtests=enabled -Dexamples=false \
  -Dmpi=disabled -Dnccl=disabled --buildtype=release >"$O/setup.log" 2>&1 || { tail -30 "$O/setup.log"; exit 1; }
ninja -C $B -j16 >"$O/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$O/build.log" | head -30; exit 1; }
echo "== build ok $(el)"
export PA_TEST_CACHE_DIR=/tmp/verify-kc PA_OPENCL_DEVICE=NVIDIA
timeout 120 meson test -C $B --suite cuda --num-processes 6 --no-rebuild -t 0.5 >"$O/mt_cuda.log" 2>&1
echo "meson test --suite cuda rc=$? $(el)"; grep -E "^(Ok|Fail|Skipped|Timeout):" "$O/mt_cuda.log" | tr '\n' ' '; echo
grep -E " FAIL | TIMEOUT " "$O/mt_cuda.log" | head -10
timeout 40 $XB --filter='opencl/fp8*' --jobs=2 >"$O/t_ocl.log" 2>&1; echo "opencl/fp8* (NVIDIA) rc=$? $(grep Synthesis "$O/t_ocl.log")"
timeout 30 $XB --filter='*/mask' --jobs=4 --verbose >"$O/t_mask.log" 2>&1; echo "*/mask rc=$? $(grep Synthesis "$O/t_mask.log")"
grep -E "\[cuda\] case window_tc" "$O/t_mask.log" | cut -c1-120
echo "== pa-bench cuda $(el)"
timeout 70 $PB prefill decode append --backend cuda --json "$O/pa.json" >"$O/pa.txt" 2>&1; echo "rc=$?"
timeout 25 $PB mla --backend cuda --no-ceilings --json "$O/mla.json" >"$O/mla.txt" 2>&1; echo "mla rc=$?"
echo "== peers $(el)"
timeout 60 python3 bench/peers/sdpa.py --from "$O/pa.json" --out "$O/peers.json" >"$O/peers.txt" 2>&1; echo "sdpa rc=$?"
FM=.peers/flashmla/bench_flashmla.prebuilt
[ -x $FM ] && timeout 30 python3 bench/peers/flashmla.py --from "$O/mla.json" --bin $FM --peers "$O/peers.json" --iters 20 >"$O/flashmla.txt" 2>&1
echo "flashmla rc=$?"
timeout 25 $PB decode --backend cuda --no-ceilings --options dev.cuda.decode_slots=1 >"$O/dec_s1.txt" 2>&1
echo "== windowed prefill, 32/8 d128 s32768 causal $(el)"
for v in "-1|" "4096|" "4096|dev.cuda.window_fast=0" "4096|cuda.prefill=mma"; do
  w=${v%%|*}; opt=${v#*|}
  r=$(PA_LOG=2 timeout 20 $PB prefill --backend cuda --no-ceilings -b 1 --hq 32 --hkv 8 -d 128 --sq 32768 --skv 32768 \
    --causal 1 --window "$w" --iters 5 --warmup 1 ${opt:+--options $opt} 2>&1)
  echo "window $w ${opt:-defaults}: $(echo "$r" | grep -oE "kernel=[a-z_.0-9]*" | sort -u | tr '\n' ' ') $(echo "$r" | grep -E "^custom" | cut -c60-120)"
done
echo "== context parallelism over NCCL, one rank $(el)"
wait $cp_pid; tail -1 "$O/cp_build.txt"
if [ -x build-cp/tests/test_cp_nccl ]; then
  export NCCL_NVLS_ENABLE=0 PA_CP_RANKS=1
  timeout 60 build-cp/tests/test_cp_nccl >"$O/cp_test.txt" 2>&1; echo "test_cp_nccl rc=$? $(grep -E "checks" "$O/cp_test.txt" | tail -1)"
  timeout 25 build-cp/bench/pa-cp-bench-nccl decode 1 1048576 1 32 8 128 50 2>&1 | grep -E "^plain|allgather" | head -2 | cut -c1-150
  PA_CP_WINDOW=4096 timeout 15 build-cp/bench/pa-cp-bench-nccl decode 1 1048576 1 32 8 128 50 2>&1 | grep -E "^plain" | cut -c1-150
  timeout 25 build-cp/bench/pa-cp-bench-nccl prefill 1 32768 32 8 128 5 2>&1 | grep -E "^plain" | cut -c1-150
  PA_CP_WINDOW=4096 timeout 25 build-cp/bench/pa-cp-bench-nccl prefill 1 32768 32 8 128 5 2>&1 | grep -E "^plain" | cut -c1-150
fi
echo "== opencl decode (NVIDIA) $(el)"
timeout 25 $PB decode --backend opencl --iters 10 >"$O/pa_ocl.txt" 2>&1; echo "rc=$?"
python3 bench/peers/compare.py "$O/pa.json" "$O/mla.json" --peers "$O/peers.json" --md "$O/ratios.md" >"$O/compare.txt" 2>&1
echo "== decode with the old split rule (decode_slots=1)"; grep -E "^(decode|custom)" "$O/dec_s1.txt" | cut -c1-125
echo "== opencl"; grep -E "^(decode)" "$O/pa_ocl.txt" | cut -c1-140
echo "== pa-bench cuda"; grep -E "^(copy|read|prefill|decode|append|mla)" "$O/pa.txt" "$O/mla.txt" | cut -d: -f2- | cut -c1-140
echo "== compare $(el)"; cut -c1-175 "$O/compare.txt" | tail -30

#!/usr/bin/env bash
# One GPU call (about 5 min) that checks main's defaults after a promotion:
# build, every CUDA meson suite, pa-bench on the CUDA prefill/decode/MLA
# presets beside SDPA flash/cuDNN and FlashMLA, the windowed prefill and the
# decode split rule A/B, context parallelism over NCCL with one rank.
#   device call: carry [".device", ".peers"], command: bash bench/devq/verify.sh
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
O=${OUT:-/tmp/verify}; mkdir -p "$O"
source .device/remote-setup.sh >/dev/null 2>&1
B=build-verify; PB=$B/bench/pa-bench
el() { echo "[t=${SECONDS}s]"; }
source bench/devq/checks.sh
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; date -u
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 3"
mkdir -p "$O/cp"; (OUT=$O/cp timeout 200 bash bench/devq/cp14b.build.sh >"$O/cp_build.txt" 2>&1) &
cp_pid=$!
[ -f $B/build.ninja ] || meson setup $B -Dcuda=enabled -Dopencl=disabled -Dtests=enabled -Dexamples=false \
  -Dmpi=disabled -Dnccl=disabled --buildtype=release >"$O/setup.log" 2>&1 || { tail -30 "$O/setup.log"; exit 1; }
ninja -C $B -j16 >"$O/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$O/build.log" | head -30; exit 1; }
echo "== build ok $(el)"
timeout 80 meson test -C $B --suite cuda --num-processes 8 --no-rebuild -t 0.4 >"$O/mt_cuda.log" 2>&1
echo "meson test --suite cuda rc=$? $(el)"; grep -E "^(Ok|Fail|Skipped|Timeout):" "$O/mt_cuda.log" | tr '\n' ' '; echo
grep -E " FAIL | TIMEOUT " "$O/mt_cuda.log" | head -10
grep -hE "\[cuda\] case window_tc" $B/meson-logs/testlog.txt | head -3 | cut -c1-110
echo "== pa-bench cuda $(el)"
timeout 45 $PB prefill decode --backend cuda --json "$O/pa.json" >"$O/pa.txt" 2>&1; echo "rc=$?"
timeout 20 $PB mla --backend cuda --no-ceilings --iters 10 --json "$O/mla.json" >"$O/mla.txt" 2>&1; echo "mla rc=$?"
grep -E "^(prefill|decode|mla)" "$O/pa.txt" "$O/mla.txt" | cut -d: -f2- | cut -c1-125
echo "== peers $(el)"
timeout 50 python3 bench/peers/sdpa.py --from "$O/pa.json" --out "$O/peers.json" --iters 5 >"$O/peers.txt" 2>&1; echo "sdpa rc=$?"
FM=.peers/flashmla/bench_flashmla.prebuilt
[ -x $FM ] && timeout 25 python3 bench/peers/flashmla.py --from "$O/mla.json" --bin $FM --peers "$O/peers.json" --iters 10 >"$O/flashmla.txt" 2>&1
echo "flashmla rc=$?"
window_ab
echo "== decode, old split rule (decode_slots=1) $(el)"
timeout 15 $PB decode --backend cuda --no-ceilings --iters 10 --options dev.cuda.decode_slots=1 2>&1 | grep -E "^decode" | cut -c1-125
wait $cp_pid; tail -1 "$O/cp_build.txt"
cp_one_rank "$O"
python3 bench/peers/compare.py "$O/pa.json" "$O/mla.json" --peers "$O/peers.json" --md "$O/ratios.md" >"$O/compare.txt" 2>&1
echo "== compare $(el)"; cut -c1-175 "$O/compare.txt" | tail -24

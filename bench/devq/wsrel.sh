#!/usr/bin/env bash
# One device call (about 9 min): main's defaults (verify_min.sh), the CUDA
# table on the ws kernel with dev.cuda.ws_release=1 + ws_lazy=1 and with
# ws_release=2, then the ws_d128 A/B of both knobs beside SDPA. Device call: carry [".device"],
# command: bash bench/devq/wsrel.sh   (timeout_s 600)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
O=${OUT:-/tmp/wsrel}; mkdir -p "$O"
bash bench/devq/verify_min.sh >"$O/vmin.txt" 2>&1
tail -45 "$O/vmin.txt"
XB=build-vmin/tests/test_cross_backend
for r in "dev.cuda.ws_release=1,dev.cuda.ws_lazy=1" "dev.cuda.ws_release=2"; do
  PA_TEST_OPTIONS=cuda.prefill=ws,$r timeout 70 $XB --filter='cuda/*' -j8 >"$O/xb_${r##*.}.log" 2>&1
  echo "$r cuda/* rc=$? $(grep Synthesis "$O/xb_${r##*.}.log")"
  grep -E "FAIL|Assert|differ" "$O/xb_${r##*.}.log" | head -5
done
PA_BUILD=build-vmin WSD_TESTS=0 WSD_CONFIGS="base rel1 lazy1 rel1lazy rel2 pp0 rel1pp0 base2" \
  WSD_BUDGET=$((570 - SECONDS)) bash bench/devq/ws_d128.sh 2>&1 | tail -30
tar czf "$O/logs.tgz" -C "$O" --exclude=logs.tgz . 2>/dev/null

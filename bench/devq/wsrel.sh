#!/usr/bin/env bash
# One device call (about 9 min): main's defaults (verify_min.sh), the CUDA
# table with dev.cuda.ws_release=1 and 2 on the ws kernel, then the ws_d128
# A/B of the release knob beside SDPA. Device call: carry [".device"],
# command: bash bench/devq/wsrel.sh   (timeout_s 600)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
O=${OUT:-/tmp/wsrel}; mkdir -p "$O"
bash bench/devq/verify_min.sh >"$O/vmin.txt" 2>&1
tail -45 "$O/vmin.txt"
XB=build-vmin/tests/test_cross_backend
for r in 1 2; do
  PA_TEST_OPTIONS=cuda.prefill=ws,dev.cuda.ws_release=$r timeout 70 $XB --filter='cuda/*' -j8 \
    >"$O/xb_rel$r.log" 2>&1
  echo "ws_release=$r cuda/* rc=$? $(grep Synthesis "$O/xb_rel$r.log")"
  grep -E "FAIL|Assert|differ" "$O/xb_rel$r.log" | head -5
done
PA_BUILD=build-vmin WSD_TESTS=0 WSD_CONFIGS="base rel1 rel2 pp0 rel1pp0 base2" \
  WSD_BUDGET=$((570 - SECONDS)) bash bench/devq/ws_d128.sh 2>&1 | tail -30
tar czf "$O/logs.tgz" -C "$O" --exclude=logs.tgz . 2>/dev/null

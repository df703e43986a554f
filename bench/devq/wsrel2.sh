#!/usr/bin/env bash
# Second call for ws_release (about 8 min on a fresh machine), on the tree
# with the new defaults (ws_release 1, ws_lazy 1, window_fast 1): the CUDA
# table on them, on ws everywhere and on ws_release=2, a racecheck (and
# synccheck, time allowing) of the ws kernel, then every prefill preset on
# the new and the old defaults (new twice, interleaved) beside SDPA
# flash/cuDNN, with the ratio table. Device call: carry
# [".device"], command: bash bench/devq/wsrel2.sh   (timeout_s 600)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
O=${OUT:-/tmp/wsrel2}; mkdir -p "$O"; W=/tmp/w2; mkdir -p "$W"
source .device/remote-setup.sh >/dev/null 2>&1
el() { echo "[t=${SECONDS}s]"; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 2"
B=build-w2; PB=$B/bench/pa-bench; XB=$B/tests/test_cross_backend
[ -f $B/build.ninja ] || meson setup $B -Dcuda=enabled -Dnvidia_ptx=false -Dopencl=disabled -Dtests=enabled \
  -Dexamples=false -Dmpi=disabled -Dnccl=disabled --buildtype=release >"$W/setup.log" 2>&1 || { tail -30 "$W/setup.log"; exit 1; }
ninja -C $B -j16 tests/test_cross_backend bench/pa-bench >"$W/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$W/build.log" | head -30; exit 1; }
echo "== build ok $(el)"
OLD=dev.cuda.ws_release=0,dev.cuda.ws_lazy=0,dev.cuda.window_fast=0
for opt in "" "cuda.prefill=ws" "cuda.prefill=ws,dev.cuda.ws_release=2"; do
  n=$(echo "$opt" | md5sum | cut -c1-6)
  PA_TEST_OPTIONS=$opt timeout 60 $XB --filter='cuda/*' -j8 --verbose >"$W/xb_$n.log" 2>&1
  echo "[${opt:-defaults}] cuda/* rc=$? $(grep Synthesis "$W/xb_$n.log" | cut -c8-)"
  grep -E "FAIL|Assert|differ" "$W/xb_$n.log" | head -4
done
grep -E "\[cuda\] case (window|tile_edge)" "$W/xb_$(echo "" | md5sum | cut -c1-6).log" | cut -c1-110 | head -12
echo "== sanitizer $(el)"
for tool in racecheck synccheck; do
  [ $SECONDS -gt 170 ] && { echo "$tool skipped (time)"; continue; }
  PA_TEST_OPTIONS=cuda.prefill=ws timeout 60 compute-sanitizer --tool $tool \
    --target-processes all $XB --filter='cuda/tile_edges*' -j1 >"$W/san_$tool.log" 2>&1
  echo "$tool rc=$? $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$W/san_$tool.log" | sort | uniq -c | tr '\n' ' ')"
done
echo "== prefill presets $(el)"
i=0
for round in 1 2; do
  for cfg in "new|" "old|$OLD"; do
    [ $round = 2 ] && [ "${cfg%%|*}" = old ] && continue
    n=${cfg%%|*}; opt=${cfg#*|}; i=$((i + 1))
    PA_LOG=2 timeout 60 $PB prefill --backend cuda --no-ceilings --iters 10 ${opt:+--options $opt} \
      --json "$W/pb_${n}_$round.json" >"$W/pb_${n}_$round.txt" 2>&1
    echo "$n round $round rc=$? $(el)"
  done
done
grep -E "^(prefill|custom)" "$W/pb_new_1.txt" | cut -c1-125
source bench/devq/checks.sh
[ $SECONDS -lt 300 ] && window_ab
echo "== peers $(el)"
timeout $((440 - SECONDS > 40 ? 440 - SECONDS : 40)) python3 bench/peers/sdpa.py --from "$W/pb_new_1.json" \
  --out "$W/peers.json" --iters 10 >"$W/peers.txt" 2>&1; echo "peers rc=$?"
python3 - "$W" <<'PY'
import json, glob, sys, statistics
w = sys.argv[1]
def rows(f):
    try: return {r["key"]: r for r in json.load(open(f))["results"] if r.get("status") == "PA_OK"}
    except Exception: return {}
cfg = {}
for f in sorted(glob.glob(f"{w}/pb_*_*.json")):
    n = f.split("/")[-1].split("_")[1]
    for k, r in rows(f).items(): cfg.setdefault(n, {}).setdefault(k, []).append(r)
peers = {}
try:
    for r in json.load(open(f"{w}/peers.json"))["results"]:
        if r.get("status") == "ok": peers.setdefault(r["key"], {})[r["peer"]] = r["tflops"]
except Exception: pass
keys = list(cfg.get("new", {}))
print(f"{'shape':58} {'old':>13} {'new':>13} {'cuDNN':>7} {'flash':>7} new/old new/cuDNN new/flash")
for k in keys:
    def t(n):
        v = cfg.get(n, {}).get(k, [])
        return (max(r["tflops"] for r in v), v[0].get("kernel", "")) if v else (0, "")
    (a, ka), (c, kc) = t("old"), t("new")
    cu, fl = peers.get(k, {}).get("sdpa-cudnn", 0), peers.get(k, {}).get("sdpa-flash", 0)
    print(f"{k[5:63]:58} {a:7.1f} {ka[13:18]:5} {c:7.1f} {kc[13:18]:5} {cu:7.1f} {fl:7.1f} {c/a if a else 0:7.2f} "
          f"{c/cu if cu else 0:9.2f} {c/fl if fl else 0:9.2f}")
PY
tar czf "$O/w2.tgz" -C "$W" . 2>/dev/null
echo "== done $(el)"

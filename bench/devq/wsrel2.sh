#!/usr/bin/env bash
# Second call for ws_release (about 9 min on a fresh machine): the CUDA table
# on the candidate defaults (ws_release 1/2, ws_lazy, window_fast), a
# racecheck/synccheck of the ws kernel with ws_release=1, then every prefill
# preset on today's defaults and on the candidates (twice, interleaved)
# beside SDPA flash/cuDNN, with the ratio table. Device call: carry
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
CAND=dev.cuda.ws_release=1,dev.cuda.ws_lazy=1,dev.cuda.window_fast=1
for opt in "$CAND" "cuda.prefill=ws,dev.cuda.ws_release=1,dev.cuda.ws_lazy=1" "cuda.prefill=ws,dev.cuda.ws_release=2" \
           "cuda.prefill=ws,dev.cuda.ws_release=1,dev.cuda.ws_pingpong=0"; do
  n=$(echo "$opt" | md5sum | cut -c1-6)
  PA_TEST_OPTIONS=$opt timeout 60 $XB --filter='cuda/*' -j8 --verbose >"$W/xb_$n.log" 2>&1
  echo "[$opt] cuda/* rc=$? $(grep Synthesis "$W/xb_$n.log" | cut -c8-)"
  grep -E "FAIL|Assert|differ" "$W/xb_$n.log" | head -4
done
grep -E "\[cuda\] case (window|tile_edge)" "$W/xb_$(echo "$CAND" | md5sum | cut -c1-6).log" | cut -c1-110 | head -12
echo "== sanitizer $(el)"
for tool in racecheck synccheck; do
  PA_TEST_OPTIONS=cuda.prefill=ws,dev.cuda.ws_release=1,dev.cuda.ws_lazy=1 timeout 100 compute-sanitizer --tool $tool \
    --target-processes all $XB --filter='cuda/tile_edges*' -j1 >"$W/san_$tool.log" 2>&1
  echo "$tool rc=$? $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$W/san_$tool.log" | sort | uniq -c | tr '\n' ' ')"
done
echo "== prefill presets $(el)"
i=0
for round in 1 2; do
  for cfg in "now|" "cand|$CAND" "wsrel0|cuda.prefill=ws"; do
    [ $round = 2 ] && [ "${cfg%%|*}" = wsrel0 ] && continue
    n=${cfg%%|*}; opt=${cfg#*|}; i=$((i + 1))
    PA_LOG=2 timeout 60 $PB prefill --backend cuda --no-ceilings --iters 10 ${opt:+--options $opt} \
      --json "$W/pb_${n}_$round.json" >"$W/pb_${n}_$round.txt" 2>&1
    echo "$n round $round rc=$? $(el)"
  done
done
grep -E "^(prefill|custom)" "$W/pb_cand_1.txt" | cut -c1-125
echo "== peers $(el)"
timeout $((560 - SECONDS > 60 ? 560 - SECONDS : 60)) python3 bench/peers/sdpa.py --from "$W/pb_now_1.json" \
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
keys = list(cfg.get("now", {}))
print(f"{'shape':58} {'now':>13} {'wsrel0':>7} {'cand':>13} {'cuDNN':>7} {'flash':>7} cand/now cand/cuDNN cand/flash")
for k in keys:
    def t(n):
        v = cfg.get(n, {}).get(k, [])
        return (max(r["tflops"] for r in v), v[0].get("kernel", "")) if v else (0, "")
    (a, ka), (b, _), (c, kc) = t("now"), t("wsrel0"), t("cand")
    cu, fl = peers.get(k, {}).get("sdpa-cudnn", 0), peers.get(k, {}).get("sdpa-flash", 0)
    print(f"{k[5:63]:58} {a:7.1f} {ka[13:18]:5} {b:7.1f} {c:7.1f} {kc[13:18]:5} {cu:7.1f} {fl:7.1f} {c/a if a else 0:8.2f} "
          f"{c/cu if cu else 0:10.2f} {c/fl if fl else 0:10.2f}")
PY
tar czf "$O/w2.tgz" -C "$W" . 2>/dev/null
echo "== done $(el)"

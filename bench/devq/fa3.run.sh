#!/bin/bash
# fa3 (issue 10), round 1: the warp-specialised TMA prefill (cuda.prefill=ws) on the GPU:
# smoke per head-dim pair, correctness (cross-backend table incl. the new tile_edges and
# tile_edges_repeat groups, kernel name logged), pa-bench ws on every CUDA prefill preset,
# SDPA peers (flash + cuDNN) in the same run, then if time is left the default kernels,
# ping-pong off, compute-sanitizer; summary table last.
set -uo pipefail
O=${OUT:-/tmp/fa3-out}; mkdir -p "$O"
source .device/remote-setup.sh >/dev/null 2>&1 || true
B=build-fa3; PB=$B/bench/pa-bench; XB=$B/tests/test_cross_backend
nvidia-smi --query-gpu=name,clocks.max.sm --format=csv,noheader | tee "$O/gpu.txt"

echo "== smoke: one small ws run per head-dim pair / ping-pong setting (a hang stops the ws steps)"
HANG=0
for v in "-d 128 --dv 128|cuda.prefill=ws" "-d 128 --dv 128|cuda.prefill=ws,dev.cuda.ws_pingpong=0" \
         "-d 64 --dv 64|cuda.prefill=ws" "-d 256 --dv 256|cuda.prefill=ws" "-d 192 --dv 128|cuda.prefill=ws"; do
  dims=${v%%|*}; opt=${v#*|}
  PA_LOG=2 timeout 12 $PB prefill --backend cuda --no-ceilings -b 2 --hq 8 --hkv 2 $dims \
    --sq 1000 --skv 1000 --causal 1 --iters 2 --warmup 1 --options "$opt" >"$O/smoke.txt" 2>&1
  rc=$?; echo "smoke [$dims $opt] rc=$rc: $(grep -c prefill_ws "$O/smoke.txt") lines name prefill_ws; $(tail -1 "$O/smoke.txt" | cut -c1-100)"
  [ $rc = 124 ] && HANG=1
done
WSX=""  # paged k/v on the ws kernel unless its smoke hangs
PA_LOG=2 timeout 12 $PB prefill --backend cuda --no-ceilings -b 3 --hq 8 --hkv 2 -d 128 --dv 128 \
  --sq 300 --skv 2000 --page 16 --causal 1 --iters 2 --warmup 1 --options cuda.prefill=ws >"$O/smoke.txt" 2>&1
rc=$?; echo "smoke [paged 16] rc=$rc: $(grep -c prefill_ws "$O/smoke.txt") lines name prefill_ws; $(tail -1 "$O/smoke.txt" | cut -c1-100)"
[ $rc = 124 ] && WSX=",dev.cuda.ws_paged=0" && echo "paged ws hangs: dev.cuda.ws_paged=0 from here"

if [ $HANG = 0 ]; then
  echo "== tests with PA_TEST_OPTIONS=cuda.prefill=ws, cuda/* (t=$SECONDS s)"
  PA_LOG=2 PA_TEST_OPTIONS=cuda.prefill=ws$WSX timeout 40 $XB --filter='cuda/*' -j16 >"$O/xb_ws.log" 2>&1
  echo "xb_ws rc=$? ($(grep -c 'cuda.prefill_ws' "$O/xb_ws.log") log lines name prefill_ws)"
  grep -E "Synthesis|FAIL|rel-L2|Assertion|Timeout|crash|signal|differs" "$O/xb_ws.log" | grep -v "Info" | head -25
  timeout 20 $B/backends/cuda/tests/test_cuda_graph >"$O/graph.log" 2>&1
  echo "cuda_graph (incl. replay_prefill_ws_bf16) rc=$?: $(grep Synthesis "$O/graph.log")"
  echo "== pa-bench ws, every CUDA prefill preset (t=$SECONDS s)"
  PA_LOG=2 timeout 45 $PB prefill --backend cuda --no-ceilings --options cuda.prefill=ws$WSX \
    --json "$O/pb_ws.json" >"$O/pb_ws.txt" 2>"$O/pb_ws.err"; echo "rc=$?"
  grep -v "^ *$" "$O/pb_ws.txt" | tail -12
  grep -h "prefill ws does not" "$O/pb_ws.err" | sort | uniq -c | head -5
else
  echo "ws hangs: ws tests and bench skipped"
fi

echo "== peers (SDPA flash + cuDNN on the ws run's shapes) (t=$SECONDS s)"
timeout 45 python3 bench/peers/sdpa.py --from "$O/pb_ws.json" --out "$O/peers.json" --iters 10 >"$O/peers.txt" 2>&1
echo "peers rc=$?"; grep -i "error" "$O/peers.txt" | head -4

if [ $SECONDS -lt 140 ]; then
  echo "== pa-bench default kernels (t=$SECONDS s)"
  timeout 40 $PB prefill --backend cuda --json "$O/pb_auto.json" >"$O/pb_auto.txt" 2>&1; echo "rc=$?"
  grep -E "ceiling|GEMM|gemm" "$O/pb_auto.txt" | head -3
fi
if [ $SECONDS -lt 160 ] && [ $HANG = 0 ]; then
  echo "== ws ping-pong off (t=$SECONDS s)"
  timeout 10 $PB prefill --backend cuda --no-ceilings -b 4 --hq 16 --hkv 16 -d 128 --dv 128 --sq 4096 \
    --skv 4096 --causal 1 --options cuda.prefill=ws,dev.cuda.ws_pingpong=0 | tail -1
fi
if [ $SECONDS -lt 165 ]; then
  echo "== tests default kernels, cuda/tile_edges* (t=$SECONDS s)"
  timeout 12 $XB --filter='cuda/tile_edges*' >"$O/xb_def.log" 2>&1
  echo "xb_def rc=$?"; grep -E "Synthesis|FAIL|rel-L2|differs" "$O/xb_def.log" | head -5
fi
if [ $SECONDS -lt 155 ] && [ $HANG = 0 ]; then
  echo "== compute-sanitizer racecheck on cuda/tile_edges with ws (t=$SECONDS s)"
  PA_TEST_OPTIONS=cuda.prefill=ws$WSX timeout 15 compute-sanitizer --tool racecheck --target-processes all \
    $XB --filter='cuda/tile_edges' --jobs=1 >"$O/cs_racecheck.log" 2>&1
  echo "racecheck rc=$? errors: $(grep -Eo 'ERROR SUMMARY: [0-9]+' "$O/cs_racecheck.log" | awk '{s+=$3} END {print s+0}')"
fi

echo "== summary (TFLOP/s) (t=$SECONDS s)"
python3 - "$O" <<'PY'
import json, sys
o = sys.argv[1]
def rows(f):
    try: return json.load(open(f)).get("results", [])
    except Exception: return []
ws = {r["key"]: r for r in rows(f"{o}/pb_ws.json")}
auto = {r["key"]: r for r in rows(f"{o}/pb_auto.json")}
peers = {}
for r in rows(f"{o}/peers.json"):
    if r.get("status") == "ok": peers.setdefault(r["key"], {})[r["peer"]] = r["tflops"]
t = lambda r: r.get("tflops", 0) if r and r.get("status") == "ok" else 0
print(f"{'label':<17} {'ws':>6} {'auto':>6} {'flash':>6} {'cudnn':>6} {'ws/cudnn':>8} {'auto/cudnn':>10}  ws-run kernel")
for k in list(ws) + [k for k in auto if k not in ws]:
    w, a, p = ws.get(k), auto.get(k), peers.get(k, {})
    cd = p.get("sdpa-cudnn", 0)
    print(f"{(w or a).get('label',''):<17} {t(w):6.1f} {t(a):6.1f} {p.get('sdpa-flash',0):6.1f} {cd:6.1f} "
          f"{(t(w)/cd if cd else 0):8.2f} {(t(a)/cd if cd else 0):10.2f}  {(w or {}).get('kernel','')}")
PY

#!/usr/bin/env bash
# ws_d128 A/B (plan: bench/devq/plans/ws_d128.md): every dev.cuda.ws_* knob of the
# plan on the d128 prefill presets (+ chunk, d256), beside the default kernel
# (wgmma at d128) and SDPA flash/cuDNN, in ONE device call. Sketch: the keys
# do not exist yet; a key the build does not know is probed, reported "n/a" and
# skipped, so the script runs before, during and after the work.
#   device call: carry [".device"],
#   command: bash bench/devq/ws_d128.sh       (timeout_s 600)
#   env: PA_BUILD (build dir, default build-wsd128: kept on a warm machine),
#        WSD_TESTS=0 (skip the per-knob tile_edges check), WSD_BUDGET (s, 560),
#        WSD_CONFIGS="base rel1 ..." (only these configs, in the list's order)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUTD=${OUT:-/tmp/wsd128-out}; W=/tmp/wsd128; rm -rf "$W"; mkdir -p "$W" "$OUTD"
BUDGET=${WSD_BUDGET:-560}
left() { echo $((BUDGET - SECONDS)); }
el() { echo "[t=${SECONDS}s]"; }
source .device/remote-setup.sh >/dev/null 2>&1 || echo "no .device: Criterion missing, tests skipped"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$W/gpu.txt"

# ---- build (a no-op on a warm machine whose build dir is still there)
B=${PA_BUILD:-build-wsd128}
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 2"
if [ ! -f "$B/build.ninja" ]; then
  meson setup "$B" -Dcuda=enabled -Dnvidia_ptx=false -Dopencl=disabled -Dtests=enabled \
    -Dexamples=false -Dmpi=disabled -Dnccl=disabled --buildtype=release >"$W/setup.log" 2>&1 ||
    { tail -30 "$W/setup.log"; exit 1; }
fi
ninja -C "$B" -j"$(nproc)" bench/pa-bench >"$W/build.log" 2>&1 ||
  { grep -E "error|FAILED" -A3 "$W/build.log" | head -30; exit 1; }
ninja -C "$B" -j"$(nproc)" tests/test_cross_backend >>"$W/build.log" 2>&1 || echo "test build failed: no checks"
PB=$B/bench/pa-bench; XB=$B/tests/test_cross_backend
echo "== build ok $(el)"
# registers / local memory (spills) of the d128 instantiations, and ptxas notes
cuobjdump -res-usage "$B/backends/cuda/prefill_ws.o" 2>/dev/null |
  awk '/Function/ {f=$2; sub(/:$/, "", f); next} /REG:/ && f {print f, $1, $2, $4; f=""}' | c++filt |
  grep -E "prefill_ws<[^,]*, 128, 128" | sed -E 's/.*prefill_ws</prefill_ws</; s/\(pa_cu_attn.*\)//' | tee "$W/resusage.txt"
grep -E "C75[0-9][0-9]|spill" "$W/build.log" | grep -i "prefill_ws" | sort | uniq -c | head -8

# ---- shapes: name|pa-bench flags (flags override the first CUDA prefill preset: bf16, window -1)
declare -A SH=(
  [causal]="-b 4 --hq 16 --hkv 16 -d 128 --dv 128 --sq 4096 --skv 4096 --causal 1"
  [gqa]="-b 4 --hq 32 --hkv 8 -d 128 --dv 128 --sq 4096 --skv 4096 --causal 1"
  [long]="-b 1 --hq 16 --hkv 16 -d 128 --dv 128 --sq 16384 --skv 16384 --causal 0"
  [chunk]="-b 8 --hq 32 --hkv 8 -d 128 --dv 128 --sq 512 --skv 8192 --page 16 --causal 1"
  [d256]="-b 2 --hq 16 --hkv 16 -d 256 --dv 256 --sq 8192 --skv 8192 --causal 1")
declare -A SET=([all]="causal gqa long chunk d256" [d128]="causal gqa long" [nc]="long")

WS=cuda.prefill=ws; D=dev.cuda
STACK="$WS,$D.ws_release=1,$D.ws_lazy=1,$D.ws_l2hint=1,$D.ws_order=1,$D.ws_lean=1"
# name|shape set|options; run in this order (most informative first: the budget may cut the tail)
CONFIGS=(
  "base|all|$WS"
  "auto|all|"
  "rel1|all|$WS,$D.ws_release=1"
  "stackA|all|$STACK"
  "pp0|d128|$WS,$D.ws_pingpong=0"
  "rel1pp0|d128|$WS,$D.ws_release=1,$D.ws_pingpong=0"
  "stackApp0|d128|$STACK,$D.ws_pingpong=0"
  "rel2|d128|$WS,$D.ws_release=2"
  "kst3|d128|$WS,$D.ws_release=1,$D.ws_kstages=3"
  "stackB|d128|$STACK,$D.ws_kstages=3"
  "lazy1|d128|$WS,$D.ws_lazy=1"
  "rel1lazy|d128|$WS,$D.ws_release=1,$D.ws_lazy=1"
  "lazy2|d128|$WS,$D.ws_lazy=2"
  "hint|d128|$WS,$D.ws_l2hint=1"
  "order|d128|$WS,$D.ws_order=1"
  "lean|d128|$WS,$D.ws_lean=1"
  "regs|d128|$WS,$D.ws_regs=1"
  "bn160|nc|$WS,$D.ws_bn=160,$D.ws_regs=1"
  "cluster|nc|$WS,$D.ws_cluster=2"
  "stackNC|nc|$STACK,$D.ws_bn=160,$D.ws_regs=1,$D.ws_cluster=2"
  "tmao|d128|$WS,$D.ws_tma_o=1"
  "dyn|d128|$WS,$D.ws_dyn=1"
  "base2|d128|$WS")

# ---- per config: the key exists? tile_edges pass (no hang)? then time each shape
HANG=0
for c in "${CONFIGS[@]}"; do
  name=${c%%|*}; rest=${c#*|}; set_=${rest%%|*}; opt=${rest#*|}
  if [ -n "${WSD_CONFIGS:-}" ] && [[ " $WSD_CONFIGS " != *" $name "* ]]; then continue; fi
  if [ "$(left)" -lt 45 ]; then echo "skip $name: budget $(el)"; echo "$name skipped-budget" >>"$W/status.txt"; continue; fi
  if [ -n "$opt" ]; then
    PA_LOG=1 timeout 20 "$PB" prefill --backend cuda --no-ceilings -b 1 --hq 4 --hkv 4 -d 128 --dv 128 \
      --sq 640 --skv 640 --causal 1 --iters 1 --warmup 0 --options "$opt" >"$W/probe_$name.txt" 2>&1
    rc=$?
    if [ $rc != 0 ]; then
      echo "$name n/a (rc=$rc: $(grep -m1 -iE "option|key|error|unknown" "$W/probe_$name.txt" | cut -c1-90))"
      echo "$name n/a" >>"$W/status.txt"; [ $rc = 124 ] && HANG=1; continue
    fi
  fi
  # correctness of each single knob (stacks and repeats inherit); a hang stops that config
  case $name in base|auto|stack*|base2|rel1pp0) ;; *)
    if [ "${WSD_TESTS:-1}" = 1 ] && [ -x "$XB" ] && [ "$(left)" -gt 90 ]; then
      PA_LOG=1 PA_TEST_OPTIONS="$opt" timeout 30 "$XB" --filter='cuda/tile_edges*' -j8 >"$W/xb_$name.log" 2>&1
      rc=$?; echo "$name tile_edges rc=$rc $(grep -m1 Synthesis "$W/xb_$name.log")"
      if [ $rc != 0 ]; then echo "$name failed-tests rc=$rc" >>"$W/status.txt"; [ $rc = 124 ] && HANG=1; continue; fi
    fi ;;
  esac
  for s in ${SET[$set_]}; do
    # shellcheck disable=SC2086
    PA_LOG=2 timeout 25 "$PB" prefill --backend cuda --no-ceilings ${SH[$s]} --iters 8 --warmup 2 \
      ${opt:+--options "$opt"} --json "$W/pb_${name}_${s}.json" >"$W/pb_${name}_${s}.txt" 2>&1
    rc=$?; [ $rc = 124 ] && HANG=1
    printf "%-10s %-6s rc=%s %s\n" "$name" "$s" "$rc" "$(grep -E '^(prefill|custom)' "$W/pb_${name}_${s}.txt" | tail -1 | cut -c1-120)"
  done
  echo "$name ok" >>"$W/status.txt"
  # peers right after the baseline has all shapes (the same inputs shape-for-shape)
  if [ "$name" = base ] && [ "$(left)" -gt 120 ]; then
    python3 - "$W" <<'PY'
import glob, json, sys
w = sys.argv[1]; rows = []
for f in sorted(glob.glob(f"{w}/pb_base_*.json")):
    try: rows += [r for r in json.load(open(f)).get("results", []) if r.get("status") in ("ok", "PA_OK")]
    except Exception: pass
json.dump({"results": rows}, open(f"{w}/shapes.json", "w"))
PY
    echo "== peers (SDPA flash + cuDNN) $(el)"
    timeout 100 python3 bench/peers/sdpa.py --from "$W/shapes.json" --out "$W/peers.json" --iters 10 >"$W/peers.txt" 2>&1
    echo "peers rc=$? $(grep -ci error "$W/peers.txt") error lines"
  fi
done
[ $HANG = 1 ] && echo "!! at least one run timed out (hang?): see status.txt"

# ---- optional: where the time goes, base vs the stack, causal shape
if command -v ncu >/dev/null && [ "$(left)" -gt 100 ]; then
  for c in "base|$WS" "stackA|$STACK"; do
    n=${c%%|*}; o=${c#*|}
    # shellcheck disable=SC2086
    timeout 45 ncu --kernel-name regex:prefill_ws --launch-count 1 --section SpeedOfLight \
      --section WarpStateStats --section MemoryWorkloadAnalysis "$PB" prefill --backend cuda --no-ceilings \
      ${SH[causal]} --iters 1 --warmup 0 --options "$o" >"$W/ncu_$n.txt" 2>&1
    echo "ncu $n rc=$?"; grep -E "Compute \(SM\) Throughput|Memory Throughput|L2 Cache Throughput|DRAM Throughput|Stall|Warp Cycles Per Issued" "$W/ncu_$n.txt" | head -10
  done
fi

# ---- summary: TFLOP/s per shape x config, cuDNN/flash beside, deltas vs the mean of base and base2
echo "== summary (TFLOP/s; delta vs base in %) $(el)"
python3 - "$W" <<'PY' | tee "$W/summary.txt"
import glob, json, os, re, sys
w = sys.argv[1]
res, kern = {}, {}
for f in glob.glob(f"{w}/pb_*_*.json"):
    cfg, shape = re.match(r"pb_(.+)_([a-z0-9]+)\.json", os.path.basename(f)).groups()
    try: rows = json.load(open(f)).get("results", [])
    except Exception: continue
    for r in rows:
        if r.get("status") in ("ok", "PA_OK"):
            res[(cfg, shape)] = r["tflops"]; kern[(cfg, shape)] = r.get("kernel", "")
            res.setdefault(("key", shape), r["key"])
peers = {}
try:
    for r in json.load(open(f"{w}/peers.json")).get("results", []):
        if r.get("status") == "ok": peers.setdefault(r["key"], {})[r["peer"]] = r["tflops"]
except Exception: pass
shapes = ["causal", "gqa", "long", "chunk", "d256"]
cfgs = []
for f in sorted(glob.glob(f"{w}/pb_*_*.json"), key=os.path.getmtime):
    c = re.match(r"pb_(.+)_[a-z0-9]+\.json", os.path.basename(f)).group(1)
    if c not in cfgs: cfgs.append(c)
def base(s):
    v = [res[(c, s)] for c in ("base", "base2") if (c, s) in res]
    return sum(v) / len(v) if v else 0
print(f"{'config':<10}" + "".join(f"{s:>16}" for s in shapes))
for c in cfgs:
    cells = []
    for s in shapes:
        t = res.get((c, s))
        b = base(s)
        cells.append(f"{t:7.1f} ({(t / b - 1) * 100:+5.1f})" if t and b and c not in ("base",) else
                     (f"{t:7.1f}        " if t else f"{'-':>15}"))
    print(f"{c:<10}" + "".join(f"{x:>16}" for x in cells))
for p in ("sdpa-cudnn", "sdpa-flash"):
    print(f"{p[5:]:<10}" + "".join(f"{peers.get(res.get(('key', s)), {}).get(p, 0):16.1f}" for s in shapes))
best = {s: max([res[(c, s)] for c in cfgs if (c, s) in res] or [0]) for s in shapes}
print(f"{'best/cuDNN':<10}" + "".join(
    f"{(best[s] / peers.get(res.get(('key', s)), {}).get('sdpa-cudnn', 0)) if peers.get(res.get(('key', s)), {}).get('sdpa-cudnn') else 0:16.2f}"
    for s in shapes))
if ("base", "causal") in res and ("base2", "causal") in res:
    print(f"drift base -> base2 (causal): {(res[('base2','causal')] / res[('base','causal')] - 1) * 100:+.1f}%")
print("kernels:", {c: kern.get((c, "causal"), kern.get((c, "long"), "")) for c in cfgs})
PY
cat "$W/status.txt" 2>/dev/null | tr '\n' ';'; echo
# the device tool brings back few files: one archive + the summary
tar czf "$OUTD/wsd128.tgz" -C "$W" . 2>/dev/null; cp "$W/summary.txt" "$OUTD/" 2>/dev/null
echo "== done $(el)"

#!/usr/bin/env bash
# mla_devq (sketch for notes/plans/mla_flashmla.md; copy to bench/devq/mla12.sh): the MLA decode
# knobs of the plan A/B'd beside FlashMLA, on one card, in one call. Phases run in the order given:
#   build  pa-bench + test_cross_backend + ptxas -v (bench/devq/mla11.build.sh), SASS counts
#   diag   ncu of mla_decode_fast and of FlashMLA on b64 kv4096, per-kernel times b1 / b8
#   tests  cuda/*mla* under each new knob, short racecheck on the TMA path
#   ab     every MLA preset per variant (fast first and last: drift), FlashMLA, one table
# Device calls (timeout_s 600 each; carry [".device", ".peers"], .peers/flashmla copied from
# shared/peers/flashmla), back to back on one warm machine, which keeps build-gpu between calls:
#   "bash bench/devq/mla12.sh build" (~4 min), then "... diag" (~6 min) before any code change;
#   after coding: "... build tests" (~8 min), then "... ab" (~5 min). Knobs this tree lacks are
#   reported and their variants skipped, so the sketch runs before every item is coded.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -f .device/remote-setup.sh ] && source .device/remote-setup.sh >/dev/null 2>&1
B=build-gpu; PB=$B/bench/pa-bench; T=$B/tests/test_cross_backend
FM=.peers/flashmla/bench_flashmla.prebuilt
el() { echo "[t=${SECONDS}s]"; }
# "k=v,k=v" (config keys) -> "PA_K=v PA_K=v" (core/config.c: '.' -> '_', upper case)
envs() { local s=${1:-} out=""; IFS=, read -ra kv <<<"$s"
  for p in "${kv[@]}"; do [ -n "$p" ] && out+="PA_$(echo "${p%%=*}" | tr '.a-z' '_A-Z')=${p#*=} "; done
  echo "$out"; }
# every dev.* key of a variant exists in this tree's config table
known() { local s=${1:-} ok=0; IFS=, read -ra kv <<<"$s"
  for p in "${kv[@]}"; do k=${p%%=*}
    case $k in dev.*) grep -q "\"$k\"" core/config.c || { echo "  (knob $k missing: skipped)"; ok=1; } ;; esac
  done; return $ok; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; date -u; git log --oneline -1 2>/dev/null

# Variants: name|options. "fast" is the baseline of every ratio (cuda.mla=fast, knobs 0).
F=cuda.mla=fast
VARIANTS=(
  "fast|$F"
  "seesaw|cuda.mla=seesaw"
  "ldmap|$F,dev.cuda.mla_ldmap=1"
  "tma|$F,dev.cuda.mla_tma=1"
  "tma_pdl|$F,dev.cuda.mla_tma=1,dev.cuda.mla_pdl=1"
  "tma_evict|$F,dev.cuda.mla_tma=1,dev.cuda.mla_evict=1"
  "balance|$F,dev.cuda.mla_balance=1"
  "epi_comb|$F,dev.cuda.mla_epi=1,dev.cuda.combine_vec=1"
  "smx|$F,dev.cuda.mla_smx=1"
  "best|$F,dev.cuda.mla_tma=1,dev.cuda.mla_pdl=1,dev.cuda.mla_balance=1,dev.cuda.mla_epi=1,dev.cuda.combine_vec=1"
  "fast2|$F"
)

phase_build() {
  echo "== build $(el)"
  OUT=$OUT timeout 300 bash bench/devq/mla11.build.sh || return 1
  grep -HE "C7519|registers|spill" "$OUT"/ptxas_*.txt | sed 's/ptxas info *: //' | cut -c1-150 | head -24
  echo "== SASS per kernel (DEPBAR should equal the source's wgmma_wait count; LDGSTS 0 on TMA instances)"
  for k in mla_seesaw mla_fast; do
    o=/tmp/${k}_ptxas.o; [ -f "$o" ] || continue
    cuobjdump -sass "$o" | awk -v k=$k '
      /Function :/ {fn=$3; n[fn]=0}
      {n[fn]++}
      /HGMMA/ {h[fn]++} /WARPGROUP.ARRIVE/ {a[fn]++} /WARPGROUP.DEPBAR/ {d[fn]++}
      /LDGSTS/ {l[fn]++} /UTMALDG/ {t[fn]++} /FENCE.VIEW.ASYNC/ {f[fn]++} /SYNCS/ {s[fn]++}
      END {for (fn in n) if (h[fn]) printf "%-10s %-58.58s HGMMA %3d ARRIVE %2d DEPBAR %2d LDGSTS %3d UTMALDG %2d FENCE %3d SYNCS %3d\n",
           k, fn, h[fn], a[fn], d[fn], l[fn], t[fn], f[fn], s[fn]}' | sort | tee "$OUT/sass_$k.txt"
  done
}

phase_diag() {
  echo "== diag: ncu, b64 kv4096 h128 page 64 (ours: mla_fast, knobs 0; FlashMLA same shape) $(el)"
  command -v ncu >/dev/null || { echo "no ncu"; return 0; }
  local one="-b 64 --hq 128 --skv 4096 --page 64 --iters 3 --warmup 1 --no-ceilings"
  PA_CUDA_MLA=fast timeout 120 ncu --set full -k regex:'mla_decode_fast' --launch-skip 2 --launch-count 1 \
    -f -o "$OUT/ncu_fast_b64" $PB mla --backend cuda $one > "$OUT/ncu_fast.log" 2>&1; echo "ours rc=$?"
  if [ -x $FM ]; then
    timeout 120 ncu --set full -k regex:'flash_fwd_splitkv_mla' --launch-skip 2 --launch-count 1 \
      -f -o "$OUT/ncu_fm_b64" $FM 64 128 4096 --no-check --iters=3 --warmup=1 > "$OUT/ncu_fm.log" 2>&1; echo "FlashMLA rc=$?"
  fi
  for r in fast_b64 fm_b64; do
    [ -f "$OUT/ncu_$r.ncu-rep" ] || continue
    ncu -i "$OUT/ncu_$r.ncu-rep" --page details --print-units base > "$OUT/ncu_$r.txt" 2>&1
    echo "-- $r"
    grep -E "Duration|SM Frequency|Compute \(SM\) Throughput|Memory Throughput|DRAM Throughput|Registers Per|Issue Slots Busy|No Eligible|Active Warps Per|Stall|Warp Cycles Per Issued" \
      "$OUT/ncu_$r.txt" | head -24
  done
  # Tensor-pipe activity, stall reasons, LDGSTS traffic, DRAM bytes: picked from the raw page of
  # each full report (no metric names guessed; whatever this ncu version collected).
  python3 - "$OUT" <<'PY'
import csv, os, re, subprocess, sys
out = sys.argv[1]; want = re.compile(r"(pipe_tensor.*(gmma|hmma).*pct_of_peak_sustained_active$|"
    r"average_warp_latency_issue_stalled_(lg_throttle|mio_throttle|long_scoreboard|barrier|membar|wait|"
    r"math_pipe_throttle|short_scoreboard|dispatch_stall|no_instruction)\.ratio$|"
    r"ldgsts.*\.sum$|^dram__bytes_read\.sum$|^gpu__time_duration\.sum$|^smsp__issue_active\.avg\.pct)")
cols = {}
for r in ("fast_b64", "fm_b64"):
    f = f"{out}/ncu_{r}.ncu-rep"
    if not os.path.exists(f): continue
    txt = subprocess.run(["ncu", "-i", f, "--page", "raw", "--csv"], capture_output=True, text=True).stdout
    rows = list(csv.reader(txt.splitlines()))
    if len(rows) < 3: continue
    cols[r] = {h: v for h, v in zip(rows[0], rows[2]) if want.search(h)}
names = sorted(set().union(*[set(c) for c in cols.values()])) if cols else []
print(f"{'metric':<92}" + "".join(f"{r:>14}" for r in cols))
for n in names:
    print(f"{n[:92]:<92}" + "".join(f"{cols[r].get(n, '-'):>14}" for r in cols))
PY
  echo "== per-kernel times (MLA kernel vs combine), b1 kv32768 and b8 kv16384 $(el)"
  for s in "-b 1 --skv 32768|1 128 32768" "-b 8 --skv 16384|8 128 16384"; do
    fa=${s#*|}; s=${s%%|*}
    PA_CUDA_MLA=fast timeout 45 ncu --metrics gpu__time_duration.sum -k regex:'mla_decode|combine_splits' \
      --launch-skip 4 --launch-count 4 $PB mla --backend cuda $s --hq 128 --page 64 --iters 3 --warmup 1 --no-ceilings 2>&1 |
      grep -E "mla_decode|combine_splits|gpu__time_duration" | sed "s/^/[$s] /" | cut -c1-140
    [ -x $FM ] && timeout 45 ncu --metrics gpu__time_duration.sum -k regex:'flash_fwd|combine' --launch-skip 4 --launch-count 4 \
      $FM $fa --no-check --iters=3 --warmup=1 2>&1 | grep -E "flash_fwd|combine|gpu__time_duration" | sed "s/^/[FM $s] /" | cut -c1-140
  done
}

phase_tests() {
  [ -x $T ] || { echo "no test binary (Criterion missing)"; return 0; }
  for v in "$F,dev.cuda.mla_ldmap=1" "$F,dev.cuda.mla_tma=1" "$F,dev.cuda.mla_tma=1,dev.cuda.mla_pdl=1,dev.cuda.mla_evict=1" \
           "$F,dev.cuda.mla_epi=1,dev.cuda.combine_vec=1,dev.cuda.mla_smx=1" "$F,dev.cuda.mla_balance=1"; do
    echo "== tests cuda/*mla* ($v) $(el)"; known "$v" || continue
    env $(envs "$v") timeout 30 $T --filter='cuda/*mla*' --jobs=1 --verbose > "$OUT/test_$(echo "$v" | tr ',=.' '___').log" 2>&1
    echo "rc=$?"; grep -hE "Synthesis|FAIL|differ|Assert|CRASH" "$OUT/test_$(echo "$v" | tr ',=.' '___').log" | cut -c1-200 | head -6
  done
  known "dev.cuda.mla_tma=1" && {
    echo "== racecheck cuda/*mla* on the TMA path $(el)"
    env $(envs "$F,dev.cuda.mla_tma=1") timeout 60 compute-sanitizer --tool racecheck --target-processes all \
      $T --filter='cuda/*mla_fast' --jobs=1 > "$OUT/race_tma.log" 2>&1; echo "rc=$?"
    grep -E "ERROR SUMMARY|Synthesis" "$OUT/race_tma.log" | sort | uniq -c | head -4; }
}

phase_ab() {
  local done_v=()
  for vv in "${VARIANTS[@]}"; do
    name=${vv%%|*}; opt=${vv#*|}
    echo "== pa-bench mla $name ($opt) $(el)"; known "$opt" || continue
    env $(envs "$opt") PA_LOG=2 timeout 20 stdbuf -oL $PB mla --backend cuda --iters 20 --warmup 2 --no-ceilings \
      --json "$OUT/pa_mla_$name.json" > "$OUT/pa_mla_$name.txt" 2>&1; echo "rc=$?"
    # the kernel each plan took (plan log), so a knob that silently fell back shows
    grep -oE "kernel=[a-z_.0-9]*" "$OUT/pa_mla_$name.txt" | sort | uniq -c | tr '\n' ' '; echo
    done_v+=("$name")
  done
  if [ -x $FM ]; then
    echo "== FlashMLA, same shapes $(el)"
    timeout 30 python3 bench/peers/flashmla.py --from "$OUT/pa_mla_fast.json" --bin $FM --peers "$OUT/peers.json" --iters 20 \
      > "$OUT/flashmla.txt" 2>&1; grep -E "^b=" "$OUT/flashmla.txt" | cut -c1-110
  else echo "no FlashMLA binary (.peers/flashmla)"; fi
  echo "== table: ms median per preset; x = fast / variant (>1 faster); FM = variant / FlashMLA time"
  python3 - "$OUT" "${done_v[@]}" <<'PY'
import json, os, sys
out, names = sys.argv[1], sys.argv[2:]
res = {}
for n in names:
    p = f"{out}/pa_mla_{n}.json"
    if os.path.exists(p):
        res[n] = {r["key"]: r for r in json.load(open(p)).get("results", []) if r.get("status") == "PA_OK"}
fm = {}
if os.path.exists(f"{out}/peers.json"):
    fm = {r["key"]: r["ms_median"] for r in json.load(open(f"{out}/peers.json"))["results"]
          if r.get("peer") == "flashmla" and r.get("status") == "ok"}
base = res.get("fast", {})
keys = list(base) or (list(next(iter(res.values()))) if res else [])
lab = lambda k: (base.get(k) or {}).get("label") or k[:14]
print(f"{'preset':<14}" + "".join(f"{n:>15}" for n in res) + f"{'FlashMLA':>10}")
for k in keys:   # ms and speed-up over fast (x > 1: faster)
    row = f"{lab(k):<14}"
    for n in res:
        r = res[n].get(k); b = (base.get(k) or {}).get("ms_median")
        row += f"{r['ms_median']:8.4f} {b / r['ms_median']:5.2f}x" if r and b else f"{'-':>15}"
    print(row + (f"{fm[k]:10.4f}" if k in fm else f"{'-':>10}"))
print("time / FlashMLA (1.00 = parity):")
for k in [k for k in keys if k in fm]:
    print(f"{lab(k):<14}" + "".join(f"{res[n][k]['ms_median'] / fm[k]:15.2f}" if k in res[n] else f"{'-':>15}" for n in res))
if "fast" in res and "fast2" in res:
    d = [res["fast2"][k]["ms_median"] / res["fast"][k]["ms_median"] for k in res["fast"] if k in res["fast2"]]
    print(f"drift fast2/fast: {min(d):.3f}..{max(d):.3f} (ratios within this band are noise)")
PY
}

[ $# -eq 0 ] && set -- ab
for ph in "$@"; do
  case $ph in
    build) phase_build || { echo "build failed"; exit 1; } ;;
    diag) phase_diag ;; tests) phase_tests ;; ab) phase_ab ;;
    *) echo "unknown phase $ph (build|diag|tests|ab)"; exit 2 ;;
  esac
done
echo "== done $(el)"

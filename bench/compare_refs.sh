#!/usr/bin/env bash
# Before/after on the GPU machine in one call: builds two versions of
# polyattn, runs every pa-bench preset on CUDA and on the NVIDIA OpenCL driver
# for both, interleaved (A B, then B A), and prints the ratio after/before of
# each case's best median, with the kernel each version's plan ran.
#
#   bash bench/compare_refs.sh BEFORE AFTER
#
# BEFORE / AFTER: a git ref of this repository (exported with git archive) or
# a folder holding a polyattn source tree. Environment: OUT (logs and JSON,
# default /tmp/pa-compare), PA_CMP_CASES (default "all"), PA_CMP_ARGS (extra
# pa-bench flags), PA_CMP_ROUNDS (default 2), PA_OPENCL_DEVICE (default
# NVIDIA). Needs nvcc, meson, ninja, python3; OpenCL is skipped where absent.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
[ $# -eq 2 ] || { echo "usage: $0 BEFORE AFTER (git refs or source folders)" >&2; exit 2; }
OUT=${OUT:-/tmp/pa-compare}
CASES=${PA_CMP_CASES:-all}
ARGS=${PA_CMP_ARGS:-}
ROUNDS=${PA_CMP_ROUNDS:-2}
export PA_OPENCL_DEVICE=${PA_OPENCL_DEVICE:-NVIDIA}
mkdir -p "$OUT"
# shellcheck disable=SC1091
[ -f .device/remote-setup.sh ] && source .device/remote-setup.sh

log() { printf '\n== %s\n' "$*"; }
die() { echo "compare_refs.sh: $*" >&2; exit 1; }

# $1 ref or folder, $2 label -> source folder on stdout
source_of() {
  if [ -d "$1" ] && [ -f "$1/meson.build" ]; then (cd "$1" && pwd); return; fi
  local dst=/tmp/pa-cmp-src-$2
  rm -rf "$dst" && mkdir -p "$dst"
  git archive "$1" | tar -x -C "$dst" || die "cannot export $1 (not a folder, not a git ref here)"
  echo "$dst"
}

SRC_A=$(source_of "$1" a) || exit 1
SRC_B=$(source_of "$2" b) || exit 1
log "A = $1 ($SRC_A), B = $2 ($SRC_B)"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"

log "build A and B in parallel"
jobs=$(( $(nproc) / 2 )); [ "$jobs" -ge 1 ] || jobs=1
build() {
  local src=$1 b=$2
  if [ ! -f "$b/build.ninja" ]; then
    meson setup "$b" "$src" -Dcuda=enabled -Dopencl=auto -Dtests=disabled -Dexamples=false \
      --buildtype=release >"$b.setup.log" 2>&1 || { tail -30 "$b.setup.log"; return 1; }
  fi
  ninja -C "$b" -j"$jobs" >"$b.build.log" 2>&1 || { tail -40 "$b.build.log"; return 1; }
}
build "$SRC_A" /tmp/pa-cmp-a & pa=$!
build "$SRC_B" /tmp/pa-cmp-b & pb=$!
wait $pa || die "build of A failed"
wait $pb || die "build of B failed"

backends=(cuda)
grep -q PA_HAVE_OPENCL /tmp/pa-cmp-a/build.ninja && grep -q PA_HAVE_OPENCL /tmp/pa-cmp-b/build.ninja &&
  backends+=(opencl)

for r in $(seq 1 "$ROUNDS"); do
  order="a b"
  [ $((r % 2)) -eq 0 ] && order="b a"
  for be in "${backends[@]}"; do
    for v in $order; do
      log "round $r: $v on $be"
      # shellcheck disable=SC2086
      timeout 600 /tmp/pa-cmp-$v/bench/pa-bench $CASES --backend "$be" --no-ceilings $ARGS \
        --json "$OUT/$v-$be-$r.json" >"$OUT/$v-$be-$r.txt" 2>&1
      tail -n +3 "$OUT/$v-$be-$r.txt" | head -40
    done
  done
done

log "after / before (best median over $ROUNDS rounds; < 1 is faster)"
python3 - "$OUT" "$ROUNDS" "${backends[@]}" <<'EOF'
import json, sys, glob, os
out, rounds, backends = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
def load(v, be):
    best = {}
    for r in range(1, rounds + 1):
        p = os.path.join(out, f"{v}-{be}-{r}.json")
        if not os.path.exists(p):
            continue
        for x in json.load(open(p)).get("results", []):
            if x.get("status") != "PA_OK":
                continue
            k = x["key"]
            if k not in best or x["ms_median"] < best[k]["ms_median"]:
                best[k] = x
    return best
worst = 0.0
for be in backends:
    a, b = load("a", be), load("b", be)
    print(f"\n{be}: {'case':<10} {'shape':<46} {'A ms':>9} {'B ms':>9} {'B/A':>6}  kernel A -> B")
    for k in a:
        if k not in b:
            print(f"{be}: {a[k]['case']:<10} {a[k]['shape']:<46} missing in B")
            continue
        ra = a[k]["ms_median"]; rb = b[k]["ms_median"]
        ratio = rb / ra if ra > 0 else float("nan")
        worst = max(worst, ratio)
        ka, kb = a[k].get("kernel", "?"), b[k].get("kernel", "?")
        print(f"{be}: {a[k]['case']:<10} {a[k]['shape']:<46} {ra:9.4f} {rb:9.4f} {ratio:6.3f}  {ka} -> {kb}")
    for k in b:
        if k not in a:
            print(f"{be}: {b[k]['case']:<10} {b[k]['shape']:<46} missing in A")
print(f"\nworst B/A: {worst:.3f}")
EOF

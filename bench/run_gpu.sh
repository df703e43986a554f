#!/usr/bin/env bash
# The one script a GPU-machine call runs: build, pa-bench on CUDA (and on the
# NVIDIA OpenCL driver, tensor-core probe on and off), the peers (PyTorch SDPA
# flash + cuDNN) on the same shapes, and the ratio table, printed last.
#
#   device call: carry [".device"], command: bash bench/run_gpu.sh
#
# Environment: OUT (logs, JSON, plot; the device tool's $OUT), PA_BUILD (build
# folder, default /tmp/b-gpu), PA_BENCH_CASES (default "all"), PA_BENCH_ARGS
# (extra pa-bench flags), PA_OPENCL (auto|enabled|disabled, default auto),
# PA_RUN_TESTS=1 (also run meson test, then `meson test --suite long`, before
# the bench), PA_SANITIZE=1 (compute-sanitizer memcheck, racecheck, synccheck
# and initcheck over the CUDA suites, every selectable kernel variant; counts
# printed as a table; PA_SANITIZE_TOOLS / PA_SANITIZE_VARIANTS narrow it),
# PA_BENCH=0 (stop after the tests).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT=${OUT:-/tmp/pa-gpu-out}
B=${PA_BUILD:-/tmp/b-gpu}
CASES=${PA_BENCH_CASES:-all}
ARGS=${PA_BENCH_ARGS:-}
mkdir -p "$OUT"
# shellcheck disable=SC1091
[ -f .device/remote-setup.sh ] && source .device/remote-setup.sh

log() { printf '\n== %s\n' "$*"; }
die() { echo "run_gpu.sh: $*" >&2; exit 1; }

log "device"
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv | tee "$OUT/gpu.txt"
date -u | tee -a "$OUT/gpu.txt"

log "build ($B)"
tests=disabled
[ "${PA_RUN_TESTS:-0}" = 1 ] || [ "${PA_SANITIZE:-0}" = 1 ] && tests=auto
if [ -f "$B/build.ninja" ] && [ $tests = auto ]; then
  meson configure "$B" -Dtests=auto >/dev/null
fi
if [ ! -f "$B/build.ninja" ]; then
  meson setup "$B" -Dcuda=enabled -Dopencl="${PA_OPENCL:-auto}" -Dtests=$tests \
    --buildtype=release >"$OUT/setup.log" 2>&1 || { tail -40 "$OUT/setup.log"; die "meson setup failed"; }
fi
ninja -C "$B" -j"$(nproc)" >"$OUT/build.log" 2>&1 || { tail -60 "$OUT/build.log"; die "build failed"; }
have_opencl=0
grep -q "PA_HAVE_OPENCL" "$B/build.ninja" && have_opencl=1
echo "built: cuda yes, opencl $([ $have_opencl = 1 ] && echo yes || echo no)"

if [ "${PA_RUN_TESTS:-0}" = 1 ]; then
  log "meson test"
  meson test -C "$B" --print-errorlogs --no-suite long >"$OUT/test.log" 2>&1
  tail -12 "$OUT/test.log"
  log "meson test --suite long (what CI leaves out for time)"
  meson test -C "$B" --print-errorlogs --suite long >"$OUT/test-long.log" 2>&1
  tail -8 "$OUT/test-long.log"
fi

if [ "${PA_SANITIZE:-0}" = 1 ]; then
  log "compute-sanitizer over the CUDA suites (one line per tool, variant, binary)"
  # Criterion runs each test in a child process: --target-processes all.
  # Every process prints its own ERROR SUMMARY; they are summed.
  tools=${PA_SANITIZE_TOOLS:-memcheck racecheck synccheck initcheck}
  variants=${PA_SANITIZE_VARIANTS:-"default PA_CUDA_PREFILL=mma PA_CUDA_MLA=mma PA_CUDA_DECODE_FUSE=0 PA_CUDA_PDL=0"}
  bins="tests/test_cross_backend tests/test_splits tests/test_merge tests/test_head_gemm tests/test_nonfinite backends/cuda/tests/test_cuda_graph"
  total=0
  cs_logs=$OUT/cs
  mkdir -p "$cs_logs"
  printf '%-10s %-22s %-24s %s\n' tool variant binary errors | tee "$OUT/sanitizer.txt"
  for tool in $tools; do
    for var in $variants; do
      for bin in $bins; do
        [ -x "$B/$bin" ] || continue
        # the kernel variants only change what the cross-backend table runs
        [ "$var" != default ] && [ "$bin" != tests/test_cross_backend ] && continue
        f=--filter='cuda/*'
        [ "$bin" = backends/cuda/tests/test_cuda_graph ] && f=
        log_f="$cs_logs/cs-$tool-${var//[=\/]/_}-$(basename "$bin").log"
        env ${var/#default/PA_SAN_DEFAULT=1} compute-sanitizer --tool "$tool" --target-processes all \
          "$B/$bin" $f --jobs=1 >"$log_f" 2>&1
        # racecheck ends with "RACECHECK SUMMARY: N hazards displayed", the others
        # with "ERROR SUMMARY: N errors"; a log with neither was cut short.
        n=$(grep -Eo "(ERROR SUMMARY: [0-9]+|RACECHECK SUMMARY: [0-9]+)" "$log_f" |
          awk '{s += $3} END {print s + 0}')
        grep -Eq "(ERROR|RACECHECK) SUMMARY" "$log_f" || n="no-summary"
        [ "$n" = no-summary ] || total=$((total + n))
        printf '%-10s %-22s %-24s %s\n' "$tool" "$var" "$(basename "$bin")" "$n" | tee -a "$OUT/sanitizer.txt"
      done
    done
  done
  echo "compute-sanitizer: $total errors in all" | tee -a "$OUT/sanitizer.txt"
  # the device tool returns at most 8 files: the logs travel as one archive
  tar -czf "$OUT/cs-logs.tgz" -C "$cs_logs" . && rm -rf "$cs_logs"
fi
[ "${PA_BENCH:-1}" = 0 ] && exit 0

PB="$B/bench/pa-bench"
[ -x "$PB" ] || die "no pa-bench in $B"
jsons=()

log "pa-bench --backend cuda"
# shellcheck disable=SC2086
"$PB" $CASES --backend cuda $ARGS --json "$OUT/pa_cuda.json" 2>&1 | tee "$OUT/pa_cuda.txt"
[ -s "$OUT/pa_cuda.json" ] && jsons+=("$OUT/pa_cuda.json")

if [ $have_opencl = 1 ]; then
  log "pa-bench --backend opencl (NVIDIA OpenCL, default kernels)"
  # shellcheck disable=SC2086
  PA_OPENCL_DEVICE=${PA_OPENCL_DEVICE:-NVIDIA} "$PB" $CASES --backend opencl $ARGS \
    --json "$OUT/pa_opencl.json" 2>&1 | tee "$OUT/pa_opencl.txt"
  [ -s "$OUT/pa_opencl.json" ] && jsons+=("$OUT/pa_opencl.json")
  log "pa-bench --backend opencl prefill, portable path (PA_OPENCL_PTX=0)"
  # shellcheck disable=SC2086
  PA_OPENCL_PTX=0 PA_OPENCL_DEVICE=${PA_OPENCL_DEVICE:-NVIDIA} "$PB" prefill --backend opencl \
    $ARGS --json "$OUT/pa_opencl_portable.json" 2>&1 | tee "$OUT/pa_opencl_portable.txt"
  [ -s "$OUT/pa_opencl_portable.json" ] && jsons+=("$OUT/pa_opencl_portable.json")
  log "pa-bench --backend opencl prefill, tensor-core path (opencl.ptx=1, the default: a second sample)"
  # shellcheck disable=SC2086
  PA_OPENCL_PTX=1 PA_OPENCL_DEVICE=${PA_OPENCL_DEVICE:-NVIDIA} "$PB" prefill --backend opencl \
    --no-ceilings $ARGS --json "$OUT/pa_opencl_mma.json" 2>&1 | tee "$OUT/pa_opencl_mma.txt"
  [ -s "$OUT/pa_opencl_mma.json" ] && jsons+=("$OUT/pa_opencl_mma.json")
fi

log "peers (bench/peers/sdpa.py)"
if [ -s "$OUT/pa_cuda.json" ]; then
  python3 bench/peers/sdpa.py --from "$OUT/pa_cuda.json" --out "$OUT/peers.json" 2>&1 |
    tee "$OUT/peers.txt"
else
  python3 bench/peers/sdpa.py --out "$OUT/peers.json" 2>&1 | tee "$OUT/peers.txt"
fi

# FlashMLA: the caller copies shared/peers/flashmla to .peers/flashmla and
# carries it (its README); rebuilt when the prebuilt binary does not start.
FM=.peers/flashmla
if [ -s "$OUT/pa_cuda.json" ] && [ -d "$FM" ]; then
  log "peer FlashMLA (bench/peers/flashmla.py)"
  fm_bin=$FM/bench_flashmla.prebuilt
  if ! "$fm_bin" --help >/dev/null 2>&1; then
    bash "$FM/build.sh" /tmp/bench_flashmla >"$OUT/flashmla-build.log" 2>&1 && fm_bin=/tmp/bench_flashmla
  fi
  python3 bench/peers/flashmla.py --from "$OUT/pa_cuda.json" --bin "$fm_bin" \
    --peers "$OUT/peers.json" 2>&1 | tee "$OUT/flashmla.txt"
fi

log "ratios (polyattn TFLOP/s / peer TFLOP/s; % of ceilings measured in this run)"
[ ${#jsons[@]} -gt 0 ] || die "no pa-bench results"
python3 bench/peers/compare.py "${jsons[@]}" --peers "$OUT/peers.json" --md "$OUT/ratios.md" \
  --plot "$OUT/ratios.png"

#!/bin/bash
# One device call for the OpenCL backend on the GPU machine: build (no CUDA),
# the OpenCL test suites on the NVIDIA platform, pa-bench presets with the
# unfused CLBlast baseline, then tile sweeps (PA_OPENCL_TILE). Logs in $OUT.
#   source .device/remote-setup.sh && bash backends/opencl/gpu_run.sh
B=/tmp/b-ocl
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export PA_OPENCL_DEVICE=${PA_OPENCL_DEVICE:-NVIDIA}
t0=$(date +%s)
log() { echo "== $(( $(date +%s) - t0 ))s $*"; }
log setup
meson setup $B -Dcuda=disabled -Dopencl=enabled -Dexamples=false >"$OUT/setup.log" 2>&1 || { tail -20 "$OUT/setup.log"; exit 1; }
ninja -C $B -j16 >"$OUT/build.log" 2>&1 || { grep -A5 -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
clinfo -l 2>&1 | tee "$OUT/clinfo.txt"
log "tests (suite opencl)"
timeout ${TEST_S:-110} meson test -C $B --suite opencl --num-processes 4 --print-errorlogs >"$OUT/test.log" 2>&1
grep -E "^ *[0-9]+/[0-9]+ |Ok:|Fail:|Skipped:|Timeout:" "$OUT/test.log" | tail -12
PB=$B/bench/pa-bench
log "pa-bench presets (opencl)"
timeout ${BENCH_S:-90} $PB ${CASES:-prefill decode mla merge gemm} --backend opencl --json "$OUT/pa_opencl.json" 2>&1 | tee "$OUT/pa_opencl.txt"
log "sweeps"
for t in ${PREFILL_TILES:-"64,32,8,8" "32,32,8,8" "32,32,8,16"}; do
  echo "prefill tile $t: $(PA_OPENCL_TILE=$t timeout 30 $PB prefill --backend opencl --no-ceilings --iters 3 --warmup 1 2>&1 | grep -E '^(prefill|custom)' | head -1)"
done | tee "$OUT/sweep_prefill.txt"
for t in ${DECODE_TILES:-"4,32,4,32" "4,128,4,32" "4,64,4,16" "8,64,8,16"}; do
  echo "decode tile $t: $(PA_OPENCL_TILE=$t timeout 20 $PB decode --backend opencl --no-ceilings --iters 5 --warmup 2 2>&1 | grep -E '^(decode|custom)' | head -1)"
done | tee "$OUT/sweep_decode.txt"
log done

#!/bin/bash
# One device call for the OpenCL backend on the GPU machine: build (no CUDA),
# the OpenCL test suites on the NVIDIA platform (default kernels: tensor-core
# prefill after the probe; then the portable path, PA_OPENCL_PTX=0), pa-bench
# presets with the unfused CLBlast baseline, prefill on both paths, decode vs the
# tile kernel. Logs in $OUT.
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
log "tests (suite opencl, default kernels)"
timeout ${TEST_S:-110} meson test -C $B --suite opencl --num-processes 4 --print-errorlogs >"$OUT/test.log" 2>&1
grep -E "^ *[0-9]+/[0-9]+ |Ok:|Fail:|Skipped:|Timeout:" "$OUT/test.log" | tail -12
log "cross_backend + splits on the portable path (PA_OPENCL_PTX=0)"
( cd $B/tests && PA_OPENCL_PTX=0 PA_LOG=3 PA_TEST_CACHE_DIR=$B/tests/kernel-cache timeout ${MMA_TEST_S:-80} \
  ./test_cross_backend --filter='opencl/*' --jobs=1 >"$OUT/test_mma.log" 2>&1;
  echo "cross_backend rc=$?; plans on an mma kernel (0 expected here): $(grep -c 'kernel=opencl.mma' "$OUT/test_mma.log"); probe: $(grep -o 'mma.sync probe[^,]*' "$OUT/test_mma.log" | sort | uniq -c | head -3)";
  PA_OPENCL_PTX=0 PA_TEST_CACHE_DIR=$B/tests/kernel-cache timeout 40 ./test_splits --filter='opencl/*' --jobs=1 >"$OUT/test_mma_splits.log" 2>&1; echo "splits rc=$?" )
grep -E "FAIL|Synthesis|----" "$OUT/test_mma.log" | head -12
PB=$B/bench/pa-bench
log "pa-bench presets (opencl, default kernels)"
timeout ${BENCH_S:-90} $PB ${CASES:-prefill decode mla merge gemm} --backend opencl --json "$OUT/pa_opencl.json" 2>&1 | tee "$OUT/pa_opencl.txt"
log "prefill: tensor cores (default) and portable (PA_OPENCL_PTX=0)"
timeout 40 $PB prefill --backend opencl --no-ceilings --json "$OUT/pa_opencl_mma.json" 2>&1 | grep -E "^(prefill|unfused)" | tee "$OUT/prefill_mma.txt"
timeout 40 $PB prefill --backend opencl --no-ceilings --dtype bf16 2>&1 | grep -E "^(prefill|custom)" | tee -a "$OUT/prefill_mma.txt"
PA_OPENCL_PTX=0 timeout 40 $PB prefill --backend opencl --no-ceilings 2>&1 | grep -E "^(prefill|unfused)" | tee "$OUT/prefill_portable.txt"
log "decode: decode kernel vs tile kernel (PA_OPENCL_DECODE=off)"
for e in "" "PA_OPENCL_DECODE=off"; do
  echo "[$e] $(env $e timeout 20 $PB decode --backend opencl --no-ceilings --iters 10 2>&1 | grep -E '^decode' | head -1)"
  echo "[$e] $(env $e timeout 20 $PB decode --backend opencl --no-ceilings --iters 10 -b 1 --skv 32768 2>&1 | grep -E '^custom' | head -1)"
done | tee "$OUT/decode.txt"
log done

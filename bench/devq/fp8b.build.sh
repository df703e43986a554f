#!/usr/bin/env bash
# fp8b build: pa-bench + the two test binaries (CUDA + OpenCL), ptxas -v of the touched kernels.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source .device/remote-setup.sh >/dev/null 2>&1
B=build-fp8b
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 3"
( for f in decode prefill_wgmma append; do
    nvcc -gencode=arch=compute_90a,code=sm_90a -std=c++17 -O3 -Iinclude -Ibackends -Icore -Xptxas -v \
      -c backends/cuda/$f.cu -o /tmp/fp8b_$f.o > "$OUT/ptxas_$f.txt" 2>&1; done ) &
meson setup $B -Dcuda=enabled -Dopencl=enabled -Dtests=enabled -Dexamples=false \
  --buildtype=release > "$OUT/setup.log" 2>&1 || { tail -30 "$OUT/setup.log"; exit 1; }
ninja -C $B -j16 bench/pa-bench tests/test_cross_backend tests/test_append > "$OUT/build.log" 2>&1 ||
  { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -40; exit 1; }
wait
echo "build ok"

#!/usr/bin/env bash
# mla11 build: pa-bench + the cross-backend test binary (CUDA only), ptxas -v of both sm_90 MLA kernels.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -f .device/remote-setup.sh ] && source .device/remote-setup.sh
B=build-gpu
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 3"
( for k in mla_seesaw mla_fast; do
    nvcc -gencode=arch=compute_90a,code=sm_90a -std=c++17 -O3 -Iinclude -Ibackends -Xptxas -v \
      -c backends/cuda/$k.cu -o /tmp/${k}_ptxas.o > "$OUT/ptxas_$k.txt" 2>&1; done ) &
tests=disabled; pkg-config --exists criterion && tests=enabled
meson setup $B -Dcuda=enabled -Dopencl=disabled -Dtests=$tests -Dexamples=false -Dmpi=disabled -Dnccl=disabled \
  --buildtype=release > "$OUT/setup.log" 2>&1 || { tail -30 "$OUT/setup.log"; exit 1; }
tt=""; [ $tests = enabled ] && tt=tests/test_cross_backend
ninja -C $B -j16 bench/pa-bench $tt > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -40; exit 1; }
wait
echo "build ok (tests $tests)"

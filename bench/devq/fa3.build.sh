#!/bin/bash
# fa3 (issue 10): build pa-bench, then the cross-backend test (Criterion from .device).
set -uo pipefail
O=${OUT:-/tmp/fa3-out}; mkdir -p "$O"
source .device/remote-setup.sh >/dev/null 2>&1 || echo "no .device: Criterion missing, tests will not build"
B=build-fa3
meson setup $B -Dcuda=enabled -Dopencl=disabled --buildtype=release >"$O/setup.log" 2>&1 || { tail -30 "$O/setup.log"; exit 1; }
ninja -C $B -j16 bench/pa-bench >"$O/build.log" 2>&1; rc=$?
echo "pa-bench build rc=$rc"; [ $rc = 0 ] || tail -30 "$O/build.log"
ninja -C $B -j16 tests/test_cross_backend backends/cuda/tests/test_cuda_graph >>"$O/build.log" 2>&1; rc2=$?
echo "test_cross_backend build rc=$rc2"; [ $rc2 = 0 ] || tail -15 "$O/build.log"
grep -i "warning" "$O/build.log" | grep -i "prefill_ws\|tma.cuh" | head -10
exit $rc

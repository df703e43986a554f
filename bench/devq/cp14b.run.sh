#!/usr/bin/env bash
# cp14b run: context parallelism over NCCL with ONE rank on one GPU: the
# cp_cases suite (tests/cp_nccl.c: decode incl. windows/MTP, MLA decode, ring
# incl. windows), pa-cp-bench-nccl with 1 GPU (plain, windowed), then
# compute-sanitizer memcheck of the test with the time left (< 180 s total).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source .device/remote-setup.sh > /dev/null 2>&1
export NCCL_NVLS_ENABLE=0 PA_CP_RANKS=1
B=build-cp; PB=$B/bench/pa-cp-bench-nccl
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
echo "== test_cp_nccl, 1 rank"
timeout 50 $B/tests/test_cp_nccl > "$OUT/test_cp_nccl.txt" 2>&1; rc_t=$?
grep -E "FAIL|SKIP|checks|rank\(s\)" "$OUT/test_cp_nccl.txt" | head -30; echo "rc=$rc_t"
echo "== bench (1 GPU, NCCL world size 1)"
{
timeout 20 $PB decode 1 1048576 1 32 8 128 50
PA_CP_WINDOW=4096 timeout 15 $PB decode 1 1048576 1 32 8 128 50
timeout 15 $PB decode 1 65536 16 32 8 128 50
timeout 20 $PB prefill 1 32768 32 8 128 5
PA_CP_WINDOW=4096 timeout 15 $PB prefill 1 32768 32 8 128 5
} > "$OUT/bench.txt" 2>&1; rc_b=$?
cut -c1-170 "$OUT/bench.txt"
left=$((170 - SECONDS)); [ $left -gt 60 ] && left=60
echo "== compute-sanitizer memcheck, test_cp_nccl (${left}s)"
rc_m=skipped
if [ $left -gt 10 ]; then
  timeout $left compute-sanitizer --tool memcheck --leak-check no $B/tests/test_cp_nccl \
    > "$OUT/memcheck.txt" 2>&1; rc_m=$?
  grep -E "ERROR SUMMARY|checks|FAIL" "$OUT/memcheck.txt" | head -10
fi
echo "== summary: test rc=$rc_t bench rc=$rc_b memcheck rc=$rc_m (124 = timed out)"

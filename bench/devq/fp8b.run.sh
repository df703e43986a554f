#!/usr/bin/env bash
# fp8b run: the opt-in fp8 paths (NEW = dev.cuda.fp8_decode/fp8_prefill/append_vec=1, dev.opencl.fp8_decode=1)
# checked against the oracle and timed beside the defaults (= main's kernels) and the SDPA peers
# (incl. dequantise + SDPA for e4m3) in the same run; summary last.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
source .device/remote-setup.sh >/dev/null 2>&1
B=build-fp8b; PB=$B/bench/pa-bench; T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s]"; }
NEW=dev.cuda.fp8_decode=1,dev.cuda.fp8_prefill=1,dev.cuda.append_vec=1
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader; date -u
export PA_TEST_CACHE_DIR=/tmp/fp8b-kc PA_OPENCL_DEVICE=NVIDIA
echo "== ptxas (sm_90a)"
for f in "$OUT"/ptxas_*.txt; do grep -hE "Compiling|registers|spill" "$f" | paste - - - |
  awk '{n=$0; sub(/.*Compiling entry function ./,"",n); sub(/. for .*/,"",n); r=$0; sub(/.*Used /,"",r); sub(/ registers.*/,"",r);
        sp=$0; sub(/.*stack frame, /,"",sp); sub(/ spill stores.*/,"",sp); print substr(n,length(n)-50), "regs=" r, "spill=" sp}' | grep -E "Li[45]E|append_vec" | sort -u | head -16; done
echo "== tests $(el)"
PA_TEST_OPTIONS=$NEW timeout 40 $B/tests/test_cross_backend --filter='cuda/fp8*' --jobs=2 > "$OUT/t_fp8_new.log" 2>&1; echo "cuda/fp8* NEW: rc=$? $(grep -E 'Synthesis' "$OUT/t_fp8_new.log")"
PA_TEST_OPTIONS=dev.cuda.fp8_decode=1,cuda.decode_fuse=0 timeout 30 $B/tests/test_cross_backend --filter='cuda/fp8' --jobs=2 > "$OUT/t_fp8_nofuse.log" 2>&1; echo "cuda/fp8 regs+decode_fuse=0: rc=$? $(grep -E 'Synthesis' "$OUT/t_fp8_nofuse.log")"
PA_TEST_OPTIONS=dev.cuda.append_vec=1 timeout 30 $B/tests/test_append --filter='cuda/*' --jobs=2 > "$OUT/t_app_new.log" 2>&1; echo "append cuda NEW: rc=$? $(grep -E 'Synthesis' "$OUT/t_app_new.log")"
PA_TEST_OPTIONS=dev.opencl.fp8_decode=1 timeout 30 $B/tests/test_cross_backend --filter='opencl/fp8' --jobs=1 > "$OUT/t_ocl_fp8.log" 2>&1; echo "opencl/fp8 NEW (NVIDIA): rc=$? $(grep -E 'Synthesis' "$OUT/t_ocl_fp8.log")"
timeout 25 $B/tests/test_cross_backend --filter='cuda/fp8' --jobs=2 > "$OUT/t_fp8_def.log" 2>&1; echo "cuda/fp8 default: rc=$? $(grep -E 'Synthesis' "$OUT/t_fp8_def.log")"
grep -hE "FAIL|Assert|fail" -A2 "$OUT"/t_*.log | grep -v "^--$" | head -16
echo "== pa-bench cuda $(el)"
timeout 50 $PB decode prefill append --backend cuda --json "$OUT/pa_cuda.json" > "$OUT/pa_cuda.txt" 2>&1; echo "default rc=$?"
timeout 40 $PB decode prefill append --backend cuda --no-ceilings --options $NEW --json "$OUT/pa_cuda_new.json" > "$OUT/pa_cuda_new.txt" 2>&1; echo "NEW rc=$?"
grep -hE "^(copy|read|decode|prefill|append|custom)" "$OUT/pa_cuda.txt" | cut -c1-140; echo "-- NEW:"; grep -hE "e4m3|append" "$OUT/pa_cuda_new.txt" | cut -c1-140
( for s in 1 2 4; do echo "b16 kv8192 --splits $s: $(timeout 10 $PB decode --backend cuda --no-ceilings -b 16 --skv 8192 --splits $s 2>&1 | grep -E '^custom' | cut -c1-110)"; done
  for s in 16 64; do echo "e4m3 b1 kv32768 NEW --splits $s: $(timeout 10 $PB decode --backend cuda --no-ceilings --options $NEW --kv-dtype e4m3 -b 1 --skv 32768 --splits $s 2>&1 | grep -E '^custom' | cut -c1-110)"; done ) > "$OUT/splits.txt" 2>&1
echo "== pa-bench opencl decode (NVIDIA) $(el)"
timeout 25 $PB decode --backend opencl --iters 10 > "$OUT/pa_ocl.txt" 2>&1; echo "default rc=$?"
PA_LOG=2 timeout 25 $PB decode --backend opencl --iters 10 --no-ceilings --options dev.opencl.fp8_decode=1 > "$OUT/pa_ocl_new.txt" 2>&1; echo "NEW rc=$?"
PA_LOG=2 timeout 15 $PB decode --backend opencl --iters 10 --no-ceilings --kv-dtype e4m3 --options dev.opencl.fp8_decode=1,dev.opencl.decode_warps=8 > "$OUT/pa_ocl_w8.txt" 2>&1
grep -ohE "kernel=opencl[^ ]*|fell back[^.]*" "$OUT"/pa_ocl_new.txt | sort | uniq -c | head -5
echo "== peers $(el)"
timeout 55 python3 bench/peers/sdpa.py --from "$OUT/pa_cuda.json" --out "$OUT/peers.json" > "$OUT/peers.txt" 2>&1; echo "sdpa rc=$?"
python3 bench/peers/compare.py "$OUT/pa_cuda_new.json" --peers "$OUT/peers.json" --md "$OUT/ratios_new.md" > "$OUT/compare_new.txt" 2>&1
if [ $(( $(date +%s) - T0 )) -lt 135 ]; then
  echo "== memcheck/racecheck cuda/fp8 NEW $(el)"
  for tool in memcheck racecheck; do
    PA_TEST_OPTIONS=$NEW timeout 18 compute-sanitizer --tool $tool --error-exitcode 9 $B/tests/test_cross_backend --filter='cuda/fp8' --jobs=1 > "$OUT/san_$tool.log" 2>&1
    echo "$tool rc=$? $(grep -E 'ERROR SUMMARY' "$OUT/san_$tool.log" | tail -1)"
  done
fi
echo "== peers"; grep -vE "^\s*$" "$OUT/peers.txt" | cut -c1-105 | tail -36
echo "== compare (NEW vs peers)"; cut -c1-150 "$OUT/compare_new.txt" | tail -16
echo "== splits"; cat "$OUT/splits.txt"
echo "== opencl default / NEW / NEW w8"; grep -hE "^(decode|custom|copy|read)" "$OUT/pa_ocl.txt" "$OUT/pa_ocl_new.txt" "$OUT/pa_ocl_w8.txt" | cut -c1-150
echo "== done $(el)"

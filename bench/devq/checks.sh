# Checks shared by verify.sh and verify_min.sh (sourced; needs PB and el).
# window_ab: windowed prefill 32/8 d128 s32768 causal, causal vs window 4096
# on the default loop and on dev.cuda.window_fast=1, with the kernel each ran.
window_ab() {
  echo "== windowed prefill, 32/8 d128 s32768 causal $(el)"
  local v w opt r
  for v in "-1|" "4096|" "4096|dev.cuda.window_fast=1"; do
    w=${v%%|*}; opt=${v#*|}
    r=$(PA_LOG=2 timeout 15 $PB prefill --backend cuda --no-ceilings -b 1 --hq 32 --hkv 8 -d 128 --sq 32768 \
      --skv 32768 --causal 1 --window "$w" --iters 3 --warmup 1 ${opt:+--options $opt} 2>&1)
    echo "window $w ${opt:-defaults}: $(echo "$r" | grep -oE "kernel=[a-z_.0-9]*" | sort -u | tr '\n' ' ') $(echo "$r" | grep -E "^custom" | cut -c60-125)"
  done
}
# cp_one_rank LOGDIR: the NCCL CP test and the 1M-key decode beside plain
# attention, with one rank (build-cp from cp14b.build.sh).
cp_one_rank() {
  echo "== context parallelism over NCCL, one rank $(el)"
  [ -x build-cp/tests/test_cp_nccl ] || { echo "no build-cp"; return; }
  export NCCL_NVLS_ENABLE=0 PA_CP_RANKS=1
  timeout 40 build-cp/tests/test_cp_nccl >"$1/cp_test.txt" 2>&1
  echo "test_cp_nccl rc=$? $(grep -E "checks" "$1/cp_test.txt" | tail -1)"
  timeout 15 build-cp/bench/pa-cp-bench-nccl decode 1 1048576 1 32 8 128 20 2>&1 | grep -E "^plain" | cut -c1-150
}

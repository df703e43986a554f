#!/usr/bin/env bash
# mla11 run (180 s; most important first): CUDA MLA tests on the default kernel and on
# cuda.mla=fast (mla_fast.cu) with its knobs, the MLA presets on both kernels beside FlashMLA,
# fp8 ckv/kpe on mla_fast (e4m3 rows vs the bf16 rows of the same run), racecheck, A/B knobs.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
[ -f .device/remote-setup.sh ] && source .device/remote-setup.sh >/dev/null 2>&1
B=build-gpu; PB=$B/bench/pa-bench; T=$B/tests/test_cross_backend
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader; date -u
echo "== ptxas sm_90a (mla_seesaw: C7519 expected; mla_fast: none)"
grep -HE "C7519|registers|spill" "$OUT"/ptxas_*.txt 2>/dev/null | sed 's/ptxas info *: //' | cut -c1-150 | head -16
F=PA_CUDA_MLA=fast
if [ -x $T ]; then
  for vf in ":cuda/*mla*" "$F:cuda/*mla*" "$F,PA_DEV_CUDA_MLA_FP8=1:cuda/*mla*" \
            "$F,PA_DEV_CUDA_MLA_FP8=1,PA_DEV_CUDA_MLA_PF=2,PA_DEV_CUDA_MLA_EARLY_PB=1,PA_DEV_CUDA_MLA_BALANCE=1:cuda/*mla*"; do
    v=${vf%%:*}; f=${vf#*:}
    echo "== tests $f (${v:-defaults})"
    env ${v//,/ } timeout 25 $T --filter="$f" --jobs=1 --verbose > "$OUT/test_${v//[,=]/_}.log" 2>&1; echo "rc=$?"
    grep -E "Synthesis|FAIL|differ|Assert|CRASH" "$OUT/test_${v//[,=]/_}.log" | cut -c1-200 | head -6
  done
else echo "no test binary (Criterion missing)"; fi
bench() { local tag=$1; shift; local envs=(); while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  echo "== pa-bench mla $tag (${envs[*]:-defaults})"
  env "${envs[@]}" timeout 18 stdbuf -oL $PB mla --backend cuda --iters 20 --warmup 2 --no-ceilings --json "$OUT/pa_mla_$tag.json" > "$OUT/pa_mla_$tag.txt" 2>&1; echo "rc=$?"
  grep -vE "^\s*$" "$OUT/pa_mla_$tag.txt" | cut -c1-118 | tail -10; }
bench seesaw PA_CUDA_MLA=seesaw --
bench fast_fp8 $F PA_DEV_CUDA_MLA_FP8=1 --
FM=.peers/flashmla/bench_flashmla.prebuilt
if [ -x $FM ]; then
  echo "== FlashMLA, same shapes; ratios against the seesaw run"
  timeout 25 python3 bench/peers/flashmla.py --from "$OUT/pa_mla_seesaw.json" --bin $FM --peers "$OUT/peers.json" --iters 20 > "$OUT/flashmla.txt" 2>&1
  grep -E "^b=" "$OUT/flashmla.txt" | cut -c1-110
  python3 bench/peers/compare.py "$OUT/pa_mla_seesaw.json" "$OUT/pa_mla_fast_fp8.json" --peers "$OUT/peers.json" 2>&1 | tail -14
else echo "no FlashMLA binary (.peers/flashmla)"; fi
if [ -x $T ]; then
  echo "== racecheck cuda/*mla_fast on mla_fast (fp8, pf 2, early P_B)"
  env $F PA_DEV_CUDA_MLA_FP8=1 PA_DEV_CUDA_MLA_PF=2 PA_DEV_CUDA_MLA_EARLY_PB=1 timeout 30 compute-sanitizer --tool racecheck \
    --target-processes all $T --filter='cuda/*mla_fast' --jobs=1 > "$OUT/race.log" 2>&1; echo "rc=$?"
  grep -E "ERROR SUMMARY|Synthesis" "$OUT/race.log" | sort | uniq -c | head -4
fi
bench fast_pf2 $F PA_DEV_CUDA_MLA_PF=2 --
bench fast_pf6_balance $F PA_DEV_CUDA_MLA_PF=6 PA_DEV_CUDA_MLA_BALANCE=1 --
bench fast_pf2_early $F PA_DEV_CUDA_MLA_PF=2 PA_DEV_CUDA_MLA_EARLY_PB=1 --

#!/usr/bin/env bash
# cp14b build: libpolyattn(+CUDA) and libpolyattn_cp with the NCCL transport;
# only the NCCL test and bench targets. NCCL: beside CUDA if there, else the
# PyTorch wheel's (cp/nccl-pc.sh writes an nccl.pc for it).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
T=enabled; TGT="tests/test_cp_nccl bench/pa-cp-bench-nccl"
if [ -f .device/remote-setup.sh ] && source .device/remote-setup.sh > "$OUT/deps.log" 2>&1; then :; else
  echo "no .device/remote-setup.sh: no Criterion, bench only"; T=disabled; TGT=bench/pa-cp-bench-nccl; fi
B=build-cp
if [ -f /usr/local/cuda/include/nccl.h ] && ls /usr/local/cuda/lib64/libnccl.so >/dev/null 2>&1; then
  echo "NCCL: beside CUDA (/usr/local/cuda)"
else
  pc=$(cp/nccl-pc.sh /tmp/pa-nccl) || { echo "no NCCL found"; exit 1; }
  export PKG_CONFIG_PATH=$pc${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  echo "NCCL: wheel, $(grep ^Description $pc/nccl.pc)"
fi
echo "$PKG_CONFIG_PATH" > "$OUT/pkg_config_path"
export NVCC_APPEND_FLAGS="${NVCC_APPEND_FLAGS:-} --threads 3"
meson setup $B -Dcuda=enabled -Dnccl=enabled -Dmpi=disabled -Dopencl=disabled -Dtests=$T \
  -Dexamples=false --buildtype=release > "$OUT/setup.log" 2>&1 || { tail -30 "$OUT/setup.log"; exit 1; }
grep -iE "nccl|criterion" "$OUT/setup.log" | head -8
ninja -C $B -j16 $TGT > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" -A3 "$OUT/build.log" | head -40; exit 1; }
echo "build ok"

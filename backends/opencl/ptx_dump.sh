#!/bin/bash
# Kernel-refactor check: clang's nvptx PTX of representative configurations
# of every attention kernel, each program assembled as program_cache.c does
# (common.cl, ptx.cl, decode_common.cl where used, the file) with the -D
# defines the host passes. Builtins stay external calls (no libclc), so this
# compares what the source asks for, not NVIDIA's final code.
#   bash backends/opencl/ptx_dump.sh /tmp/before   # on the old tree
#   bash backends/opencl/ptx_dump.sh /tmp/after    # on the new tree
#   diff -r /tmp/before /tmp/after                 # *.ptx: empty when unchanged
set -u
K=$(dirname "$0")/kernels
O=${1:?usage: ptx_dump.sh OUTDIR}
mkdir -p "$O"
rc=0
comp() { # name file defines...
  local n=$1 f=$2
  shift 2
  local parts="$K/common.cl"
  case $f in prefill_mma.cl | mla_mma.cl | decode_w.cl) parts="$parts $K/ptx.cl" ;; esac
  case $f in decode.cl | decode_w.cl) parts="$parts $K/decode_common.cl" ;; esac
  for p in $parts $K/$f; do
    cat "$p"
    echo
  done >"$O/$n.cl"
  # -Dasm=__asm__: clang's OpenCL C has no `asm` keyword, NVIDIA's has
  clang -x cl -cl-std=CL1.2 -target nvptx64-nvidia-cuda -O2 -include opencl-c.h -Dasm=__asm__ \
    -S "$@" -o "$O/$n.ptx" "$O/$n.cl" 2>"$O/$n.err" || { echo "FAIL $n (see $O/$n.err)"; rc=1; }
}
T="-DDQK=128 -DDV=128 -DQ_DT=1 -DKV_DT=1 -DO_DT=1"
comp att_f16 attention.cl $T -DBQ=64 -DBKV=32 -DRG=8 -DCG=16 -DMLA=0
comp att_f32 attention.cl -DDQK=64 -DDV=64 -DQ_DT=0 -DKV_DT=0 -DO_DT=0 -DBQ=16 -DBKV=32 -DRG=8 -DCG=16 -DMLA=0
comp att_fp8 attention.cl -DDQK=128 -DDV=128 -DQ_DT=2 -DKV_DT=4 -DO_DT=2 -DBQ=16 -DBKV=32 -DRG=8 -DCG=16 -DMLA=0
comp att_mla attention.cl -DDQK=576 -DDV=512 -DQ_DT=2 -DKV_DT=2 -DO_DT=2 -DBQ=16 -DBKV=16 -DRG=8 -DCG=16 -DMLA=1
comp dec_f16 decode.cl $T -DBQ=4 -DBKV=64 -DDL=16 -DKG=8
comp dec_f32 decode.cl -DDQK=64 -DDV=64 -DQ_DT=0 -DKV_DT=0 -DO_DT=0 -DBQ=1 -DBKV=64 -DDL=8 -DKG=16
comp decw_nv decode_w.cl $T -DBQ=4 -DDL=16 -DWARPS=4 -DNV=1 -DNC=0 -DCPA=1 -DSTAGES=3 -DCP_WAIT=2
comp decw_nvreg decode_w.cl $T -DBQ=1 -DDL=16 -DWARPS=4 -DNV=1 -DNC=1 -DCPA=0 -DSTAGES=1 -DCP_WAIT=0 -DPAGE=16
comp decw_emu decode_w.cl -DDQK=64 -DDV=64 -DQ_DT=0 -DKV_DT=0 -DO_DT=0 -DBQ=2 -DDL=8 -DWARPS=2 -DNV=2 -DNC=0 -DCPA=0 -DSTAGES=1 -DCP_WAIT=0
comp pf_pipe prefill_mma.cl -DPROBE_ONLY=0 -DDQK=128 -DDV=128 -DKV_DT=1 -DO_DT=1 -DPIPE=1 -DWARPS=8 -DBKV=64
comp pf_pipe_bf prefill_mma.cl -DPROBE_ONLY=0 -DDQK=64 -DDV=64 -DKV_DT=2 -DO_DT=0 -DPIPE=1 -DWARPS=4 -DBKV=32
comp pf_plain prefill_mma.cl -DPROBE_ONLY=0 -DDQK=128 -DDV=128 -DKV_DT=1 -DO_DT=1 -DPIPE=0
comp pf_probe prefill_mma.cl -DPROBE_ONLY=1 -DKV_DT=1 -DDQK=16 -DDV=16 -DO_DT=0
comp mla_nv mla_mma.cl -DDC=512 -DDR=64 -DKV_DT=2 -DO_DT=2 -DBN=16 -DNRG=2 -DPF=1 -DLDSM=1 -DCPA=1 -DEMU=0
comp mla_emu mla_mma.cl -DDC=512 -DDR=64 -DKV_DT=1 -DO_DT=1 -DBN=16 -DNRG=1 -DPF=0 -DLDSM=0 -DCPA=0 -DEMU=1
exit $rc

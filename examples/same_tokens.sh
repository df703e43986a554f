#!/usr/bin/env bash
# same_tokens.sh GENERATE BACKEND... : runs the demo on each backend and
# fails unless every run generates the same tokens. Exit 77 (skip) when a
# backend has no device.
set -uo pipefail
gen=$1
shift
ref="" first=""
for b in "$@"; do
  out=$("$gen" --backend "$b" --steps 12 2>&1)
  rc=$?
  if [ $rc -ne 0 ]; then
    echo "$out"
    grep -q "PA_ERR_NO_DEVICE" <<<"$out" && { echo "$b: no device, skipped"; exit 77; }
    exit 1
  fi
  echo "$out"
  toks=$(grep -E "^(seq|tokens:)" <<<"$out")
  if [ -z "$first" ]; then
    first=$b ref=$toks
  elif [ "$toks" != "$ref" ]; then
    echo "tokens differ between $first and $b"
    exit 1
  fi
done
echo "same tokens on: $*"

#!/usr/bin/env bash
# One GPU call for every device script here: builds in parallel (240 s each),
# then the runs one after another (175 s each), from the repository root.
#   device call: carry [".device", ".peers"], command: bash bench/devq/run_all.sh [NAME...]
cd "$(dirname "$0")/../.." || exit 1
export OUT=${OUT:-/tmp/devq-out}
mkdir -p "$OUT"
# shellcheck disable=SC1091
source .device/remote-setup.sh >/dev/null 2>&1 # unpack once, before the parallel builds
names=${*:-"fa3 mla11 fp8b cp14b"}
for n in $names; do
  mkdir -p "$OUT/$n"
  (OUT=$OUT/$n timeout 240 bash "bench/devq/$n.build.sh" >"$OUT/$n.log" 2>&1
    echo "== build rc=$?" >>"$OUT/$n.log") &
done
wait
for n in $names; do
  (OUT=$OUT/$n timeout 175 bash "bench/devq/$n.run.sh" >>"$OUT/$n.log" 2>&1
    echo "== run rc=$?" >>"$OUT/$n.log")
  echo "######## $n"
  tail -c 2500 "$OUT/$n.log"
done

#!/usr/bin/env bash
# pa-bench with a plot: runs pa-bench with the given arguments and draws its
# table as a bar chart (fractions of the measured ceilings; speed ratios over
# the unfused baseline where measured) through bench/peers/compare.py, the
# same code that plots the GPU script's ratios. Needs python3 + matplotlib.
#   bench/plot.sh out.png [pa-bench arguments...]
# PA_BENCH: the pa-bench binary (default build/bench/pa-bench).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: bench/plot.sh out.png [pa-bench arguments...]" >&2; exit 2; }
png=$1
shift
here=$(dirname "$(realpath "$0")")
bench=${PA_BENCH:-$here/../build/bench/pa-bench}
json=$(mktemp "${TMPDIR:-/tmp}/bench.XXXXXX.json")
trap 'rm -f "$json"' EXIT
"$bench" "$@" --json "$json"
py=python3
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c "import matplotlib" 2>/dev/null; then
    py=$p
    break
  fi
done
"$py" "$here/peers/compare.py" "$json" --plot "$png"

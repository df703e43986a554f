#!/usr/bin/env bash
# run_tests.sh LIBRARY [SANITIZE]: the binding's pytest suite (python/tests)
# against LIBRARY (a libpolyattn.so), with the first python3 that has numpy
# and pytest (Debian: python3-numpy python3-pytest); exit 77 (skip) if none.
# SANITIZE is the build's b_sanitize: an ASan library needs the ASan runtime
# loaded first in an uninstrumented python, and Python's own leaks are ignored.
set -uo pipefail
lib=$(realpath "$1") san=${2:-none}
here=$(dirname "$(realpath "$0")")
py=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c "import numpy, pytest" 2>/dev/null; then
    py=$p
    break
  fi
done
[ -n "$py" ] || { echo "no python3 with numpy and pytest: skipped"; exit 77; }
export POLYATTN_LIBRARY=$lib PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} PYTHONDONTWRITEBYTECODE=1
case $san in
*address*)
  LD_PRELOAD=$(${CC:-cc} -print-file-name=libasan.so)
  export LD_PRELOAD
  export ASAN_OPTIONS=detect_leaks=0:protect_shadow_gap=0
  ;;
esac
exec "$py" -m pytest -q -p no:cacheprovider "$here/tests"

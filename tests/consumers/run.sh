#!/usr/bin/env bash
# Builds and runs tests/consumers/consumer.c the way another project would:
#   run.sh cmake|pkgconfig BUILD_DIR SRC_DIR [SANITIZE]  against `meson install`
#                                                      of BUILD_DIR in a temp root
#   run.sh meson BUILD_DIR SRC_DIR [SANITIZE]          polyattn as a meson subproject
# SANITIZE is the build's b_sanitize ("none" or e.g. "address,undefined"): a
# sanitized libpolyattn needs a sanitized program. Exit 77 (skip) when the tool
# (cmake, pkg-config) is missing.
set -euo pipefail
kind=$1 build=$(realpath "$2") src=$(realpath "$3") san=${4:-none}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/pa-consumer-$kind.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
flags=""
[ "$san" != none ] && flags="-fsanitize=$san"
proj=$tmp/proj
mkdir -p "$proj"
cp "$src/tests/consumers/consumer.c" "$proj/"

# The consumer must load the installed library, not the build tree's: meson
# test puts the build folder on LD_LIBRARY_PATH (the rest, e.g. a CUDA
# runtime's folder, stays).
LD_LIBRARY_PATH=$(tr ':' '\n' <<<"${LD_LIBRARY_PATH:-}" | grep -vxF -e "$build" -e "$build/" |
  paste -sd: - || true)
export LD_LIBRARY_PATH

# Runs the consumer EXE after checking that it loads libpolyattn from $tmp/root.
run_installed() {
  local from
  from=$(ldd "$1" | grep libpolyattn || true)
  echo "loads:$from"
  [[ $from == *"$tmp/root"* ]] || { echo "not the installed libpolyattn"; exit 1; }
  "$1"
}

# Installs into $tmp/root and sets prefix to the installed prefix there.
install_root() {
  # One install at a time per build folder (meson writes its install log there).
  local lock=()
  command -v flock >/dev/null && lock=(flock "$build/meson-private/pa-consumer-install.lock")
  "${lock[@]}" meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" \
    >"$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; exit 1; }
  prefix=$tmp/root$(meson introspect "$build" --buildoptions |
    python3 -c 'import json, sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
}

case $kind in
cmake)
  command -v cmake >/dev/null || { echo "no cmake: skipped"; exit 77; }
  install_root
  cfg=$(find "$tmp/root" -name polyattnConfig.cmake | head -1)
  [ -n "$cfg" ] || { echo "polyattnConfig.cmake not installed"; exit 1; }
  echo "found $cfg"
  cp "$src/tests/consumers/cmake/CMakeLists.txt" "$proj/"
  cmake -S "$proj" -B "$tmp/b" -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log"; exit 1; }
  grep -E "linked$" "$tmp/cmake.log" || true
  cmake --build "$tmp/b" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
  run_installed "$tmp/b/consumer"
  ;;
pkgconfig)
  command -v pkg-config >/dev/null || { echo "no pkg-config: skipped"; exit 77; }
  install_root
  pc=$(find "$tmp/root" -name polyattn.pc | head -1)
  [ -n "$pc" ] || { echo "polyattn.pc not installed"; exit 1; }
  echo "found $pc"
  export PKG_CONFIG_PATH
  # the installed polyattn.pc first; the caller's path after it, where the
  # .pc files of its Requires.private (OpenCL, clblast) may live
  PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  pcflags=$(pkg-config --define-variable=prefix="$prefix" --cflags --libs polyattn)
  libdir=$(pkg-config --define-variable=prefix="$prefix" --variable=libdir polyattn)
  echo "cc consumer.c $pcflags"
  # shellcheck disable=SC2086
  ${CC:-cc} $flags -o "$tmp/consumer" "$proj/consumer.c" $pcflags -lm
  LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" run_installed "$tmp/consumer"
  ;;
meson)
  cp "$src/tests/consumers/meson/meson.build" "$proj/"
  mkdir -p "$proj/subprojects"
  ln -s "$src" "$proj/subprojects/polyattn"
  opts=(--force-fallback-for=polyattn -Dpolyattn:tests=disabled -Dpolyattn:bench=false
    -Dpolyattn:examples=false -Dpolyattn:cuda=disabled -Dpolyattn:opencl=disabled)
  [ "$san" != none ] && opts+=(-Db_sanitize="$san" -Db_lundef=false)
  meson setup "$tmp/b" "$proj" "${opts[@]}" >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
  ninja -C "$tmp/b" -j2 consumer >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log"; exit 1; }
  "$tmp/b/consumer"
  ;;
*)
  echo "usage: run.sh cmake|pkgconfig|meson BUILD_DIR SRC_DIR [SANITIZE]" >&2
  exit 2
  ;;
esac

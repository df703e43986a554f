#!/usr/bin/env bash
# The CPU backend on 64-bit Arm: cross-builds with Debian's aarch64 toolchain
# and runs the CPU suites under qemu-user, so the NEON kernels (and the scalar
# path as Arm compiles it) are tested on an x86 CI host. Correctness only.
#
#   scripts/test_arm.sh [BUILD_DIR]        (default build-arm)
#
# Installs what is missing: gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
# qemu-user (apt-get), and Criterion for arm64, whose packages are downloaded
# and unpacked into BUILD_DIR/sysroot (nothing arm64 is installed system-wide;
# dpkg learns the arm64 architecture so apt can fetch them).
#
# Reduced table under qemu (about 20x slower than native): every cross_backend
# group on cpu_neon (PA_ARM_FULL=1: on cpu_scalar too), plus merge, splits,
# head_gemm and cpu_threads on cpu_neon. Ends with meson's test summary.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
BUILD=${1:-build-arm}
SYSROOT=$PWD/$BUILD/sysroot
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

need=()
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
command -v pkg-config >/dev/null || need+=(pkg-config)
if [ ${#need[@]} -gt 0 ]; then
  echo "== arm: installing ${need[*]}"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >/dev/null || { echo "== arm: apt-get install FAILED"; exit 1; }
fi

# Criterion and its run-time closure for arm64, unpacked (not installed).
ARM_DEBS="libcriterion-dev libcriterion3 libboxfort-dev libffi8 libgit2-1.5 libnanomsg5
  libhttp-parser2.9 libmbedcrypto7 libmbedtls14 libmbedx509-1 libpcre2-8-0 libssh2-1 libssl3
  zlib1g libgssapi-krb5-2 libk5crypto3 libkrb5-3 libkrb5support0 libcom-err2 libkeyutils1"
if [ ! -e "$SYSROOT/usr/include/criterion/criterion.h" ]; then
  echo "== arm: Criterion for arm64 into $SYSROOT"
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64 && $SUDO apt-get update -qq >/dev/null
  fi
  mkdir -p "$BUILD/debs" "$SYSROOT"
  pkgs=()
  for p in $ARM_DEBS; do pkgs+=("$p:arm64"); done
  if ! (cd "$BUILD/debs" && apt-get download -qq "${pkgs[@]}" >/dev/null); then
    $SUDO apt-get update -qq >/dev/null
    (cd "$BUILD/debs" && apt-get download -qq "${pkgs[@]}" >/dev/null) ||
      { echo "== arm: apt-get download of the arm64 Criterion packages FAILED"; exit 1; }
  fi
  for d in "$BUILD"/debs/*.deb; do dpkg-deb -x "$d" "$SYSROOT"; done
  # Tests link the shared library only: its private requirements (static
  # linking) would need their -dev packages too.
  sed -i '/^Requires.private:/d; /^Libs.private:/d' \
    "$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig/criterion.pc"
fi

# The sysroot's paths, for pkg-config, the linker and the loader under qemu.
LIBS="$SYSROOT/usr/lib/aarch64-linux-gnu:$SYSROOT/lib/aarch64-linux-gnu"
mkdir -p "$BUILD"
cat >"$BUILD/sysroot.ini" <<EOF
[binaries]
exe_wrapper = ['qemu-aarch64', '-L', '/usr/aarch64-linux-gnu', '-E', 'LD_LIBRARY_PATH=$LIBS']
[properties]
sys_root = '$SYSROOT'
pkg_config_libdir = '$SYSROOT/usr/lib/aarch64-linux-gnu/pkgconfig'
[built-in options]
c_link_args = ['-Wl,-rpath-link,$LIBS']
EOF

echo "== arm: configure (aarch64-linux-gnu, qemu-aarch64)"
if [ ! -e "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" --cross-file scripts/cross/aarch64-linux-gnu.ini \
    --cross-file "$BUILD/sysroot.ini" -Dbuildtype=release -Dcuda=disabled -Dopencl=disabled \
    -Dtests=enabled -Dbench=false -Dexamples=false >"$BUILD/setup.log" 2>&1 ||
    { tail -30 "$BUILD/setup.log"; echo "== arm: configure FAILED"; exit 1; }
fi
echo "== arm: build"
ninja -C "$BUILD" -j"$(nproc 2>/dev/null || echo 2)" >"$BUILD/build.log" 2>&1 ||
  { grep -E "error|FAILED" "$BUILD/build.log" | head -30; echo "== arm: build FAILED"; exit 1; }

tests=(cross_backend_cpu_neon merge_cpu_neon splits_cpu_neon head_gemm_cpu_neon
  cpu_threads_cpu_neon core_split)
[ "${PA_ARM_FULL:-0}" = 1 ] && tests+=(cross_backend_cpu_scalar cpu_threads_cpu_scalar)
echo "== arm: meson test (${tests[*]})"
# Criterion runs each test in a child it starts by exec'ing the test binary
# again, which the host kernel cannot run without a binfmt_misc entry for
# qemu. The entry is made in a binfmt_misc instance of a new user + mount
# namespace (Linux >= 6.7), so nothing changes on the host. qemu-user is
# slow: timeouts scaled by 3.
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu
MAGIC='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
if ! unshare --user --map-root-user --mount true 2>/dev/null; then
  echo "== arm: no unprivileged user namespaces here: Criterion cannot start its test children"
  exit 77
fi
unshare --user --map-root-user --mount bash -c '
  mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null &&
    printf "%s" ":qemu-aarch64:M::'"$MAGIC"':'"$MASK"':$(command -v qemu-aarch64):F" \
      >/proc/sys/fs/binfmt_misc/register || {
    echo "== arm: no binfmt_misc in a user namespace here (needs Linux >= 6.7 and"
    echo "   unprivileged user namespaces): Criterion cannot start its test children"
    exit 77
  }
  exec meson test -C "$0" --print-errorlogs --timeout-multiplier 3 \
    --num-processes "$(nproc 2>/dev/null || echo 2)" "$@"' "$BUILD" "${tests[@]}" 2>&1

#!/usr/bin/env bash
# Writes nccl.pc for the NCCL of a PyTorch pip wheel (nvidia/nccl: include/nccl.h,
# lib/libnccl.so.2 and no libnccl.so), so meson's pkg-config lookup finds it:
#   export PKG_CONFIG_PATH=$(cp/nccl-pc.sh DIR)${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
# DIR (default /tmp/pa-nccl) gets lib/libnccl.so -> the wheel's libnccl.so.2 and
# lib/pkgconfig/nccl.pc; prints DIR/lib/pkgconfig. Exits 1 if no wheel is found.
set -euo pipefail
dir=${1:-/tmp/pa-nccl}
py=${PYTHON:-python3}
root=$("$py" -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null) || {
  echo "nccl-pc.sh: no nvidia.nccl module for $py" >&2
  exit 1
}
[ -f "$root/include/nccl.h" ] && [ -f "$root/lib/libnccl.so.2" ] || {
  echo "nccl-pc.sh: $root lacks include/nccl.h or lib/libnccl.so.2" >&2
  exit 1
}
mkdir -p "$dir/lib/pkgconfig"
ln -sf "$root/lib/libnccl.so.2" "$dir/lib/libnccl.so"
ver=$(sed -n 's/^#define NCCL_VERSION_CODE \([0-9]*\).*/\1/p' "$root/include/nccl.h")
cat > "$dir/lib/pkgconfig/nccl.pc" <<PC
Name: nccl
Description: NCCL of the PyTorch wheel at $root
Version: ${ver:-0}
Cflags: -I$root/include
Libs: -L$dir/lib -lnccl -Wl,-rpath,$root/lib
PC
echo "$dir/lib/pkgconfig"

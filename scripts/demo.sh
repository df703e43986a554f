#!/usr/bin/env bash
# The demo command: installs what is missing, builds polyattn (CUDA if nvcc is
# found, OpenCL if its packages are there, the CPU backend always), and runs
# examples/generate, a tiny transformer generating tokens over a paged KV
# cache, on the best backend present (PA_BACKEND or --backend overrides).
#   scripts/demo.sh [--backend auto|cpu|cuda|opencl] [--steps N]
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
pa_install_deps
B=${PA_DEMO_BUILD:-build-demo}
pa_meson_setup "$B" -Dcuda="$(pa_cuda_option)" -Dopencl=auto -Dtests=disabled >"${TMPDIR:-/tmp}/pa-demo-setup.log" 2>&1 ||
  { tail -30 "${TMPDIR:-/tmp}/pa-demo-setup.log"; exit 1; }
ninja -C "$B" -j"$(nproc)" examples/generate
"$B/examples/generate" "$@"

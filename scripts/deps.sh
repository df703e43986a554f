# shellcheck shell=bash
# Sourced by demo.sh and test.sh: installs what a fresh Debian/Ubuntu machine
# lacks (apt-get; sudo only when not root), and puts nvcc on PATH if the CUDA
# toolkit is in its usual place. Elsewhere it lists what is missing and goes on.
PA_DEBS="gcc pkg-config meson ninja-build python3 libcriterion-dev ocl-icd-opencl-dev
opencl-headers pocl-opencl-icd libclblast-dev clinfo"
# CMake and pkg-config consumers, the Python binding's tests (tests/consumers, python/).
PA_DEBS="$PA_DEBS cmake python3-numpy python3-pytest"
# Context parallelism over MPI (cp/, tests/cp_mpi.c under mpirun).
PA_DEBS="$PA_DEBS libopenmpi-dev openmpi-bin"

pa_install_deps() {
  local missing=() p
  if command -v dpkg-query >/dev/null 2>&1; then
    for p in $PA_DEBS; do
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        missing+=("$p")
    done
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null ||
      echo "warning: could not install ${missing[*]}; building with what is there" >&2
  fi
  if ! command -v nvcc >/dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
}

# "enabled" when nvcc is found (CUDA code is then compiled even without a GPU).
pa_cuda_option() {
  if command -v nvcc >/dev/null 2>&1; then echo enabled; else echo disabled; fi
}

# true where an NVIDIA GPU answers: the compute_90 PTX pass is then worth its
# build time; without one CUDA code is only compile-checked (sm_80, sm_90a).
pa_cuda_ptx_option() {
  if nvidia-smi -L >/dev/null 2>&1; then echo true; else echo false; fi
}

# "sass" where an NVIDIA GPU answers, else "ptx": without one the sm_80 code
# is only compile-checked, and its PTX needs no ptxas pass.
pa_cuda_sm80_option() {
  if nvidia-smi -L >/dev/null 2>&1; then echo sass; else echo ptx; fi
}

# meson setup that also works on an existing build folder.
pa_meson_setup() {
  local dir=$1
  shift
  if [ -f "$dir/build.ninja" ]; then
    meson setup --reconfigure "$dir" "$@"
  else
    meson setup "$dir" "$@"
  fi
}

/* Programmatic dependent launch (sm_90+): a kernel launched with
 * launch_pdl may start while the kernel before it in the stream is still
 * running; it must call pdl_wait() before it touches anything that kernel
 * (or any earlier one) writes or reads, which makes the whole previous grid
 * complete and its memory visible. pdl_trigger() in a kernel lets the next
 * PDL launch start early (without it: when this grid's blocks have exited).
 * Only the plan's schedule (uploaded at plan time) may be read before the
 * wait. Safe under CUDA graph capture (the edge becomes programmatic).
 * The host decides once per context (cuda.pdl and sm_90+) and passes `on`. */
#pragma once

#include <cuda_runtime.h>

namespace pa {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

template <typename... Args>
cudaError_t launch_pdl(bool on, void (*kernel)(Args...), dim3 grid, dim3 block, size_t smem,
                       cudaStream_t s, Args... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = attr;
  cfg.numAttrs = on ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, args...);
}

} // namespace pa

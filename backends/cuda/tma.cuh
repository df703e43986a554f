/* Hopper (sm_90) asynchronous-copy plumbing for warp-specialised kernels:
 * mbarriers (init, arrive, arrive with an expected byte count, parity wait),
 * the bulk tensor copy (TMA) of a 4-d box completing on an mbarrier, named
 * barriers over a subset of the block, and setmaxnreg (sm_90a). Kept apart
 * from mla_wgmma.cuh so kernels of other branches can change without
 * touching each other. Code for other targets sees PA_TMA == 0. */
#pragma once

#include <stdint.h>

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define PA_TMA 1
#else
#define PA_TMA 0
#endif

namespace pa {
namespace tma {

#if PA_TMA
__device__ __forceinline__ void bar_init(uint32_t bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
/* Makes the initialised mbarriers visible to the copy engine. */
__device__ __forceinline__ void bar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
__device__ __forceinline__ void arrive(uint32_t bar) {
  asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar)
               : "memory");
}
/* arrive() where on is nonzero, as one predicated instruction (no branch
 * to split the caller's code). */
__device__ __forceinline__ void arrive_if(uint32_t bar, int on) {
  asm volatile("{\n.reg .pred p;\n.reg .b64 st;\nsetp.ne.b32 p, %1, 0;\n"
               "@p mbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(bar),
               "r"(on)
               : "memory");
}
/* This thread's arrival, and `bytes` more that the copies on bar must deliver. */
__device__ __forceinline__ void arrive_tx(uint32_t bar, uint32_t bytes) {
  asm volatile(
      "{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(bar),
      "r"(bytes)
      : "memory");
}
/* Returns once the phase with this parity has completed. */
__device__ __forceinline__ void wait(uint32_t bar, uint32_t parity) {
  asm volatile("{\n.reg .pred p;\nWAIT_%=:\n"
               "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
               "@!p bra WAIT_%=;\n}\n" ::"r"(bar),
               "r"(parity)
               : "memory");
}
/* Box at (c0, c1, c2, c3) of the tensor map into shared memory at dst. */
__device__ __forceinline__ void load_4d(uint32_t dst, const void *map, uint32_t bar, int c0, int c1,
                                        int c2, int c3) {
  asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
               " [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
               "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
               : "memory");
}
__device__ __forceinline__ void prefetch_map(const void *map) {
  asm volatile("prefetch.tensormap [%0];\n" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}
/* Named barrier `id` (1..15) over `n` threads: sync waits, arrive does not. */
__device__ __forceinline__ void named_sync(int id, int n) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
__device__ __forceinline__ void named_arrive(int id, int n) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
template <int N> __device__ __forceinline__ void regs_up() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
template <int N> __device__ __forceinline__ void regs_down() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}
__device__ __forceinline__ void st_zero16(uint32_t addr) {
  asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(addr), "r"(0) : "memory");
}
#endif /* PA_TMA */

} // namespace tma
} // namespace pa

/* Tensor-core prefill (placeholder until the FA2 kernel lands): supports no
 * shape, so the selector sends every plan elsewhere. */
#include "launch.h"

extern "C" int pa_cu_prefill_supported(int, int, int) { return 0; }
extern "C" cudaError_t pa_cu_prefill_init(void) { return cudaSuccess; }
extern "C" cudaError_t pa_cu_prefill_attention(const pa_cu_attn *, cudaStream_t) {
  return cudaErrorNotSupported;
}

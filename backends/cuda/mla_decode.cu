/* MLA decode (placeholder until the head-blocked kernel lands): supports no
 * shape, so MLA plans take the generic kernel. */
#include "launch.h"

extern "C" int pa_cu_mla_supported(int, int, int) { return 0; }
extern "C" cudaError_t pa_cu_mla_init(void) { return cudaSuccess; }
extern "C" cudaError_t pa_cu_mla_decode(const pa_cu_attn *, cudaStream_t) {
  return cudaErrorNotSupported;
}

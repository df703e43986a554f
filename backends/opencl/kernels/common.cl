/* common.cl: element access and the numeric rules every polyattn kernel shares.
 * Prepended to each program. Dtype codes match pa_dtype: 0 f32, 1 f16, 2 bf16.
 * 16-bit data is handled as ushort and converted with vload_half/vstore_half or
 * 16-bit shifts, so no kernel needs cl_khr_fp16 (the NVIDIA driver lacks it).
 * Built without -cl-fast-relaxed-math: -inf is a value we rely on. */

#define PA_CAT_(a, b) a##b
#define PA_CAT(a, b) PA_CAT_(a, b)

/* Storage type of an element in global or local memory. */
#define PA_RAW_0 float
#define PA_RAW_1 ushort
#define PA_RAW_2 ushort

/* Load element i of p (address space AS) as float. */
#define PA_LD_0(AS, p, i) ((float)((p)[i]))
#define PA_LD_1(AS, p, i) vload_half((size_t)(i), (AS const half *)(p))
#define PA_LD_2(AS, p, i) as_float(((uint)((p)[i])) << 16)

/* Store float v as element i of p. */
#define PA_ST_0(AS, p, i, v) ((p)[i] = (v))
#define PA_ST_1(AS, p, i, v) vstore_half_rte((v), (size_t)(i), (AS half *)(p))
#define PA_ST_2(AS, p, i, v) ((p)[i] = pa_f32_to_bf16(v))

/* Round to nearest even, as the CPU reference does; NaN stays NaN. */
inline ushort pa_f32_to_bf16(float f) {
  uint u = as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (ushort)(u >> 16);
}

/* Online softmax and merge use one convention: a state is (o normalised,
 * lse = m + log(l)); an empty state has lse = -inf and o = 0. The running
 * maximum is replaced by 0 while it is -inf so exp() never sees -inf - -inf. */
inline float pa_safe_max(float m) { return m == -INFINITY ? 0.0f : m; }

/* The plan's schedule (backends/backend.h): pa_req and pa_work, 8 ints each,
 * at req_off and work_off (in ints) of the sched buffer; work-group x runs
 * work item x. Kernels read the fields they use through these pointers. */
typedef struct {
  int b, hk, row0, rows, split, kv_begin, kv_end, group;
} pa_work_t;
typedef struct {
  int q_start, k_start, len_q, len_k, num_splits, kv_chunk, part_row, reserved;
} pa_req_t;

inline __global const pa_work_t *pa_work_item(__global const int *sched, int work_off) {
  return (__global const pa_work_t *)(sched + work_off + get_group_id(0) * 8);
}

inline __global const pa_req_t *pa_request(__global const int *sched, int req_off, int b) {
  return (__global const pa_req_t *)(sched + req_off + b * 8);
}

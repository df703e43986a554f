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
#define PA_RAW_4 uchar /* fp8 e4m3 (K/V caches only) */
#define PA_RAW_5 uchar /* fp8 e5m2 */

/* Load element i of p (address space AS) as float. */
#define PA_LD_0(AS, p, i) ((float)((p)[i]))
#define PA_LD_1(AS, p, i) vload_half((size_t)(i), (AS const half *)(p))
#define PA_LD_2(AS, p, i) as_float(((uint)((p)[i])) << 16)
#define PA_LD_4(AS, p, i) pa_e4m3_to_f32((p)[i])
#define PA_LD_5(AS, p, i) pa_e5m2_to_f32((p)[i])

/* fp8 -> f32, exact (core/fp8.c's tables): exponent and mantissa move into
 * an f32 re-biased (e4m3 bias 7, e5m2 bias 15); subnormals scale exactly. */
inline float pa_e4m3_to_f32(uchar c) {
  uint m = c & 0x7fu;
  float f = m == 0x7fu ? NAN : m >= 8u ? as_float((m << 20) + (120u << 23)) : (float)m * 0x1p-9f;
  return as_float(as_uint(f) | ((uint)(c & 0x80u) << 24));
}
inline float pa_e5m2_to_f32(uchar c) {
  uint m = c & 0x7fu;
  float f = m >= 0x7cu ? as_float(0x7f800000u | ((m & 3u) << 21)) /* inf, NaN */
            : m >= 4u  ? as_float((m << 21) + (112u << 23))
                       : (float)m * 0x1p-16f;
  return as_float(as_uint(f) | ((uint)(c & 0x80u) << 24));
}

/* f32 -> fp8, polyattn.h's rule bit for bit (core/fp8.c): nearest even,
 * saturating to the largest finite code, NaN -> 0x7f. M mantissa bits,
 * bias B, max_bits the f32 bits above the largest code. */
inline uchar pa_f32_to_fp8(float x, int M, int B, uint max_bits, uint max_code) {
  uint u = as_uint(x), a = u & 0x7fffffffu, sign = (u >> 24) & 0x80u;
  if (a > 0x7f800000u) return 0x7f;
  if (a >= max_bits) return (uchar)(sign | max_code);
  if (a >= (uint)(128 - B) << 23) {
    uint r = a - ((uint)(127 - B) << 23);
    r += (1u << (22 - M)) - 1u + ((r >> (23 - M)) & 1u);
    return (uchar)(sign | (r >> (23 - M)));
  }
  if (a <= (uint)(127 - B - M) << 23) return (uchar)sign;
  uint shift = (uint)(151 - B - M) - (a >> 23);
  uint mm = (a & 0x7fffffu) | 0x800000u, hf = 1u << (shift - 1u);
  uint q = mm >> shift, rem = mm & ((1u << shift) - 1u);
  if (rem > hf || (rem == hf && (q & 1u))) q++;
  return (uchar)(sign | q);
}
#define PA_ST_4(AS, p, i, v) ((p)[i] = pa_f32_to_fp8((v), 3, 7, 0x43e00001u, 0x7eu))
#define PA_ST_5(AS, p, i, v) ((p)[i] = pa_f32_to_fp8((v), 2, 15, 0x47600001u, 0x7bu))

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

/* The plan's workspace (split-KV partial rows, then their LSEs, offsets in
 * floats) and schedule, as every attention and MLA kernel takes them; set on
 * the host by pa_cl_sched_args. */
#define PA_SCHED_ARGS                                                                              \
  __global float *ws, long ws_o, long ws_l, __global const int *sched, int req_off, int work_off

/* The argument list of the attention kernels (attention.cl, decode.cl,
 * decode_w.cl, prefill_mma.cl), set on the host by pa_cl_attention_args;
 * a kernel appends its own after it. Element types come from the kernel's
 * Q_RAW, KV_RAW, O_RAW; KVQ qualifies the K and V pointers (restrict or
 * nothing). q2/k2 are MLA's q_pe/kpe views (attention.cl with MLA=1). */
#define PA_ATTENTION_ARGS(KVQ)                                                                     \
  __global const Q_RAW *q, long q_off, long q_sb, long q_st, long q_sh,                            \
      __global const Q_RAW *q2, long q2_off, long q2_st, long q2_sh,                               \
      __global const KV_RAW *KVQ k, long k_off, long k_sb, long k_st, long k_sh, long k_sp,        \
      __global const KV_RAW *k2, long k2_off, long k2_st, long k2_sp,                              \
      __global const KV_RAW *KVQ v, long v_off, long v_sb, long v_st, long v_sh, long v_sp,        \
      __global O_RAW *out, long o_off, long o_sb, long o_st, long o_sh, __global float *lse,       \
      long l_off, long l_sb, long l_st, long l_sh, __global const int *bt, long bt_off,            \
      long bt_sb, long bt_sp, __global const float *mask, long m_off, long m_sb, long m_sh,        \
      long m_si, long m_sj, __global const float *sinks, long sk_off, long sk_s,                   \
      __global const float *alibi, long al_off, long al_s, PA_SCHED_ARGS, int ragged_q,            \
      int ragged_k, int page_size, int group, int hq, int kv_vec, float scale, float softcap,      \
      int causal, int wl, int wr, int sink_tokens, int flags

/* The row epilogue every attention kernel ends with. A finished row's state
 * (running max mm, sum ll, natural log) gives fac, the factor that normalises
 * its o (0 for an empty row), and lse_v, its LSE. With `sink` (requests that
 * are not split: otherwise the combine adds the sink once) the sink logit
 * (expression sk, read only then) joins the sum. mm and ll are variables. A
 * statement macro: the kernels compile exactly as with the code written out. */
#define PA_ROW_NORM(mm, ll, sink, sk, fac, lse_v)                                                 \
  do {                                                                                             \
    fac = 0.0f, lse_v = -INFINITY;                                                                 \
    if (sink) {                                                                                    \
      float s_ = (sk), mx_ = fmax(mm, s_);                                                         \
      if (mx_ != -INFINITY) {                                                                      \
        float l2_ = ll * exp(mm - mx_) + exp(s_ - mx_);                                            \
        fac = exp(mm - mx_) / l2_;                                                                 \
        lse_v = mx_ + log(l2_);                                                                    \
      }                                                                                            \
    } else if (ll > 0.0f) {                                                                        \
      fac = 1.0f / ll;                                                                             \
      lse_v = mm + log(ll);                                                                        \
    }                                                                                              \
  } while (0)

/* Where row (query i, head h) of request b goes: its first element in out
 * (num_splits == 1), or its row in the split partials (ws_o + row * dims for
 * o, ws_l + row for the LSE). */
inline long pa_out_row(long off, long sb, long st, long sh, int b, int q_start, int i, int h) {
  return off + b * sb + (long)(q_start + i) * st + h * sh;
}
inline long pa_part_row(int part_row, int split, int len_q, int hq, int i, int h) {
  return part_row + ((long)split * len_q + i) * hq + h;
}

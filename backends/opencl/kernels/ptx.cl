/* ptx.cl: the inline-PTX helpers of the NVIDIA tensor-core kernels, and
 * their emulation in OpenCL C for tests, written once. program_cache.c
 * prepends it (after common.cl) to prefill_mma.cl, mla_mma.cl and decode.cl
 * only. Which part is active follows the variant's defines, so PoCL and other
 * vendors never see an asm statement:
 *   real PTX (PA_PTX 1): prefill_mma.cl (it always defines PROBE_ONLY; built
 *     only on NVIDIA, after or as the probe), mla_mma.cl EMU=0, decode.cl NV=1;
 *   emulated: mla_mma.cl EMU=1, decode.cl pa_decode_tc NV=2 (calls take the
 *     scratch as a last argument, EMU_ARG);
 *   nothing: decode.cl's portable pa_decode and pa_decode_w NV=2 (which
 *     emulates its shuffles in its own way).
 *
 * Two address forms: pa_ldsm4/pa_ldsm4t/pa_cp16 take the .shared window
 * address of the local destination (prefill_mma.cl forms it with pa_saddr,
 * which the probe checks); pa_ldsm4p/pa_cp16p take the __local pointer and
 * use its value as that address (NVIDIA OpenCL has no generic address space
 * to convert from), as mla_mma.cl and decode.cl always did. */

#if defined(EMU) ? !EMU : defined(NV) ? NV == 1 : defined(PROBE_ONLY)
#define PA_PTX 1
#define EMU_PARAM
#define EMU_ARG

#define PA_STR_(x) #x
#define PA_STR(x) PA_STR_(x)

#if KV_DT == 1
#define MMA_OP "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"
#define CVT_OP "cvt.rn.f16x2.f32"
#else
#define MMA_OP "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32"
#define CVT_OP "cvt.rn.bf16x2.f32"
#endif

/* c += A B for one m16n8k16 tile; fragment layouts in the users' headers. */
inline void pa_mma(float *c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1) {
  float d0, d1, d2, d3;
  asm volatile(MMA_OP " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
               : "=f"(d0), "=f"(d1), "=f"(d2), "=f"(d3)
               : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1), "f"(c[0]), "f"(c[1]),
                 "f"(c[2]), "f"(c[3]));
  c[0] = d0, c[1] = d1, c[2] = d2, c[3] = d3;
}

/* lo goes to the low half: the element with the smaller column index. */
inline uint pa_pack2(float lo, float hi) {
  uint r;
  asm volatile(CVT_OP " %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  return r;
}

inline float pa_shfl_xor(float x, int mask) {
  uint r;
  asm volatile("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(as_uint(x)), "r"(mask));
  return as_float(r);
}
inline float pa_shfl_idx(float x, int src) {
  uint r;
  asm volatile("shfl.sync.idx.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(as_uint(x)), "r"(src));
  return as_float(r);
}

inline void pa_ldsm4(uint a, uint *r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
inline void pa_ldsm4t(uint a, uint *r) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a)
               : "memory");
}
/* p is 16-byte aligned; trans: the transposed 8x8 blocks. */
inline void pa_ldsm4p(__local const ushort *p, uint *r, int trans) {
  uint a = (uint)(size_t)p;
  if (trans)
    pa_ldsm4t(a, r);
  else
    pa_ldsm4(a, r);
}
/* x2: two blocks, rows named by lanes 0..15 (the others' addresses unused). */
inline void pa_ldsm2p(__local const ushort *p, uint *r, int trans) {
  uint a = (uint)(size_t)p;
  if (trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(a)
                 : "memory");
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(a)
                 : "memory");
}

/* 16 bytes global -> local without registers; ok = 0 (src-size 0) writes zeros. */
inline void pa_cp16(uint dst, __global const ushort *src, int ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"((ulong)src), "r"(ok ? 16 : 0)
               : "memory");
}
inline void pa_cp16p(__local uint4 *dst, __global const ushort *src, int ok) { pa_cp16((uint)(size_t)dst, src, ok); }
inline void pa_cp_commit(void) { asm volatile("cp.async.commit_group;" ::: "memory"); }
/* all but the latest n groups landed (for this thread; a barrier shares them);
 * n a literal or a macro naming one */
#define PA_CP_WAIT(n) asm volatile("cp.async.wait_group " PA_STR(n) ";" ::: "memory")
#define PA_CP_WAIT_ALL() asm volatile("cp.async.wait_all;" ::: "memory")

/* Keeps the compiler from moving memory accesses across it (register budget). */
inline void pa_fence(void) { asm volatile("" ::: "memory"); }
/* x, as a value the compiler cannot see through (keeps it from rematerialising) */
inline int pa_opaque(int x) {
  asm volatile("" : "+r"(x));
  return x;
}
/* orders a warp's local-memory accesses (copies shared through ldmatrix) */
#define PA_WARP_SYNC() asm volatile("bar.warp.sync 0xffffffff;" ::: "memory")

#elif (defined(EMU) && EMU) || (defined(TC) && NV == 2)
/* The same helpers in OpenCL C with the documented fragment layouts (tests
 * only: mla_mma.cl EMU=1, decode.cl pa_decode_tc NV=2), exchanging fragments
 * through local scratch emu, so a kernel's indexing can be checked on any
 * device (PoCL). Slow. Every call holds work-group barriers, so every call
 * must be reached by all work-items: a guard uniform per warp, enough for
 * the PTX, is not enough here (a warp skipping a call desynchronises the
 * barriers: NaN rows). And a per-warp choice between two calls must be a
 * select, not a branch: on PoCL 3.1 `if (!ok) b = 0` there gave wrong
 * results for the warps that never took it (mla_mma.cl 128/32). Scratch
 * per work-group: 384 floats per warp (A, B of pa_mma), then one float (the
 * shuffle) and one int (the ldmatrix row offsets) per work-item. */
#define PA_PTX 0
#ifdef TC
#define PA_EMU_WARPS TC
#else
#define PA_EMU_WARPS (NRG * 4)
#endif
#define EMU_PARAM , __local float *emu
#define EMU_ARG , emu_l

inline float pa_emu_f(uint bits) {
  ushort h = (ushort)bits;
  return KV_DT == 1 ? vload_half(0, (const __private half *)&h) : as_float((bits & 0xffffu) << 16);
}
inline void pa_mma(float *c, uint a0, uint a1, uint a2, uint a3, uint b0, uint b1 EMU_PARAM) {
  const int lane = get_local_id(0) % 32, g = lane / 4, t = lane % 4;
  __local float *A = emu + (get_local_id(0) / 32) * 384, *B = A + 256;
  A[g * 16 + 2 * t] = pa_emu_f(a0), A[g * 16 + 2 * t + 1] = pa_emu_f(a0 >> 16);
  A[(g + 8) * 16 + 2 * t] = pa_emu_f(a1), A[(g + 8) * 16 + 2 * t + 1] = pa_emu_f(a1 >> 16);
  A[g * 16 + 2 * t + 8] = pa_emu_f(a2), A[g * 16 + 2 * t + 9] = pa_emu_f(a2 >> 16);
  A[(g + 8) * 16 + 2 * t + 8] = pa_emu_f(a3), A[(g + 8) * 16 + 2 * t + 9] = pa_emu_f(a3 >> 16);
  B[2 * t * 8 + g] = pa_emu_f(b0), B[(2 * t + 1) * 8 + g] = pa_emu_f(b0 >> 16);
  B[(2 * t + 8) * 8 + g] = pa_emu_f(b1), B[(2 * t + 9) * 8 + g] = pa_emu_f(b1 >> 16);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int e = 0; e < 4; e++) {
    int row = g + 8 * (e / 2), col = 2 * t + (e & 1);
    float acc = c[e];
    for (int kk = 0; kk < 16; kk++) acc = fma(A[row * 16 + kk], B[kk * 8 + col], acc);
    c[e] = acc;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
}
inline uint pa_pack2(float lo, float hi) {
#if KV_DT == 1
  ushort l, h;
  vstore_half_rte(lo, 0, (__private half *)&l);
  vstore_half_rte(hi, 0, (__private half *)&h);
  return l | (uint)h << 16;
#else
  return pa_f32_to_bf16(lo) | (uint)pa_f32_to_bf16(hi) << 16;
#endif
}
inline float pa_shfl_xor(float x, int mask EMU_PARAM) {
  const int tid = get_local_id(0);
  __local float *S = emu + PA_EMU_WARPS * 384;
  S[tid] = x;
  barrier(CLK_LOCAL_MEM_FENCE);
  float y = S[(tid & ~31) | ((tid & 31) ^ mask)];
  barrier(CLK_LOCAL_MEM_FENCE);
  return y;
}
/* ldmatrix xn (trans: the transposed 8x8 blocks) from p inside base; lanes
 * 8i..8i+7 name the rows of block i, lane l gets row l / 4 (trans: column
 * l / 4) of each. */
inline void pa_ldsm_emu(__local const ushort *p, uint *r, int trans, int n, __local const ushort *base EMU_PARAM) {
  const int tid = get_local_id(0), lane = tid % 32, g = lane / 4, t = lane % 4;
  __local int *R = (__local int *)(emu + PA_EMU_WARPS * 384 + PA_EMU_WARPS * 32);
  R[tid] = (int)(p - base);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int i = 0; i < n; i++) {
    __local const int *row = R + (tid - lane) + 8 * i;
    ushort lo = trans ? base[row[2 * t] + g] : base[row[g] + 2 * t];
    ushort hi = trans ? base[row[2 * t + 1] + g] : base[row[g] + 2 * t + 1];
    r[i] = lo | (uint)hi << 16;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
}
inline void pa_ldsm4p(__local const ushort *p, uint *r, int trans, __local const ushort *base EMU_PARAM) {
  pa_ldsm_emu(p, r, trans, 4, base, emu);
}
inline void pa_ldsm2p(__local const ushort *p, uint *r, int trans, __local const ushort *base EMU_PARAM) {
  pa_ldsm_emu(p, r, trans, 2, base, emu);
}
inline void pa_cp16p(__local uint4 *dst, __global const ushort *src, int ok) {
  *dst = ok ? *(__global const uint4 *)src : (uint4)(0);
}
inline void pa_cp_commit(void) {}
#define PA_CP_WAIT(n)
#define PA_CP_WAIT_ALL()
inline void pa_fence(void) {}
inline int pa_opaque(int x) { return x; }
#define PA_WARP_SYNC() barrier(CLK_LOCAL_MEM_FENCE)

#else
#define PA_PTX 0
#endif

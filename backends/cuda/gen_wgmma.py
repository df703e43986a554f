# Prints the wgmma wrappers of backends/cuda/wgmma.cuh (one function per
# shape and dtype: the accumulator list has to be spelled out in the asm).
#   python3 backends/cuda/gen_wgmma.py   (paste between the fences there)
def fn(n, rs, ty, cty):
    nd = n // 2  # f32 accumulators per thread for m64nNk16
    outs = ", ".join(f"%{i}" for i in range(nd))
    cons = ", ".join(f'"+f"(d[{i}])' for i in range(nd))
    if rs:
        a = f"{{%{nd}, %{nd+1}, %{nd+2}, %{nd+3}}}"
        b = f"%{nd+4}"
        p = nd + 5
        ins = f'"r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d)'
        tail = "p, 1, 1, 1"  # imm-scale-a, imm-scale-b, imm-trans-b (B is MN-major)
        sig = f"float *d, const uint32_t *a, uint64_t db, int scale_d"
        name = f"wgmma_rs_n{n}"
    else:
        a = f"%{nd}"
        b = f"%{nd+1}"
        p = nd + 2
        ins = f'"l"(da), "l"(db), "r"(scale_d)'
        tail = "p, 1, 1, 0, 0"  # imm-scale-a, imm-scale-b, imm-trans-a, imm-trans-b (both K-major)
        sig = f"float *d, uint64_t da, uint64_t db, int scale_d"
        name = f"wgmma_ss_n{n}"
    return f'''template <> __device__ __forceinline__ void {name}<{cty}>({sig}) {{
  asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{p}, 0;\\n"
               "wgmma.mma_async.sync.aligned.m64n{n}k16.f32.{ty}.{ty} "
               "{{{outs}}}, {a}, {b}, {tail};\\n}}\\n"
               : {cons}
               : {ins});
}}
'''

out = []
for n, rs in [(64, False), (128, False), (64, True), (128, True)]:
    kind = "rs" if rs else "ss"
    sig = "float *d, const uint32_t *a, uint64_t db, int scale_d" if rs else "float *d, uint64_t da, uint64_t db, int scale_d"
    out.append(f"template <typename T> __device__ __forceinline__ void wgmma_{kind}_n{n}({sig});\n")
    for ty, cty in [("f16", "__half"), ("bf16", "__nv_bfloat16")]:
        out.append(fn(n, rs, ty, cty))
print("".join(out))

#!/usr/bin/env python3
"""Peers for pa-bench on the GPU machine: the same attention shapes through
PyTorch SDPA (its FlashAttention-2 backend and its cuDNN backend), and through
the flash_attn package when it is installed.

Timing matches pa-bench: warm-up, then samples of `reps` calls (reps chosen so
a sample lasts >= 1 ms) rotating through enough input sets to exceed 256 MiB
(so L2 does not flatter anyone), median of the samples; CUDA events here.
FLOPs are counted as pa-bench counts them: 2 * (d + dv) per visible
(query, key) pair under the bottom-right causal / window rule.

  sdpa.py [--from pa_cuda.json] [--out peers.json] [--iters 20]

With --from, every prefill/decode row of a pa-bench JSON is run (its "key"
joins the two files in compare.py); without it, the CUDA floor shapes.
"""
import argparse
import json
import math
import statistics
import sys
import time

DT = {"f32": "float32", "f16": "float16", "bf16": "bfloat16",
      "e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2"}
FP8 = ("e4m3", "e5m2")

# The CUDA presets of bench/cases.c (prefill and decode).
DEFAULT_SHAPES = [
    dict(label="prefill", dtype="bf16", kv_dtype="bf16", b=4, hq=16, hkv=16, d=128, dv=128,
         sq=4096, skv=4096, causal=1, window=-1),
    # issue 10's floors (chunk: paged for polyattn, contiguous K/V here; ragged: 16 requests
    # of 100..4000 tokens for polyattn, one padded batch of the longest here)
    dict(label="prefill-gqa", dtype="bf16", kv_dtype="bf16", b=4, hq=32, hkv=8, d=128, dv=128,
         sq=4096, skv=4096, causal=1, window=-1),
    dict(label="prefill-long", dtype="bf16", kv_dtype="bf16", b=1, hq=16, hkv=16, d=128, dv=128,
         sq=16384, skv=16384, causal=0, window=-1),
    dict(label="prefill-d64", dtype="bf16", kv_dtype="bf16", b=8, hq=16, hkv=16, d=64, dv=64,
         sq=2048, skv=2048, causal=1, window=-1),
    dict(label="prefill-d256", dtype="bf16", kv_dtype="bf16", b=2, hq=16, hkv=16, d=256, dv=256,
         sq=8192, skv=8192, causal=1, window=-1),
    dict(label="prefill-mla", dtype="bf16", kv_dtype="bf16", b=1, hq=128, hkv=128, d=192, dv=128,
         sq=4096, skv=4096, causal=1, window=-1),
    dict(label="prefill-chunk", dtype="bf16", kv_dtype="bf16", b=8, hq=32, hkv=8, d=128, dv=128,
         sq=512, skv=8192, causal=1, window=-1),
    dict(label="prefill-ragged", dtype="bf16", kv_dtype="bf16", b=16, hq=32, hkv=8, d=128, dv=128,
         sq=4000, skv=4000, causal=1, window=-1, ragged=7),
    dict(label="decode", dtype="bf16", kv_dtype="bf16", b=64, hq=32, hkv=8, d=128, dv=128,
         sq=1, skv=4096, causal=0, window=-1),
    dict(label="decode-long", dtype="bf16", kv_dtype="bf16", b=1, hq=32, hkv=8, d=128, dv=128,
         sq=1, skv=32768, causal=0, window=-1),
    dict(label="decode-b16", dtype="bf16", kv_dtype="bf16", b=16, hq=32, hkv=8, d=128, dv=128,
         sq=1, skv=8192, causal=0, window=-1),
]


def key_of(s):
    """The join key; must match bench_shape_str() in bench/cases.c."""
    rg = f" r{s['ragged']}" if s.get("ragged") else ""
    return (f"attn {s['dtype']} kv{s['kv_dtype']} b{s['b']} hq{s['hq']} hkv{s['hkv']} "
            f"d{s['d']} dv{s['dv']} sq{s['sq']} skv{s['skv']} c{s['causal']} w{s['window']}{rg}")


def ragged_len(seed, i):
    """Length of request i of a ragged preset; bench_ragged_len() in bench/cases.c."""
    x = seed
    for _ in range(i + 1):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
    return 100 + ((x >> 33) % 3901)


def visible_pairs(s):
    sq, skv, off, p = s["sq"], s["skv"], s["skv"] - s["sq"], 0
    for i in range(sq):
        lo, hi, diag = 0, skv - 1, i + off
        if s["causal"] and hi > diag:
            hi = diag
        if s["window"] >= 0 and lo < diag - s["window"]:
            lo = diag - s["window"]
        if hi >= lo:
            p += hi - lo + 1
    return p


def flops_bytes(s):
    esz = {"f32": 4, "f16": 2, "bf16": 2, "e4m3": 1, "e5m2": 1}
    if s.get("ragged"):  # the ragged batch's own work (the peers run it padded)
        f = b_ = 0
        for i in range(s["b"]):
            n = ragged_len(s["ragged"], i)
            one = dict(s, b=1, sq=n, skv=n, ragged=0)
            fi, bi = flops_bytes(one)
            f, b_ = f + fi, b_ + bi
        return f, b_
    pairs = visible_pairs(s)
    flops = s["b"] * s["hq"] * pairs * 2.0 * (s["d"] + s["dv"])
    # keys read: the union of visible ranges (all keys unless a window cuts them)
    keys = s["skv"] if s["window"] < 0 else min(s["skv"], s["sq"] + s["window"])
    byts = (s["b"] * s["sq"] * s["hq"] * (s["d"] + s["dv"]) * esz[s["dtype"]] +
            s["b"] * keys * s["hkv"] * (s["d"] + s["dv"]) * esz[s["kv_dtype"]])
    return flops, byts


def time_fn(torch, fn, nsets, iters):
    """Median ms per call: samples of reps calls between CUDA events."""
    for i in range(3):
        fn(i % nsets)
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    fn(0)
    e1.record()
    e1.synchronize()
    one = e0.elapsed_time(e1)
    reps = max(1, min(1000, int(1.0 / max(one, 1e-4)) + 1)) if one < 1.0 else 1
    ms, k = [], 0
    for _ in range(iters):
        e0.record()
        for _ in range(reps):
            fn(k % nsets)
            k += 1
        e1.record()
        e1.synchronize()
        ms.append(e0.elapsed_time(e1) / reps)
    return statistics.median(ms), min(ms), reps


def run_shape(torch, s, iters):
    import torch.nn.functional as F
    dev = "cuda"
    qdt, kvdt = getattr(torch, DT[s["dtype"]]), getattr(torch, DT[s["kv_dtype"]])
    b, hq, hkv, d, dv, sq, skv = (s[k] for k in ("b", "hq", "hkv", "d", "dv", "sq", "skv"))
    flops, byts = flops_bytes(s)
    if s.get("ragged"):  # one padded batch of the longest request
        sq = skv = max(ragged_len(s["ragged"], i) for i in range(b))
    set_bytes = (b * sq * hq * (d + dv) * qdt.itemsize + b * skv * hkv * (d + dv) * kvdt.itemsize)
    nsets = max(1, min(64, math.ceil((256 << 20) / set_bytes)))
    gen = torch.Generator(device=dev).manual_seed(0)
    # SDPA layout [B, H, S, D]; the flash_attn package takes [B, S, H, D] (views of the same data)
    sets = []
    for _ in range(nsets):
        q = torch.rand(b, sq, hq, d, device=dev, generator=gen, dtype=torch.float32).mul_(2).sub_(1)
        k = torch.rand(b, skv, hkv, d, device=dev, generator=gen, dtype=torch.float32).mul_(2).sub_(1)
        v = torch.rand(b, skv, hkv, dv, device=dev, generator=gen, dtype=torch.float32).mul_(2).sub_(1)
        sets.append((q.to(qdt), k.to(kvdt), v.to(kvdt)))
    out = []

    def record(peer, fn, note=""):
        try:
            med, mn, reps = time_fn(torch, fn, nsets, iters)
            out.append(dict(peer=peer, key=key_of(s), label=s.get("label", ""), ms_median=med,
                            ms_min=mn, reps_per_sample=reps, input_sets=nsets,
                            tflops=flops / (med * 1e-3) * 1e-12, gbs=byts / (med * 1e-3) * 1e-9,
                            note=note, status="ok"))
        except Exception as e:  # a peer that cannot run a shape is reported, not fatal
            out.append(dict(peer=peer, key=key_of(s), label=s.get("label", ""), status="error",
                            error=f"{type(e).__name__}: {str(e)[:300]}"))
        torch.cuda.synchronize()
        r = out[-1]
        if r["status"] == "ok":
            print(f"  {peer:<22} {r['ms_median']:9.3f} ms {r['tflops']:8.1f} TFLOP/s "
                  f"{r['gbs']:8.1f} GB/s {note}", flush=True)
        else:
            print(f"  {peer:<22} error: {r['error'][:160]}", flush=True)

    if s["window"] < 0:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        mask, is_causal = None, False
        if s["causal"] and sq == skv:
            is_causal = True
        elif s["causal"] and sq < skv and sq > 1:
            from torch.nn.attention.bias import causal_lower_right
            mask = causal_lower_right(sq, skv)
        # sq == 1 (decode): the one query sees every key, causal or not
        fp8 = s["kv_dtype"] in FP8
        # fp8 KV: the unfused peer dequantises (fp8 -> Q's dtype, x scale) in every call
        tsets = [(q.transpose(1, 2), k.transpose(1, 2) if fp8 else k.transpose(1, 2).to(qdt),
                  v.transpose(1, 2) if fp8 else v.transpose(1, 2).to(qdt)) for q, k, v in sets]
        gqa = hq != hkv
        # dv != d (MLA prefill): cuDNN takes it; flash gets V zero-padded to d
        vpad = [F.pad(v, (0, d - dv)) for _, _, v in tsets] if dv < d else None
        for name, backend in (("sdpa-flash", SDPBackend.FLASH_ATTENTION),
                              ("sdpa-cudnn", SDPBackend.CUDNN_ATTENTION)):
            def fn(i, backend=backend):
                q, k, v = tsets[i]
                if vpad is not None and backend == SDPBackend.FLASH_ATTENTION:
                    v = vpad[i]
                if fp8:
                    k, v = k.to(qdt) * 1.0, v.to(qdt) * 1.0
                with sdpa_kernel(backend):
                    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                                          is_causal=is_causal, enable_gqa=gqa)
            note = "contiguous KV" + (", enable_gqa" if gqa else "")
            if vpad is not None and backend == SDPBackend.FLASH_ATTENTION:
                note += f", V padded to {d}"
            if s.get("ragged"):
                note += f", one padded batch of {sq} (polyattn: ragged)"
            if fp8:
                note += f", {s['kv_dtype']} KV dequantised per call (unfused)"
            record(name + ("-dequant" if fp8 else ""), fn, note)
    try:
        from flash_attn import flash_attn_func
        ws = (s["window"], 0) if s["window"] >= 0 else (-1, -1)

        def fa(i):
            q, k, v = sets[i]
            return flash_attn_func(q, k.to(qdt), v.to(qdt), causal=bool(s["causal"]),
                                   window_size=ws)
        record("flash_attn", fa, "flash_attn package, contiguous KV")
    except ImportError:
        pass
    del sets
    torch.cuda.empty_cache()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", help="pa-bench JSON whose attention rows to run")
    ap.add_argument("--out", default="peers.json")
    ap.add_argument("--iters", type=int, default=20)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("sdpa.py: no PyTorch here; no peers measured", file=sys.stderr)
        json.dump({"tool": "peers", "results": [], "error": "no torch"}, open(a.out, "w"))
        return 0
    if not torch.cuda.is_available():
        print("sdpa.py: no CUDA device; no peers measured", file=sys.stderr)
        json.dump({"tool": "peers", "results": [], "error": "no cuda"}, open(a.out, "w"))
        return 0
    shapes = DEFAULT_SHAPES
    if a.src:
        rows = json.load(open(a.src))["results"]
        shapes = [r for r in rows if r.get("case") in ("prefill", "decode")]
    results = []
    for s in shapes:
        print(f"{s.get('label', '')}: {key_of(s)}", flush=True)
        results += run_shape(torch, s, a.iters)
    doc = dict(tool="peers", date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               device=torch.cuda.get_device_name(), torch=torch.__version__,
               cudnn=torch.backends.cudnn.version(), results=results)
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

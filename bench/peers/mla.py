#!/usr/bin/env python3
"""MLA decode peers for pa-bench's "mla" case on the GPU machine: the same
shape (absorbed DeepSeek MLA, Dc 512 + Dr 64, one latent KV head) through
PyTorch, given contiguous (unpaged) K/V, which only helps the peer:
  sdpa:    scaled_dot_product_attention, q [B, H, 1, 576] against one shared
           K [B, 1, L, 576] / V [B, 1, L, 512] head (enable_gqa); whichever
           backend PyTorch picks for these dims;
  unfused: q K^T (bmm), softmax in f32, P V (bmm): what a framework does
           without a fused MLA kernel.
FLOPs as pa-bench counts them: 2 H (Dc + Dr) L + 2 H Dc L per request.
Timing: CUDA events, warm-up, median of `iters` samples of `reps` calls.

  mla.py [-b 64] [--hq 128] [--skv 4096] [--dtype bf16] [--iters 20]
"""
import argparse
import statistics

import torch
import torch.nn.functional as F


def time_ms(fn, iters, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for _ in range(reps):
            fn()
        b.record()
        b.synchronize()
        samples.append(a.elapsed_time(b) / reps)
    return statistics.median(samples)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-b", type=int, default=64)
    ap.add_argument("--hq", type=int, default=128)
    ap.add_argument("--skv", type=int, default=4096)
    ap.add_argument("--dc", type=int, default=512)
    ap.add_argument("--dr", type=int, default=64)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    o = ap.parse_args()
    dt = {"bf16": torch.bfloat16, "f16": torch.float16}[o.dtype]
    B, H, L, dc, dk = o.b, o.hq, o.skv, o.dc, o.dc + o.dr
    torch.manual_seed(0)
    q = torch.randn(B, H, dk, device="cuda", dtype=dt)
    kv = torch.randn(B, L, dk, device="cuda", dtype=dt)
    scale = dk ** -0.5
    flops = B * (2.0 * H * dk * L + 2.0 * H * dc * L)

    def unfused():
        s = torch.bmm(q, kv.transpose(1, 2)).float() * scale
        p = torch.softmax(s, dim=-1).to(dt)
        return torch.bmm(p, kv[:, :, :dc])

    qs = q.unsqueeze(2)                 # [B, H, 1, dk]
    ks = kv.unsqueeze(1)                # [B, 1, L, dk]
    vs = kv[:, :, :dc].unsqueeze(1)     # [B, 1, L, dc]

    def sdpa():
        return F.scaled_dot_product_attention(qs, ks, vs, scale=scale, enable_gqa=True)

    ref = unfused().float()
    rows = []
    for name, fn in (("torch-unfused", unfused), ("torch-sdpa", sdpa)):
        try:
            out = fn().reshape(B, H, dc).float()
            err = ((out - ref).norm() / ref.norm()).item()
            ms = time_ms(fn, o.iters, o.reps)
            rows.append((name, ms, flops / ms / 1e9, err))
        except Exception as e:  # a backend that refuses these dims
            rows.append((name, float("nan"), float("nan"), str(e).splitlines()[0][:60]))
    key = f"mla {o.dtype} b{B} h{H} dc{dc} dr{o.dr} skv{L} (contiguous KV)"
    print(f"peer {key}")
    for name, ms, tf, err in rows:
        print(f"  {name:14s} {ms:8.3f} ms  {tf:7.1f} TFLOP/s  rel.err vs unfused {err}")


if __name__ == "__main__":
    main()

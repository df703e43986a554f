#!/usr/bin/env python3
"""polyattn's CPU backend beside ggml's CPU flash attention (ggml_flash_attn_ext,
the kernel llama.cpp runs), same shapes, same threads, interleaved runs.

  ggml.py [--pa build/bench/pa-bench] [--drv DIR/fa_drv] [--threads 1,2]
          [--pairs 3] [--cases prefill-f16,decode-f16,...] [--json out.json]
          [--md out.md]

fa_drv comes from shared/peers/ggml (`sh build.sh DIR`, about 3 minutes); with
no --drv this script builds it into build-ggml/ when it is missing. ggml takes
Q in f32 and K/V in f16 or bf16, contiguous, so the polyattn side runs the same:
Q/O f32, the same K/V dtype, contiguous K/V (--page 0). Each pair runs pa-bench
(no ceilings) and then fa_drv, A B A B ..., both rotating K/V copies so they
come from DRAM; the ratio is ggml's median time over polyattn's, per pair, and
the figure printed is the median over pairs (the machine is shared: a ratio
from one moment, never from remembered numbers). PA_CPU_ISA (avx2, avx512)
passes through to pa-bench, so the AVX2-only CI host can be emulated. Ceilings
are measured once before the pairs (pa-bench's FMA and read stream).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PEER = os.path.join(os.path.dirname(ROOT), "shared", "peers", "ggml")

# name: (kind, kv dtype, batch, hq, hkv, d, sq, skv, causal, ggml K/V copies, iters)
CASES = {
    "prefill-f16": ("prefill", "f16", 1, 8, 8, 128, 2048, 2048, 1, 4, 3),
    "prefill-bf16": ("prefill", "bf16", 1, 8, 8, 128, 2048, 2048, 1, 4, 3),
    "prefill-gqa-f16": ("prefill", "f16", 1, 32, 8, 128, 1024, 1024, 1, 4, 3),
    "decode-f16": ("decode", "f16", 1, 32, 8, 128, 1, 8192, 0, 24, 20),
    "decode-bf16": ("decode", "bf16", 1, 32, 8, 128, 1, 8192, 0, 24, 20),
    "decode-b8-f16": ("decode", "f16", 8, 32, 8, 128, 1, 2048, 0, 12, 20),
}


def run(cmd, env=None):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p.stdout


def pa_cmd(a, c, threads, extra):
    kind, kv, b, hq, hkv, d, sq, skv, causal = c[:9]
    return [a.pa, kind, "--backend", "cpu", "--dtype", "f32", "--kv-dtype", kv, "-b", str(b),
            "--hq", str(hq), "--hkv", str(hkv), "-d", str(d), "--sq", str(sq), "--skv", str(skv),
            "--page", "0", "--causal", str(causal), "--threads", str(threads)] + extra


def pa_once(a, c, threads, ceilings=False):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        extra = ["--iters", str(c[10]), "--json", path]
        if not ceilings:
            extra.append("--no-ceilings")
        run(pa_cmd(a, c, threads, extra))
        with open(path) as f:
            doc = json.load(f)
    finally:
        os.unlink(path)
    r = [x for x in doc["results"] if x.get("status") == "PA_OK"]
    if not r:
        raise RuntimeError(f"pa-bench gave no result: {doc}")
    return doc, r[0]


def ggml_once(a, c, threads):
    kind, kv, b, hq, hkv, d, sq, skv, causal, nrep, iters = c
    out = run([a.drv, str(sq), str(skv), str(hq), str(hkv), str(d), str(causal if kind == "prefill" else 2),
               kv, str(nrep), str(iters), str(threads), str(b)])
    m = re.search(r"median ([0-9.]+) ms .*maxerr ([0-9.e+-]+)", out)
    if not m:
        raise RuntimeError(f"fa_drv output not understood:\n{out}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pa", default=os.path.join(ROOT, "build", "bench", "pa-bench"))
    ap.add_argument("--drv", default=os.path.join(ROOT, "build-ggml", "fa_drv"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--json")
    ap.add_argument("--md")
    a = ap.parse_args()
    if not os.path.exists(a.drv):
        out = os.path.dirname(os.path.abspath(a.drv))
        print(f"building ggml's fa_drv into {out} (about 3 minutes)", file=sys.stderr)
        run(["sh", os.path.join(PEER, "build.sh"), out])
    isa = os.environ.get("PA_CPU_ISA", "best")
    rows = []
    load = os.getloadavg()
    print(f"ggml peer: isa={isa} load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    ceil = None
    for name in a.cases.split(","):
        c = CASES[name]
        for t in [int(x) for x in a.threads.split(",")]:
            if ceil is None or ceil[0] != t:
                doc, _ = pa_once(a, c, t, ceilings=True)
                ceil = (t, doc["ceilings"])
            pa_ms, gg_ms, ratios, err = [], [], [], 0.0
            for _ in range(a.pairs):
                _, r = pa_once(a, c, t)
                g, e = ggml_once(a, c, t)
                pa_ms.append(r["ms_median"])
                gg_ms.append(g)
                ratios.append(g / r["ms_median"])
                err = max(err, e)
            pm, gm = statistics.median(pa_ms), statistics.median(gg_ms)
            row = {"case": name, "threads": t, "isa": isa, "shape": r["shape"],
                   "pa_ms": pa_ms, "ggml_ms": gg_ms, "ratio": statistics.median(ratios),
                   "pa_gflops": r["flops"] / pm * 1e-6, "pa_gbs": r["bytes"] / pm * 1e-6,
                   "frac_peak": r["flops"] / pm * 1e3 / ceil[1]["flops"] if ceil[1]["flops"] else 0,
                   "frac_bw": r["bytes"] / pm * 1e3 / ceil[1]["read_bw"] if ceil[1]["read_bw"] else 0,
                   "ceil_gflops": ceil[1]["flops"] * 1e-9, "ceil_read_gbs": ceil[1]["read_bw"] * 1e-9,
                   "ggml_maxerr": err}
            rows.append(row)
            fig = (f"{row['pa_gflops']:7.1f} GFLOP/s {100 * row['frac_peak']:5.1f}% FMA"
                   if c[0] == "prefill" else
                   f"{row['pa_gbs']:7.2f} GB/s {100 * row['frac_bw']:5.1f}% read")
            print(f"{name:16s} t{t} pa {pm:8.3f} ms  ggml {gm:8.3f} ms  ratio {row['ratio']:5.2f}x  "
                  f"{fig}  (pairs {', '.join(f'{x:.2f}' for x in ratios)})", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"isa": isa, "load": load, "rows": rows}, f, indent=1)
    if a.md:
        with open(a.md, "w") as f:
            f.write("| case | isa | threads | polyattn ms | ggml ms | ratio | % of ceiling |\n")
            f.write("|---|---|---|---|---|---|---|\n")
            for r in rows:
                pc = (f"{100 * r['frac_peak']:.0f}% FMA ({r['pa_gflops']:.1f} GFLOP/s)"
                      if CASES[r["case"]][0] == "prefill" else
                      f"{100 * r['frac_bw']:.0f}% read ({r['pa_gbs']:.2f} GB/s)")
                f.write(f"| {r['case']} | {r['isa']} | {r['threads']} | {statistics.median(r['pa_ms']):.3f} | "
                        f"{statistics.median(r['ggml_ms']):.3f} | {r['ratio']:.2f}x | {pc} |\n")


if __name__ == "__main__":
    main()

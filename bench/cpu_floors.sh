#!/bin/sh
# The CPU floor table of issues 16 and 12 in one command: every floor case on
# both ISA paths (native, and AVX2 as the CI host has it) with 1 and 2
# threads, ggml's CPU flash attention interleaved where it has the shape
# (bench/peers/ggml.py), pa-bench's ceilings measured before and after each
# (ISA, threads) block, the fp8 row (e4m3 against its own bf16 decode,
# interleaved), bf16-vs-f16 and two-thread scaling; a markdown table at the
# end (and in OUT/floors.md, raw figures in OUT/floors.json).
#
#   bench/cpu_floors.sh [--quick] [--isas "native avx2"] [--threads "1 2"]
#                       [--pairs 3] [--pa build/bench/pa-bench] [--out DIR]
#
# --quick: one shape per floor family (a check that everything runs, a few
# minutes); the whole table takes about 12-15 minutes on the 2-vCPU host. Run
# it alone on the machine: fractions of ceilings mean little beside other
# work (the table records the load average before and after).
# fa_drv (ggml) is built into build-ggml/ when missing (about 3 minutes).
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec python3 - "$ROOT" "$@" <<'EOF'
import argparse, json, os, statistics, subprocess, sys, tempfile, time

ROOT = sys.argv[1]
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
import ggml  # noqa: E402  (bench/peers/ggml.py: CASES, pa_once, ggml_once)

ap = argparse.ArgumentParser(prog="cpu_floors.sh")
ap.add_argument("--quick", action="store_true")
ap.add_argument("--isas", default="native avx2")
ap.add_argument("--threads", default="1 2")
ap.add_argument("--pairs", type=int, default=3)
ap.add_argument("--pa", default=os.path.join(ROOT, "build", "bench", "pa-bench"))
ap.add_argument("--drv", default=os.path.join(ROOT, "build-ggml", "fa_drv"))
ap.add_argument("--drv-avx2", default=os.path.join(ROOT, "build-ggml-avx2", "fa_drv"),
                help="ggml built for AVX2 only, the peer of the avx2 rows")
ap.add_argument("--out", default=os.path.join(ROOT, "build", "cpu-floors"))
ap.add_argument("--render", metavar="JSON",
                help="only write the tables again from an earlier run's floors.json")
a = ap.parse_args(sys.argv[2:])
os.makedirs(a.out, exist_ok=True)
if not a.render and not os.path.exists(a.drv):
    print(f"building ggml's fa_drv into {os.path.dirname(a.drv)} (about 3 minutes)", flush=True)
    ggml.run(["sh", os.path.join(ggml.PEER, "build.sh"), os.path.dirname(os.path.abspath(a.drv))])


def build_ggml_avx2(drv):
    """ggml's build.sh with the ISA pinned to AVX2 + FMA + F16C (no AVX-512), so the
    avx2 rows compare like with like on an AVX-512 host."""
    out = os.path.dirname(os.path.abspath(drv))
    src = os.path.join(out, "src")
    os.makedirs(src, exist_ok=True)
    if not os.path.exists(os.path.join(src, "CMakeLists.txt")):
        ggml.run(["tar", "-xzf", os.path.join(ggml.PEER, "ggml-src.tar.gz"), "-C", src])
    ggml.run(["cmake", "-S", src, "-B", os.path.join(out, "build"), "-G", "Ninja",
              "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON",
              "-DGGML_FMA=ON", "-DGGML_F16C=ON", "-DGGML_BMI2=ON", "-DGGML_AVX512=OFF",
              "-DGGML_CPU=ON", "-DGGML_CUDA=OFF", "-DGGML_VULKAN=OFF", "-DGGML_METAL=OFF",
              "-DGGML_OPENCL=OFF", "-DGGML_BLAS=OFF", "-DGGML_BUILD_TESTS=OFF",
              "-DGGML_BUILD_EXAMPLES=OFF", "-DBUILD_SHARED_LIBS=ON", "-DGGML_CCACHE=OFF"])
    ggml.run(["ninja", "-C", os.path.join(out, "build")])
    lib = os.path.join(out, "build", "src")
    ggml.run(["cc", "-O3", "-mavx2", "-mfma", "-mf16c", "-o", drv, os.path.join(ggml.PEER, "fa_drv.c"),
              "-I" + os.path.join(src, "include"), "-L" + lib, "-lggml", "-lggml-base", "-lggml-cpu",
              "-Wl,-rpath," + lib, "-lm"])


if not a.render and "avx2" in a.isas.split() and not os.path.exists(a.drv_avx2):
    print(f"building an AVX2-only fa_drv into {os.path.dirname(a.drv_avx2)} (about 3 minutes)", flush=True)
    build_ggml_avx2(a.drv_avx2)

# Floor cases: (family, name, pa-bench args). decode: Q bf16 (as a model
# runs), 1 request; prefill: Q f32 (as ggml takes it), K/V of the dtype, h8.
D = ["decode", "--dtype", "bf16", "-d", "128", "-b", "1", "--sq", "1", "--iters", "10"]
P = ["prefill", "--iters", "3", "-b", "1", "--hq", "8", "--hkv", "8"]
rows_def = []
kvs = ["f16", "bf16", "f32"]
pages = [16, 64, 0]
groups = [(8, 8), (32, 8), (64, 8)]
pre_d = [("64", "64"), ("128", "128"), ("256", "256"), ("192", "128")]
if a.quick:
    kvs, pages, groups, pre_d = ["f16", "bf16"], [16], [(32, 8)], [("128", "128")]
for kv in kvs:
    for pg in pages:
        for hq, hkv in groups:
            rows_def.append(("decode", f"decode {kv} {hq}/{hkv} L8192 pg{pg}",
                             D + ["--kv-dtype", kv, "--hq", str(hq), "--hkv", str(hkv),
                                  "--skv", "8192", "--page", str(pg)]))
for h in ([16, 128] if not a.quick else [16]):
    rows_def.append(("mla", f"mla bf16 h{h} 576/512 L4096 pg64",
                     ["mla", "--dtype", "bf16", "--kv-dtype", "bf16", "--hq", str(h), "-d", "512",
                      "--dr", "64", "--skv", "4096", "--page", "64", "-b", "1", "--iters", "5"]))
for kv in (["f32", "f16", "bf16"] if not a.quick else ["f16", "bf16"]):
    for causal in ([1, 0] if not a.quick else [1]):
        for dq, dv in pre_d:
            rows_def.append(("prefill", f"prefill {kv} d{dq}/{dv} {'causal' if causal else 'full'} s1024",
                             P + ["--dtype", "f32", "--kv-dtype", kv,
                                  "-d", dq, "--dv", dv, "--sq", "1024", "--skv", "1024",
                                  "--causal", str(causal)]))
FP8 = D + ["--hq", "32", "--hkv", "8", "--skv", "8192", "--page", "16"]
FP8_GFLOP = 32 * 8192 * 128 * 4 * 1e-9  # QK and PV of that shape, 2 flops per FMA
GG = ["prefill-f16", "prefill-bf16", "decode-f16", "decode-bf16"] if a.quick else list(ggml.CASES)


def bench(args, threads, ceilings=False):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    try:
        cmd = [a.pa] + args + ["--backend", "cpu", "--threads", str(threads), "--json", path]
        if not ceilings:
            cmd.append("--no-ceilings")
        ggml.run(cmd)
        with open(path) as f:
            doc = json.load(f)
    finally:
        os.unlink(path)
    r = [x for x in doc["results"] if x.get("status") == "PA_OK"]
    if not r:
        raise RuntimeError(f"{' '.join(cmd)}: no result")
    return doc, r[0]


def ceilings(threads):
    doc, _ = bench(["merge", "-b", "64", "--hq", "8", "-d", "128", "--iters", "1"], threads, True)
    return doc["ceilings"]["flops"], doc["ceilings"]["read_bw"]


def measure():
    out = {"load_before": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "blocks": []}
    print(f"cpu_floors: load average {out['load_before'][0]:.2f}, {out['date']}", flush=True)
    for isa in a.isas.split():
        env_isa = {} if isa == "native" else {"PA_CPU_ISA": isa, "PA_BENCH_ISA": isa}
        for k in ("PA_CPU_ISA", "PA_BENCH_ISA"):
            os.environ.pop(k, None)
        os.environ.update(env_isa)
        for t in [int(x) for x in a.threads.split()]:
            blk = {"isa": isa, "threads": t, "rows": [], "ggml": [], "fp8": None}
            fl0, bw0 = ceilings(t)
            print(f"[{isa} t{t}] ceilings {fl0 * 1e-9:.1f} GFLOP/s, read {bw0 * 1e-9:.1f} GB/s", flush=True)
            for fam, name, args in rows_def:
                _, r = bench(args, t)
                row = {"family": fam, "name": name, "ms": r["ms_median"], "ms_min": r["ms_min"],
                       "kernel": r.get("kernel", ""), "gflops": r["flops"] / r["ms_median"] * 1e-6,
                       "gbs": r["bytes"] / r["ms_median"] * 1e-6}
                blk["rows"].append(row)
                print(f"  {name:40s} {row['ms']:9.3f} ms {row['gflops']:7.1f} GFLOP/s {row['gbs']:6.2f} GB/s",
                      flush=True)
            ga = argparse.Namespace(pa=a.pa, drv=a.drv_avx2 if isa == "avx2" else a.drv)
            for name in GG:
                c = ggml.CASES[name]
                pa_ms, gg_ms, ratios = [], [], []
                for _ in range(a.pairs):
                    _, r = ggml.pa_once(ga, c, t)
                    g, _e = ggml.ggml_once(ga, c, t)
                    pa_ms.append(r["ms_median"])
                    gg_ms.append(g)
                    ratios.append(g / r["ms_median"])
                pm = statistics.median(pa_ms)
                blk["ggml"].append({"name": name, "kind": c[0], "pa_ms": pm, "ggml_ms": statistics.median(gg_ms),
                                    "ratio": statistics.median(ratios), "gflops": r["flops"] / pm * 1e-6,
                                    "gbs": r["bytes"] / pm * 1e-6, "pairs": ratios})
                print(f"  ggml {name:18s} pa {pm:8.3f} ms ggml {statistics.median(gg_ms):8.3f} ms "
                      f"ratio {statistics.median(ratios):5.2f}x", flush=True)
            e8, b16 = [], []
            for _ in range(a.pairs):
                _, r8 = bench(FP8 + ["--kv-dtype", "e4m3"], t)
                _, rb = bench(FP8 + ["--kv-dtype", "bf16"], t)
                e8.append(r8)
                b16.append(rb)
            m8 = statistics.median(x["ms_median"] for x in e8)
            mb = statistics.median(x["ms_median"] for x in b16)
            blk["fp8"] = {"e4m3_ms": m8, "bf16_ms": mb, "speedup": mb / m8,
                          "gflops": e8[0]["flops"] / m8 * 1e-6,
                          "gbs": e8[0]["bytes"] / m8 * 1e-6,
                          "pairs": [y["ms_median"] / x["ms_median"] for x, y in zip(e8, b16)]}
            print(f"  fp8 e4m3 {m8:.3f} ms vs bf16 {mb:.3f} ms: {mb / m8:.2f}x", flush=True)
            fl1, bw1 = ceilings(t)
            blk["ceil"] = {"flops": (fl0, fl1), "read_bw": (bw0, bw1)}
            out["blocks"].append(blk)
    out["load_after"] = os.getloadavg()
    with open(os.path.join(a.out, "floors.json"), "w") as f:
        json.dump(out, f, indent=1)
    return out


if a.render:
    with open(a.render) as f:
        out = json.load(f)
else:
    out = measure()


def pct(x):
    return f"{100 * x:.0f}%"


def mark(ok):
    return "met" if ok else "**missed**"


L = [f"CPU floors, {out['date']}, load average {out['load_before'][0]:.2f} before, "
     f"{out['load_after'][0]:.2f} after (`uptime`); ceilings = the mean of pa-bench's before/after "
     "measures of each block; ms = median of pa-bench's samples (fractions and verdicts use it), "
     f"ms min = the fastest sample; ggml ratios = median over {a.pairs} interleaved pairs.", ""]
L += ["% roofline = max(% FMA, % read): the share of the binding limit reached. For decode, "
      "\"read at most\" is the share of the read ceiling that the FMA peak allows at all "
      "(flops / FMA peak against bytes / read bandwidth): grouped heads make decode FMA-bound "
      "on a host whose f32 FMA rate per byte read is low, and there the 75% read floor cannot be "
      "met by any schedule of f32 FMAs.", ""]
L.append("| isa | thr | case | ms | ms min | GFLOP/s | GB/s | % FMA | % read | % roofline | floor |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|")


def roof(pf, pb, decode):
    """'% roofline' cell, and for decode the read share the FMA peak allows."""
    cap = min(1.0, pb / pf) if pf > 0 else 1.0
    note = f" (read at most {pct(cap)})" if decode and cap < 0.75 else ""
    return pct(max(pf, pb)), note
for b in out["blocks"]:
    fl = sum(b["ceil"]["flops"]) / 2
    bw = sum(b["ceil"]["read_bw"]) / 2
    for r in b["rows"]:
        pf, pb = r["gflops"] * 1e9 / fl, r["gbs"] * 1e9 / bw
        rf, note = roof(pf, pb, r["family"] != "prefill")
        if r["family"] == "prefill":
            verdict = f">= 70% FMA: {mark(pf >= 0.70)}"
        else:
            verdict = f">= 75% read: {mark(pb >= 0.75)}{note}"
        L.append(f"| {b['isa']} | {b['threads']} | {r['name']} | {r['ms']:.3f} | {r['ms_min']:.3f} | {r['gflops']:.1f} | "
                 f"{r['gbs']:.2f} | {pct(pf)} | {pct(pb)} | {rf} | {verdict} |")
    for g in b["ggml"]:
        pf, pb = g["gflops"] * 1e9 / fl, g["gbs"] * 1e9 / bw
        need = 2.0 if g["kind"] == "prefill" else 3.0
        L.append(f"| {b['isa']} | {b['threads']} | {g['name']} beside ggml ({g['ggml_ms']:.3f} ms) | "
                 f"{g['pa_ms']:.3f} | | {g['gflops']:.1f} | {g['gbs']:.2f} | {pct(pf)} | {pct(pb)} | "
                 f"{pct(max(pf, pb))} | "
                 f"{g['ratio']:.2f}x ggml, >= {need:.0f}x: {mark(g['ratio'] >= need)} |")
    f8 = b["fp8"]
    # same arithmetic as the bf16 decode of the shape (older runs did not record it)
    gf8 = f8.get("gflops") or FP8_GFLOP / f8["e4m3_ms"] * 1e3
    pf8, pb8 = gf8 * 1e9 / fl, f8["gbs"] * 1e9 / bw
    rf8, note8 = roof(pf8, pb8, True)
    L.append(f"| {b['isa']} | {b['threads']} | fp8: decode e4m3 32/8 L8192 pg16 | {f8['e4m3_ms']:.3f} | "
             f"| {gf8:.1f} | {f8['gbs']:.2f} | {pct(pf8)} | {pct(pb8)} | {rf8} | >= 70% read: "
             f"{mark(pb8 >= 0.70)}{note8}; {f8['speedup']:.2f}x its bf16 ({f8['bf16_ms']:.3f} ms), "
             f">= 1.5x: {mark(f8['speedup'] >= 1.5)} |")
    L.append(f"| {b['isa']} | {b['threads']} | ceilings (before, after) | | | "
             f"{b['ceil']['flops'][0] * 1e-9:.1f}, {b['ceil']['flops'][1] * 1e-9:.1f} | "
             f"{b['ceil']['read_bw'][0] * 1e-9:.1f}, {b['ceil']['read_bw'][1] * 1e-9:.1f} | | | | |")
L += ["", "bf16 K/V within 5% of f16 K/V (time ratio bf16/f16, same shape, same block):", ""]
L.append("| isa | thr | case | bf16 / f16 | floor |")
L.append("|---|---|---|---|---|")
for b in out["blocks"]:
    by = {r["name"]: r["ms"] for r in b["rows"]}
    for name, ms in by.items():
        if " f16 " in name and name.replace(" f16 ", " bf16 ") in by:
            q = by[name.replace(" f16 ", " bf16 ")] / ms
            L.append(f"| {b['isa']} | {b['threads']} | {name.replace(' f16 ', ' ')} | {q:.3f} | "
                     f"{mark(q <= 1.05)} |")
L += ["", "Two threads against one on prefill (>= 1.8x):", ""]
L.append("| isa | case | t1 ms | t2 ms | speedup | floor |")
L.append("|---|---|---|---|---|---|")
for isa in a.isas.split():
    bl = {b["threads"]: b for b in out["blocks"] if b["isa"] == isa}
    if 1 in bl and 2 in bl:
        t2 = {r["name"]: r["ms"] for r in bl[2]["rows"]}
        for r in bl[1]["rows"]:
            if r["family"] == "prefill" and r["name"] in t2:
                s = r["ms"] / t2[r["name"]]
                L.append(f"| {isa} | {r['name']} | {r['ms']:.3f} | {t2[r['name']]:.3f} | {s:.2f}x | "
                         f"{mark(s >= 1.8)} |")
md = "\n".join(L) + "\n"
with open(os.path.join(a.out, "floors.md"), "w") as f:
    f.write(md)
print()
print(md)
EOF

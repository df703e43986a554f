#!/usr/bin/env python3
"""Joins pa-bench JSON files and peers JSON (sdpa.py) by shape key and prints
ratios: polyattn TFLOP/s over each peer's, plus polyattn's fraction of the
device's measured ceilings. Draws a bar plot when matplotlib is present
(also for pa-bench JSON alone: bench/plot.sh).

  compare.py PA.json [PA2.json ...] [--peers peers.json] [--plot ratios.png] [--md out.md]
"""
import argparse
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def plot(rows, peer_names, path):
    """Bar chart of the table: speed ratios (polyattn over each peer, and over
    the unfused CLBlast baseline) where there are any, and each row's fraction
    of the ceilings measured in its run. Needs matplotlib; says so otherwise."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("compare.py: matplotlib not installed; no plot", file=sys.stderr)
        return False
    ok = [r for r in rows if "tflops" in r]
    if not ok:
        print("compare.py: no successful rows; no plot", file=sys.stderr)
        return False
    labels = [f"{r['backend']}:{r['label']}" for r in ok]
    ratio_series = [(f"polyattn / {p}", [r.get("ratios", {}).get(p) for r in ok])
                    for p in peer_names]
    ratio_series.append(("polyattn / unfused CLBlast", [r.get("unfused") for r in ok]))
    ratio_series = [s for s in ratio_series if any(v for v in s[1])]
    frac_series = [("of the FLOP ceiling", [r["peak"] for r in ok]),
                   ("of the bandwidth ceiling", [r["bw"] for r in ok])]
    panels = ([("speed ratio (TFLOP/s)", ratio_series)] if ratio_series else []) + \
        [("fraction of measured ceiling", frac_series)]
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(max(6, 1.0 * len(labels)), 3.5 * len(panels)))
    for ax, (ylabel, series) in zip(axes[:, 0], panels):
        width = 0.8 / len(series)
        for k, (name, vals) in enumerate(series):
            xs = [i + k * width for i, v in enumerate(vals) if v]
            ax.bar(xs, [v for v in vals if v], width, label=name)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))])
        ax.set_xticklabels(labels, rotation=20, ha="right")
        ax.set_ylabel(ylabel)
        ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"compare.py: plot written to {path}")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("pa", nargs="+", help="pa-bench --json outputs")
    ap.add_argument("--peers", help="sdpa.py output")
    ap.add_argument("--plot", help="PNG path for a ratio plot")
    ap.add_argument("--md", help="also write the table as Markdown here")
    a = ap.parse_args()

    peers = {}
    peer_names = []
    if a.peers:
        try:
            pdoc = load(a.peers)
        except (OSError, ValueError) as e:
            print(f"compare.py: no peers ({e})", file=sys.stderr)
            pdoc = {"results": []}
        for r in pdoc.get("results", []):
            if r.get("status") != "ok":
                continue
            peers.setdefault(r["key"], {})[r["peer"]] = r
            if r["peer"] not in peer_names:
                peer_names.append(r["peer"])

    rows = []
    for path in a.pa:
        doc = load(path)
        # the file's stem names the run (pa_opencl_mma.json -> opencl_mma)
        stem = os.path.basename(path).rsplit(".", 1)[0]
        backend = stem[3:] if stem.startswith("pa_") else doc.get("backend", "?")
        ceil = doc.get("ceilings", {})
        for r in doc.get("results", []):
            label = r.get("label")
            if label in (None, "custom"):  # a shape given by flags: name it by its case
                label = r.get("case")
            row = dict(backend=backend, label=label, shape=r.get("shape"),
                       key=r.get("key"), status=r.get("status"))
            if r.get("status") == "PA_OK":
                row.update(ms=r["ms_median"], tflops=r["tflops"], gbs=r["gbs"],
                           peak=r.get("frac_peak", 0), bw=r.get("frac_bw", 0),
                           unfused=r.get("speedup_vs_unfused"))
            else:
                row["error"] = r.get("error", "")
            row["peers"] = peers.get(r.get("key"), {})
            row["ceil_bw"] = ceil.get("bw_what", "")
            rows.append(row)

    hdr = f"{'backend':<15} {'case':<12} {'ms':>9} {'TFLOP/s':>8} {'GB/s':>8} {'%peak':>6} {'%bw':>6}"
    for p in peer_names:
        hdr += f" {p + ' TF':>16} {'x' + p:>16}"
    lines = [hdr]
    md = ["| backend | case | shape | ms | TFLOP/s | GB/s | % FLOP ceiling | % BW ceiling |" +
          "".join(f" {p} TFLOP/s | polyattn / {p} |" for p in peer_names),
          "|---" * (8 + 2 * len(peer_names)) + "|"]
    for r in rows:
        if "tflops" not in r:
            lines.append(f"{r['backend']:<15} {r['label']:<12} FAILED {r.get('error', '')[:100]}")
            md.append(f"| {r['backend']} | {r['label']} | {r['shape']} | failed |" +
                      " |" * (4 + 2 * len(peer_names)))
            continue
        s = (f"{r['backend']:<15} {r['label']:<12} {r['ms']:9.3f} {r['tflops']:8.2f} "
             f"{r['gbs']:8.1f} {100 * r['peak']:5.1f}% {100 * r['bw']:5.1f}%")
        m = (f"| {r['backend']} | {r['label']} | {r['shape']} | {r['ms']:.3f} | {r['tflops']:.2f} |"
             f" {r['gbs']:.1f} | {100 * r['peak']:.1f}% | {100 * r['bw']:.1f}% ({r['ceil_bw']}) |")
        for p in peer_names:
            pr = r["peers"].get(p)
            if pr:
                ratio = r["tflops"] / pr["tflops"] if pr["tflops"] > 0 else float("nan")
                r.setdefault("ratios", {})[p] = ratio
                s += f" {pr['tflops']:16.2f} {ratio:15.2f}x"
                m += f" {pr['tflops']:.2f} | {ratio:.2f}x |"
            else:
                s += f" {'-':>16} {'-':>16}"
                m += " - | - |"
        if r.get("unfused"):
            s += f"  ({r['unfused']:.2f}x the unfused CLBlast baseline)"
            m += f" {r['unfused']:.2f}x unfused CLBlast |"
        lines.append(s)
        md.append(m)
    print("\n".join(lines))
    if a.md:
        with open(a.md, "w") as f:
            f.write("\n".join(md) + "\n")

    if a.plot:
        plot(rows, peer_names, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())

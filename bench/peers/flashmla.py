#!/usr/bin/env python3
"""FlashMLA (DeepSeek's SM90 dense MLA decode) on the MLA shapes of a pa-bench
JSON, in the same call, written into the peers JSON that compare.py reads.

  flashmla.py --from pa_cuda.json --bin BENCH_FLASHMLA --peers peers.json

The driver (shared/peers/flashmla, copied to .peers/flashmla by the caller)
takes triples "b h_q L": one query token per request, bf16, page 64, Dc 512 +
Dr 64, every request of length L. So only pa-bench rows of that kind are run;
others are listed as skipped. Its TFLOP/s count b*h*L*2*(576+512), the same as
pa-bench's MLA count, so the ratio is a ratio of times.
"""
import argparse
import json
import re
import subprocess
import sys

LINE = re.compile(r"^b=(\d+) h_q=(\d+) L=(\d+) time_ms=([0-9.]+) TFLOPs=([0-9.]+) GBps=([0-9.]+)")


def takes(r):
    """Whether the FlashMLA driver runs this pa-bench row's shape."""
    return (r.get("case") == "mla" and r.get("dtype") == "bf16" and r.get("kv_dtype") == "bf16"
            and r.get("d") == 512 and r.get("dr") == 64 and r.get("sq") == 1
            and r.get("page") == 64 and not r.get("skv_min") and r.get("status") == "PA_OK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", required=True, help="pa-bench JSON (CUDA)")
    ap.add_argument("--bin", required=True, help="bench_flashmla executable")
    ap.add_argument("--peers", required=True, help="peers JSON to add rows to (created if absent)")
    ap.add_argument("--iters", type=int, default=50)
    a = ap.parse_args()

    rows = [r for r in json.load(open(a.src)).get("results", []) if r.get("case") == "mla"]
    todo = [r for r in rows if takes(r)]
    for r in rows:
        if not takes(r):
            print(f"flashmla.py: skipped {r.get('shape')} (driver: bf16, Dc 512 + Dr 64, one "
                  "token, page 64)", flush=True)
    try:
        doc = json.load(open(a.peers))
    except (OSError, ValueError):
        doc = {"tool": "peers", "results": []}
    if not todo:
        print("flashmla.py: no MLA row it can run", flush=True)
        return 0
    args = [a.bin]
    for r in todo:
        args += [str(r["b"]), str(r["hq"]), str(r["skv"])]
    args += [f"--iters={a.iters}"]
    print("flashmla.py: " + " ".join(args), flush=True)
    p = subprocess.run(args, capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    got = {}
    for line in p.stdout.splitlines():
        m = LINE.match(line)
        if m:
            got[(int(m[1]), int(m[2]), int(m[3]))] = (float(m[4]), float(m[5]), float(m[6]))
    for r in todo:
        t = got.get((r["b"], r["hq"], r["skv"]))
        row = dict(peer="flashmla", key=r["key"], label=r.get("label", ""),
                   note="FlashMLA 9241ae3 dense decode, split-KV + combine, metadata precomputed")
        if t and p.returncode == 0:
            row.update(status="ok", ms_median=t[0], tflops=t[1], gbs=t[2])
        else:
            row.update(status="error", error=f"driver exit {p.returncode}, no line for the shape")
        doc["results"].append(row)
    with open(a.peers, "w") as f:
        json.dump(doc, f, indent=1)
    return 0 if p.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

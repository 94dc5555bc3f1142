#!/usr/bin/env python3
"""Summarise bench/kv_types.sh output: median ms per (type, method, S) over rounds, loki/dense speedup."""
import json, re, statistics, sys
rows = {}
loads = []
for line in open(sys.argv[1]):
    m = re.match(r"round=(\d+) type=(\S+) load=(\S+) (.*)", line.strip())
    if not m or not m.group(4).startswith("{"): continue
    loads.append(float(m.group(3)))
    for r in json.loads(m.group(4))["results"]:
        rows.setdefault((m.group(2), r["method"], r["S"]), []).append(r["ms"])
print(f"load average during the runs: {min(loads):.2f} .. {max(loads):.2f}")
print("| type | S | dense ms | loki ms | loki / dense speed-up |")
print("|---|---|---|---|---|")
for t in ("f32", "f16", "bf16", "q8_0"):
    for S in sorted({k[2] for k in rows}):
        d, l = rows.get((t, "dense", S)), rows.get((t, "loki", S))
        if not d or not l: continue
        dm, lm = statistics.median(d), statistics.median(l)
        print(f"| {t} | {S} | {dm:.2f} | {lm:.2f} | {dm / lm:.2f}x |")

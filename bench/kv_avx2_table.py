#!/usr/bin/env python3
"""Summarise bench/kv_avx2_rounds.sh output: per shape and S the dense and loki ms of every round, dense GB/s against the median probe, loki/dense per round."""
import json, re, statistics as st, sys
rows = {}; bw = []; loads = []
for line in open(sys.argv[1]):
    m = re.match(r"round=(\d+) (\w+) load=(\S+) (.*)", line.strip())
    if not m: continue
    loads.append(float(m.group(3)))
    if m.group(2) == "bw":
        bw.append(float(re.search(r"best ([\d.]+)", m.group(4)).group(1))); continue
    if not m.group(4).startswith("{"): continue
    for r in json.loads(m.group(4))["results"]:
        rows.setdefault((m.group(2), r["method"], r["S"]), []).append((r["ms"], r["bytes"]))
print("load %.2f..%.2f  bw GB/s runs %s median %.1f" % (min(loads), max(loads), bw, st.median(bw) if bw else 0))
B = st.median(bw) if bw else 1
for shape in ("mha", "gqa"):
    for S in sorted({k[2] for k in rows}):
        d = rows.get((shape, "dense", S)); l = rows.get((shape, "loki", S))
        if not d: continue
        dm = st.median(x[0] for x in d); gb = d[0][1] / dm / 1e6
        lm = st.median(x[0] for x in l) if l else float('nan')
        ratios = [a[0] / b[0] for a, b in zip(d, l)] if l else []
        print(f"{shape} S={S} dense ms {[round(x[0],1) for x in d]} med {dm:.2f} = {gb:.1f} GB/s ({100*gb/B:.0f}% of {B:.1f}); loki {[round(x[0],1) for x in l]} med {lm:.2f}; ratio/run {[round(x,2) for x in ratios]} med {st.median(ratios):.2f}")

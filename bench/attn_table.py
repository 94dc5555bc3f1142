#!/usr/bin/env python3
"""bench/attn_table.py - join the JSON lines of `loki bench attention --device
cuda` (loki.jsonl) and bench/attn_sdpa.py (sdpa.jsonl) by shape (B, heads,
kv_heads, head_dim, S) into one Markdown table; print it and write it to a file.

    python3 bench/attn_table.py LOKI_JSONL SDPA_JSONL [OUT_MD]

One row per sparse variant of a shape (method, kf, df, gqa); the shape's
columns (SDPA, our dense) are on its first row. Columns:
  SDPA µs, dense µs   one decode step (all heads, B sequences)
  SDPA/dense          SDPA µs / our dense µs: > 1 means our dense is faster
  dense bw            our dense's GB/s as a fraction of the measured read bandwidth
  µs, ×SDPA, ×dense   the variant's step time and its speedup over SDPA and our dense
  bw                  its GB/s (the bytes model of src/cli/bench_attn_cuda.c) / read bandwidth
  score/select/attend the stages' shares of the step, from the per-stage timing
Standard library only.
"""
import json
import sys


METHOD_ORDER = {"loki": 0, "pcaattn": 1, "exact-topk": 2, "h2o": 3}


def load(path):
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                print(f"attn_table.py: {path}:{n}: not JSON ({e}); line skipped", file=sys.stderr)
    return rows


def shape_key(r):
    return (r["B"], r["heads"], r["kv_heads"], r.get("head_dim"), r["S"])


def fmt(x, spec, suffix=""):
    return "–" if x is None else format(x, spec) + suffix


def ratio(a, b):
    return a / b if a is not None and b else None


def variant_cells(r):
    """method, kf, df (d), gqa of a loki line."""
    kf = f"{r['kf']:g}" if "kf" in r else ""
    df = f"{r['df']:g} ({r['d']})" if "df" in r else ""
    return [r["method"], kf, df, r.get("gqa", "none")]


def stage_shares(r):
    st = [r.get("score_us", 0.0), r.get("select_us", 0.0), r.get("attend_us", 0.0)]
    tot = sum(st)
    return [fmt(s / tot * 100 if tot > 0 else None, ".0f", "%") for s in st]


def table(loki, sdpa):
    sd = {}
    for r in sdpa:
        sd[shape_key(r)] = r  # a repeated shape (grid and paper): the last line
    order, by = [], {}
    for r in loki:
        k = shape_key(r)
        if k not in by:
            by[k] = []
            order.append(k)
        by[k].append(r)
    order += [k for k in sd if k not in by]  # shapes loki skipped
    head = ["B", "H/Hkv", "S", "SDPA µs", "dense µs", "SDPA/dense", "dense bw",
            "method", "kf", "df (d)", "gqa", "µs", "×SDPA", "×dense", "bw", "score", "select", "attend"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k in order:
        rows = by.get(k, [])
        dense = next((r for r in rows if r["method"] == "dense"), None)
        s = sd.get(k)
        s_us, d_us = s["us"] if s else None, dense["us"] if dense else None
        B, H, Hkv, D, S = k
        shape = [str(B), f"{H}/{Hkv}", str(S), fmt(s_us, ".1f"), fmt(d_us, ".1f"), fmt(ratio(s_us, d_us), ".2f", "×"),
                 fmt(dense.get("bw_frac") if dense else None, ".0%")]
        # loki first; the others in file order (loki writes them grouped by cache layout)
        sparse = sorted((r for r in rows if r["method"] != "dense"), key=lambda r: METHOD_ORDER.get(r["method"], 9))
        if not sparse:
            out.append("| " + " | ".join(shape + [""] * (len(head) - len(shape))) + " |")
        for i, r in enumerate(sparse):
            cells = (shape if i == 0 else [""] * len(shape)) + variant_cells(r) + [
                fmt(r["us"], ".1f"), fmt(ratio(s_us, r["us"]), ".2f", "×"), fmt(ratio(d_us, r["us"]), ".2f", "×"),
                fmt(r.get("bw_frac"), ".0%")] + stage_shares(r)
            out.append("| " + " | ".join(cells) + " |")
    return out


def header(loki, sdpa):
    lines = []
    r = loki[0] if loki else None
    if r:
        lines.append(f"GPU: {r.get('gpu', '?')}; measured read bandwidth {r.get('read_bw_gb_per_s', 0):.0f} GB/s; "
                     f"loki {r.get('date', '?')}, {r.get('reps', '?')} graph replays x 3 (median), "
                     f"keys decay {r.get('decay', '?')}")
    if sdpa:
        s = sdpa[0]
        used = sorted({x.get("backend_used", "?") for x in sdpa})
        lines.append(f"SDPA: torch {s.get('torch', '?')}, backend {s.get('backend', '?')} ({', '.join(used)}), "
                     f"GQA through {next((x['gqa_impl'] for x in sdpa if x.get('gqa_impl') != 'none'), 'n/a')}, "
                     f"{s.get('date', '?')}")
    lines.append("One decode step of one layer (all heads, B sequences of S tokens); µs per step. "
                 "SDPA/dense > 1: our dense is faster; ×SDPA, ×dense: speedup of the variant; "
                 "bw: GB/s (bytes the kernels must read, src/cli/bench_attn_cuda.c) over the read bandwidth; "
                 "score/select/attend: shares of the per-stage timing.")
    return lines


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: python3 bench/attn_table.py LOKI_JSONL SDPA_JSONL [OUT_MD]")
    try:
        loki, sdpa = load(sys.argv[1]), load(sys.argv[2])
    except OSError as e:
        sys.exit(f"attn_table.py: {e}")
    loki = [r for r in loki if r.get("bench") == "attention"]
    sdpa = [r for r in sdpa if r.get("bench") == "attention"]
    if not loki and not sdpa:
        sys.exit("attn_table.py: no measurements in either file")
    text = "\n".join(header(loki, sdpa) + [""] + table(loki, sdpa)) + "\n"
    sys.stdout.write(text)
    if len(sys.argv) == 4:
        with open(sys.argv[3], "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()

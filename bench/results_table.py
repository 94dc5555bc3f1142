#!/usr/bin/env python3
"""Render the JSON lines of bench/results_ppl.sh as the Markdown tables of
docs/RESULTS.md.   python3 bench/results_table.py OUT_DIR"""
import json
import os
import sys


def load(path):
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    return rows


def ppl_table(rows, title):
    """One row per label: PPL in prefill and decode mode, the increase over
    dense in each, and the KV bytes a decode step reads relative to dense."""
    by = {}
    order = []
    for r in rows:
        key = r["label"]
        if key not in by:
            by[key] = {}
            order.append(key)
        by[key][r["result"]["mode"]] = r["result"]
    dense = by.get("dense") or by.get(order[0])
    out = [f"**{title}**", "",
           "| method | PPL prefill | Δ prefill | PPL decode | Δ decode | KV bytes / dense (decode) |",
           "|---|---|---|---|---|---|"]
    for key in order:
        cells = [key]
        for mode in ("prefill", "decode"):
            r = by[key].get(mode)
            d = dense.get(mode) if dense else None
            if r:
                cells.append(f"{r['ppl']:.2f} ± {r['ppl_stderr']:.2f}")
                cells.append(f"{r['ppl'] - d['ppl']:+.2f}" if d else "")
            else:
                cells += ["", ""]
        dec = by[key].get("decode")
        cells.append(f"{dec['bytes_frac']:.3f}" if dec and "bytes_frac" in dec else "")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def jaccard_table(rows):
    grid = {}
    for r in rows:
        parts = dict(p.split("=") for p in r["label"].split() if "=" in p)
        grid[(parts["kf"], parts["df"])] = r["result"]["jaccard"]
    kfs = sorted({k for k, _ in grid}, key=float, reverse=True)
    dfs = sorted({d for _, d in grid}, key=float)
    out = ["| kf \\ df | " + " | ".join(dfs) + " |", "|---" * (len(dfs) + 1) + "|"]
    for kf in kfs:
        out.append(f"| {kf} | " + " | ".join(f"{grid.get((kf, df), float('nan')):.3f}" for df in dfs) + " |")
    return "\n".join(out)


def main():
    d = sys.argv[1]
    paper = load(os.path.join(d, "paper.jsonl"))
    if paper:
        print(ppl_table(paper, "WikiText-2 test, the paper's rows"), "\n")
    beyond = load(os.path.join(d, "beyond.jsonl"))
    if beyond:
        base = [r for r in paper if r["label"] == "dense"]
        print(ppl_table(base + beyond, "WikiText-2 test, beyond the paper"), "\n")
    book = load(os.path.join(d, "book.jsonl"))
    if book:  # in the order of the paper's table (rows were run in two batches)
        order = {}
        for r in paper:
            order.setdefault(r["label"], len(order))
        book.sort(key=lambda r: order.get(r["label"], len(order)))
        print(ppl_table(book, "The Adventures of Sherlock Holmes (held out)"), "\n")
    jac = load(os.path.join(d, "jaccard.jsonl"))
    if jac:
        print("**Jaccard similarity with the exact top-k (loki, post-RoPE basis, prefill mode, 1 window)**\n")
        print(jaccard_table(jac))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Markdown tables from scripts/eval-real-models.sh output: one table per model, text and
window length, prefill and decode side by side, Δ against dense of the same mode and
window (paired: the same tokens). Rows of one (model, text, window, mode, label) seen
twice: the last one counts.

    python3 scripts/real-models-table.py OUT_DIR
"""
import json, sys, pathlib

out = pathlib.Path(sys.argv[1])
for f in sorted(out.glob("ppl-*.jsonl")):
    rows = [json.loads(l) for l in f.read_text().splitlines() if l.strip()]
    keys = dict.fromkeys((r["text"], r["result"]["window"]) for r in rows)
    for text, window in keys:
        rs = [r for r in rows if r["text"] == text and r["result"]["window"] == window]
        dense = {r["mode"]: r["result"]["ppl"] for r in rs if r["label"] == "dense"}
        by = {}
        for r in rs:
            by.setdefault(r["label"], {})[r["mode"]] = r
        toks = {r["mode"]: (r["result"]["tokens"], r["result"]["windows"]) for r in rs}
        print(f"\n**{rows[0]['model']}, {text}, window {window}** (scored tokens: " +
              ", ".join(f"{m} {t} in {w} window{'s' if w > 1 else ''}" for m, (t, w) in toks.items()) + ")\n")
        print("| method | PPL prefill | Δ prefill | PPL decode | Δ decode | s (prefill, decode) |")
        print("|---|---|---|---|---|---|")
        for label, d in by.items():
            cells = []
            for mode in ("prefill", "decode"):
                if mode in d:
                    res = d[mode]["result"]
                    delta = f"{res['ppl'] - dense[mode]:+.3f}" if mode in dense else "n/a"
                    cells += [f"{res['ppl']:.3f} ± {res['ppl_stderr']:.2f}", delta]
                else:
                    cells += ["not run", ""]
            secs = ", ".join(str(d[m]["secs"]) if m in d else "-" for m in ("prefill", "decode"))
            print(f"| {label} | " + " | ".join(cells) + f" | {secs} |")

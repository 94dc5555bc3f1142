#!/usr/bin/env python3
"""Table of bench/cpu_vs_llamacpp.sh's JSON lines: per model, prefill and
decode tokens/s of loki (and of a base loki build when given) and llama.cpp,
mean over the rounds with min..max, the ratios loki / llama.cpp, and the load
average (1 min) seen before the runs. Usage: cpu_vs_llamacpp.py FILE.jsonl"""
import json
import os
import sys


def speeds(rec):
    """(prefill tok/s, decode tok/s) of one run, None where missing."""
    res = rec["result"]
    if rec["tool"] == "llama.cpp":
        pp = tg = None
        for row in res if isinstance(res, list) else []:
            if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
                pp = row["avg_ts"]
            elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
                tg = row["avg_ts"]
        return pp, tg
    if not isinstance(res, dict) or "prefill_tokens_per_s" not in res:
        return None, None
    return res["prefill_tokens_per_s"], res["decode_tokens_per_s"]


def fmt(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = sum(vals) / len(vals)
    return f"{m:.1f}" if len(vals) == 1 else f"{m:.1f} ({min(vals):.1f}..{max(vals):.1f})"


def mean(vals):
    vals = [v for v in vals if v is not None]
    return sum(vals) / len(vals) if vals else None


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    recs = [json.loads(line) for line in open(argv[1]) if line.strip()]
    models, tools = [], []
    runs = {}  # (model, tool) -> [(pp, tg, load1)]
    for r in recs:
        if r["model"] not in models:
            models.append(r["model"])
        if r["tool"] not in tools:
            tools.append(r["tool"])
        pp, tg = speeds(r)
        runs.setdefault((r["model"], r["tool"]), []).append((pp, tg, float(r["load"].split()[0])))
    tools = [t for t in ("loki", "base", "llama.cpp") if t in tools]
    rounds = max((r["round"] for r in recs), default=0)
    loads = [float(r["load"].split()[0]) for r in recs]
    print(f"{argv[1]}: {rounds} interleaved rounds; load average (1 min) before the runs "
          f"{min(loads):.2f}..{max(loads):.2f}" if loads else "no runs")
    print()
    head = ["model"]
    for kind in ("prefill", "decode"):
        head += [f"{kind} {t}" for t in tools] + [f"{kind} loki/llama.cpp"]
        if "base" in tools:
            head.append(f"{kind} loki/base")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for m in models:
        row = [os.path.basename(m)]
        for k in (0, 1):
            vals = {t: [x[k] for x in runs.get((m, t), [])] for t in tools}
            row += [fmt(vals[t]) for t in tools]
            lo, ll = mean(vals["loki"]) if "loki" in vals else None, mean(vals.get("llama.cpp", []))
            row.append(f"{lo / ll:.2f}" if lo and ll else "-")
            if "base" in tools:
                b = mean(vals["base"])
                row.append(f"{lo / b:.2f}" if lo and b else "-")
        print("| " + " | ".join(row) + " |")
    print()
    per_round = []
    for n in range(1, rounds + 1):
        l1 = [float(r["load"].split()[0]) for r in recs if r["round"] == n]
        per_round.append(f"round {n}: {min(l1):.2f}..{max(l1):.2f}")
    print("Load average (1 min) per round: " + "; ".join(per_round))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

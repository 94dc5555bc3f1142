"""Table of bench/prefill_ab_rounds.sh output: per model, prefill and decode
tokens/s of each build, median (min..max) over the rounds, and the median
(min..max) of the per-round new/base prefill ratio.

    python3 bench/prefill_ab_table.py OUT [OUT...]
"""
import json
import re
import statistics as st
import sys

LINE = re.compile(r"round (\d+) (base|new) load1/5/15 (\S+) \S+ \S+ (\{.*\})")


def fmt(v):
    return "%.1f (%.1f..%.1f)" % (st.median(v), min(v), max(v))


def main(paths):
    runs = {}  # (model, round key) -> {build: json}
    order = []
    for k, path in enumerate(paths):
        for line in open(path):
            m = LINE.match(line)
            if not m:
                continue
            j = json.loads(m.group(4))
            key = (j["model"].split("/")[-1], (k, int(m.group(1))))
            if key[0] not in order:
                order.append(key[0])
            runs.setdefault(key, {})[m.group(2)] = j
    print("| model | rounds | prefill base | prefill new | new/base per round | decode base | decode new |")
    print("|---|---|---|---|---|---|---|")
    for model in order:
        pairs = [v for (mm, _), v in sorted(runs.items()) if mm == model and len(v) == 2]
        pb = [p["base"]["prefill_tokens_per_s"] for p in pairs]
        pn = [p["new"]["prefill_tokens_per_s"] for p in pairs]
        db = [p["base"]["decode_tokens_per_s"] for p in pairs]
        dn = [p["new"]["decode_tokens_per_s"] for p in pairs]
        ratio = [n / b for n, b in zip(pn, pb)]
        print("| %s | %d | %s | %s | %.2f (%.2f..%.2f) | %s | %s |" % (
            model, len(pairs), fmt(pb), fmt(pn), st.median(ratio), min(ratio), max(ratio), fmt(db), fmt(dn)))


if __name__ == "__main__":
    main(sys.argv[1:])

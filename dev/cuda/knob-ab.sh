#!/usr/bin/env bash
# On the GPU machine: one layer's Loki step (the fused kernel; 32 heads,
# kf .125, df .25) for several loki builds, interleaved in rounds, then a
# table of their times and fused phases. With dev/cuda/pack-knobs.sh's pack:
#   bash dev/cuda/knob-ab.sh OUT_DIR 2 /tmp/lk/bin/loki /tmp/lk/bin/loki-bal /tmp/lk/bin/loki-ws
# Writes OUT_DIR/attn.jsonl (one JSON object a row, "bin" added) and
# OUT_DIR/attn.err; a failed run is reported and the rest go on.
set -euo pipefail
out=${1:?usage: knob-ab.sh OUT_DIR ROUNDS LOKI...}
rounds=${2:?usage: knob-ab.sh OUT_DIR ROUNDS LOKI...}
shift 2
[ $# -gt 0 ] || { echo "knob-ab.sh: name at least one loki binary" >&2; exit 2; }
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  for b in "$@"; do
    echo "== $b round $r" >> "$out/attn.err"
    "$b" bench attention --device cuda --heads 32 --kv-heads 32 --kfdf 0.125:0.25 --methods loki -r 30 \
      --S 16384,32768 --B 1,16 2>> "$out/attn.err" | sed "s|^{|{\"bin\":\"$(basename "$b")\",|" >> "$out/attn.jsonl" ||
      echo "knob-ab: failed: $b" >&2
  done
done
python3 - "$out/attn.jsonl" <<'PY'
import json, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    try: j = json.loads(line)
    except ValueError: continue
    rows[(j["B"], j["S"], j["bin"])].append(j)
print("B, S, bin: us per round | last round's fused phases (mean; attend's longest block)")
for k in sorted(rows):
    ph = rows[k][-1].get("fused_phase_us", {})
    mx = rows[k][-1].get("fused_phase_max_us", {})
    print(k, [j["us"] for j in rows[k]], "|", {p: ph[p] for p in ph}, "attend max", mx.get("attend"))
PY

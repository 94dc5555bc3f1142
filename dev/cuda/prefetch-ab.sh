#!/usr/bin/env bash
# A/B of the weight prefetch (`bench decode --weight-prefetch MIB`,
# lk_cuda_mm_set_prefetch): each decode product's first blocks ask L2 for
# their rows of W before they wait on the kernel before (programmatic
# dependent launch), so HBM streams weights through that kernel's tail.
# Written in session 20, whose calls 2-4 measured 16 MiB slower everywhere and
# 4 MiB +2.0% for one sequence, -0.8% for 16 (docs/GPU.md "Session 20").
#   bash dev/cuda/prefetch-ab.sh LOKI_BIN OUT_DIR [ROUNDS] [BUDGETS]
# ROUNDS (default 1) interleave the budgets (default "0 16" MiB) run by run;
# each run builds its random 7B model (9-17 s a run in session 20's calls,
# the 16-sequence 32k one untimed). Shapes: one sequence of Llama-2-7B bf16 with an empty cache (the 80%
# target), f16 at 32k dense and Loki (the 1.5x target), and 16 sequences of
# the kv8 shape (the 16-row tensor-core products) empty and at 32k with the
# shared selection. Writes OUT_DIR/decode.jsonl and a summary on stdout.
set -euo pipefail
loki=${1:?usage: prefetch-ab.sh LOKI_BIN OUT_DIR [ROUNDS] [BUDGETS]}
out=${2:?usage: prefetch-ab.sh LOKI_BIN OUT_DIR [ROUNDS] [BUDGETS]}
rounds=${3:-1}
budgets=${4:-0 16}
here=$(cd "$(dirname "$0")/../.." && pwd)
kv8="$here/bench/shapes/llama2-7b-kv8.json"
mkdir -p "$out"
# a run that fails is reported and the rest go on
dec() {
  "$loki" bench decode --device cuda -r 1 "$@" >> "$out/decode.jsonl" || echo "prefetch-ab: failed: bench decode $*" >&2
}
for r in $(seq 1 "$rounds"); do
  for mib in $budgets; do
    w=(--weight-prefetch "$mib")
    dec --random-weights llama2-7b --dtype bf16 -p 64 -n 128 "${w[@]}"
    dec --random-weights llama2-7b --dtype f16 -p 512 -n 64 -d 32768 --dense-prompt "${w[@]}"
    dec --random-weights llama2-7b --dtype f16 -p 512 -n 64 -d 32768 --dense-prompt --attn loki --kf 0.125 --df 0.25 \
      "${w[@]}"
    dec --random-weights "$kv8" --dtype f16 -p 64 -n 128 -b 16 "${w[@]}"
  done
done
for mib in $budgets; do # the longest runs: one round
  dec --random-weights "$kv8" --dtype f16 -p 512 -n 32 -d 32768 -b 16 --dense-prompt --attn loki --kf 0.125 \
    --df 0.25 --gqa-shared --weight-prefetch "$mib"
done
python3 - "$out" <<'EOF'
import json, sys, collections
rows = collections.defaultdict(list)
for line in open(sys.argv[1] + "/decode.jsonl"):
    try: j = json.loads(line)
    except ValueError: continue
    key = (j.get("model", "").split("/")[-1], j.get("attn"), j.get("batch"), j.get("n_depth"))
    rows[key].append((j.get("weight_prefetch_mib"), j.get("decode_tokens_per_s"),
                      (j.get("split_ms_per_step") or {}).get("weights")))
print("decode: (model, attn, batch, depth) -> [(prefetch MiB, tokens/s, weights ms a step)] in run order")
for k in sorted(rows, key=str): print(" ", k, rows[k])
EOF

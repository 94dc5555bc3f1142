#!/usr/bin/env bash
# A/B of the fused Loki step (loki_fused.cu) against the separate stages, on
# the GPU machine, one binary: `--fused off|mha|per-head` of `bench
# attention` (one layer's step) and `bench decode` (whole decode steps),
# interleaved in rounds. Written for session 19's open question: does
# LOKI_CUDA_FUSED_PER_HEAD (grouped query heads, each with its own
# selection, fused) beat the stages, so that it can become the default?
#   bash dev/cuda/fused-ab.sh LOKI_BIN OUT_DIR [ROUNDS]
# Writes OUT_DIR/attn.jsonl and OUT_DIR/decode.jsonl (one JSON object a run,
# the "fused" / "cuda_fused" key names the mode) and a summary on stdout.
set -euo pipefail
loki=${1:?usage: fused-ab.sh LOKI_BIN OUT_DIR [ROUNDS]}
out=${2:?usage: fused-ab.sh LOKI_BIN OUT_DIR [ROUNDS]}
rounds=${3:-2}
mkdir -p "$out"
for r in $(seq 1 "$rounds"); do
  # one layer: MHA (mha vs off) and 8 KV heads per-head (per-head vs off)
  for mode in off mha; do
    "$loki" bench attention --device cuda --heads 32 --kv-heads 32 --S 16384,32768 --B 1,16 \
      --kfdf 0.125:0.25 --methods loki -r 30 --fused "$mode" >> "$out/attn.jsonl"
  done
  for mode in off per-head; do
    "$loki" bench attention --device cuda --heads 32 --kv-heads 8 --gqa none --S 16384,32768 --B 1,4,16 \
      --kfdf 0.125:0.25 --methods loki -r 30 --fused "$mode" >> "$out/attn.jsonl"
  done
  # whole steps at 32k: Llama-3-8B (8 KV heads, per-head selections), one sequence
  for mode in off per-head; do
    "$loki" bench decode --device cuda --random-weights llama3-8b --dtype f16 -p 512 -n 64 -d 32768 -r 1 \
      --attn loki --kf 0.125 --df 0.25 --dense-prompt --fused "$mode" >> "$out/decode.jsonl"
  done
done
python3 - "$out" <<'EOF'
import json, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(list)
for line in open(f"{out}/attn.jsonl"):
    try: j = json.loads(line)
    except ValueError: continue
    if j.get("method") != "loki": continue
    key = (j.get("kv_heads"), j.get("gqa"), j.get("B"), j.get("S"), j.get("fused"))
    rows[key].append((j.get("us"), j.get("n_split")))
print("attention, one layer (us; n_split 0 = the fused kernel ran)")
for k in sorted(rows, key=str): print(" ", k, rows[k])
print("decode (tokens/s)")
for line in open(f"{out}/decode.jsonl"):
    try: j = json.loads(line)
    except ValueError: continue
    print(" ", j.get("model"), j.get("cuda_fused"), j.get("decode_tokens_per_s"), j.get("split_ms_per_step"))
EOF

#!/usr/bin/env bash
# A/B of the fused Loki step (loki_fused.cu) against the separate stages, on
# the GPU machine, one binary: `--fused off|mha|per-head|all` of `bench
# attention` (one layer's step) and `bench decode` (whole decode steps),
# interleaved in rounds. Written for session 19's open questions: do the
# grouped per-head rows (per-head) and the summed shared selection (all)
# beat the stages, so that they can become the default (attn.cu's
# LK_FUSED_DEFAULT)?
#   bash dev/cuda/fused-ab.sh LOKI_BIN OUT_DIR [ROUNDS] [B16]
# ROUNDS (default 2) of the one-layer rows and the one-sequence decodes; B16
# = 1 adds one round of 16 sequences at 32k with 8 KV heads (the issue's
# B = 16 target shape; ~1 minute a run for its prompts).
# Writes OUT_DIR/attn.jsonl and OUT_DIR/decode.jsonl (one JSON object a run,
# the "fused" / "cuda_fused" key names the mode) and a summary on stdout.
set -euo pipefail
loki=${1:?usage: fused-ab.sh LOKI_BIN OUT_DIR [ROUNDS] [B16]}
out=${2:?usage: fused-ab.sh LOKI_BIN OUT_DIR [ROUNDS] [B16]}
rounds=${3:-2}
b16=${4:-0}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$out"
# a run that fails is reported and the rest go on
attn() {
  "$loki" bench attention --device cuda --heads 32 --kfdf 0.125:0.25 --methods loki -r 30 "$@" >> "$out/attn.jsonl" ||
    echo "fused-ab: failed: bench attention $*" >&2
}
dec() {
  "$loki" bench decode --device cuda --dtype f16 -p 512 -n 64 -d 32768 -r 1 --attn loki --kf 0.125 --df 0.25 \
    --dense-prompt "$@" >> "$out/decode.jsonl" || echo "fused-ab: failed: bench decode $*" >&2
}
for r in $(seq 1 "$rounds"); do
  for mode in off mha; do attn --kv-heads 32 --S 16384,32768 --B 1,16 --fused "$mode"; done
  for mode in off per-head; do attn --kv-heads 8 --gqa none --S 16384,32768 --B 1,4,16 --fused "$mode"; done
  for mode in off all; do attn --kv-heads 8 --gqa shared --S 16384,32768 --B 1,4,16 --fused "$mode"; done
  # the launch rule itself: B = 16 at 32k is two waves of clusters of 8, which the rule leaves to the stages
  for c in 4 8 16; do attn --kv-heads 8 --gqa shared --S 32768 --B 16 --fused all --fused-blocks "$c"; done
  for c in 8 16; do attn --kv-heads 32 --S 65536 --B 1 --fused mha --fused-blocks "$c"; done
  # whole steps at 32k, one sequence: Llama-2-7B (MHA), Llama-3-8B per-head and shared
  for mode in off mha; do dec --random-weights llama2-7b --fused "$mode"; done
  for mode in off per-head; do dec --random-weights llama3-8b --fused "$mode"; done
  for mode in off all; do dec --random-weights llama3-8b --gqa-shared --fused "$mode"; done
done
if [ "$b16" = 1 ]; then
  for mode in off all; do dec --random-weights "$here/bench/shapes/llama2-7b-kv8.json" -b 16 --gqa-shared --fused "$mode"; done
fi
python3 - "$out" <<'EOF'
import json, sys, collections
out = sys.argv[1]
rows = collections.defaultdict(list)
for line in open(f"{out}/attn.jsonl"):
    try: j = json.loads(line)
    except ValueError: continue
    if j.get("method") != "loki": continue
    key = (j.get("kv_heads"), j.get("gqa"), j.get("B"), j.get("S"), j.get("fused"), j.get("fused_blocks_forced", 0))
    rows[key].append((j.get("us"), j.get("n_split"), j.get("fused_phase_us")))
print("attention, one layer: (kv heads, gqa, B, S, fused, blocks forced) -> (us, n_split; 0 = the fused kernel ran,")
print("  its phases' mean us over blocks: score, select, attend, merge)")
for k in sorted(rows, key=str): print(" ", k, rows[k])
print("decode: model, attn, batch, fused -> tokens/s, split ms")
for line in open(f"{out}/decode.jsonl"):
    try: j = json.loads(line)
    except ValueError: continue
    print(" ", j.get("model"), j.get("attn"), j.get("batch"), j.get("cuda_fused"), j.get("decode_tokens_per_s"),
          j.get("split_ms_per_step"))
EOF

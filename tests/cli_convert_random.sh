#!/usr/bin/env bash
# `loki convert --random-weights SHAPE` from the command line, on a small Llama
# shape written as a config.json into a temporary folder (no ../shared needed):
# 1. every --type converts, `loki bench decode -m` runs on the file (dense and
#    --attn loki without --pca: the file's loki.random_weights.* keys give it
#    the identity bases of --random-weights), and it reports the parameter
#    count of `bench decode --random-weights` of the same shape;
# 2. gguf-py (the `gguf` package, or the wheel of scripts/get-gguf-py.sh; skipped
#    when it does not import) reads the file: architecture llama, llama.cpp's
#    tensor names, types and shapes, the SentencePiece vocabulary with scores
#    and token types, llama.* keys;
# 3. bad input, each a clear message, exit status 2 (usage) or 1, and no file
#    left in the output folder: unknown shape, unknown --type, a width the
#    K-quant blocks do not divide, a directory and --random-weights together,
#    no -o, an output folder that does not exist.
set -u
LOKI=$1
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
CFG=$T/config.json
cat >"$CFG" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 768,
 "num_attention_heads": 8, "num_key_value_heads": 4, "num_hidden_layers": 2, "vocab_size": 320,
 "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "head_dim": 64}
EOF
py_gguf_ok=0
if command -v python3 >/dev/null && python3 "$HERE/quant_ref.py" --probe >/dev/null 2>&1; then py_gguf_ok=1
else echo "note: gguf-py does not import (scripts/get-gguf-py.sh); the gguf-py checks skip"; fi

# ------------------------------------------------------------ 1, 2. every type
for t in f32 f16 bf16 q8_0 q4_0 q4_k q6_k; do
  F=$T/r-$t.gguf
  if ! "$LOKI" convert --random-weights "$CFG" -o "$F" --type "$t" --seed 7 2>"$T/err"; then
    bad "convert --random-weights --type $t: $(cat "$T/err")"; continue
  fi
  grep -q "wrote $F ($t)" "$T/err" && ok || bad "--type $t said: $(cat "$T/err")"
  for attn in dense loki; do
    extra=(); [ $attn = loki ] && extra=(--kf 0.25 --df 0.25)
    if out=$("$LOKI" bench decode -m "$F" --device cpu -t 2 -p 8 -n 4 -d 16 -r 1 --attn $attn "${extra[@]}" 2>"$T/err") \
       && ref=$("$LOKI" bench decode --random-weights "$CFG" --dtype $t --device cpu -t 2 -p 8 -n 4 -r 1 2>/dev/null) \
       && python3 -c '
import json, sys
d, r = json.loads(sys.argv[1]), json.loads(sys.argv[2])
assert d["format"] == "gguf" and d["decode_tokens_per_s"] > 0 and d["prefill_tokens_per_s"] > 0, d
assert d["attn"].split()[0] == sys.argv[3], d["attn"]
assert d["n_params"] == r["n_params"], (d["n_params"], r["n_params"])
assert d["decode_weight_bytes_per_token"] == r["decode_weight_bytes_per_token"]
' "$out" "$ref" $attn; then ok
    else bad "bench decode -m ($t, $attn): $out $(cat "$T/err")"; fi
  done
  if [ $py_gguf_ok = 1 ]; then
    if python3 - "$F" "$t" "$HERE" <<'EOF' 2>"$T/err"; then ok; else bad "gguf-py on --type $t: $(tail -5 "$T/err")"; fi
import sys
sys.path.insert(0, sys.argv[3])
from quant_ref import import_gguf
gguf = import_gguf()
path, t = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(path)
def val(key):
    f = r.fields[key]
    return f.contents() if hasattr(f, "contents") else f.parts[f.data[0]]
assert str(val("general.architecture")) == "llama"
for k, want in [("llama.embedding_length", 256), ("llama.block_count", 2), ("llama.feed_forward_length", 768),
                ("llama.attention.head_count", 8), ("llama.attention.head_count_kv", 4),
                ("llama.context_length", 2048), ("llama.rope.dimension_count", 64)]:
    assert int(val(k)) == want, (k, val(k))
assert str(val("tokenizer.ggml.model")) == "llama"
toks = val("tokenizer.ggml.tokens")
assert len(toks) == 320 and toks[:3] == ["<unk>", "<s>", "</s>"] and toks[13] == "<0x0A>", toks[:14]
assert len(set(toks)) == 320
assert len(val("tokenizer.ggml.scores")) == 320 and len(val("tokenizer.ggml.token_type")) == 320
qt = gguf.GGMLQuantizationType[t.upper()]
ts = {x.name: x for x in r.tensors}
names = {"token_embd.weight", "output.weight", "output_norm.weight"}
for l in range(2):
    names |= {f"blk.{l}.{n}.weight" for n in ["attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v",
                                             "attn_output", "ffn_gate", "ffn_up", "ffn_down"]}
assert set(ts) == names, set(ts) ^ names
shapes = {"token_embd.weight": [256, 320], "output.weight": [256, 320], "blk.0.attn_q.weight": [256, 512],
          "blk.0.attn_k.weight": [256, 256], "blk.0.attn_output.weight": [512, 256],
          "blk.1.ffn_down.weight": [768, 256], "blk.1.ffn_up.weight": [256, 768], "output_norm.weight": [256]}
for n, s in shapes.items():
    assert [int(x) for x in ts[n].shape] == s, (n, ts[n].shape)
for n, x in ts.items():
    want = gguf.GGMLQuantizationType.F32 if n.endswith("norm.weight") else qt
    assert x.tensor_type == want, (n, x.tensor_type)
EOF
  fi
  rm -f "$F"
done

# ------------------------------------------------------------ 3. bad input
mkdir -p "$T/o"
expect_fail() {  # NAME CODE STDERR-REGEX -- ARGS...
  local name=$1 code=$2 pat=$3; shift 4
  "$LOKI" "$@" >"$T/out" 2>"$T/err"; local rc=$?
  local left; left=$(ls -A "$T/o")
  if [ $rc -eq "$code" ] && grep -Eq -- "$pat" "$T/err" && [ -z "$left" ]; then ok
  else bad "$name: exit $rc (want $code), stderr '$(cat "$T/err")', left in the output folder: '$left'"; fi
  rm -rf "${T:?}/o/"*
}
expect_fail shape 2 "unknown model shape 'llama9-1b'" -- convert --random-weights llama9-1b -o "$T/o/x.gguf"
expect_fail type 2 "unknown --type 'q5_k'" -- convert --random-weights "$CFG" -o "$T/o/x.gguf" --type q5_k
sed 's/"num_key_value_heads": 4/"num_key_value_heads": 2/' "$CFG" >"$T/kv2.json"
expect_fail width 2 "multiples of 256 for q4_k" -- convert --random-weights "$T/kv2.json" -o "$T/o/x.gguf" --type q4_k
expect_fail both 2 "not both" -- convert "$T" --random-weights "$CFG" -o "$T/o/x.gguf"
expect_fail no-output 2 "no output file" -- convert --random-weights "$CFG"
expect_fail out-folder 1 "$T/o/sub/x.gguf: cannot create" -- convert --random-weights "$CFG" -o "$T/o/sub/x.gguf"
expect_fail seed 2 "--seed" -- convert --random-weights "$CFG" -o "$T/o/x.gguf" --seed -3
left=$(find "$T" -name '*.tmp*')
[ -z "$left" ] && ok || bad "temporary files left: $left"

echo "cli_convert_random: $pass passed, $fail failed"
[ $fail -eq 0 ]

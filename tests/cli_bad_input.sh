#!/usr/bin/env bash
# Bad input through the CLI: each case must exit non-zero (1 or 2, never a
# crash/signal), print an error that names the file or argument and the
# problem, and print nothing to stdout.
set -u
LOKI=$1; SHARED=$2
Q8=$SHARED/models/fixture-15m-gguf/fixture-15m-q8_0.gguf
HF=$SHARED/models/fixture-15m
[ -f "$Q8" ] || { echo "SKIP: $Q8 absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0

# expect <name> <stderr-regex...> -- <command...>
expect() {
  local name=$1; shift
  local pats=()
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done; shift
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  local ok=1
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then ok=0; echo "FAIL $name: exit code $rc"; fi
  if [ -s "$T/out" ]; then ok=0; echo "FAIL $name: wrote to stdout: $(head -c 200 "$T/out")"; fi
  for p in "${pats[@]}"; do
    grep -Eq -- "$p" "$T/err" || { ok=0; echo "FAIL $name: stderr lacks /$p/: $(cat "$T/err")"; }
  done
  if [ $ok -eq 1 ]; then pass=$((pass+1)); else fail=$((fail+1)); fi
}

size=$(stat -c %s "$Q8")
head -c 1000 "$Q8" > "$T/trunc.gguf"
head -c $((size - 4096)) "$Q8" > "$T/oob.gguf"
{ printf 'GGUX'; tail -c +5 "$Q8"; } > "$T/magic.gguf"
perl -0777 -pe 's/blk\.3\.attn_q\.weight/blk.3.attn_X.weight/' "$Q8" > "$T/missing.gguf"
perl -0777 -pe 's/(general\.architecture\x08\x00\x00\x00\x05\x00{7})llama/${1}llamb/' "$Q8" > "$T/arch.gguf"
perl -0777 -pe 's/(llama\.feed_forward_length\x04\x00\x00\x00)\x00\x04\x00\x00/${1}\xe0\x03\x00\x00/' "$Q8" > "$T/shape.gguf"
cmp -s "$Q8" "$T/missing.gguf" && echo "note: missing-tensor patch did not apply"
cmp -s "$Q8" "$T/arch.gguf" && echo "note: architecture patch did not apply"
cmp -s "$Q8" "$T/shape.gguf" && echo "note: shape patch did not apply"

expect no-such-file "nope\.gguf" "(No such file|cannot open|not found)" -- "$LOKI" run -m "$T/nope.gguf" -p hi -n 1
expect truncated "trunc\.gguf" "truncated" -- "$LOKI" run -m "$T/trunc.gguf" -p hi -n 1
expect out-of-bounds "oob\.gguf" "out of bounds" -- "$LOKI" run -m "$T/oob.gguf" -p hi -n 1
expect bad-magic "magic\.gguf" "(magic|not a GGUF)" -- "$LOKI" run -m "$T/magic.gguf" -p hi -n 1
expect missing-tensor "missing\.gguf" "blk\.3\.attn_q\.weight" -- "$LOKI" run -m "$T/missing.gguf" -p hi -n 1
expect unknown-arch "arch\.gguf" "llamb" -- "$LOKI" run -m "$T/arch.gguf" -p hi -n 1
expect bad-shape "shape\.gguf" "(shape|ffn)" -- "$LOKI" run -m "$T/shape.gguf" -p hi -n 1
expect bad-utf8 "UTF-8" -- "$LOKI" run -m "$Q8" -p $'abc\xff\xfe' -n 1
expect too-long "context" -- "$LOKI" run -m "$Q8" -c 8 -p "one two three four five six seven eight nine ten" -n 1
expect unknown-option "--bogus" -- "$LOKI" run -m "$Q8" -p hi --bogus
expect bad-number "-n" "abc" -- "$LOKI" run -m "$Q8" -p hi -n abc
expect missing-value "--temp" -- "$LOKI" run -m "$Q8" -p hi --temp
expect unknown-command "frobnicate" -- "$LOKI" frobnicate
expect no-prompt "-p" -- "$LOKI" run -m "$Q8"
expect bad-top-p "top-p" -- "$LOKI" run -m "$Q8" -p hi --top-p 0
expect tokenize-bad-model "nope" -- "$LOKI" tokenize -m "$T/nope" -p hi
expect ppl-no-file "nope\.txt" -- "$LOKI" perplexity -m "$Q8" -f "$T/nope.txt"
expect ppl-bad-window "-c" -- "$LOKI" perplexity -m "$Q8" -f "$T/trunc.gguf" -c 1
expect bad-cache-type-k "-ctk/--cache-type-k" "f32, f16, bf16, q8_0" "q4" -- "$LOKI" run -m "$Q8" -p hi -n 1 -ctk q4
expect bad-cache-type-v "-ctv/--cache-type-v" "f32, f16, bf16, q8_0" "f8" -- "$LOKI" perplexity -m "$Q8" -f "$T/trunc.gguf" -ctv f8
expect bench-cache-type "-ctk/--cache-type-k" "bogus" -- "$LOKI" bench attention -ctk bogus
expect bad-device "--device" "cpu or cuda" "gpu" -- "$LOKI" run -m "$Q8" -p hi -n 1 --device gpu
# --device cuda where this machine cannot run it (no CUDA in the build, or no
# GPU): a clear refusal; on a GPU machine the run works, so it is not checked
if ! nvidia-smi -L >/dev/null 2>&1; then
  expect device-cuda-no-gpu "(CUDA|GPU|driver)" -- "$LOKI" run -m "$Q8" -p hi -n 1 --device cuda
fi
expect kv-too-big "KV cache" "GiB" -- "$LOKI" bench attention --S 16000000 -r 1
expect run-kv-too-big "KV cache" "GiB" "ctx-size" -- "$LOKI" run -m "$Q8" -p hi -n 1 -c 2000000000
if [ -d "$HF" ]; then
  mkdir -p "$T/hf"; cp "$HF"/*.json "$T/hf/"; head -c 5000 "$HF/model.safetensors" > "$T/hf/model.safetensors"
  expect hf-truncated "model\.safetensors" -- "$LOKI" run -m "$T/hf" -p hi -n 1
  mkdir -p "$T/hf2"; cp "$HF"/*.json "$T/hf2/"; ln -s "$HF/model.safetensors" "$T/hf2/"
  echo '{"model_type": "llama", "hidden_size": 384' > "$T/hf2/config.json"
  expect hf-bad-json "config\.json" -- "$LOKI" run -m "$T/hf2" -p hi -n 1
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

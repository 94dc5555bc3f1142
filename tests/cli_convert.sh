#!/usr/bin/env bash
# `loki convert` from the command line, on ../shared's fixture (skips without it).
# 1. Round trip of every --type: the converted file runs; for f32/f16/bf16 the
#    greedy text equals the Hugging Face directory's (test_convert.c checks
#    logits of every type against stated tolerances).
# 2. What travels with the model: a chat_template in tokenizer_config.json
#    reaches the GGUF (`loki run --chat` recognises it); Llama-3 RoPE scaling
#    becomes rope_freqs.weight and gives the same greedy text as the directory
#    (needs python3 to edit config.json).
# 3. Bad input, each a clear message, a non-zero exit and no file left in the
#    output folder (no partial output, no temporary): an unsupported
#    architecture (named), a GGUF instead of a directory, a missing directory,
#    an unknown --type, no -o, an output folder that does not exist, and a
#    weight that is NaN (found while writing the last tensor: the temporary
#    file is removed).
set -u
LOKI=$1
SHARED=${2:-}
FIX=$SHARED/models/fixture-15m
[ -n "$SHARED" ] && [ -f "$FIX/config.json" ] || { echo "SKIP: no ../shared/models/fixture-15m"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
P="Once upon a time, in a small village"
run() { "$LOKI" run -m "$1" -p "$P" -n 32 --temp 0 -t 2 2>"$T/run.err"; }

# ------------------------------------------------------------ 1. round trip
run "$FIX" >"$T/ref.txt" || bad "run on the directory: $(cat "$T/run.err")"
for t in f32 f16 bf16 q8_0 q4_0 q4_k q6_k; do
  if ! "$LOKI" convert "$FIX" -o "$T/out-$t.gguf" --type $t -t 2 2>"$T/err"; then
    bad "convert --type $t: $(cat "$T/err")"; continue
  fi
  grep -q "wrote $T/out-$t.gguf ($t)" "$T/err" && ok || bad "convert --type $t said: $(cat "$T/err")"
  if ! run "$T/out-$t.gguf" >"$T/$t.txt"; then bad "run on --type $t: $(cat "$T/run.err")"; continue; fi
  case $t in
    f32|f16|bf16) cmp -s "$T/ref.txt" "$T/$t.txt" && ok \
                    || bad "--type $t greedy text differs: '$(cat "$T/$t.txt")' vs '$(cat "$T/ref.txt")'" ;;
    *) [ "$(wc -c <"$T/$t.txt")" -gt ${#P} ] && ok || bad "--type $t generated nothing" ;;
  esac
  rm -f "$T/out-$t.gguf"
done
left=$(find "$T" -name '*.tmp*')
[ -z "$left" ] && ok || bad "temporary files left: $left"

# a directory of symlinks to the fixture's files, with config.json copied (editable)
mkhf() {
  mkdir -p "$1"
  for f in model.safetensors tokenizer.json tokenizer_config.json generation_config.json; do
    [ -e "$FIX/$f" ] && ln -s "$(cd "$FIX" && pwd)/$f" "$1/$f"
  done
  cp "$FIX/config.json" "$1/config.json"
}

# ------------------------------------------------------------ 2. template, RoPE scaling
mkhf "$T/chat"
rm "$T/chat/tokenizer_config.json"
printf '{"chat_template": "{%% for message in messages %%}{{'"'"'<|im_start|>'"'"' + message['"'"'role'"'"'] + '"'"'\\\\n'"'"' + message['"'"'content'"'"'] + '"'"'<|im_end|>\\\\n'"'"'}}{%% endfor %%}"}\n' \
  >"$T/chat/tokenizer_config.json"
if "$LOKI" convert "$T/chat" -o "$T/chat.gguf" --type q8_0 -t 2 2>"$T/err" \
   && "$LOKI" run -m "$T/chat.gguf" --chat -p "Hi" -n 4 --temp 0 -t 2 >/dev/null 2>"$T/err2" \
   && grep -q "family chatml" "$T/err2"; then ok
else bad "chat template through convert: $(cat "$T/err" "$T/err2" 2>/dev/null)"; fi

if command -v python3 >/dev/null; then
  mkhf "$T/rope"
  python3 - "$T/rope/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["rope_scaling"] = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 2.0, "original_max_position_embeddings": 32}
c.pop("rope_parameters", None)
json.dump(c, open(p, "w"))
EOF
  run "$T/rope" >"$T/rope-ref.txt" 2>/dev/null
  if "$LOKI" convert "$T/rope" -o "$T/rope.gguf" --type f32 -t 2 2>"$T/err" && run "$T/rope.gguf" >"$T/rope.txt" \
     && cmp -s "$T/rope-ref.txt" "$T/rope.txt" && ! cmp -s "$T/rope.txt" "$T/ref.txt"; then ok
  else bad "llama3 rope scaling: '$(cat "$T/rope.txt" 2>/dev/null)' vs directory '$(cat "$T/rope-ref.txt")' $(cat "$T/err")"; fi
else
  echo "note: no python3; the RoPE scaling case did not run"
fi

# ------------------------------------------------------------ 3. bad input
# expect_fail NAME CODE STDERR-REGEX -- ARGS...: exit CODE, the message, nothing in $T/o
mkdir -p "$T/o"
expect_fail() {
  local name=$1 code=$2 pat=$3; shift 4
  "$LOKI" "$@" >"$T/out" 2>"$T/err"; local rc=$?
  local left; left=$(ls -A "$T/o")
  if [ $rc -eq "$code" ] && grep -Eq -- "$pat" "$T/err" && [ -z "$left" ]; then ok
  else bad "$name: exit $rc (want $code), stderr '$(cat "$T/err")', left in the output folder: '$left'"; fi
  rm -rf "${T:?}/o/"*
}
mkhf "$T/gpt2"
sed -i 's/"model_type": *"llama"/"model_type": "gpt2"/' "$T/gpt2/config.json"
grep -q '"gpt2"' "$T/gpt2/config.json" || bad "could not edit config.json for the gpt2 case"
expect_fail arch 1 "unsupported model type 'gpt2'" -- convert "$T/gpt2" -o "$T/o/x.gguf" --type f16
expect_fail gguf-input 2 "not a Hugging Face directory" -- convert "$SHARED/models/fixture-15m-gguf/fixture-15m-q8_0.gguf" -o "$T/o/x.gguf"
expect_fail missing-dir 1 "$T/nowhere" -- convert "$T/nowhere" -o "$T/o/x.gguf"
expect_fail bad-type 2 "unknown --type 'q5_k'" -- convert "$FIX" -o "$T/o/x.gguf" --type q5_k
expect_fail no-output 2 "no output file" -- convert "$FIX" --type f16
expect_fail no-dir-arg 2 "give the Hugging Face directory" -- convert -o "$T/o/x.gguf"
expect_fail out-folder 1 "$T/o/sub/x.gguf: cannot create" -- convert "$FIX" -o "$T/o/sub/x.gguf" --type f16
if command -v python3 >/dev/null; then
  mkhf "$T/nan"
  rm "$T/nan/model.safetensors"
  python3 - "$FIX/model.safetensors" "$T/nan/model.safetensors" <<'EOF'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
data = bytearray(open(src, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
hdr = json.loads(data[8:8 + n])
t = hdr["model.norm.weight"]
assert t["dtype"] == "BF16", t
off = 8 + n + t["data_offsets"][0]
data[off + 10:off + 12] = b"\xc0\x7f"  # bf16 NaN in the final norm (written last)
open(dst, "wb").write(data)
EOF
  expect_fail nan 1 "output_norm|model.norm.weight.*non-finite" -- convert "$T/nan" -o "$T/o/x.gguf" --type q8_0 -t 2
fi

echo "cli_convert: $pass passed, $fail failed"
[ $fail -eq 0 ]

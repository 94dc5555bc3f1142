#!/usr/bin/env bash
# stories260K greedy output equals llama2.c run.c's, byte for byte. With
# an f32 KV cache, as run.c keeps: the default 16-bit cache (bf16 in builds
# without F16C) rounds every key and value, which changed a token of the
# 512-step run in a portable build (2026-12-05).
# run.c's -n counts positions including the BOS-less prompt tokens, so
# loki's -n (new tokens) = steps - (prompt tokens without BOS).
set -u
LOKI=$1; SHARED=$2
M=$SHARED/models/stories260K
[ -f "$M/stories260K.bin" ] || { echo "SKIP: $M absent"; exit 77; }
fail=0; pass=0
check() { # prompt steps expected-file
  local n_prompt
  n_prompt=$("$LOKI" tokenize -m "$M/stories260K.bin" --tokenizer "$M/tok512.bin" --no-bos -p "$1" | wc -w)
  local n=$(( $2 - n_prompt ))
  if "$LOKI" run -m "$M/stories260K.bin" --tokenizer "$M/tok512.bin" -p "$1" -n "$n" --temp 0 -t 2 -ctk f32 -ctv f32 2>/dev/null \
      | cmp -s - "$3"; then pass=$((pass+1)); else echo "FAIL: '$1' differs from $3"; fail=$((fail+1)); fi
}
check "Once upon a time" 200 "$M/greedy-once-upon-a-time-n200.txt"
check "Lily and Tom went to the park" 512 "$M/greedy-lily-and-tom-n512.txt"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# loki run on the GPU (label gpu; skips without one): the context samples on
# the device and only the chosen token comes back each step (session 22).
#  - greedy: fixture-15m's first 24 tokens after the prompt equal the CPU's
#    (bf16 cache on both sides; test_cuda_forward measured the GPU's logits
#    within 0.14% of the CPU's and 48 greedy tokens equal to transformers');
#  - seeded sampling twice gives the same text (the device's generator), and
#    another seed another text;
#  - -n 0 prints the prompt and nothing else.
set -u
LOKI=$1; SHARED=$2
M=$SHARED/models/fixture-15m
[ -f "$M/config.json" ] || { echo "SKIP: $M absent"; exit 77; }
P="Once upon a time, there was a little girl"
probe=$("$LOKI" run -m "$M" -p "$P" -n 1 --temp 0 --device cuda 2>&1 >/dev/null) || {
  if grep -qiE "cuda|gpu" <<< "$probe"; then echo "SKIP: no usable GPU: $probe" | head -1; exit 77; fi
  echo "FAIL: loki run --device cuda: $probe"; exit 1
}
fail=0; pass=0
ok() { pass=$((pass+1)); }
bad() { echo "FAIL: $*"; fail=$((fail+1)); }
gpu() { "$LOKI" run -m "$M" -p "$P" --device cuda "$@" 2>/dev/null; }
cpu=$("$LOKI" run -m "$M" -p "$P" -n 24 --temp 0 --device cpu -t 2 -ctk bf16 -ctv bf16 2>/dev/null)
g=$(gpu -n 24 --temp 0)
[ -n "$g" ] && [ "$g" = "$cpu" ] && ok || bad "greedy: GPU '$g' against CPU '$cpu'"
a=$(gpu -n 48 --temp 0.8 --seed 7); b=$(gpu -n 48 --temp 0.8 --seed 7); c=$(gpu -n 48 --temp 0.8 --seed 8)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "seed 7 twice: '$a' / '$b'"
[ "$a" != "$c" ] && ok || bad "seeds 7 and 8 gave the same text: '$a'"
z=$(gpu -n 0)
[ "$z" = "$P" ] && ok || bad "-n 0 printed '$z'"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

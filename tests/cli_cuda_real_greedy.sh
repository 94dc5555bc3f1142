#!/usr/bin/env bash
# The real models of scripts/get-models.sh decode the same greedy tokens on
# the GPU as on the CPU (issue 9): per cached model and prompt, `loki run
# --temp 0 -n 32 --ignore-eos` with --device cpu and with --device cuda must
# print the same text. Both sides get what makes the two computations the
# same up to float summation order: the GPU cache's type (bf16) on the CPU,
# and the prompt one token per pass (-b 1), so the prompt goes through the
# matrix-vector kernels that quantize x as the CPU does (the GPU's prompt
# GEMMs round activations to bf16 instead). Labelled gpu; skips (77) without
# a GPU or a CUDA build, or when no model is cached (LOKI_MODEL_CACHE, else
# ~/.cache/loki/models).
set -u
LOKI=$1
cache=${LOKI_MODEL_CACHE:-$HOME/.cache/loki/models}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
models=()
for f in SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf; do
  [ -f "$cache/$f" ] && models+=("$cache/$f")
done
[ ${#models[@]} -gt 0 ] || { echo "SKIP: no real model in $cache (bash scripts/get-models.sh)"; exit 77; }
run() { "$LOKI" run -m "$1" -p "$2" -n 32 --temp 0 --ignore-eos -b 1 -ctk bf16 -ctv bf16 --device "$3" >"$4" 2>"$4.err"; }
if ! run "${models[0]}" "Hello" cuda "$T/probe"; then
  if grep -Eqi "cuda|gpu" "$T/probe.err"; then echo "SKIP: $(head -1 "$T/probe.err")"; exit 77; fi
  echo "FAIL: --device cuda failed: $(cat "$T/probe.err")"; exit 1
fi
pass=0; fail=0
prompts=("The capital of France is" "def fibonacci(n):" "Once upon a time, in a small village,")
for m in "${models[@]}"; do
  for i in "${!prompts[@]}"; do
    p=${prompts[$i]}
    if ! run "$m" "$p" cpu "$T/cpu$i" || ! run "$m" "$p" cuda "$T/gpu$i"; then
      fail=$((fail+1)); echo "FAIL $(basename "$m") '$p': a run failed"; cat "$T/cpu$i.err" "$T/gpu$i.err" | tail -5
    elif cmp -s "$T/cpu$i" "$T/gpu$i"; then
      pass=$((pass+1)); echo "ok $(basename "$m") '$p': $(tr '\n' ' ' < "$T/gpu$i" | head -c 160)"
    else
      fail=$((fail+1)); echo "FAIL $(basename "$m") '$p': CPU and GPU differ"
      echo "  cpu: $(tr '\n' ' ' < "$T/cpu$i" | head -c 300)"; echo "  gpu: $(tr '\n' ' ' < "$T/gpu$i" | head -c 300)"
    fi
  done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

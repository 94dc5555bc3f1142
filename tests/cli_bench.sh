#!/usr/bin/env bash
# `loki bench decode` smoke test: a random-weight model from a config.json and
# a real model both produce one JSON object with positive speeds.
set -u
LOKI=$1; SHARED=$2
CFG=$SHARED/models/fixture-15m/config.json
[ -f "$CFG" ] || { echo "SKIP: $CFG absent"; exit 77; }
pass=0; fail=0
check() { # name, command...
  local name=$1; shift
  local out; out=$("$@" 2>/dev/null); local rc=$?
  if [ $rc -eq 0 ] && echo "$out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["bench"] == "decode" and d["prefill_tokens_per_s"] > 0 and d["decode_tokens_per_s"] > 0
assert d["decode_weight_bytes_per_token"] > 0 and d["peak_rss_bytes"] > 0
'; then pass=$((pass+1)); else echo "FAIL $name: rc=$rc out=$out"; fail=$((fail+1)); fi
}
check random-config "$LOKI" bench decode --random-weights "$CFG" --dtype bf16 -t 2 -p 16 -n 4 -r 1
check real-model "$LOKI" bench decode -m "$SHARED/models/fixture-15m" -t 2 -p 16 -n 4 -r 1
# decode at depth: 100 tokens cached first; the cache is sized for them
out=$("$LOKI" bench decode -m "$SHARED/models/fixture-15m" -t 2 -p 8 -n 4 -d 100 -r 1 2>/dev/null)
if echo "$out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["n_depth"] == 100 and d["n_ctx"] >= 104 and d["decode_tokens_per_s"] > 0
'; then pass=$((pass+1)); else echo "FAIL depth: $out"; fail=$((fail+1)); fi
"$LOKI" bench decode -m "$SHARED/models/fixture-15m" -d -1 >/dev/null 2>&1; rc=$?
if [ $rc -eq 2 ]; then pass=$((pass+1)); else echo "FAIL negative depth rc=$rc"; fail=$((fail+1)); fi
"$LOKI" bench decode --random-weights nosuch -p 1 -n 1 >/dev/null 2>&1; rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 128 ]; then pass=$((pass+1)); else echo "FAIL unknown shape rc=$rc"; fail=$((fail+1)); fi
# Loki attention on random weights (identity bases when no --pca is given),
# reported in the JSON; on the CPU here (-b 1, --device cpu)
out=$("$LOKI" bench decode --random-weights "$CFG" --dtype q8_0 --device cpu -t 2 -p 8 -n 4 -d 64 -r 1 --attn loki \
      --kf 0.25 --df 0.25 2>/dev/null)
if echo "$out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["attn"].startswith("loki kf=0.25") and d["device"] == "cpu" and d["batch"] == 1 and d["decode_tokens_per_s"] > 0
'; then pass=$((pass+1)); else echo "FAIL loki attn: $out"; fail=$((fail+1)); fi
# several sequences need the GPU: a clear refusal on the CPU
err=$("$LOKI" bench decode --random-weights "$CFG" --device cpu -p 0 -n 2 -b 2 -r 1 2>&1 >/dev/null); rc=$?
if [ $rc -ne 0 ] && [ $rc -lt 128 ] && echo "$err" | grep -q -- "--device cuda"; then pass=$((pass+1));
else echo "FAIL -b 2 on the CPU: rc=$rc $err"; fail=$((fail+1)); fi
"$LOKI" bench decode --random-weights "$CFG" -b 0 >/dev/null 2>&1; rc=$?
if [ $rc -eq 2 ]; then pass=$((pass+1)); else echo "FAIL -b 0 rc=$rc"; fail=$((fail+1)); fi
# --fused (which CUDA Loki steps run as one kernel): a bad value is refused
# with exit 2 and a message naming the option, before any model or GPU; a
# good one is reported in the JSON as given (the CPU run ignores it)
for cmd in "bench decode --random-weights $CFG" "bench attention --device cuda"; do
  err=$("$LOKI" $cmd --fused sometimes 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && echo "$err" | grep -q -- "--fused"; then pass=$((pass+1));
  else echo "FAIL $cmd --fused sometimes: rc=$rc $err"; fail=$((fail+1)); fi
done
err=$("$LOKI" bench attention --device cuda --fused-blocks 17 2>&1 >/dev/null); rc=$?
if [ $rc -eq 2 ] && echo "$err" | grep -q -- "--fused-blocks"; then pass=$((pass+1));
else echo "FAIL --fused-blocks 17: rc=$rc $err"; fail=$((fail+1)); fi
out=$("$LOKI" bench decode --random-weights "$CFG" --dtype bf16 --device cpu -t 2 -p 8 -n 2 -r 1 --fused per-head 2>/dev/null)
if echo "$out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["cuda_fused"] == "per-head" and d["decode_tokens_per_s"] > 0
'; then pass=$((pass+1)); else echo "FAIL --fused per-head in the JSON: $out"; fail=$((fail+1)); fi
# --weight-prefetch MIB (CUDA: weights asked into L2 before each product
# waits): out of 0..64 is refused with exit 2 naming the option; the JSON
# reports what ran (0 on the CPU, which has no such prefetch)
for v in -1 65 x; do
  err=$("$LOKI" bench decode --random-weights "$CFG" --weight-prefetch $v 2>&1 >/dev/null); rc=$?
  if [ $rc -eq 2 ] && echo "$err" | grep -q -- "--weight-prefetch"; then pass=$((pass+1));
  else echo "FAIL --weight-prefetch $v: rc=$rc $err"; fail=$((fail+1)); fi
done
out=$("$LOKI" bench decode --random-weights "$CFG" --dtype bf16 --device cpu -t 2 -p 8 -n 2 -r 1 --weight-prefetch 8 2>/dev/null)
if echo "$out" | python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
assert d["weight_prefetch_mib"] == 0 and d["device"] == "cpu" and d["decode_tokens_per_s"] > 0
'; then pass=$((pass+1)); else echo "FAIL --weight-prefetch 8 on the CPU in the JSON: $out"; fail=$((fail+1)); fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

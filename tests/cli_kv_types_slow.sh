#!/usr/bin/env bash
# KV cache types on fixture-15m (issue 11): perplexity of WikiText-2 test
# (2 windows of 2048 tokens, prefill) with dense attention and with loki
# (kf .25, df .25, a PCA calibrated on 2 windows of 1024 of WikiText-2
# valid) for each cache type against the f32 cache: the 16-bit types within
# 0.1 %, q8_0 within 0.5 %. Prints the table (docs/RESULTS.md, "KV cache types").
#   bash tests/cli_kv_types_slow.sh LOKI SHARED
set -u
LOKI=$1; SHARED=$2
HF=$SHARED/models/fixture-15m
TEXT=$SHARED/data/wikitext2-test.raw
CAL=$SHARED/data/wikitext2-valid.tokens
[ -d "$HF" ] && [ -f "$TEXT" ] && [ -f "$CAL" ] || { echo "SKIP: fixture-15m or WikiText-2 absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
PCA=$T/fixture.pca.gguf
"$LOKI" calibrate -m "$HF" -f "$CAL" -c 1024 --chunks 2 -t 2 -o "$PCA" >/dev/null 2>"$T/err" || bad "calibrate: $(cat "$T/err")"
ppl() { # type args... -> perplexity
  "$LOKI" perplexity -m "$HF" -f "$TEXT" -c 2048 --chunks 2 -t 2 --json --mode prefill -ctk "$1" -ctv "$1" "${@:2}" 2>"$T/err" |
    python3 -c "import json,sys; print(json.load(sys.stdin)['ppl'])"
}
echo "| method | cache | PPL | vs f32 |"
echo "|---|---|---|---|"
for m in "dense|--attn dense" "loki kf=.25 df=.25|--attn loki --pca $PCA --kf 0.25 --df 0.25"; do
  label=${m%%|*}; args=${m#*|}
  ref=$(ppl f32 $args) || { bad "$label f32: $(cat "$T/err")"; continue; }
  echo "| $label | f32 | $ref | |"
  for t in f16 bf16 q8_0; do
    v=$(ppl $t $args) || { bad "$label $t: $(cat "$T/err")"; continue; }
    tol=$([ $t = q8_0 ] && echo 0.005 || echo 0.001)
    rel=$(python3 -c "import sys; print(f'{(float(sys.argv[1]) / float(sys.argv[2]) - 1) * 100:+.3f} %')" "$v" "$ref")
    echo "| $label | $t | $v | $rel |"
    python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) / float(sys.argv[2]) - 1) <= float(sys.argv[3]) else 1)" \
      "$v" "$ref" "$tol" && ok || bad "$label $t: ppl $v vs f32 $ref (tolerance $tol)"
  done
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

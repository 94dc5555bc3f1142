#!/usr/bin/env bash
# Attention methods end to end through the CLI on fixture-15m (windows of
# 384 tokens, a PCA calibrated on 2 windows of 256): kf = 1 equals dense in
# both perplexity modes for loki, exact-topk and h2o; sparse settings differ
# from dense and report KL / top-1 / Jaccard / bytes in range; `loki run` and
# `loki bench attention` with sparse methods; then bad input: each case exits
# non-zero (never a signal), with a message naming the option or file.
set -u
LOKI=$1; SHARED=$2
HF=$SHARED/models/fixture-15m
TEXT=$SHARED/data/wikitext2-test.raw
CAL=$SHARED/data/wikitext2-valid.tokens
OTHER=$SHARED/models/stories260K/stories260K.bin
[ -d "$HF" ] && [ -f "$TEXT" ] && [ -f "$CAL" ] || { echo "SKIP: fixture-15m or WikiText-2 absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }

PCA=$T/fixture.pca.gguf
"$LOKI" calibrate -m "$HF" -f "$CAL" -c 256 --chunks 2 -t 2 -o "$PCA" >/dev/null 2>"$T/err" || bad "calibrate: $(cat "$T/err")"

ppl() { # mode args... -> prints the JSON object (f32 cache: kf=1 equals dense to 1e-5)
  "$LOKI" perplexity -m "$HF" -f "$TEXT" -c 384 --chunks 1 -t 2 --json -ctk f32 -ctv f32 --mode "$@" 2>"$T/err"
}
# field FILE KEY -> value
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }
close() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); sys.exit(0 if abs(a-b) <= 1e-5*abs(b) else 1)" "$1" "$2"; }

for mode in prefill decode; do
  ppl $mode --attn dense >"$T/dense.json" || bad "dense $mode: $(cat "$T/err")"
  dense=$(field "$T/dense.json" ppl)
  for m in "loki --pca $PCA --df 0.25" "loki --pca $PCA --basis pre --d 5" "exact-topk" "h2o"; do
    ppl $mode --attn $m --kf 1 >"$T/one.json" || bad "$m kf=1 $mode: $(cat "$T/err")"
    v=$(field "$T/one.json" ppl)
    close "$v" "$dense" && ok || bad "$m kf=1 $mode: ppl $v, dense $dense"
  done
  # a real selection: differs from dense, comparison statistics in range
  ppl $mode --attn loki --pca "$PCA" --kf 0.25 --df 0.25 --compare dense --jaccard >"$T/loki.json" \
    || bad "loki $mode: $(cat "$T/err")"
  python3 - "$T/loki.json" "$dense" "$mode" <<'EOF' && ok || bad "loki kf=.25 $mode: $(cat "$T/loki.json")"
import json, sys
d = json.load(open(sys.argv[1])); dense = float(sys.argv[2])
assert d["ppl"] != dense and d["ppl"] > 0 and d["tokens"] == 383
assert 0 < d["kl"] < 5 and 0 < d["top1"] < 1
assert 0 < d["jaccard"] < 1 and len(d["jaccard_layer"]) == 8
if sys.argv[3] == "decode": assert 0.3 < d["bytes_frac"] < 1, d["bytes_frac"]
else: assert "bytes_frac" not in d
EOF
done
# every option beyond the paper runs and gives a finite perplexity
for extra in "--k-min 32" "--dense-below 100" "--sinks 4 --recent 16" "--gqa-shared" "--gqa-max" "--dvar 80" \
             "--evict-kf 0.5"; do
  ppl decode --attn loki --pca "$PCA" --kf 0.25 $extra >"$T/x.json" && python3 -c \
    "import json,sys,math; p=json.load(open(sys.argv[1]))['ppl']; sys.exit(0 if math.isfinite(p) and p > 1 else 1)" \
    "$T/x.json" && ok || bad "loki $extra: $(cat "$T/x.json" "$T/err")"
done
ppl decode --attn pcaattn --pca "$PCA" --df 0.5 >"$T/x.json" && ok || bad "pcaattn: $(cat "$T/err")"

# generation with a sparse method
out=$("$LOKI" run -m "$HF" -p "Once upon a time" -n 24 --temp 0 -t 2 --attn loki --pca "$PCA" --kf 0.5 2>"$T/err")
[ $? -eq 0 ] && [ ${#out} -gt 20 ] && ok || bad "run --attn loki: $out $(cat "$T/err")"

# the attention benchmark, every method, GQA
"$LOKI" bench attention --S 512,1024 --heads 4 --kv-heads 2 --head-dim 64 -r 2 -t 2 -ctk f32 -ctv f32 \
  --methods dense,exact-topk,loki,pcaattn,h2o --gqa-shared >"$T/b.json" 2>"$T/err" && python3 - "$T/b.json" <<'EOF' \
  && ok || bad "bench attention: $(cat "$T/b.json" "$T/err")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["bench"] == "attention" and len(d["results"]) == 10
for r in d["results"]:
    assert r["ms"] > 0 and r["bytes"] > 0 and r["S"] in (512, 1024)
dense = {r["S"]: r["bytes"] for r in d["results"] if r["method"] == "dense"}
assert dense[1024] == 2 * 1024 * 64 * 2 * 4  # K and V (f32) of 2 KV heads
loki = {r["S"]: r["bytes"] for r in d["results"] if r["method"] == "loki"}
assert loki[1024] < 0.5 * dense[1024]
EOF

# ------------------------------------------------------------ bad input
expect_fail() { # what pattern cmd...
  local what=$1 pat=$2; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qi -- "$pat" "$T/err"; then ok
  else bad "$what: rc $rc, stderr: $(head -c 300 "$T/err")"; fi
}
P=("$LOKI" perplexity -m "$HF" -f "$TEXT" -c 384 --chunks 1 -t 2)
expect_fail "kf 0" "--kf" "${P[@]}" --attn exact-topk --kf 0
expect_fail "kf 1.5" "--kf" "${P[@]}" --attn loki --pca "$PCA" --kf 1.5
expect_fail "df 0" "--df" "${P[@]}" --attn loki --pca "$PCA" --df 0
expect_fail "df 2" "--df" "${P[@]}" --attn loki --pca "$PCA" --df 2
expect_fail "d > D" "--d" "${P[@]}" --attn loki --pca "$PCA" --d 65
expect_fail "d < 0" "--d" "${P[@]}" --attn loki --pca "$PCA" --d -3
expect_fail "dvar 150" "--dvar" "${P[@]}" --attn loki --pca "$PCA" --dvar 150
expect_fail "unknown method" "--attn" "${P[@]}" --attn sparse
expect_fail "basis" "--basis" "${P[@]}" --attn loki --pca "$PCA" --basis middle
expect_fail "loki without pca" "--pca" "${P[@]}" --attn loki
expect_fail "missing pca" "nope.gguf" "${P[@]}" --attn loki --pca "$T/nope.gguf"
head -c 3000 /dev/urandom >"$T/junk.gguf"
expect_fail "corrupt pca" "junk.gguf" "${P[@]}" --attn loki --pca "$T/junk.gguf"
head -c 100000 "$PCA" >"$T/short.gguf"
expect_fail "truncated pca" "short.gguf" "${P[@]}" --attn loki --pca "$T/short.gguf"
if [ -f "$OTHER" ]; then
  expect_fail "pca of a model of another shape" "calibrated on" "$LOKI" perplexity -m "$OTHER" \
    --tokenizer "${OTHER%/*}/tok512.bin" -f "$TEXT" -c 128 --chunks 1 --attn loki --pca "$PCA"
fi
Q8=$SHARED/models/fixture-15m-gguf/fixture-15m-q8_0.gguf
if [ -f "$Q8" ]; then  # same shape, other weights (and q/k rows permuted by llama.cpp)
  expect_fail "pca of another model" "another model" "$LOKI" perplexity -m "$Q8" -f "$TEXT" -c 128 --chunks 1 \
    --attn loki --pca "$PCA"
fi
expect_fail "mode" "--mode" "${P[@]}" --mode sideways
expect_fail "compare" "--compare" "${P[@]}" --attn exact-topk --compare h2o
expect_fail "jaccard dense" "--jaccard" "${P[@]}" --jaccard
expect_fail "evict below kf" "--evict-kf" "${P[@]}" --attn exact-topk --kf 0.5 --evict-kf 0.25
expect_fail "evict with h2o" "--evict-kf" "${P[@]}" --attn h2o --kf 0.25 --evict-kf 0.5
expect_fail "k-min" "--k-min" "${P[@]}" --attn exact-topk --k-min -1
expect_fail "run kf" "--kf" "$LOKI" run -m "$HF" -p hi -n 2 --attn h2o --kf 7
expect_fail "bench S" "--S" "$LOKI" bench attention --S 12,x
expect_fail "bench method" "--methods" "$LOKI" bench attention --methods dense,nope

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

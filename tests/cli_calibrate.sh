#!/usr/bin/env bash
# `loki calibrate` and `loki analyze` end to end on fixture-15m (2 windows of
# 256 tokens, a few seconds): the PCA file, the text/csv/json reports (JSON
# structure checked with python3), the SVG figure; then bad input: each case
# exits non-zero (never a signal), names the argument or file on stderr,
# prints nothing to stdout and leaves no output file behind.
set -u
LOKI=$1; SHARED=$2
HF=$SHARED/models/fixture-15m
TEXT=$SHARED/data/wikitext2-valid.tokens
Q8=$SHARED/models/fixture-15m-gguf/fixture-15m-q8_0.gguf
[ -d "$HF" ] && [ -f "$TEXT" ] || { echo "SKIP: $HF or $TEXT absent"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }

# ------------------------------------------------------------ good path
PCA=$T/fixture.pca.gguf
"$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks 2 -t 2 -o "$PCA" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && [ -s "$PCA" ] && grep -q "512 tokens" "$T/out" && grep -q "Rank@90" "$T/out"; then ok
else bad "calibrate: rc $rc, out: $(cat "$T/out"), err: $(tail -c 500 "$T/err")"; fi
[ -z "$(ls "$T" | grep tmp)" ] && ok || bad "temporary files left: $(ls "$T")"

"$LOKI" analyze "$PCA" >"$T/text" 2>"$T/err"; rc=$?
rows=$(grep -cE '^ +[0-7] ' "$T/text")
[ $rc -eq 0 ] && [ "$rows" -eq 8 ] && grep -q "^ mean" "$T/text" && grep -q "std" "$T/text" && ok \
  || bad "analyze text: rc $rc, $rows layer rows: $(cat "$T/text" "$T/err")"

"$LOKI" analyze "$PCA" --format csv >"$T/csv" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && [ "$(head -1 "$T/csv")" = "basis,layer,head,variance,rank,loki" ] && [ "$(wc -l <"$T/csv")" -eq 33 ] \
  && [ "$(grep -c '^pre,' "$T/csv")" -eq 16 ] && [ "$(grep -c '^post,' "$T/csv")" -eq 16 ] \
  && [ "$(grep -c ',1$' "$T/csv")" -eq 32 ] && ok \
  || bad "analyze csv: rc $rc: $(head -5 "$T/csv") $(cat "$T/err")"

check_json() { # file variance
  python3 - "$1" "$2" <<'EOF'
import json, math, sys
d = json.load(open(sys.argv[1]))
v = float(sys.argv[2])
assert set(d) == {"variance", "loki_layers", "pre", "post"}, d.keys()
assert d["variance"] == v, d["variance"]
assert d["loki_layers"] == list(range(8)), d["loki_layers"]  # no sliding-window layers: all
for b in ("pre", "post"):
    o = d[b]
    assert set(o) == {"rank", "layer_mean", "mean", "std", "loki_mean", "loki_std"}, o.keys()
    assert o["loki_mean"] == o["mean"] and o["loki_std"] == o["std"], o
    r = o["rank"]
    assert len(r) == 8 and all(len(row) == 2 for row in r), r
    assert all(isinstance(x, int) and 1 <= x <= 64 for row in r for x in row), r
    lm = [sum(row) / 2 for row in r]
    assert all(abs(a - b) < 1e-9 for a, b in zip(lm, o["layer_mean"])), (lm, o["layer_mean"])
    m = sum(lm) / 8
    s = math.sqrt(sum((x - m) ** 2 for x in lm) / 8)
    assert abs(o["mean"] - m) < 1e-9 and abs(o["std"] - s) < 1e-9, (o["mean"], m, o["std"], s)
EOF
}
"$LOKI" analyze "$PCA" --format json >"$T/j90" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && check_json "$T/j90" 90 && ok || bad "analyze json: rc $rc: $(cat "$T/j90" "$T/err")"
"$LOKI" analyze "$PCA" --format json --variance 50 >"$T/j50" 2>"$T/err"; rc=$?
[ $rc -eq 0 ] && check_json "$T/j50" 50 && python3 - "$T/j50" "$T/j90" <<'EOF' && ok || bad "analyze --variance 50: rc $rc"
import json, sys
a, b = (json.load(open(f)) for f in sys.argv[1:3])
for k in ("pre", "post"):  # Rank@50 <= Rank@90 everywhere
    assert all(x <= y for ra, rb in zip(a[k]["rank"], b[k]["rank"]) for x, y in zip(ra, rb))
EOF

"$LOKI" analyze "$PCA" --svg "$T/fig.svg" >"$T/out" 2>"$T/err"; rc=$?
if [ $rc -eq 0 ] && [ -s "$T/fig.svg" ] && head -c 200 "$T/fig.svg" | grep -qE '^(<svg|<\?xml)' \
   && python3 -c "import sys, xml.dom.minidom as m; m.parse(sys.argv[1])" "$T/fig.svg"; then ok
else bad "analyze --svg: rc $rc: $(cat "$T/err")"; fi

# ------------------------------------------------------------ bad input
# expect <name> <stderr-regex...> -- <command...>
expect() {
  local name=$1; shift
  local pats=()
  while [ "$1" != "--" ]; do pats+=("$1"); shift; done; shift
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  local good=1
  if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then good=0; echo "FAIL $name: exit code $rc"; fi
  if [ -s "$T/out" ]; then good=0; echo "FAIL $name: wrote to stdout: $(head -c 200 "$T/out")"; fi
  for p in "${pats[@]}"; do
    grep -Eq -- "$p" "$T/err" || { good=0; echo "FAIL $name: stderr lacks /$p/: $(cat "$T/err")"; }
  done
  if [ $good -eq 1 ]; then pass=$((pass+1)); else fail=$((fail+1)); fi
}
OUT=$T/new.pca.gguf
expect no-output "-o" -- "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks 1
expect no-text "-f" -- "$LOKI" calibrate -m "$HF" -c 256 --chunks 1 -o "$OUT"
expect no-model "-m" -- "$LOKI" calibrate -f "$TEXT" -c 256 --chunks 1 -o "$OUT"
expect window-1 "-c" -- "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 1 -o "$OUT"
expect chunks-negative "--chunks" -- "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks -1 -o "$OUT"
expect chunks-word "--chunks" "abc" -- "$LOKI" calibrate -m "$HF" -f "$TEXT" --chunks abc -o "$OUT"
expect missing-dir "-o" "nodir" "does not exist" -- "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks 1 -o "$T/nodir/x.pca.gguf"
expect output-is-dir "-o" "directory" -- "$LOKI" calibrate -m "$HF" -f "$TEXT" -c 256 --chunks 1 -o "$T"
expect missing-text "nope\.txt" -- "$LOKI" calibrate -m "$HF" -f "$T/nope.txt" -c 256 -o "$OUT"
expect missing-model "nomodel" -- "$LOKI" calibrate -m "$T/nomodel" -f "$TEXT" -c 256 -o "$OUT"
[ ! -e "$OUT" ] && [ ! -e "$T/nodir" ] && ok || bad "a failed calibrate left $OUT or $T/nodir"
echo "not a gguf" > "$T/text.gguf"
expect analyze-not-gguf "text\.gguf" "GGUF" -- "$LOKI" analyze "$T/text.gguf"
head -c 2000 "$PCA" > "$T/trunc.pca.gguf"
expect analyze-truncated "trunc\.pca\.gguf" -- "$LOKI" analyze "$T/trunc.pca.gguf"
if [ -f "$Q8" ]; then
  expect analyze-model-gguf "fixture-15m-q8_0\.gguf" "not a loki PCA file" -- "$LOKI" analyze "$Q8"
fi
expect analyze-missing "nope\.gguf" -- "$LOKI" analyze "$T/nope.gguf"
expect analyze-no-file "PCA" -- "$LOKI" analyze
expect variance-0 "--variance" -- "$LOKI" analyze "$PCA" --variance 0
expect variance-101 "--variance" -- "$LOKI" analyze "$PCA" --variance 101
expect format-bogus "--format" "bogus" -- "$LOKI" analyze "$PCA" --format bogus
expect svg-missing-dir "--svg" "nodir" -- "$LOKI" analyze "$PCA" --svg "$T/nodir/fig.svg"
[ ! -e "$T/nodir" ] && ok || bad "--svg into a missing directory created something"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

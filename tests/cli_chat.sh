#!/usr/bin/env bash
# `loki run --chat` and the chat template fixture.
# 1. tests/data/chat/expected.json regenerates byte for byte from the template
#    texts with Python's jinja2 (tests/chat_template_ref.py); not run, with a
#    note, when no python3 imports jinja2.
# 2. Bad input (needs ../shared's fixture-15m, which has no chat template):
#    --chat on a model without a template, an unreadable / unrecognised
#    --chat-template-file, --system without --chat, -p and -f together: each a
#    clear message and a non-zero exit, nothing on stdout.
# 3. SmolLM2-135M-Instruct (scripts/get-models.sh; LOKI_MODEL_CACHE, else
#    ~/.cache/loki/models): a one-shot -p and a two-turn stdin chat, greedy;
#    the template is recognised as ChatML, replies are non-empty, stop at the
#    end of turn (<|im_end|> never printed), the second turn feeds only the new
#    text (its prompt is shorter than the first), and -cnv equals --chat.
#    Skips when the model is not downloaded.
# Exit 77 when neither 2 nor 3 could run.
set -u
LOKI=$1
SHARED=${2:-}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0; ran=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }

# ------------------------------------------------------------ 1. fixture
py=""
for c in python3 /usr/bin/python3; do
  if command -v "$c" >/dev/null && "$c" "$ROOT/tests/chat_template_ref.py" --probe >/dev/null 2>&1; then py=$c; break; fi
done
if [ -n "$py" ]; then
  "$py" "$ROOT/tests/chat_template_ref.py" "$T/expected.json" \
    && cmp -s "$T/expected.json" "$ROOT/tests/data/chat/expected.json" && ok \
    || bad "tests/data/chat/expected.json differs from what tests/chat_template_ref.py renders now"
else
  echo "note: no python3 imports jinja2; the fixture regeneration check did not run"
fi

# expect_fail NAME STDERR-REGEX -- ARGS...: non-zero exit, empty stdout, the message
expect_fail() {
  local name=$1 pat=$2; shift 3
  "$LOKI" "$@" </dev/null >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -ne 0 ] && [ ! -s "$T/out" ] && grep -Eq -- "$pat" "$T/err"; then ok
  else bad "$name: exit $rc, stdout '$(head -c 200 "$T/out")', stderr '$(cat "$T/err")'"; fi
}

# ------------------------------------------------------------ 2. bad input
FIX=$SHARED/models/fixture-15m
if [ -n "$SHARED" ] && [ -f "$FIX/config.json" ]; then
  ran=1
  expect_fail no-template "no chat template.*--chat-template-file" -- run -m "$FIX" --chat -p hi -n 4
  expect_fail template-missing "$T/none.jinja" -- run -m "$FIX" --chat --chat-template-file "$T/none.jinja" -p hi
  echo "{{ 'User: ' + messages[0]['content'] }}" >"$T/odd.jinja"
  expect_fail template-unknown "odd.jinja: unrecognised chat template" -- run -m "$FIX" --chat \
    --chat-template-file "$T/odd.jinja" -p hi
  expect_fail system-needs-chat "--system needs --chat" -- run -m "$FIX" --system "x" -p hi
  echo hi >"$T/p.txt"
  expect_fail p-and-f "at most one of -p" -- run -m "$FIX" --chat -p hi -f "$T/p.txt"
  # a template given by file works on a model without one (ChatML on the fixture)
  if "$LOKI" run -m "$FIX" --chat --chat-template-file "$ROOT/tests/data/chat/chatml.jinja" -p "Once" -n 4 \
      --temp 0 -t 2 >"$T/out" 2>"$T/err" && grep -q "family chatml" "$T/err"; then ok
  else bad "fixture with --chat-template-file: $(cat "$T/err")"; fi
else
  echo "note: no ../shared fixture-15m; the bad-input cases did not run"
fi

# ------------------------------------------------------------ 3. SmolLM2
CACHE=${LOKI_MODEL_CACHE:-${HOME:-/nonexistent}/.cache/loki/models}
M=$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$M" ]; then
  ran=1
  "$LOKI" run -m "$M" --chat -p "What is 2+2?" -n 48 --temp 0 -t 2 >"$T/one" 2>"$T/one.err"; rc=$?
  if [ $rc -eq 0 ] && grep -q "family chatml, turns end at <|im_end|>" "$T/one.err" \
     && [ -n "$(tr -d ' \n' <"$T/one")" ] && ! grep -q "im_end\|im_start" "$T/one"; then ok
  else bad "smollm2 one-shot: exit $rc, stdout '$(cat "$T/one")', stderr '$(cat "$T/one.err")'"; fi
  # stopped at the end of turn, not at -n 48
  grep -q "reply of \([0-9]\|[1-3][0-9]\|4[0-7]\) tokens" "$T/one.err" && ok \
    || bad "smollm2 one-shot did not stop at <|im_end|> before 48 tokens: $(grep reply "$T/one.err")"
  "$LOKI" run -m "$M" -cnv -p "What is 2+2?" -n 48 --temp 0 -t 2 >"$T/cnv" 2>/dev/null
  cmp -s "$T/one" "$T/cnv" && ok || bad "-cnv differs from --chat"
  printf 'Hi!\n\nWhat is 2+2?\n' | "$LOKI" run -m "$M" --chat -n 32 --temp 0 -t 2 >"$T/two" 2>"$T/two.err"; rc=$?
  n_prompts=$(grep -c "^loki run: prompt" "$T/two.err")
  p1=$(grep "^loki run: prompt" "$T/two.err" | sed -n 1p | awk '{print $4}')
  p2=$(grep "^loki run: prompt" "$T/two.err" | sed -n 2p | awk '{print $4}')
  if [ $rc -eq 0 ] && [ "$n_prompts" = 2 ] && [ "$(wc -l <"$T/two")" -ge 2 ] && [ -n "$p2" ] && [ "$p2" -lt "$p1" ]; then ok
  else bad "smollm2 two turns: exit $rc, prompts '$p1' '$p2', stdout '$(cat "$T/two")', stderr '$(cat "$T/two.err")'"; fi
  # the second turn of the stdin chat equals a one-shot chat given the same history? (no: the
  # reply is the model's); but the first reply equals the one-shot reply to the same message
  "$LOKI" run -m "$M" --chat -p "Hi!" -n 32 --temp 0 -t 2 >"$T/hi" 2>/dev/null
  [ "$(head -n 1 "$T/two")" = "$(head -n 1 "$T/hi")" ] && ok \
    || bad "first stdin turn '$(head -n 1 "$T/two")' differs from the one-shot reply '$(head -n 1 "$T/hi")'"
else
  echo "note: $M not downloaded (bash scripts/get-models.sh smollm2); the SmolLM2 chat cases did not run"
fi

echo "cli_chat: $pass passed, $fail failed"
[ $fail -eq 0 ] || exit 1
[ $ran -eq 1 ] || { echo "SKIP: neither ../shared's fixture-15m nor SmolLM2 is available"; exit 77; }
exit 0

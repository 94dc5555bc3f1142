#!/usr/bin/env bash
# Dense perplexity of fixture-15m on WikiText-2 test (4096-token windows)
# equals the transformers reference (581.106 over 416,052 tokens) within 0.1%.
set -u
LOKI=$1; SHARED=$2
M=$SHARED/models/fixture-15m; TXT=$SHARED/data/wikitext2-test.raw
REF=$M/reference/dense-perplexity.json
[ -f "$REF" ] && [ -f "$TXT" ] || { echo "SKIP: $REF or $TXT absent"; exit 77; }
out=$("$LOKI" perplexity -m "$M" -f "$TXT" -c 4096 --json 2>/dev/null) || { echo "FAIL: exit $?"; echo "0 passed, 1 failed"; exit 1; }
python3 - "$out" "$REF" <<'PY'
import json, sys
got = json.loads(sys.argv[1]); ref = json.load(open(sys.argv[2]))
want = ref["wikitext2_test_window4096_ppl"]
ok_tok = got["tokens"] == ref["scored_tokens"]
ok_ppl = abs(got["ppl"] - want) <= 1e-3 * want
print(f"ppl {got['ppl']:.4f} (reference {want:.4f}), tokens {got['tokens']} (reference {ref['scored_tokens']})")
print(f"{int(ok_tok) + int(ok_ppl)} passed, {2 - int(ok_tok) - int(ok_ppl)} failed")
sys.exit(0 if ok_tok and ok_ppl else 1)
PY

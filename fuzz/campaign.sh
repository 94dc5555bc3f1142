#!/usr/bin/env bash
# fuzz/campaign.sh [HARNESS ...] - the long campaign of issue 10: each
# harness (default: all, fastest first) runs until 10 million executions or
# one hour, whichever comes first (LOKI_FUZZ_RUNS / LOKI_FUZZ_SECONDS
# override), one after the other, continuing build-fuzz/corpus/. Appends one
# line per harness to build-fuzz/campaign.txt (UTC start, wall seconds and
# fuzz/run.sh's result line) and exits non-zero if any harness failed.
set -uo pipefail
cd "$(dirname "$0")/.."
runs=${LOKI_FUZZ_RUNS:-10000000} secs=${LOKI_FUZZ_SECONDS:-3600}
all=(fuzz_hf_config fuzz_llama2c fuzz_args fuzz_chat fuzz_st_index fuzz_gguf fuzz_safetensors
     fuzz_llama2c_tok fuzz_tokenize fuzz_tokenizer_config fuzz_tokenizer_json fuzz_model)
[ $# -gt 0 ] && all=("$@")
mkdir -p build-fuzz
fail=0
for h in "${all[@]}"; do
  t0=$(date -u +%FT%TZ) s0=$(date +%s)
  out=$(LOKI_FUZZ_ONLY=$h LOKI_FUZZ_RUNS=$runs bash fuzz/run.sh "$secs" 2>&1) || fail=1
  line=$(grep -E "^$h " <<<"$out" || echo "$h: no result: $(tail -3 <<<"$out" | tr '\n' ' ')")
  printf '%s %6ss %s\n' "$t0" "$(( $(date +%s) - s0 ))" "$line" | tee -a build-fuzz/campaign.txt
done
exit $fail

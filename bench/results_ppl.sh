#!/usr/bin/env bash
# Perplexity of every attention method in both evaluation modes, the
# beyond-the-paper options, the Jaccard grid and the retrieval evaluations,
# as reported in docs/RESULTS.md. One JSON object per run is appended to
# OUT/<table>.jsonl, each carrying its label and command line.
#
#   bash bench/results_ppl.sh BUILD_DIR PCA_FILE OUT_DIR [CHUNKS]
#
# ONLY="paper beyond book jaccard" picks tables, MATCH=REGEX labels.
# PCA_FILE: loki calibrate -m ../shared/models/fixture-15m
#           -f ../shared/data/wikitext2-valid.tokens -c 4096 -o PCA_FILE
set -euo pipefail
BIN="$1/loki"; PCA="$2"; OUT="$3"; CHUNKS="${4:-4}"
SHARED="$(cd "$(dirname "$0")/../.." && pwd)/shared"
M="$SHARED/models/fixture-15m"
WIKI="$SHARED/data/wikitext2-test.raw"
BOOK="$SHARED/data/books/sherlock_holmes_adventures.txt"
mkdir -p "$OUT"

run() { # table label text mode chunks args...   (MATCH=regex: only labels that match)
  local table="$1" label="$2" text="$3" mode="$4" chunks="$5"; shift 5
  [[ -n "${MATCH:-}" && ! "$label" =~ $MATCH ]] && return 0
  local cmd=("$BIN" perplexity -m "$M" -f "$text" -c 4096 --chunks "$chunks" --mode "$mode" --pca "$PCA" -t 2 --json "$@")
  local json
  json="$("${cmd[@]}" 2>/dev/null)"
  printf '{"label": "%s", "text": "%s", "cmd": "%s", "result": %s}\n' "$label" "$(basename "$text")" \
    "loki perplexity -c 4096 --chunks $chunks --mode $mode $*" "$json" >> "$OUT/$table.jsonl"
  echo "$table $label $mode: $json" >&2
}

PAPER=(
  "dense|--attn dense"
  "exact-topk kf=.5|--attn exact-topk --kf 0.5"
  "exact-topk kf=.25|--attn exact-topk --kf 0.25"
  "exact-topk kf=.125|--attn exact-topk --kf 0.125"
)
for b in post pre; do
  for kd in "0.5 0.25" "0.25 0.25" "0.125 0.5" "0.125 0.25" "0.25 0.5"; do
    set -- $kd
    PAPER+=("loki $b kf=$1 df=$2|--attn loki --basis $b --kf $1 --df $2")
  done
done
PAPER+=("pcaattn df=.25|--attn pcaattn --df 0.25" "pcaattn df=.5|--attn pcaattn --df 0.5" "h2o kf=.25|--attn h2o --kf 0.25")

BEYOND=(
  "loki kf=.25 df=.25 (base)|--attn loki --kf 0.25 --df 0.25"
  "+ k-min 64|--attn loki --kf 0.25 --df 0.25 --k-min 64"
  "+ dense-below 512|--attn loki --kf 0.25 --df 0.25 --dense-below 512"
  "+ sinks 4, recent 64|--attn loki --kf 0.25 --df 0.25 --sinks 4 --recent 64"
  "+ gqa-shared (sum)|--attn loki --kf 0.25 --df 0.25 --gqa-shared"
  "+ gqa-max|--attn loki --kf 0.25 --df 0.25 --gqa-max"
  "dvar 70%, kf=.25|--attn loki --kf 0.25 --dvar 70"
  "dvar 90%, kf=.25|--attn loki --kf 0.25 --dvar 90"
  "loki over h2o, evict-kf .5|--attn loki --kf 0.25 --df 0.25 --evict-kf 0.5"
  "gqa-max kf=.5|--attn loki --kf 0.5 --df 0.25 --gqa-max"
  "gqa-max kf=.5 + k-min 64 + sinks 4 + recent 64|--attn loki --kf 0.5 --df 0.25 --gqa-max --k-min 64 --sinks 4 --recent 64"
  "k-min 64 + sinks 4 + recent 64|--attn loki --kf 0.25 --df 0.25 --k-min 64 --sinks 4 --recent 64"
  "gqa-max kf=.75|--attn loki --kf 0.75 --df 0.25 --gqa-max"
  "gqa-max kf=.625 + k-min 64 + sinks 4 + recent 64|--attn loki --kf 0.625 --df 0.25 --gqa-max --k-min 64 --sinks 4 --recent 64"
)

only="${ONLY:-paper beyond book jaccard}"
for mode in prefill decode; do
  [[ " $only " == *" paper "* ]] && for e in "${PAPER[@]}"; do run paper "${e%%|*}" "$WIKI" $mode "$CHUNKS" ${e#*|}; done
  [[ " $only " == *" beyond "* ]] && for e in "${BEYOND[@]}"; do run beyond "${e%%|*}" "$WIKI" $mode "$CHUNKS" ${e#*|}; done
  if [[ " $only " == *" book "* ]]; then
    for e in "${PAPER[@]}" "${BEYOND[10]}"; do
      run book "${e%%|*}" "$BOOK" $mode "$CHUNKS" ${e#*|}
    done
  fi
done
if [[ " $only " == *" jaccard "* ]]; then
  for kf in 0.5 0.25 0.125; do
    for df in 0.125 0.25 0.5; do
      run jaccard "loki post kf=$kf df=$df" "$WIKI" prefill 1 --attn loki --kf $kf --df $df --jaccard
    done
  done
fi

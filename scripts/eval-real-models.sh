#!/usr/bin/env bash
# Loki on the real models (issue 8, item 6): calibration, perplexity rows in both
# modes, passkey. Subsampled for a 2-core machine: every run is written with its
# command line to OUT/*.jsonl / OUT/*.txt; see docs/RESULTS.md for what ran.
#
#   bash scripts/eval-real-models.sh BUILD_DIR OUT_DIR PHASE...
#
# PHASE: calibrate | prefill | decode | passkey.  Environment (defaults):
#   MODELS="smol gemma"  CTX=2048  CHUNKS=1 (windows per text)  CAL_CHUNKS=2
#   T=2 (threads)  TEXTS="wiki book"  PREFILL_ROWS=. / DECODE_ROWS=... (label regexes)
#   PK_LENGTHS=1024,2048 PK_DEPTHS=0,0.5,1 PK_TRIALS=2 (passkey)
#   CAL_CHUNKS=0 calibrates on every window of wikitext2-valid.tokens
#   DEVICE=cpu|cuda|auto (--device of every command; unset: the CLI's default, auto)
#   SHARED=../shared (the data folder)  MDIR=~/.cache/loki/models
set -euo pipefail
BIN="$1/loki"; OUT="$2"; shift 2; PHASES=("$@")
SHARED="${SHARED:-$(cd "$(dirname "$0")/../.." && pwd)/shared}"
DEV=(); [ -n "${DEVICE:-}" ] && DEV=(--device "$DEVICE")
MDIR="${MDIR:-$HOME/.cache/loki/models}"
WIKI="$SHARED/data/wikitext2-test.raw"
BOOK="$SHARED/data/books/sherlock_holmes_adventures.txt"
CTX="${CTX:-2048}"; CHUNKS="${CHUNKS:-1}"; CAL_CHUNKS="${CAL_CHUNKS:-2}"; T="${T:-2}"
MODELS="${MODELS:-smol gemma}"
mkdir -p "$OUT"
model() { case "$1" in smol) echo "$MDIR/SmolLM2-135M-Instruct.Q4_1.gguf";; gemma) echo "$MDIR/gemma-3-270m-q4_k_m.gguf";; esac; }

ROWS=(
  "dense|--attn dense"
  "exact-topk kf=.5|--attn exact-topk --kf 0.5"
  "exact-topk kf=.25|--attn exact-topk --kf 0.25"
  "exact-topk kf=.125|--attn exact-topk --kf 0.125"
)
for b in post pre; do
  for kd in "0.5 0.25" "0.25 0.25" "0.125 0.5" "0.125 0.25" "0.25 0.5"; do
    set -- $kd
    ROWS+=("loki $b kf=$1 df=$2|--attn loki --basis $b --kf $1 --df $2")
  done
done
ROWS+=(
  "gqa-max kf=.75|--attn loki --kf 0.75 --df 0.25 --gqa-max"
  "gqa-max kf=.5 + k-min 64 + sinks 4 + recent 64|--attn loki --kf 0.5 --df 0.25 --gqa-max --k-min 64 --sinks 4 --recent 64"
)
PREFILL_ROWS="${PREFILL_ROWS:-.}"
TEXTS="${TEXTS:-wiki book}"; TEXTS="${TEXTS//wiki/$WIKI}"; TEXTS="${TEXTS//book/$BOOK}" # names, then paths
DECODE_ROWS="${DECODE_ROWS:-^(dense|exact-topk kf=.25|loki (post|pre) kf=0.25 df=0.25|gqa-max kf=.5 \+.*)$}"

ppl() { # m text mode label args...
  local m="$1" text="$2" mode="$3" label="$4"; shift 4
  local cmd=(nice -n 19 "$BIN" perplexity -m "$(model "$m")" -f "$text" -c "$CTX" --chunks "$CHUNKS"
             --mode "$mode" --pca "$OUT/$m.pca.gguf" -t "$T" --json "${DEV[@]}" "$@")
  local t0 json; t0=$(date +%s)
  json="$("${cmd[@]}" 2>/dev/null)"
  printf '{"model": "%s", "label": "%s", "text": "%s", "mode": "%s", "secs": %d, "cmd": "loki perplexity -c %s --chunks %s --mode %s %s", "result": %s}\n' \
    "$m" "$label" "$(basename "$text")" "$mode" $(( $(date +%s) - t0 )) "$CTX" "$CHUNKS" "$mode" "${DEV[*]} $*" "$json" >> "$OUT/ppl-$m.jsonl"
  echo "$m $(basename "$text") $mode $label: $json" >&2
}

for phase in "${PHASES[@]}"; do
  for m in $MODELS; do
    case "$phase" in
      calibrate)
        nice -n 19 "$BIN" calibrate -m "$(model "$m")" -f "$SHARED/data/wikitext2-valid.tokens" -c "$CTX" \
          --chunks "$CAL_CHUNKS" -t "$T" "${DEV[@]}" -o "$OUT/$m.pca.gguf" > "$OUT/$m.calibrate.txt"
        "$BIN" analyze "$OUT/$m.pca.gguf" --variance 90 --svg "$OUT/rank90-$m.svg" > "$OUT/$m.analyze.txt" ;;
      prefill)
        for text in $TEXTS; do
          for e in "${ROWS[@]}"; do
            [[ "${e%%|*}" =~ $PREFILL_ROWS ]] || continue
            ppl "$m" "$text" prefill "${e%%|*}" ${e#*|}
          done
        done ;;
      decode)
        for text in $TEXTS; do
          for e in "${ROWS[@]}"; do
            [[ "${e%%|*}" =~ $DECODE_ROWS ]] || continue
            ppl "$m" "$text" decode "${e%%|*}" ${e#*|}
          done
        done ;;
      passkey) # one JSON object per method group (each trial's generated text included)
        pk() { # tag args...
          local tag="$1"; shift
          /usr/bin/time -f "%e s" nice -n 19 "$BIN" eval passkey -m "$(model "$m")" \
            --haystack "$SHARED/data/books/moby_dick.txt" --lengths "${PK_LENGTHS:-1024,2048}" \
            --depths "${PK_DEPTHS:-0,0.5,1}" --trials "${PK_TRIALS:-2}" --seed 1 -t "$T" \
            --pca "$OUT/$m.pca.gguf" --json "${DEV[@]}" "$@" > "$OUT/passkey-$m-$tag.json" 2> "$OUT/passkey-$m-$tag.err"
        }
        pk base --attn dense,exact-topk,loki --kf 0.25 --df 0.25
        pk pre --attn loki --basis pre --kf 0.25 --df 0.25
        pk gqamax --attn loki --kf 0.5 --df 0.25 --gqa-max --k-min 64 --sinks 4 --recent 64 ;;
    esac
  done
done

#!/usr/bin/env bash
# bench/kv_types.sh - one decode step of attention (`loki bench attention`)
# for every KV cache type, dense and loki, in interleaved rounds (type order
# rotated each round) so that a busy machine's drift spreads over all types.
# Prints one line per run: round, type, load average, then the JSON result.
#   bash bench/kv_types.sh [LOKI] [ROUNDS] [S-LIST] [THREADS] [extra bench options...]
# e.g. bash bench/kv_types.sh build/loki 3 16384,65536 2
#      bash bench/kv_types.sh build/loki 3 16384 2 --heads 32 --kv-heads 8 --gqa-shared   # GQA
set -u
LOKI=${1:-build/loki}; ROUNDS=${2:-3}; S=${3:-16384,65536}; T=${4:-2}
shift $(( $# < 4 ? $# : 4 ))
types=(f32 f16 bf16 q8_0)
for r in $(seq 1 "$ROUNDS"); do
  for i in 0 1 2 3; do
    t=${types[$(( (i + r) % 4 ))]}
    load=$(cut -d' ' -f1 /proc/loadavg)
    out=$("$LOKI" bench attention -t "$T" --S "$S" --kf 0.125 --df 0.25 -r 5 -ctk "$t" -ctv "$t" "$@" 2>/dev/null)
    echo "round=$r type=$t load=$load $out" | tr -d '\n'; echo
  done
done

#!/bin/bash
# bench/prefill_ab_rounds.sh BASE NEW [ROUNDS [MODEL...]] > OUT; python3 bench/prefill_ab_table.py OUT
# Interleaved rounds (per round and model: BASE then NEW) of
#   LOKI bench decode -m ~/.cache/loki/models/MODEL -p 512 -n 16 -t 2
# one line per run: round, build, /proc/loadavg before it, the JSON line.
B=$1; N=$2; R=${3:-4}; shift $(( $# < 3 ? $# : 3 ))
MODELS=${*:-SmolLM2-135M-Instruct.Q4_1.gguf gemma-3-270m-q4_k_m.gguf}
D=${LOKI_MODELS:-$HOME/.cache/loki/models}
for r in $(seq 1 "$R"); do
  for m in $MODELS; do
    for b in base new; do
      bin=$N; [ $b = base ] && bin=$B
      load=$(cut -d' ' -f1-3 /proc/loadavg)
      echo "round $r $b load1/5/15 $load $($bin bench decode -m "$D/$m" -p 512 -n 16 -t 2 2>/dev/null | tail -1)"
    done
  done
done

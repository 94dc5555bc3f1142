#!/bin/bash
# bench/kv_avx2_rounds.sh LOKI ROUNDS (> OUT; python3 bench/kv_avx2_table.py OUT): interleaved rounds of: DRAM bw (2 threads), MHA f16 dense+loki, GQA 32/8 shared f16 dense+loki
L=$1; R=${2:-3}
for r in $(seq 1 $R); do
  echo "round=$r bw load=$(cut -d' ' -f1 /proc/loadavg) $(${BW:-dev/cpu/bw_avx2} 2 3 | tail -1)"
  echo "round=$r mha load=$(cut -d' ' -f1 /proc/loadavg) $($L bench attention -t 2 --S 16384,65536 --kf 0.125 --df 0.25 -r 5 -ctk f16 -ctv f16 2>/dev/null | tr -d '\n')"
  echo "round=$r gqa load=$(cut -d' ' -f1 /proc/loadavg) $($L bench attention -t 2 --S 16384,65536 --kf 0.125 --df 0.25 -r 5 -ctk f16 -ctv f16 --heads 32 --kv-heads 8 --gqa-shared 2>/dev/null | tr -d '\n')"
done

#!/bin/bash
# session 22: does an 8-bit K cache move Loki's perplexity on a real model? (q8_0 keys for score AND exact)
set -u
B=${B:-build/loki}; S=${S:-../shared}; O=${O:-/tmp/q8exp}; mkdir -p $O
M=$HOME/.cache/loki/models/SmolLM2-135M-Instruct.Q4_1.gguf
date -u +%T > $O/times.txt
$B calibrate -m $M -f $S/data/wikitext2-valid.tokens -c 2048 --chunks 2 -t 2 -o $O/smol.pca.gguf > $O/cal.txt 2>&1
date -u +"%T cal" >> $O/times.txt
for row in "dense|f16" "dense|q8_0" "loki|f16" "loki|q8_0"; do
  m=${row%|*} t=${row#*|}
  extra=(); [ $m = loki ] && extra=(--attn loki --pca $O/smol.pca.gguf --kf 0.25 --df 0.25)
  $B perplexity -m $M -f $S/data/wikitext2-test.raw -c 2048 --chunks 4 -t 2 --json --mode prefill -ctk $t -ctv f16 "${extra[@]}" >> $O/ppl.jsonl 2>> $O/ppl.err
  date -u +"%T $m $t" >> $O/times.txt
done

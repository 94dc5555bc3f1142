#!/usr/bin/env bash
# On the GPU machine: per-kernel counters of one Loki decode step for the
# shapes that the targets name (ncu; one CSV per shape), and the
# warp stall reasons of the select, attend and fused kernels at some of them
# (shapes with --fused run the fused kernel of loki_fused.cu where it is taken).
#   LOKI=/tmp/lk/bin/loki bash dev/cuda/profile.sh OUT_DIR
set -u
LOKI=${LOKI:-/tmp/lk/bin/loki}
OUT=${1:?usage: profile.sh OUT_DIR}
mkdir -p "$OUT" || exit 1
M=gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum
M=$M,sm__warps_active.avg.pct_of_peak_sustained_active,launch__grid_size,launch__cluster_dim_x
K='regex:sel_|score_kernel|attend_kernel|reduce_kernel|loki_fused_kernel'
i=0
for shape in "--B 16 --S 3072 --kv-heads 32 --kfdf 0.25:0.25" \
             "--B 16 --S 32768 --kv-heads 32 --kfdf 0.125:0.25" \
             "--B 1 --S 131072 --kv-heads 32 --kfdf 0.125:0.25" \
             "--B 16 --S 32768 --kv-heads 8 --gqa shared --kfdf 0.125:0.25" \
             "--B 1 --S 32768 --kv-heads 32 --kfdf 0.125:0.25 --fused mha" \
             "--B 1 --S 32768 --kv-heads 8 --gqa none --kfdf 0.125:0.25 --fused per-head" \
             "--B 1 --S 32768 --kv-heads 8 --gqa shared --kfdf 0.125:0.25 --fused all" \
             "--B 16 --S 32768 --kv-heads 8 --gqa shared --kfdf 0.125:0.25 --fused all --fused-blocks 8"; do
  i=$((i + 1))
  echo "# $shape" > "$OUT/counters-$i.csv"
  # shellcheck disable=SC2086
  ncu --clock-control none --csv --metrics "$M" -k "$K" --launch-count 4 \
      "$LOKI" bench attention --device cuda --fused off $shape --methods loki -r 1 >> "$OUT/counters-$i.csv" 2>/dev/null
done
for shape in "--B 16 --S 32768 --kv-heads 32 --kfdf 0.125:0.25" "--B 1 --S 131072 --kv-heads 32 --kfdf 0.125:0.25" \
             "--B 16 --S 3072 --kv-heads 32 --kfdf 0.25:0.25"; do
  i=$((i + 1))
  echo "# $shape" > "$OUT/stalls-$i.txt"
  # shellcheck disable=SC2086
  ncu --clock-control none --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
      -k 'regex:sel_kernel|attend_kernel' --launch-count 2 \
      "$LOKI" bench attention --device cuda --fused off $shape --methods loki -r 1 >> "$OUT/stalls-$i.txt" 2>/dev/null
done
for shape in "--B 1 --S 32768 --kv-heads 32 --kfdf 0.125:0.25 --fused mha" \
             "--B 1 --S 32768 --kv-heads 8 --gqa shared --kfdf 0.125:0.25 --fused all"; do
  i=$((i + 1))
  echo "# $shape" > "$OUT/stalls-$i.txt"
  # shellcheck disable=SC2086
  ncu --clock-control none --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis \
      --section SourceCounters -k 'regex:loki_fused_kernel' --launch-count 1 \
      "$LOKI" bench attention --device cuda $shape --methods loki -r 1 >> "$OUT/stalls-$i.txt" 2>/dev/null
done
ls -la "$OUT"

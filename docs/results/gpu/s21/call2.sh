#!/bin/bash
# session 21, device call 2: the fused step: base (spill-free attend offsets, 1a218ee+), base-unroll (LK_FUSED_UNROLL=1),
# the pack (distributed merge, warp-parallel block sums) and unroll (the same + LK_FUSED_UNROLL=1) against session 18; test_cuda_attn of both
set -u
O=${OUT:-/tmp/out}; mkdir -p "$O"
mkdir -p /tmp/lk /tmp/bis && tar -C /tmp/lk -xJf .carry/gpu-pack.tar.xz && tar -C /tmp/bis -xJf .carry/bis2.tar.xz
export LD_LIBRARY_PATH=/tmp/lk/lib:/usr/local/cuda/lib64
nvidia-smi --query-gpu=name,driver_version --format=csv > "$O/gpu.txt"
date -u +%T > "$O/times.txt"
A() { b=$1; shift; echo "== $b $*" >> "$O/attn.err"; timeout 60 $b bench attention --device cuda --heads 32 --kfdf 0.125:0.25 --methods loki -r 30 "$@" >> "$O/attn.jsonl" 2>> "$O/attn.err" || echo "FAILED attn $b $*" >> "$O/attn.err"; }
for r in 1 2 3; do for b in /tmp/bis/loki-s18 /tmp/bis/loki-base /tmp/bis/loki-base-unroll /tmp/lk/bin/loki /tmp/bis/loki-unroll; do A $b --kv-heads 32 --S 16384,32768 --B 1,16; done; done
for b in /tmp/lk/bin/loki /tmp/bis/loki-unroll; do A $b --kv-heads 8 --gqa none --S 32768 --B 1,16 --fused per-head; A $b --kv-heads 8 --gqa shared --S 32768 --B 1,16 --fused all; done
date -u +"%T attention done" >> "$O/times.txt"
timeout 200 /tmp/lk/bin/test_cuda_attn > "$O/test_cuda_attn.txt" 2>&1; echo "attn rc=$?" >> "$O/tests.txt"; tail -1 "$O/test_cuda_attn.txt" >> "$O/tests.txt"; date -u +"%T test" >> "$O/times.txt"
timeout 200 /tmp/bis/test_cuda_attn-unroll > "$O/test_cuda_attn-unroll.txt" 2>&1; echo "attn-unroll rc=$?" >> "$O/tests.txt"; tail -1 "$O/test_cuda_attn-unroll.txt" >> "$O/tests.txt"; date -u +"%T test" >> "$O/times.txt"

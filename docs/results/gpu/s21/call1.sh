#!/bin/bash
# session 21, device call 1: bisect of session 19's fused-step regression (one binary per commit), then the gpu tests not run in session 20
set -u
O=${OUT:-/tmp/out}; mkdir -p "$O"
mkdir -p /tmp/lk /tmp/bis && tar -C /tmp/lk -xJf .carry/gpu-pack.tar.xz && tar -C /tmp/bis -xJf .carry/bis.tar.xz
export LD_LIBRARY_PATH=/tmp/lk/lib:/usr/local/cuda/lib64
mkdir -p /work && ln -sfn $PWD/.carry/shared /work/shared
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv > "$O/gpu.txt"
date -u +%T > "$O/times.txt"
A() { b=$1; shift; echo "== $b $*" >> "$O/attn.err"; timeout 60 $b bench attention --device cuda --heads 32 --kv-heads 32 --kfdf 0.125:0.25 --methods loki -r 30 "$@" >> "$O/attn.jsonl" 2>> "$O/attn.err" || echo "FAILED attn $b $*" >> "$O/attn.err"; }
for r in 1 2 3; do for b in /tmp/bis/loki-s18 /tmp/bis/loki-89fa123 /tmp/bis/loki-2a5f746 /tmp/bis/loki-beacbec /tmp/bis/loki-bb7348c /tmp/bis/loki-1ab27b2 /tmp/bis/loki-8e5f6ed /tmp/lk/bin/loki; do A $b --S 32768 --B 1,16; done; done
date -u +"%T attention done" >> "$O/times.txt"
for t in test_cuda_prefill test_cuda_sample test_cuda_matmul; do
  timeout 150 /tmp/lk/bin/$t > "$O/$t.txt" 2>&1; echo "$t rc=$?" >> "$O/tests.txt"; tail -2 "$O/$t.txt" >> "$O/tests.txt"; date -u +"%T $t" >> "$O/times.txt"
done

#!/bin/bash
# session 21, device call 3: gpu tests that need the fixture (forward, calib, batch) on the final fused kernel;
# whole decode steps at 32k (Llama-2-7B f16, Loki and dense) and the fused layer again
set -u
O=${OUT:-/tmp/out}; mkdir -p "$O"
mkdir -p /tmp/lk && tar -C /tmp/lk -xJf .carry/gpu-pack.tar.xz
export LD_LIBRARY_PATH=/tmp/lk/lib:/usr/local/cuda/lib64
mkdir -p /work && ln -sfn $PWD/.carry/shared /work/shared
nvidia-smi --query-gpu=name,driver_version --format=csv > "$O/gpu.txt"
date -u +%T > "$O/times.txt"
/tmp/lk/bin/loki bench attention --device cuda --heads 32 --kv-heads 32 --kfdf 0.125:0.25 --methods loki -r 30 --S 16384,32768 --B 1,16 > "$O/attn.jsonl" 2> "$O/attn.err"
D() { echo "== $*" >> "$O/decode.err"; timeout 120 /tmp/lk/bin/loki bench decode --device cuda -r 1 "$@" >> "$O/decode.jsonl" 2>> "$O/decode.err" || echo "FAILED decode $*" >> "$O/decode.err"; date -u +"%T $*" >> "$O/times.txt"; }
for r in 1 2; do
  D --random-weights llama2-7b --dtype f16 -p 512 -n 64 -d 32768 --dense-prompt --attn loki --kf 0.125 --df 0.25
  D --random-weights llama2-7b --dtype f16 -p 512 -n 64 -d 32768 --dense-prompt
done
for t in test_cuda_forward test_cuda_calib test_cuda_batch; do
  timeout 200 /tmp/lk/bin/$t > "$O/$t.txt" 2>&1; echo "$t rc=$?" >> "$O/tests.txt"; tail -1 "$O/$t.txt" >> "$O/tests.txt"; date -u +"%T $t" >> "$O/times.txt"
done

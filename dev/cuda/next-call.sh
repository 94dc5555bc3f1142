#!/usr/bin/env bash
# The next device session's calls (planned in session 22, which had no GPU;
# dev/cuda/README.md "Next on the GPU"). Carry .carry/gpu-pack-knobs.tar.xz
# (bash dev/cuda/pack-knobs.sh bal=-DLK_FUSED_BAL=1 ws=-DLK_FUSED_WS=1
# "wsbal=-DLK_FUSED_WS=1 -DLK_FUSED_BAL=1") and .carry/shared, then on the
# device, one phase per call (each fits the 600 s limit; output under $OUT):
#   bash dev/cuda/next-call.sh tests   # every gpu test (session 22's new ones too), Gemma 3 graphs
#   bash dev/cuda/next-call.sh ab      # the fused knobs' one-layer A/B, whole decode steps at 32k
#   bash dev/cuda/next-call.sh pf      # the weight prefetch, now for one-row products only: 0 against 4 MiB
set -u
phase=${1:?usage: next-call.sh tests|ab|pf}
O=${OUT:-/tmp/out}
mkdir -p "$O" /tmp/lk /work
[ -x /tmp/lk/bin/loki ] || tar -C /tmp/lk -xJf .carry/gpu-pack-knobs.tar.xz
export LD_LIBRARY_PATH=/tmp/lk/lib:/usr/local/cuda/lib64
ln -sfn "$PWD/.carry/shared" /work/shared # the tests' compiled-in ../shared
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv > "$O/gpu.txt"
stamp() { date -u +"%T $*" >> "$O/times.txt"; }
# decode NAME BIN ARGS...: one bench decode run into decode.jsonl, "bin" added
decode() {
  local b=$1; shift
  echo "== $b $*" >> "$O/decode.err"
  timeout 150 "$b" bench decode --device cuda "$@" 2>> "$O/decode.err" |
    sed "s|^{|{\"bin\":\"$(basename "$b")\",|" >> "$O/decode.jsonl" || echo "FAILED $b $*" >> "$O/decode.err"
  stamp "$(basename "$b") $*"
}
stamp start
case $phase in
  tests)
    timeout 420 /tmp/lk/run-gpu-tests.sh -j1 > "$O/gpu-tests.txt" 2>&1
    echo "run-gpu-tests rc=$?" >> "$O/gpu-tests.txt"
    stamp gpu-tests
    for g in "" --no-graphs "" --no-graphs; do # Gemma 3 270M's shape: graphs now cover its window layers
      decode /tmp/lk/bin/loki --random-weights bench/shapes/gemma3-270m.json --dtype bf16 -p 64 -n 256 -r 3 $g
    done
    ;;
  ab)
    bash dev/cuda/knob-ab.sh "$O" 2 /tmp/lk/bin/loki /tmp/lk/bin/loki-bal /tmp/lk/bin/loki-ws /tmp/lk/bin/loki-wsbal \
      > "$O/knob-ab.txt" 2>&1
    stamp knob-ab
    for v in bal ws wsbal; do
      timeout 60 /tmp/lk/bin/test_cuda_attn-$v > "$O/test_cuda_attn-$v.txt" 2>&1
      echo "test_cuda_attn-$v rc=$? $(tail -1 "$O/test_cuda_attn-$v.txt")" >> "$O/tests.txt"
    done
    for r in 1 2; do
      for b in /tmp/lk/bin/loki /tmp/lk/bin/loki-ws; do
        decode "$b" -r 1 --random-weights llama2-7b --dtype f16 -p 512 -n 64 -d 32768 --dense-prompt --attn loki \
          --kf 0.125 --df 0.25
      done
      decode /tmp/lk/bin/loki -r 1 --random-weights llama2-7b --dtype f16 -p 512 -n 64 -d 32768 --dense-prompt
    done
    ;;
  pf) # the score phase from an int8 copy of k_lo against bf16 (dev/cuda/score_q8.cu, a playground)
    nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/score_q8 dev/cuda/score_q8.cu > "$O/score_q8.txt" 2>&1 &&
      timeout 120 /tmp/score_q8 >> "$O/score_q8.txt" 2>&1
    stamp score_q8
    # session 20: 4 MiB gained 2% at one sequence and lost 0.8% at 16 (the 9-16-row products, which no longer prefetch)
    for r in 1 2; do
      for mib in 0 4; do
        decode /tmp/lk/bin/loki -r 1 --random-weights llama2-7b --dtype bf16 -p 64 -n 128 --weight-prefetch $mib
        decode /tmp/lk/bin/loki -r 1 --random-weights bench/shapes/llama2-7b-kv8.json --dtype f16 -p 64 -n 128 -b 16 \
          --weight-prefetch $mib
      done
    done
    ;;
  *) echo "next-call.sh: phase tests, ab or pf" >&2; exit 2 ;;
esac
stamp end

#!/usr/bin/env bash
# Set up, build, and generate text with the default model
# (../shared/models/fixture-15m) using Loki sparse attention: the model's keys
# are calibrated once (PCA file cached in build/, a few seconds on 4 windows
# of WikiText-2 validation text), then `loki run --attn loki`. Extra
# arguments go to `loki run` instead of the default prompt and options.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target loki-cli
MODEL=${LOKI_MODEL:-../shared/models/fixture-15m}
if [ ! -e "$MODEL" ]; then
  echo "demo: no model at $MODEL." >&2
  echo "demo: point LOKI_MODEL at a GGUF file, a Hugging Face model directory (config.json," >&2
  echo "      model.safetensors, tokenizer.json) or a llama2.c .bin, e.g." >&2
  echo "      LOKI_MODEL=~/models/tinyllama.Q8_0.gguf bash scripts/demo.sh" >&2
  exit 1
fi
if [ $# -gt 0 ]; then exec ./build/loki run -m "$MODEL" "$@"; fi
CALIB=${LOKI_CALIB_TEXT:-../shared/data/wikitext2-valid.tokens}
PCA=build/demo-$(basename "$MODEL").pca.gguf
if [ ! -f "$PCA" ] && [ -f "$CALIB" ]; then
  echo "demo: calibrating the key PCA of $MODEL on $CALIB (4 windows of 1024 tokens)" >&2
  ./build/loki calibrate -m "$MODEL" -f "$CALIB" -c 1024 --chunks 4 -o "$PCA" >&2
fi
if [ -f "$PCA" ]; then
  # k = max(32, kf*S) with 4 sink and 16 recent tokens always kept: the budget
  # policy of docs/ATTENTION.md that keeps short contexts from starving
  echo "demo: generating with Loki attention (kf 0.25, df 0.25, k-min 32, sinks 4, recent 16)" >&2
  exec ./build/loki run -m "$MODEL" -p "Once upon a time" -n 128 --temp 0 --attn loki --pca "$PCA" \
    --kf 0.25 --df 0.25 --k-min 32 --sinks 4 --recent 16
fi
echo "demo: no calibration text at $CALIB (set LOKI_CALIB_TEXT); generating with dense attention" >&2
exec ./build/loki run -m "$MODEL" -p "Once upon a time" -n 64 --temp 0

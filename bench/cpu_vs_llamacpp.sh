#!/usr/bin/env bash
# Side-by-side CPU benchmark of loki and llama.cpp on the same GGUF files:
# interleaved rounds of `loki bench decode` and `llama-bench` (same thread
# count, prompt and generation lengths, one repetition each per round), the
# machine's load (uptime) recorded before each run. Writes one JSON object per
# run to a .jsonl file and prints the table of bench/cpu_vs_llamacpp.py.
# See --help.
set -euo pipefail

prog=cpu_vs_llamacpp
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

usage() {
  cat <<EOF
Usage: bash bench/cpu_vs_llamacpp.sh [OPTIONS] [MODEL.gguf...]

MODEL.gguf (default: SmolLM2-135M-Instruct Q4_1 and Gemma 3 270M Q4_K_M from
scripts/get-models.sh --offline, the fixture's Q8_0 GGUF from ../shared, and
its BF16 GGUF written by 'loki convert' into the cache folder).

  --rounds N     interleaved rounds (default 3)
  -t N           threads (default 2)
  -p N / -n N    prompt / generated tokens (default 512 / 128)
  --loki BIN     loki binary (default: build/loki of this checkout)
  --base BIN     a second loki binary (e.g. main's build) run in the same rounds
                 as "base"
  --llama-bench BIN  llama-bench (default: what bench/get-llamacpp.sh builds)
  --out FILE     JSON lines output (default: bench-cpu-vs-llamacpp-DATE.jsonl)
  --cache DIR    where the BF16 fixture GGUF is written (default ~/.cache/loki/bench)
  -h, --help     this help

Every run is `nice -n 19`. The table: bench/cpu_vs_llamacpp.py FILE.jsonl.
EOF
}
say() { echo "$prog: $*" >&2; }
die() { say "error: $*"; exit 1; }

rounds=3 threads=2 np=512 ng=128
loki=$root/build/loki base="" lbench="" out="" cache=${HOME:-/tmp}/.cache/loki/bench
models=()
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --rounds) rounds=$2; shift ;;
    -t) threads=$2; shift ;;
    -p) np=$2; shift ;;
    -n) ng=$2; shift ;;
    --loki) loki=$2; shift ;;
    --base) base=$2; shift ;;
    --llama-bench) lbench=$2; shift ;;
    --out) out=$2; shift ;;
    --cache) cache=$2; shift ;;
    -*) say "error: unknown option '$1' (see --help)"; exit 2 ;;
    *) models+=("$1") ;;
  esac
  shift
done
for v in "$rounds" "$threads" "$np" "$ng"; do
  [[ $v =~ ^[0-9]+$ ]] || { say "error: --rounds, -t, -p, -n need integers"; exit 2; }
done
[ -x "$loki" ] || die "loki binary $loki not found: build it (cmake --build build) or pass --loki"
[ -z "$base" ] || [ -x "$base" ] || die "--base $base is not an executable"
if [ -z "$lbench" ]; then
  lbench=$(bash "$here/get-llamacpp.sh") || die "no llama-bench: bench/get-llamacpp.sh failed"
fi
[ -x "$lbench" ] || die "llama-bench $lbench not found"

if [ ${#models[@]} -eq 0 ]; then
  while IFS= read -r f; do models+=("$f"); done < <(bash "$root/scripts/get-models.sh" --offline all 2>/dev/null || true)
  q8=$root/../shared/models/fixture-15m-gguf/fixture-15m-q8_0.gguf
  [ -f "$q8" ] && models+=("$(cd "$(dirname "$q8")" && pwd)/$(basename "$q8")")
  hf=$root/../shared/models/fixture-15m
  if [ -f "$hf/config.json" ]; then
    mkdir -p "$cache"
    bf=$cache/fixture-15m-bf16.gguf
    [ -f "$bf" ] || nice -n 19 "$loki" convert "$hf" -o "$bf" --type bf16 >&2 || die "loki convert of $hf failed"
    models+=("$bf")
  fi
  [ ${#models[@]} -gt 0 ] || die "no models: run scripts/get-models.sh or give MODEL.gguf files"
fi
for f in "${models[@]}"; do [ -f "$f" ] || die "model $f not found"; done
[ -n "$out" ] || out=bench-cpu-vs-llamacpp-$(date -u +%Y%m%dT%H%M%SZ).jsonl
: >"$out"

# record TOOL ROUND MODEL LOAD < raw-output: one compact JSON line into $out
record() {
  python3 -c '
import json, sys
tool, rnd, model, load, commit = sys.argv[1:6]
raw = sys.stdin.read()
try:
    res = json.loads(raw[raw.index("{") if tool != "llama.cpp" else raw.index("["):])
except ValueError:
    res = {"error": raw[-500:]}
print(json.dumps({"tool": tool, "round": int(rnd), "model": model, "load": load,
                  "commit": commit, "result": res}))' "$@" >>"$out"
}
load_avg() { cut -d' ' -f1-3 /proc/loadavg; }
commit_of() { git -C "$(dirname "$1")/.." rev-parse --short HEAD 2>/dev/null || echo unknown; }

say "$(date -u +%FT%TZ): ${#models[@]} models, $rounds rounds, -t $threads -p $np -n $ng -> $out"
for r in $(seq 1 "$rounds"); do
  for f in "${models[@]}"; do
    for tool in loki base llama.cpp; do
      case $tool in
        loki) cmd=("$loki" bench decode -m "$f" -t "$threads" -p "$np" -n "$ng" -r 1); bin=$loki ;;
        base) [ -n "$base" ] || continue
              cmd=("$base" bench decode -m "$f" -t "$threads" -p "$np" -n "$ng" -r 1); bin=$base ;;
        llama.cpp) cmd=("$lbench" -m "$f" -t "$threads" -p "$np" -n "$ng" -r 1 -o json); bin=$lbench ;;
      esac
      l=$(load_avg)
      say "round $r $tool $(basename "$f") (load $l)"
      nice -n 19 "${cmd[@]}" 2>/dev/null | record "$tool" "$r" "$f" "$l" "$(commit_of "$bin")" || true
    done
  done
done
python3 "$here/cpu_vs_llamacpp.py" "$out"

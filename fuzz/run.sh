#!/usr/bin/env bash
# fuzz/run.sh [SECONDS] - build the libFuzzer harnesses (fuzz/fuzz_*.c; clang,
# -fsanitize=fuzzer,address,undefined, in build-fuzz/, ignored by git) and run
# each for SECONDS (default 60) on its seed corpus (fuzz/seeds.py) with
# -rss_limit_mb=2048 -malloc_limit_mb=1024. Prints one line per harness:
# executions, coverage (cov/ft from libFuzzer's final stats), crashes.
# Exits non-zero when any harness crashed, leaked, hit a sanitizer report,
# timed out or allocated past the limit; reproducers are kept in
# build-fuzz/artifacts/<harness>/ and the logs in build-fuzz/logs/.
# LOKI_FUZZ_JOBS: build parallelism (default 2). LOKI_FUZZ_ONLY: run only
# the harness of exactly this name or, when no harness has it, those whose
# names contain it. LOKI_FUZZ_RUNS: also stop a harness after this many
# executions (libFuzzer -runs; the campaign of fuzz/campaign.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
root=$PWD
shared=${LOKI_FUZZ_SHARED:-$root/../shared}
bdir=$root/build-fuzz
if ! command -v clang >/dev/null; then
  echo "fuzz/run.sh: clang not found (scripts/setup.sh installs it)" >&2
  exit 2
fi
CC=clang cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Debug -DLOKI_FUZZ=ON -DLOKI_CUDA=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build "$bdir" -j"${LOKI_FUZZ_JOBS:-2}" >/dev/null
# seeds per run (two campaigns may run side by side)
seeds=$bdir/seeds.$$
trap 'rm -rf "$seeds"' EXIT
python3 fuzz/seeds.py "$seeds" "$shared"
export LOKI_FUZZ_SHARED=$shared
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fail=0
only=${LOKI_FUZZ_ONLY:-}
[ -n "$only" ] && [ -x "$bdir/fuzz/$only" ] && only_exact=1 || only_exact=0
runs=()
[ -n "${LOKI_FUZZ_RUNS:-}" ] && runs=(-runs="$LOKI_FUZZ_RUNS")
printf '%-20s %12s %8s %8s %s\n' harness executions cov ft result
for exe in "$bdir"/fuzz/fuzz_*; do
  [ -x "$exe" ] || continue
  name=$(basename "$exe")
  if [ -n "$only" ]; then
    if [ $only_exact = 1 ]; then [ "$name" = "$only" ] || continue
    elif [[ $name != *"$only"* ]]; then continue; fi
  fi
  corpus=$bdir/corpus/$name art=$bdir/artifacts/$name log=$bdir/logs/$name.log
  mkdir -p "$corpus" "$art" "$bdir/logs"
  dict=() maxlen=65536
  case $name in
    fuzz_tokenizer_json) maxlen=1048576 ;;
    fuzz_model) maxlen=2097152 ;;
  esac
  case $name in
    fuzz_gguf|fuzz_model) dict=(-dict=fuzz/gguf.dict) ;;
    fuzz_hf_config|fuzz_safetensors|fuzz_st_index|fuzz_tokenizer_config) dict=(-dict=fuzz/json.dict) ;;
  esac
  rc=0
  "$exe" "$corpus" "$seeds/$name" "${dict[@]}" -max_total_time="$secs" "${runs[@]}" -rss_limit_mb=2048 \
    -malloc_limit_mb=1024 -timeout=10 -max_len=$maxlen -close_fd_mask=3 -print_final_stats=1 \
    -artifact_prefix="$art/" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  if [ $rc -eq 0 ]; then result=ok; else
    result="CRASH (rc $rc): $(grep -m1 -E 'ERROR: |runtime error|ALARM|out-of-memory|malloc\(' "$log" || echo see log) ; artifacts in $art, log $log"
    fail=1
  fi
  printf '%-20s %12s %8s %8s %s\n' "$name" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $fail

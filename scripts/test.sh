#!/usr/bin/env bash
# Set up, build and run the whole test suite: an optimised build for this
# CPU (-march=native), a portable one (baseline x86-64 or the architecture's
# default: the C paths without AVX2 / F16C, and a bf16 KV cache by default,
# as dev/cuda/pack.sh builds for the GPU machine), then an AddressSanitizer +
# UndefinedBehaviorSanitizer build (tests labelled `slow` run only in the
# native build). GPU tests skip without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/get-gguf-py.sh   # gguf-py wheel for test_quant (skips when PyPI is unreachable)
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")
cmake -S . -B build-portable -DCMAKE_BUILD_TYPE=Release -DLOKI_NATIVE=OFF -DLOKI_CUDA=OFF >/dev/null
cmake --build build-portable -j"$jobs"
(cd build-portable && ctest --output-on-failure -j"$jobs" -LE slow)
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DLOKI_SANITIZE=ON -DLOKI_CUDA=OFF >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest --output-on-failure -j"$jobs" -LE slow)

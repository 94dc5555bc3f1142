#!/usr/bin/env bash
# Build loki with CUDA for a generic x86-64 CPU (the GPU machine's CPU may
# lack this one's extensions) and pack the binaries and the shared libraries
# they need into .carry/gpu-pack.tar.xz (git-ignored; about 15 MB, under the
# device tool's 64 MiB), so a GPU machine without the Debian -dev packages
# can run them. There:
#   mkdir -p /tmp/lk && tar -C /tmp/lk -xJf .carry/gpu-pack.tar.xz
#   /tmp/lk/run-gpu-tests.sh                       # the `gpu` tests under CTest
#   LD_LIBRARY_PATH=/tmp/lk/lib:/usr/local/cuda/lib64 /tmp/lk/bin/loki bench attention --device cuda
# (cuBLAS is not packed: hundreds of MB; the GPU machine's toolkit has it)
# With --variants, also the knob binaries not measured yet (dev/cuda/README.md,
# "Waiting for the GPU") into .carry/variants.tar.xz: shu8/ (LK_FUSED_SHU=8
# LK_FUSED_SHMINB=2: loki, test_cuda_attn), pipe/ (LK_MMA_PIPE=1 LK_MMA_U=2)
# and w4/ (LK_MMA_WARPS=4: loki, test_cuda_matmul each).
set -euo pipefail
cd "$(dirname "$0")/../.."
variants=0
[ "${1:-}" = --variants ] && variants=1
cmake -S . -B build-cuda -DCMAKE_BUILD_TYPE=Release -DLOKI_NATIVE=OFF -DLOKI_CUDA=ON >/dev/null
cmake --build build-cuda -j"$(nproc)" > build-cuda/build.log 2>&1 || { grep -E "error" build-cuda/build.log; echo "pack.sh: build failed (build-cuda/build.log)" >&2; exit 1; }
grep -E "warning" build-cuda/build.log | grep -v spill || true
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib"
tests=$(cd build-cuda/tests && ls test_cuda_* 2>/dev/null | grep -v '\.' | tr '\n' ' ' || true)
cp build-cuda/loki "$stage"/bin/
for t in $tests test_context_sampler; do cp "build-cuda/tests/$t" "$stage"/bin/; done
mkdir -p "$stage/tests" && cp tests/cli_cuda_*.sh "$stage/tests/" # shell gpu tests: bash SCRIPT LOKI SHARED
for f in "$stage"/bin/*; do
  ldd "$f" | awk '/=> \// {print $3}' | grep -Ev 'lib(c|m|dl|rt|pthread|stdc\+\+|gcc_s|cublas|cublasLt)\.so' || true
done | sort -u | while read -r lib; do cp -L "$lib" "$stage"/lib/; done
{
  echo '#!/usr/bin/env bash'
  echo '# Run the gpu-labelled tests under CTest from the packed binaries.'
  echo 'set -e; here=$(cd "$(dirname "$0")" && pwd); export LD_LIBRARY_PATH=$here/lib:/usr/local/cuda/lib64'
  echo 'mkdir -p "$here/ctest"; : > "$here/ctest/CTestTestfile.cmake"'
  echo "for t in $tests; do"
  echo '  echo "add_test($t \"$here/bin/$t\")" >> "$here/ctest/CTestTestfile.cmake"'
  echo '  echo "set_tests_properties($t PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 1200)" >> "$here/ctest/CTestTestfile.cmake"'
  echo 'done'
  echo '# tests/CMakeLists.txt: test_context_sampler run with "cuda" is a gpu test of its own'
  echo 'echo "add_test(test_cuda_context_sampler \"$here/bin/test_context_sampler\" cuda)" >> "$here/ctest/CTestTestfile.cmake"'
  echo 'echo "set_tests_properties(test_cuda_context_sampler PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 1200)" >> "$here/ctest/CTestTestfile.cmake"'
  echo 'for s in "$here"/tests/cli_cuda_*.sh; do # the shared data where the tests expect it: /work/shared'
  echo '  n=$(basename "$s" .sh)'
  echo '  echo "add_test($n bash \"$s\" \"$here/bin/loki\" /work/shared)" >> "$here/ctest/CTestTestfile.cmake"'
  echo '  echo "set_tests_properties($n PROPERTIES LABELS gpu SKIP_RETURN_CODE 77 TIMEOUT 1200)" >> "$here/ctest/CTestTestfile.cmake"'
  echo 'done'
  echo 'cd "$here/ctest" && ctest -L gpu --output-on-failure "$@"'
} > "$stage"/run-gpu-tests.sh
chmod +x "$stage"/run-gpu-tests.sh
strip "$stage"/bin/* "$stage"/lib/* 2>/dev/null || true
# xz -9e: about a third of the default level's size, which leaves room in the
# carry for a model beside the pack
mkdir -p .carry && tar -C "$stage" -cf - . | xz -9e -T"$(nproc)" > .carry/gpu-pack.tar.xz && ls -la .carry/gpu-pack.tar.xz
if [ $variants = 1 ]; then
  rm -rf .carry/shu8 .carry/pipe .carry/w4
  bash dev/cuda/variant.sh src/cuda/loki_fused.cu "-DLK_FUSED_SHU=8 -DLK_FUSED_SHMINB=2" .carry/shu8 loki \
    test_cuda_attn >/dev/null
  bash dev/cuda/variant.sh src/cuda/gemv_mma.cu "-DLK_MMA_PIPE=1 -DLK_MMA_U=2" .carry/pipe loki test_cuda_matmul >/dev/null
  bash dev/cuda/variant.sh src/cuda/gemv_mma.cu -DLK_MMA_WARPS=4 .carry/w4 loki test_cuda_matmul >/dev/null
  (cd .carry && tar -cf - shu8 pipe w4 | xz -9e -T"$(nproc)" > variants.tar.xz && rm -r shu8 pipe w4)
  ls -la .carry/variants.tar.xz
fi

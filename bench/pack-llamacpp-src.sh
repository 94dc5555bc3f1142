#!/usr/bin/env bash
# Prepare, on a machine with network, the llama.cpp source that
# `bench/get-llamacpp.sh --cuda --sdist FILE` builds on a machine without it:
# the pinned llama-cpp-python sdist of bench/get-llamacpp.sh, trimmed of what
# the build of llama-bench and llama-batched-bench (CUDA or CPU, with the
# options get-llamacpp.sh passes) does not read, as a deterministic xz tarball
# in the git-ignored folder .llamacpp-src/ of this checkout (small enough to
# carry: the size is printed and must stay under 45 MiB).
#
# What is dropped, and why it is safe (read from the sdist's CMakeLists):
#  - everything of llama-cpp-python but vendor/llama.cpp, LICENSE.md, PKG-INFO
#    (the Python package, its docs, examples and tests);
#  - in vendor/llama.cpp: docs/, models/ (test vocabularies), tests/
#    (LLAMA_BUILD_TESTS=OFF), examples/ and pocs/ (LLAMA_BUILD_EXAMPLES=OFF),
#    benches/, media/, gguf-py/, conversion/, scripts/, requirements/, ci/,
#    .github/, .devops/ (no CMakeLists reads them with these options);
#  - tools/server/ and tools/ui/ (added only with LLAMA_BUILD_SERVER=ON;
#    tools/ui's CMake is the only reader of scripts/);
#  - ggml/src/ backends that are off by default and not asked for: cann, et,
#    hexagon, hip, metal, musa, opencl, openvino, sycl, virtgpu, vulkan,
#    webgpu, zdnn, zendnn (ggml_add_backend adds ggml-<name>/ only when
#    GGML_<NAME> is ON); ggml-cpu, ggml-cuda, ggml-blas and ggml-rpc stay.
# Kept: every other tools/ folder (tools/CMakeLists.txt adds them
# unconditionally), vendor/ (mtmd and common link it), app/, cmake/,
# common/, include/, src/, licenses/, the .git link file (build-info).
# A marker llama_cpp_python-VERSION/LOKI-TRIMMED names the source sdist and
# its sha256; FILE.sha256 beside the tarball is its own checksum.
set -euo pipefail

prog=pack-llamacpp-src
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
VERSION=$(sed -n 's/^VERSION=//p' "$here/get-llamacpp.sh")
SHA256=$(sed -n 's/^SHA256=//p' "$here/get-llamacpp.sh")
SDIST=llama_cpp_python-$VERSION.tar.gz
LIMIT_MIB=45

usage() {
  cat <<EOF
Usage: bash bench/pack-llamacpp-src.sh [--sdist FILE] [--cache DIR] [--out DIR]

Write OUT/llama_cpp_python-$VERSION-cuda-src.tar.xz (+ .sha256): the pinned
sdist $SDIST without what the llama.cpp build does not need (see the head of
this script), and print its path on stdout and its size on stderr.

  --sdist FILE  the pinned sdist already on disk (sha256 checked); default:
                bash bench/get-llamacpp.sh --download-only (cache or PyPI)
  --cache DIR   cache folder for get-llamacpp.sh (default: its default)
  --out DIR     output folder (default: .llamacpp-src of this checkout, git-ignored)
  -h, --help    this help

On the machine without network, with the tarball carried there:
  bash bench/get-llamacpp.sh --cuda --sdist .llamacpp-src/llama_cpp_python-$VERSION-cuda-src.tar.xz --jobs \$(nproc)
Exit status: 0 success, 1 failure, 2 usage error.
EOF
}
say() { echo "$prog: $*" >&2; }
die() { say "error: $*"; exit 1; }

sdist="" cache="" out=$root/.llamacpp-src
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --sdist) [ $# -ge 2 ] && [ -n "$2" ] || { say "error: --sdist needs a file"; exit 2; }; sdist=$2; shift ;;
    --cache) [ $# -ge 2 ] && [ -n "$2" ] || { say "error: --cache needs a folder"; exit 2; }; cache=$2; shift ;;
    --out) [ $# -ge 2 ] && [ -n "$2" ] || { say "error: --out needs a folder"; exit 2; }; out=$2; shift ;;
    *) say "error: unknown argument '$1' (see --help)"; exit 2 ;;
  esac
  shift
done
[ -n "$VERSION" ] && [ -n "$SHA256" ] || die "cannot read VERSION/SHA256 from $here/get-llamacpp.sh"
for t in tar xz sha256sum; do command -v $t >/dev/null || die "$t not found"; done

if [ -z "$sdist" ]; then
  args=(--download-only); [ -z "$cache" ] || args+=(--cache "$cache")
  sdist=$(bash "$here/get-llamacpp.sh" "${args[@]}") || die "bench/get-llamacpp.sh could not fetch $SDIST"
fi
[ -f "$sdist" ] || die "--sdist $sdist: no such file"
got=$(sha256sum "$sdist" | cut -d' ' -f1)
[ "$got" = "$SHA256" ] || die "$sdist: sha256 $got, expected $SHA256 (the sdist pinned in bench/get-llamacpp.sh)"

mkdir -p "$out" || die "cannot create $out"
out=$(cd "$out" && pwd)
name=llama_cpp_python-$VERSION-cuda-src.tar.xz
tmp=$(mktemp -d "$out/pack.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
say "unpacking $sdist"
tar -xzf "$sdist" -C "$tmp" || die "cannot unpack $sdist"
top=$tmp/llama_cpp_python-$VERSION
lc=$top/vendor/llama.cpp
[ -f "$lc/CMakeLists.txt" ] && [ -f "$lc/tools/llama-bench/llama-bench.cpp" ] \
  && [ -f "$lc/tools/batched-bench/batched-bench.cpp" ] && [ -d "$lc/ggml/src/ggml-cuda" ] \
  || die "$sdist does not hold vendor/llama.cpp with the bench tools and ggml-cuda"

# keep only vendor/llama.cpp and the licence of the Python package
for e in "$top"/* "$top"/.[!.]*; do
  [ -e "$e" ] || continue
  case ${e##*/} in vendor|LICENSE.md|PKG-INFO) ;; *) rm -rf "$e" ;; esac
done
for e in "$top"/vendor/*; do [ "${e##*/}" = llama.cpp ] || rm -rf "$e"; done
for d in docs models tests examples pocs benches media gguf-py conversion scripts requirements ci \
         .github .devops tools/server tools/ui; do
  rm -rf "${lc:?}/$d"
done
for b in cann et hexagon hip metal musa opencl openvino sycl virtgpu vulkan webgpu zdnn zendnn; do
  rm -rf "$lc/ggml/src/ggml-$b"
done
# what the configure step reads must still be there
for f in CMakeLists.txt cmake/common.cmake cmake/build-info.cmake cmake/license.cmake common/CMakeLists.txt \
         common/build-info.cpp.in src/CMakeLists.txt ggml/CMakeLists.txt ggml/src/CMakeLists.txt \
         ggml/src/ggml-cuda/CMakeLists.txt ggml/src/ggml-cpu/CMakeLists.txt tools/CMakeLists.txt \
         tools/llama-bench/CMakeLists.txt tools/batched-bench/CMakeLists.txt tools/mtmd/CMakeLists.txt \
         vendor/CMakeLists.txt app/CMakeLists.txt LICENSE; do
  [ -e "$lc/$f" ] || die "trimmed too much: $f is gone"
done
printf 'loki trimmed source of %s (bench/pack-llamacpp-src.sh)\nsource_sha256 %s\n' "$SDIST" "$SHA256" \
  >"$top/LOKI-TRIMMED"

say "writing $out/$name (xz -9; takes a minute)"
(cd "$tmp" && LC_ALL=C tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
   -cf - "llama_cpp_python-$VERSION" | nice -n 19 xz -9 -T1 >"$tmp/$name") || die "tar/xz failed"
mv "$tmp/$name" "$out/$name"
(cd "$out" && sha256sum "$name" >"$name.sha256")
bytes=$(stat -c %s "$out/$name")
mib=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
say "$out/$name: $mib MiB ($bytes bytes), from $(du -sh "$sdist" | cut -f1) $SDIST"
[ "$bytes" -lt $((LIMIT_MIB * 1048576)) ] || die "$name is $mib MiB, over the $LIMIT_MIB MiB limit"
echo "$out/$name"

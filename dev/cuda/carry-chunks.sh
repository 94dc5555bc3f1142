#!/usr/bin/env bash
# Move a file larger than the device tool's 64 MiB carry (a real model:
# Gemma 3 270M is 253 MB) to the GPU machine in several calls.
#
# Here:   bash dev/cuda/carry-chunks.sh split FILE [MIB]
#   writes .ck/N/part (N = 1, 2, ...; at most MIB MiB each, default 50) and
#   .ck/N/sum (the whole file's sha256, name and part count), and prints
#   one line per call: the carry list for it (.ck/ is git-ignored).
# There:  bash dev/cuda/carry-chunks.sh take N     (in call N, carrying .ck/N)
#   copies part N into build-ck/ (kept between calls while the machine stays
#   warm: /build*/ is ignored by the tracked .gitignore); when every part is
#   there it joins them into build-ck/NAME, checks the sha256 and prints the
#   path. Each call must follow the last within the machine's idle time (30 s).
set -euo pipefail
die() { echo "carry-chunks: error: $*" >&2; exit 1; }
case ${1:-} in
  split)
    f=${2:-}; mib=${3:-50}
    [ -f "$f" ] || die "split: no such file '$f'"
    [[ $mib =~ ^[0-9]+$ ]] && [ "$mib" -ge 1 ] && [ "$mib" -le 56 ] || die "split: MIB must be 1..56"
    rm -rf .ck && mkdir -p .ck/tmp
    split -b "${mib}M" -d -a 3 "$f" .ck/tmp/p.
    sum=$(sha256sum "$f" | cut -d' ' -f1)
    n=$(ls .ck/tmp | wc -l); i=0
    for p in .ck/tmp/p.*; do
      i=$((i + 1)); mkdir -p ".ck/$i"; mv "$p" ".ck/$i/part"
      printf '%s %s %d\n' "$sum" "$(basename "$f")" "$n" > ".ck/$i/sum"
      echo "call $i of $n: carry [\".ck/$i\"], command: bash dev/cuda/carry-chunks.sh take $i"
    done
    rmdir .ck/tmp ;;
  take)
    i=${2:-}; [ -f ".ck/$i/part" ] && [ -f ".ck/$i/sum" ] || die "take: .ck/$i/part or sum not carried"
    read -r sum name n < ".ck/$i/sum"
    mkdir -p build-ck && cp ".ck/$i/part" "build-ck/$name.part$(printf %03d "$i")"
    have=$(ls build-ck/"$name".part* 2>/dev/null | wc -l)
    if [ "$have" -lt "$n" ]; then echo "carry-chunks: $have of $n parts of $name here"; exit 0; fi
    cat build-ck/"$name".part* > "build-ck/$name" && rm -f build-ck/"$name".part*
    [ "$(sha256sum "build-ck/$name" | cut -d' ' -f1)" = "$sum" ] || die "take: $name: sha256 differs (a part is missing or stale)"
    echo "build-ck/$name" ;;
  *) echo "usage: carry-chunks.sh split FILE [MIB] | take N" >&2; exit 2 ;;
esac

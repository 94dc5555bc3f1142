#!/usr/bin/env bash
# The pack of dev/cuda/pack.sh plus knob builds of src/cuda/loki_fused.cu
# (dev/cuda/variant.sh) in one archive, .carry/gpu-pack-knobs.tar.xz: each
# NAME=FLAGS adds bin/loki-NAME and bin/test_cuda_attn-NAME. One xz stream
# with a 256 MiB dictionary stores each extra binary as little more than its
# difference (session 21: the pack and two extra binaries in 16.9 MB), so
# knob builds fit the device tool's 64 MiB carry beside .carry/shared.
#   bash dev/cuda/pack-knobs.sh bal=-DLK_FUSED_BAL=1 ws=-DLK_FUSED_WS=1 "wsbal=-DLK_FUSED_WS=1 -DLK_FUSED_BAL=1"
# There: tar -C /tmp/lk -xJf .carry/gpu-pack-knobs.tar.xz; dev/cuda/knob-ab.sh runs the A/B.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || { echo "usage: pack-knobs.sh NAME=FLAGS..." >&2; exit 2; }
bash dev/cuda/pack.sh > /dev/null
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
tar -C "$stage" -xJf .carry/gpu-pack.tar.xz
for nf in "$@"; do
  name=${nf%%=*} flags=${nf#*=}
  case $name in ''|*[!a-z0-9_]*) echo "pack-knobs.sh: bad name '$name' (a-z, 0-9, _)" >&2; exit 2 ;; esac
  bash dev/cuda/variant.sh src/cuda/loki_fused.cu "$flags" "$stage/v-$name" loki test_cuda_attn > /dev/null
  strip -o "$stage/bin/loki-$name" "$stage/v-$name/loki"
  strip -o "$stage/bin/test_cuda_attn-$name" "$stage/v-$name/test_cuda_attn"
  rm -r "$stage/v-$name"
done
tar -C "$stage" -cf - . | xz -9 --lzma2=preset=9e,dict=256MiB -T1 > .carry/gpu-pack-knobs.tar.xz
ls -la .carry/gpu-pack-knobs.tar.xz

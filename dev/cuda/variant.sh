#!/usr/bin/env bash
# Build one compile-time variant of one kernel file without a second build
# tree: recompile FILE.cu from build-cuda/ (dev/cuda/pack.sh's tree) with
# the extra -D flags, put the object into a copy of libloki.a and relink the
# named targets against it, writing each binary as OUT_DIR/<target>.
#   bash dev/cuda/variant.sh src/cuda/select.cu "-DSEL_PF=2" .carry/pf2 loki test_cuda_attn
# The targets are loki (the CLI) or any tests/test_* of build-cuda. Takes
# about a minute for one .cu instead of a whole CUDA build.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=${1:?usage: variant.sh FILE.cu FLAGS OUT_DIR TARGET...}
flags=${2:?usage: variant.sh FILE.cu FLAGS OUT_DIR TARGET...}
out=${3:?usage: variant.sh FILE.cu FLAGS OUT_DIR TARGET...}
shift 3
[ $# -gt 0 ] || { echo "variant.sh: name at least one target (loki, test_cuda_attn, ...)" >&2; exit 2; }
b=$PWD/build-cuda
[ -f "$b/libloki.a" ] || { echo "variant.sh: $b/libloki.a missing (run dev/cuda/pack.sh first)" >&2; exit 1; }
obj=$(python3 - "$b" "$PWD/$src" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1] + "/compile_commands.json")):
    if e["file"] == sys.argv[2]:
        print(e["command"]); break
else:
    sys.exit("variant.sh: %s is not in build-cuda/compile_commands.json" % sys.argv[2])
EOF
)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
member=$(basename "$src").o
# the build's own command with the flags added and the object redirected
cmd=${obj/ -c / $flags -c }
cmd=${cmd% -o *}" -o $tmp/$member"
(cd "$b" && eval "$cmd")
cp "$b/libloki.a" "$tmp/libloki.a"
# the archive's member names are the objects' base names
(cd "$tmp" && ar r libloki.a "$member" && ranlib libloki.a)
mkdir -p "$out"
outabs=$(cd "$out" && pwd)
for t in "$@"; do
  if [ "$t" = loki ]; then dir=$b; rsp=CMakeFiles/loki-cli.dir; else dir=$b/tests; rsp=CMakeFiles/$t.dir; fi
  [ -f "$dir/$rsp/link.txt" ] || { echo "variant.sh: no target $t in build-cuda" >&2; exit 1; }
  libs=$(sed "s#\(^\| \)\(\.\./\)\?libloki\.a# $tmp/libloki.a#" "$dir/$rsp/linkLibs.rsp")
  (cd "$dir" && eval g++ @"$rsp"/objects1 -o "'$outabs/$t'" "$libs" \
      -L/usr/local/cuda/targets/x86_64-linux/lib/stubs -L/usr/local/cuda/targets/x86_64-linux/lib)
  strip "$out/$t"
done
ls -la "$out"

#!/usr/bin/env bash
# The logic of bench/gpu_vs_llamacpp.sh (and its table printer) without a GPU:
# 1. --dry-run prints loki convert, loki bench decode (dense; loki with
#    --gqa-shared for a GQA shape), llama-bench (B = 1) and llama-batched-bench
#    (B > 1, -c covering B sequences) with the vendored tools' flags, and marks
#    runs over --mem-gib as skipped; bad options are usage errors;
# 2. a real run on a tiny config.json shape with stand-ins: nvidia-smi
#    (a GPU name), llama-bench / llama-batched-bench (canned JSON of the
#    vendored tools' format) and a loki wrapper that runs the real binary on
#    the CPU (--device cuda -> --device cpu; B > 1 fails there, which must be
#    recorded as a run without result). Checks the JSON lines (one per run,
#    with the command, GPU name, date; the convert line), the table's rows
#    and ratios, and that the scratch folder is gone.
set -u
LOKI=$1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
S=$ROOT/bench/gpu_vs_llamacpp.sh
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
CFG=$T/tiny.json
cat >"$CFG" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 256, "intermediate_size": 512,
 "num_attention_heads": 8, "num_key_value_heads": 4, "num_hidden_layers": 2, "vocab_size": 300,
 "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "head_dim": 64}
EOF

# ------------------------------------------------------------ 1. dry run
out=$(bash "$S" --dry-run --loki "$LOKI" --llama-dir /L --shapes "$CFG,llama2-7b" --dtypes q4_k \
      --depths 0,16384 --batches 1,16 --rounds 1 2>&1); rc=$?
[ $rc = 0 ] && ok || bad "dry run exit $rc: $out"
want=(
  "convert --random-weights $CFG -o SCRATCH/random-tiny-q4_k.gguf --type q4_k"
  "bench decode -m SCRATCH/random-tiny-q4_k.gguf --device cuda -p 512 -n 128 -d 16384 -r 2 -b 16 --attn loki --kf 0.125 --df 0.25 --dense-prompt --gqa-shared"
  "/L/llama-bench -m SCRATCH/random-tiny-q4_k.gguf -ngl 99 -fa 1 -p 512 -n 128 -d 0 -r 2 -o json"
  "/L/llama-batched-bench -m SCRATCH/random-tiny-q4_k.gguf -ngl 99 -fa on -c 266240 -npp 16384 -ntg 128 -npl 16 --output-format jsonl"
  "bench decode -m SCRATCH/random-llama2-7b-q4_k.gguf --device cuda -p 512 -n 128 -d 16384 -r 2 --attn loki --kf 0.125 --df 0.25 --dense-prompt"
  "# skipped: llama.cpp flash B=16 d=16384: weights + KV cache"
)
for w in "${want[@]}"; do
  grep -qF -- "$w" <<<"$out" && ok || bad "dry run lacks '$w'"
done
grep -q "random-llama2-7b-q4_k.gguf.*--gqa-shared" <<<"$out" && bad "--gqa-shared for llama2-7b (no GQA)" || ok
[ "$(grep -c "^# skipped" <<<"$out")" = 3 ] && ok || bad "expected 3 skipped runs (llama2-7b B=16 d=16384): $(grep "^# skipped" <<<"$out")"
# --fused MODE goes to loki's Loki runs only
out=$(bash "$S" --dry-run --loki "$LOKI" --llama-dir /L --shapes "$CFG" --dtypes q8_0 --depths 0 --batches 16 \
      --rounds 1 --fused all 2>&1)
grep -q -- "--attn loki .*--gqa-shared --fused all" <<<"$out" && ok || bad "--fused all not on the Loki run: $out"
grep -q -- "--attn dense.*--fused" <<<"$out" && bad "--fused on a dense run: $out" || ok
for args in "--dtypes q5_k" "--depths x" "--shapes nope" "--attn h2o" "--tools vllm" "--bogus" "--rounds"; do
  # shellcheck disable=SC2086
  bash "$S" --dry-run $args >/dev/null 2>&1; rc=$?
  [ $rc = 2 ] && ok || bad "'$args' exit $rc, want 2"
done

# ------------------------------------------------------------ 2. a run with stand-ins
mkdir -p "$T/bin" "$T/llama"
printf '#!/bin/sh\necho "NVIDIA Test GPU"\n' >"$T/bin/nvidia-smi"
cat >"$T/bin/loki" <<EOF
#!/usr/bin/env bash
args=()
for a in "\$@"; do [ "\$a" = cuda ] && a=cpu; args+=("\$a"); done
[ "\$1" = bench ] && args+=(-t 1)
exec "$LOKI" "\${args[@]}"
EOF
cat >"$T/llama/llama-bench" <<'EOF'
#!/usr/bin/env bash
d=0; while [ $# -gt 0 ]; do [ "$1" = -d ] && d=$2; shift; done
echo "log line on stderr {not json}" >&2
printf '[\n  {"n_prompt": 512, "n_gen": 0, "n_depth": %d, "avg_ts": 1000.0, "stddev_ts": 1.0},\n  {"n_prompt": 0, "n_gen": 128, "n_depth": %d, "avg_ts": 50.0, "stddev_ts": 0.5}\n]\n' "$d" "$d"
EOF
cat >"$T/llama/llama-batched-bench" <<'EOF'
#!/usr/bin/env bash
echo "main: n_kv_max = 4096" >&2
echo '{"n_kv_max": 4096, "n_batch": 2048, "n_ubatch": 512, "flash_attn": 1, "is_pp_shared": 0, "n_gpu_layers": 99, "n_threads": 16, "n_threads_batch": 16, "pp": 0, "tg": 128, "pl": 16, "n_kv": 2048, "t_pp": 0.000001, "speed_pp": nan, "t_tg": 1.0, "speed_tg": 800.0, "t": 1.0, "speed": 2048.0}'
EOF
chmod +x "$T/bin/"* "$T/llama/"*
mkdir -p "$T/scratch"
PATH=$T/bin:$PATH bash "$S" --loki "$T/bin/loki" --llama-dir "$T/llama" --shapes "$CFG" --dtypes q8_0 \
  --depths 0,16 --batches 1,16 --rounds 2 -p 8 -n 4 -r 1 --scratch "$T/scratch" --out "$T/r.jsonl" --commit c0ffee1 \
  >"$T/table" 2>"$T/err"; rc=$?
[ $rc = 0 ] && ok || bad "run exit $rc: $(tail -5 "$T/err")"
[ -z "$(ls -A "$T/scratch")" ] && ok || bad "scratch folder left: $(ls -R "$T/scratch")"
if python3 - "$T/r.jsonl" <<'EOF'; then ok; else bad "JSON lines: $(head -c 3000 "$T/r.jsonl")"; fi
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
conv = [r for r in recs if r["tool"] == "convert"]
runs = [r for r in recs if r["tool"] != "convert"]
assert len(conv) == 1 and conv[0]["bytes"] > 0, conv
# 2 rounds x 2 depths x 2 batches x (2 loki + 1 llama.cpp)
assert len(runs) == 24, len(runs)
for r in runs:
    assert r["gpu"] == "NVIDIA Test GPU" and r["date"].endswith("Z") and isinstance(r["cmd"], list), r
    assert r["commit"] == "c0ffee1", r  # --commit
    assert r["dtype"] == "q8_0" and r["round"] in (1, 2) and r["depth"] in (0, 16), r
lk1 = [r for r in runs if r["tool"] == "loki" and r["batch"] == 1]
assert all(r["rc"] == 0 and r["result"]["decode_tokens_per_s"] > 0 for r in lk1), lk1[0]
assert all("--device" in r["cmd"] and r["cmd"][r["cmd"].index("--device") + 1] == "cuda" for r in lk1)
lk16 = [r for r in runs if r["tool"] == "loki" and r["batch"] == 16]
assert all(r["rc"] != 0 and "error" in r["result"] and "--device cuda" in r["result"]["stderr"] for r in lk16), lk16[0]
gqa = [r for r in runs if r["attn"] == "loki"]
assert all("--gqa-shared" in r["cmd"] for r in gqa)
lb = [r for r in runs if r.get("program") == "llama-bench"]
assert len(lb) == 4 and all(r["result"][1]["avg_ts"] == 50.0 for r in lb), lb[0]
bb = [r for r in runs if r.get("program") == "llama-batched-bench"]
assert len(bb) == 4 and all(r["result"][0]["speed_tg"] == 800.0 and r["result"][0]["speed_pp"] is None for r in bb)
EOF
tbl=$(cat "$T/table")
grep -q "GPU NVIDIA Test GPU" <<<"$tbl" && ok || bad "table header: $tbl"
row=$(grep -E "^\| tiny\.json \| q8_0 \| 1 \| 16 \|" <<<"$tbl")
# loki's CPU decode over llama-bench's canned 50 tok/s
if python3 -c '
import sys
c = [x.strip() for x in sys.argv[1].split("|")[1:-1]]
d, lk, ll, r1, r2 = float(c[4].split()[0]), float(c[5].split()[0]), float(c[6].split()[0]), float(c[7]), float(c[8])
assert ll == 50.0 and abs(r1 - d / 50) < 0.01 and abs(r2 - lk / 50) < 0.01, c
' "$row"; then ok; else bad "B=1 row: '$row'"; fi
row=$(grep -E "^\| tiny\.json \| q8_0 \| 16 \| 0 \|" <<<"$tbl")
grep -q "| 800.0 (800.0..800.0) |" <<<"$row" && grep -q "no result: loki dense, loki loki" <<<"$row" && ok || bad "B=16 row: '$row'"
grep -q "^Prefill tokens/s" <<<"$tbl" && grep -qE "^\| tiny\.json \| q8_0 \| [0-9.]+ .*\| 1000\.0 " <<<"$tbl" && ok \
  || bad "prefill table: $tbl"

echo "cli_gpu_vs_llamacpp: $pass passed, $fail failed"
[ $fail -eq 0 ]

#!/usr/bin/env python3
"""Helper and table printer of bench/gpu_vs_llamacpp.sh.

  gpu_vs_llamacpp.py FILE.jsonl
      the table: per shape, dtype, batch and depth, decode tokens/s of loki
      (dense and loki attention) and of llama.cpp's CUDA backend (llama-bench
      for one sequence, llama-batched-bench for several), mean over the
      rounds (min..max when more than one), the ratios loki / llama.cpp; and
      prefill tokens/s of the -p prompt from an empty cache (depth 0; loki's
      bench always prefills from an empty cache, llama-bench's pp at depth D
      runs after D tokens, so only depth 0 compares).
  gpu_vs_llamacpp.py --shape SHAPE DTYPE
      one line "gqa n_layer n_head n_head_kv head_dim weight_bytes": SHAPE is
      llama2-7b, llama3-8b or a config.json (as loki's --random-weights);
      weight_bytes estimates the GGUF's tensors in DTYPE (norms f32).
  gpu_vs_llamacpp.py --record KEY=VALUE... < RAW
      one JSON line on stdout: the keys (cmd is a JSON list) and "result", the
      tool's JSON parsed from RAW (loki: its object; llama-bench: its array;
      llama-batched-bench: its jsonl lines, nan/inf as null), or
      {"error": the end of RAW, "stderr": the end of errfile=FILE} when none
      is found.
"""
import json
import math
import os
import re
import sys

PRESETS = {  # src/model/random.c, lk_hparams_preset
    "llama2-7b": dict(n_embd=4096, n_layer=32, n_head=32, n_head_kv=32, head_dim=128, n_ff=11008, n_vocab=32000),
    "llama3-8b": dict(n_embd=4096, n_layer=32, n_head=32, n_head_kv=8, head_dim=128, n_ff=14336, n_vocab=128256),
}
# bytes per weight of each --type (ggml block sizes)
BYTES_PER_WEIGHT = {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32,
                    "q4_k": 144 / 256, "q6_k": 210 / 256}


def shape_of(shape):
    """Hyperparameters of a preset name or a Hugging Face config.json."""
    if ".json" not in shape:
        if shape not in PRESETS:
            raise ValueError(f"unknown shape '{shape}' (llama2-7b, llama3-8b or a config.json)")
        return dict(PRESETS[shape])
    with open(shape) as f:
        c = json.load(f)
    h = c.get("num_attention_heads")
    e = c.get("hidden_size")
    if not h or not e:
        raise ValueError(f"{shape}: no hidden_size/num_attention_heads")
    return dict(n_embd=e, n_layer=c["num_hidden_layers"], n_head=h, n_head_kv=c.get("num_key_value_heads", h),
                head_dim=c.get("head_dim") or e // h, n_ff=c["intermediate_size"], n_vocab=c["vocab_size"])


def cmd_shape(shape, dtype):
    s = shape_of(shape)
    if dtype not in BYTES_PER_WEIGHT:
        raise ValueError(f"unknown dtype '{dtype}' ({', '.join(BYTES_PER_WEIGHT)})")
    E, QD, KD, F = s["n_embd"], s["n_head"] * s["head_dim"], s["n_head_kv"] * s["head_dim"], s["n_ff"]
    per_layer = E * QD + 2 * E * KD + QD * E + 3 * E * F
    weights = (s["n_layer"] * per_layer + 2 * s["n_vocab"] * E) * BYTES_PER_WEIGHT[dtype]
    weights += 4 * E * (2 * s["n_layer"] + 1)
    gqa = 1 if s["n_head_kv"] < s["n_head"] else 0
    print(gqa, s["n_layer"], s["n_head"], s["n_head_kv"], s["head_dim"], int(weights))
    return 0


def parse_raw(tool, raw):
    """The tool's result in its raw output (see the module doc)."""
    try:
        if tool == "loki":
            return json.loads(raw[raw.index("{"):raw.rindex("}") + 1])
        if tool == "llama-bench":
            return json.loads(raw[raw.index("["):raw.rindex("]") + 1])
        if tool == "llama-batched-bench":
            rows = []
            for line in raw.splitlines():
                line = line.strip()
                if line.startswith('{"n_kv_max"'):
                    line = re.sub(r"(?<=: )-?(nan|inf)\b", "null", line)
                    rows.append(json.loads(line))
            if rows:
                return rows
    except ValueError:
        pass
    return {"error": raw[-1500:]}


def cmd_record(pairs):
    rec, errfile = {}, None
    for p in pairs:
        k, _, v = p.partition("=")
        if k == "cmd":
            rec[k] = json.loads(v)
        elif k == "errfile":
            errfile = v
        elif re.fullmatch(r"-?\d+", v) and k not in ("shape", "gpu", "commit", "date"):
            rec[k] = int(v)
        elif k == "wall_s":
            rec[k] = float(v)
        else:
            rec[k] = v
    raw = sys.stdin.read()
    tool = rec.get("tool", "")
    if tool == "loki":
        rec["result"] = parse_raw("loki", raw)
    elif tool == "llama.cpp":
        rec["result"] = parse_raw(rec.get("program", "llama-bench"), raw)
    else:
        rec["result"] = {"raw": raw[-500:]} if raw.strip() else {}
    if errfile and isinstance(rec["result"], dict) and "error" in rec["result"]:
        try:
            with open(errfile, errors="replace") as f:
                rec["result"]["stderr"] = f.read()[-1500:]
        except OSError:
            pass
    print(json.dumps(rec))
    return 0


def speeds(rec):
    """(prefill tok/s of the 512-token prompt or None, decode tok/s or None)."""
    res = rec.get("result")
    if rec.get("skipped") or not res or (isinstance(res, dict) and "error" in res):
        return None, None
    if rec["tool"] == "loki":
        return res.get("prefill_tokens_per_s") or None, res.get("decode_tokens_per_s") or None
    if rec.get("program") == "llama-batched-bench":
        tg = [r.get("speed_tg") for r in res if r.get("pl") == rec["batch"]]
        return None, (tg[0] if tg and tg[0] else None)
    pp = tg = None
    for row in res if isinstance(res, list) else []:
        if row.get("n_prompt", 0) > 0 and row.get("n_gen", 0) == 0:
            pp = row.get("avg_ts")
        elif row.get("n_gen", 0) > 0 and row.get("n_prompt", 0) == 0:
            tg = row.get("avg_ts")
    return pp, tg


def mean(vals):
    vals = [v for v in vals if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


def fmt(vals):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = sum(vals) / len(vals)
    return f"{m:.1f}" if len(vals) == 1 else f"{m:.1f} ({min(vals):.1f}..{max(vals):.1f})"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "-"


def cmd_table(path):
    recs = [json.loads(line) for line in open(path) if line.strip()]
    runs = [r for r in recs if r.get("tool") in ("loki", "llama.cpp")]
    if not runs:
        print(f"{path}: no runs")
        return 1
    gpus = sorted({r.get("gpu", "?") for r in runs})
    dates = sorted(r.get("date", "") for r in runs)
    rounds = max(r.get("round", 0) for r in runs)
    commits = sorted({r.get("commit", "?") for r in runs if r["tool"] == "loki"})
    print(f"{path}: {len(runs)} runs in {rounds} interleaved round(s), GPU {', '.join(gpus)}, "
          f"{dates[0]} .. {dates[-1]}, loki commit {', '.join(commits)}")
    for r in recs:
        if r.get("tool") == "convert":
            print(f"  convert {os.path.basename(r['shape'])} {r['dtype']}: {r.get('wall_s', 0):.0f} s, "
                  f"{r.get('bytes', 0) / 1e6:.1f} MB")
    keys, cells = [], {}  # (shape, dtype, batch, depth) -> {column: [values]}
    for r in runs:
        k = (os.path.basename(r["shape"]), r["dtype"], r["batch"], r["depth"])
        if k not in keys:
            keys.append(k)
        col = f"loki {r['attn']}" if r["tool"] == "loki" else "llama.cpp"
        c = cells.setdefault(k, {})
        if r.get("skipped"):
            c.setdefault("skipped", r["skipped"])
            continue
        pp, tg = speeds(r)
        c.setdefault(col, []).append(tg)
        if r["depth"] == 0 and r["batch"] == 1:
            c.setdefault("pp " + col, []).append(pp)
        if tg is None:
            c.setdefault("failed", []).append(col)
    print()
    print("Decode tokens/s (all sequences of the batch together), at depth tokens already in each cache:")
    print()
    head = ["shape", "dtype", "B", "depth", "loki dense", "loki loki", "llama.cpp", "dense/llama.cpp",
            "loki/llama.cpp", "note"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for k in keys:
        c = cells[k]
        d, lk, ll = (mean(c.get(x, [])) for x in ("loki dense", "loki loki", "llama.cpp"))
        note = c.get("skipped", "")
        if c.get("failed"):
            note = (note + "; " if note else "") + "no result: " + ", ".join(sorted(set(c["failed"])))
        print("| " + " | ".join([k[0], k[1], str(k[2]), str(k[3]), fmt(c.get("loki dense", [])),
                                 fmt(c.get("loki loki", [])), fmt(c.get("llama.cpp", [])), ratio(d, ll),
                                 ratio(lk, ll), note]) + " |")
    pk = [k for k in keys if k[2] == 1 and k[3] == 0 and any(x.startswith("pp ") for x in cells[k])]
    if pk:
        print()
        print("Prefill tokens/s of the -p prompt from an empty cache (B = 1, depth 0; llama-bench's pp at depth 0):")
        print()
        print("| shape | dtype | loki dense | llama.cpp | loki/llama.cpp |")
        print("|---|---|---|---|---|")
        for k in pk:
            c = cells[k]
            print(f"| {k[0]} | {k[1]} | {fmt(c.get('pp loki dense', []))} | {fmt(c.get('pp llama.cpp', []))} | "
                  f"{ratio(mean(c.get('pp loki dense', [])), mean(c.get('pp llama.cpp', [])))} |")
    return 0


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "--shape":
            return cmd_shape(argv[2], argv[3])
        if len(argv) >= 2 and argv[1] == "--record":
            return cmd_record(argv[2:])
        if len(argv) == 2 and not argv[1].startswith("-"):
            return cmd_table(argv[1])
    except (OSError, ValueError, KeyError) as e:
        print(f"gpu_vs_llamacpp.py: {e}", file=sys.stderr)
        return 1
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))

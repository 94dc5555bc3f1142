#!/usr/bin/env python3
"""fuzz/seeds.py OUT_DIR [SHARED_DIR] - write the seed corpora of the fuzz
harnesses into OUT_DIR/<harness>/: small hand-made edge cases plus small real
files (or the first bytes of big ones) from SHARED_DIR (default ../shared).
Nothing large is committed: run.sh regenerates the seeds in its build folder."""
import json, os, struct, sys

out = sys.argv[1]
shared = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "shared")
src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

def put(h, name, data):
    d = os.path.join(out, h); os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f: f.write(data)

def head(path, n):
    try:
        with open(path, "rb") as f: return f.read(n)
    except OSError: return None

def gstr(s): b = s.encode(); return struct.pack("<Q", len(b)) + b
def gkv(k, t, v): return gstr(k) + struct.pack("<I", t) + v
def gguf(kvs, tensors=(), version=3, pad=32):
    h = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs)
    data = b""
    for name, dims, dtype, payload in tensors:
        h += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        h += struct.pack("<IQ", dtype, len(data)); data += payload + b"\0" * (-len(payload) % pad)
    return h + b"\0" * (-len(h) % pad) + data

# ---- GGUF (+ vocab + PCA on top)
u32 = lambda k, v: gkv(k, 4, struct.pack("<I", v))
sarr = lambda k, xs: gkv(k, 9, struct.pack("<IQ", 8, len(xs)) + b"".join(gstr(x) for x in xs))
farr = lambda k, xs: gkv(k, 9, struct.pack("<IQ", 6, len(xs)) + b"".join(struct.pack("<f", x) for x in xs))
iarr = lambda k, xs: gkv(k, 9, struct.pack("<IQ", 5, len(xs)) + b"".join(struct.pack("<i", x) for x in xs))
put("fuzz_gguf", "empty_v3", gguf([]))
put("fuzz_gguf", "arch", gguf([gkv("general.architecture", 8, gstr("llama")), u32("general.alignment", 32)],
                                [("t", [4, 2], 0, b"\0" * 32)]))
toks = ["<unk>", "<s>", "</s>", "<0x41>", "\u2581a", "a", "b", "ab"]
put("fuzz_gguf", "vocab_spm", gguf([gkv("tokenizer.ggml.model", 8, gstr("llama")), sarr("tokenizer.ggml.tokens", toks),
                                    farr("tokenizer.ggml.scores", [0.0] * 8), iarr("tokenizer.ggml.token_type", [2, 3, 3, 6, 1, 1, 1, 1])]))
put("fuzz_gguf", "vocab_bpe", gguf([gkv("tokenizer.ggml.model", 8, gstr("gpt2")), gkv("tokenizer.ggml.pre", 8, gstr("smollm")),
                                    sarr("tokenizer.ggml.tokens", ["a", "b", "ab", "\u0120", "<|endoftext|>"]),
                                    sarr("tokenizer.ggml.merges", ["a b"]), u32("tokenizer.ggml.eos_token_id", 4)]))
L, H, D = 1, 1, 2
pca = [u32("loki.pca.version", 1), u32("loki.pca.n_layer", L), u32("loki.pca.n_head_kv", H), u32("loki.pca.head_dim", D),
       gkv("loki.pca.calib.tokens", 10, struct.pack("<Q", 8)), u32("loki.pca.calib.window", 8),
       gkv("loki.pca.components_layout", 8, gstr("rows")), gkv("loki.pca.model.fingerprint", 8, gstr("0" * 64)),
       gkv("loki.pca.calib.sha256", 8, gstr("0" * 64)), gkv("loki.pca.model.name", 8, gstr("m")), gkv("loki.pca.calib.file", 8, gstr("c"))]
ts = []
for b in ("pre", "post"):
    ts += [(f"pca.{b}.components", [D, D, H, L], 0, struct.pack("<4f", 1, 0, 0, 1)),
           (f"pca.{b}.eigenvalues", [D, H, L], 0, struct.pack("<2f", 2, 1)), (f"pca.{b}.mean", [D, H, L], 0, struct.pack("<2f", 0, 0))]
put("fuzz_gguf", "pca", gguf(pca, ts))
for p in ("models/tiny-random/llama-2-tiny-random.gguf", "tokenizers/ggml-vocab-llama-spm.gguf"):
    d = head(os.path.join(shared, p), 8192)
    if d: put("fuzz_gguf", "head_" + os.path.basename(p), d)

# ---- whole models (fuzz_model; only in the build folder, run.sh allows 2 MB inputs here)
for p in ("models/tiny-random/llama-2-tiny-random.gguf", "models/stories260K/stories260K.bin"):
    d = head(os.path.join(shared, p), 2 << 20)
    if d: put("fuzz_model", os.path.basename(p), d)
put("fuzz_model", "arch_only", gguf([gkv("general.architecture", 8, gstr("llama")), u32("llama.block_count", 1000000)]))

# ---- safetensors
def st(hdr, data=b""):
    h = hdr.encode(); return struct.pack("<Q", len(h)) + h + data
put("fuzz_safetensors", "one", st('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}', b"\0" * 8))
put("fuzz_safetensors", "meta", st('{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},'
                                   '"x":{"dtype":"F16","shape":[],"data_offsets":[8,10]}}', b"\0" * 10))
put("fuzz_safetensors", "bad_dtype", st('{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}', b"\0" * 8))
d = head(os.path.join(shared, "models/fixture-15m/model.safetensors"), 1 << 20)
if d:
    n = struct.unpack("<Q", d[:8])[0]
    if n + 8 <= len(d): put("fuzz_safetensors", "fixture_header", d[:8 + n])

# ---- config.json / generation_config.json / tokenizer_config.json
for p in ("models/fixture-15m/config.json", "models/fixture-15m/generation_config.json", "models/fixture-15m/tokenizer_config.json"):
    d = head(os.path.join(shared, p), 1 << 16)
    if d: put("fuzz_hf_config", os.path.basename(p), d)
put("fuzz_hf_config", "gemma3", b'{"model_type":"gemma3_text","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,'
    b'"num_attention_heads":2,"num_key_value_heads":1,"head_dim":32,"vocab_size":100,"sliding_window":4,'
    b'"rope_scaling":{"rope_type":"linear","factor":8.0}}')
put("fuzz_hf_config", "llama3", b'{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,'
    b'"num_attention_heads":2,"vocab_size":100,"rope_parameters":{"rope_theta":500000,"rope_type":"llama3","factor":8,'
    b'"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":8192}}')
put("fuzz_hf_config", "deep", b"[" * 2000)

# ---- model.safetensors.index.json (the harness's fixed shard holds a, b, model.embed_tokens.weight)
put("fuzz_st_index", "one_shard", b'{"metadata":{"total_size":20},"weight_map":{"a":"model-00001-of-00001.safetensors",'
    b'"b":"model-00001-of-00001.safetensors","model.embed_tokens.weight":"model-00001-of-00001.safetensors"}}')
put("fuzz_st_index", "two_shards", b'{"weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}}')
put("fuzz_st_index", "wrong_shard", b'{"weight_map":{"a":"s1.safetensors","zz":"s1.safetensors"}}')
put("fuzz_st_index", "bad", b'{"weight_map":{"a":"../x.safetensors","b":7}}')

# ---- tokenizer_config.json alone (chat template + token overrides)
d = head(os.path.join(shared, "models/fixture-15m/tokenizer_config.json"), 1 << 16)
if d: put("fuzz_tokenizer_config", "fixture", d)
put("fuzz_tokenizer_config", "overrides", b'{"add_bos_token":true,"add_eos_token":false,"bos_token":"<s>",'
    b'"eos_token":{"content":"</s>"},"unk_token":"a","pad_token":"<|endoftext|>"}')
put("fuzz_tokenizer_config", "named", b'{"chat_template":[{"name":"tool_use","template":"x"},{"name":"default",'
    b'"template":"{% for m in messages %}{{ m.role }}: {{ m.content }}\\n{% endfor %}"}]}')
chatdir = os.path.join(src, "tests", "data", "chat")
for name in sorted(os.listdir(chatdir)) if os.path.isdir(chatdir) else []:
    if name.endswith(".jinja"):
        t = open(os.path.join(chatdir, name), encoding="utf-8").read()
        put("fuzz_tokenizer_config", "tpl_" + name, json.dumps({"chat_template": t, "bos_token": "<s>"}).encode())

# ---- tokenizer.json [\0 tokenizer_config.json]
bpe = ('{"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"\u0120":3,"<|endoftext|>":4},"merges":["a b",["ab","b"]]},'
       '"added_tokens":[{"id":4,"content":"<|endoftext|>","special":true}],"pre_tokenizer":{"type":"Sequence",'
       '"pretokenizers":[{"type":"Split","pattern":{"Regex":"\\s+"},"behavior":"Isolated"},{"type":"ByteLevel"}]},'
       '"decoder":{"type":"ByteLevel"}}')
put("fuzz_tokenizer_json", "bpe", bpe.encode() + b"\0" + b'{"add_bos_token":true,"bos_token":"<|endoftext|>"}')
put("fuzz_tokenizer_json", "spm", b'{"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"\xe2\x96\x81"},'
    b'{"type":"Replace","pattern":{"String":" "},"content":"\xe2\x96\x81"}]},"model":{"type":"BPE","byte_fallback":true,'
    b'"unk_token":"<unk>","vocab":{"<unk>":0,"<s>":1,"<0x41>":2,"\xe2\x96\x81a":3,"a":4},"merges":["\xe2\x96\x81 a"]}}')
d = head(os.path.join(shared, "models/fixture-15m/tokenizer.json"), 1 << 20)
c = head(os.path.join(shared, "models/fixture-15m/tokenizer_config.json"), 1 << 16)
if d and c: put("fuzz_tokenizer_json", "fixture", d + b"\0" + c)

# ---- llama2.c checkpoint header and tokenizer
hdr = struct.pack("<7i", 64, 172, 5, 8, 4, 512, 512)
d = head(os.path.join(shared, "models/stories260K/stories260K.bin"), 28)
put("fuzz_llama2c", "hdr", d or hdr)
put("fuzz_llama2c", "tiny", struct.pack("<7i", 2, 2, 1, 1, 1, -3, 2) + b"\0" * 400)
d = head(os.path.join(shared, "models/stories260K/tok512.bin"), 1 << 16)
if d: put("fuzz_llama2c_tok", "tok512", struct.pack("<H", 511) + d)
put("fuzz_llama2c_tok", "tiny", struct.pack("<H", 1) + struct.pack("<I", 4) + struct.pack("<fI", 0.0, 1) + b"a" +
    struct.pack("<fI", -1.0, 6) + b"<0x41>")

# ---- tokenizer: [vocab index][mode] text / ids
texts = [b"Hello world", b"  leading spaces\n\n\ttabs", "caf\u00e9 \u65e5\u672c\u8a9e \U0001F600 123456".encode(),
         b"<s>special</s><|endoftext|><|im_start|>", b"\xff\xfe invalid \xc3", b"don't I'll 3.14 a_b-c"]
for v in range(12):
    for i, t in enumerate(texts): put("fuzz_tokenize", f"t{v}_{i}", bytes([v, 4 * (i & 1) + 2 * (i & 2 > 0)]) + t)
    put("fuzz_tokenize", f"d{v}", bytes([v, 1]) + struct.pack("<8i", 0, 1, 2, 3, 300, -1, 2**31 - 1, 13))

# ---- CLI arguments
for i, a in enumerate([["-m", "x.gguf", "-p", "hi", "-n", "16", "--temp", "0.7"], ["--attn=loki", "--kf", "0.25", "--d=8"],
                       ["--seed", "18446744073709551615", "--chat", "pos"], ["--dvar", "90", "--gqa-max", "--sinks", "4"],
                       ["--attn", "h2o", "--evict-kf", "0.5", "--recent", "-1"], ["--help"]]):
    put("fuzz_args", f"a{i}", b"\0".join(x.encode() for x in a))

# ---- chat templates: template \0 bos \0 eos \0 role \0 content ...
chat = os.path.join(src, "tests", "data", "chat")
for name in sorted(os.listdir(chat)) if os.path.isdir(chat) else []:
    if name.endswith(".jinja"):
        t = open(os.path.join(chat, name), "rb").read()
        put("fuzz_chat", name, b"\0".join([t, b"<s>", b"</s>", b"system", b"Be brief.", b"user", b"Hi", b"assistant", b"Hello", b"user", b"Bye"]))

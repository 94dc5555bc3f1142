#!/usr/bin/env python3
"""A reference Gemma 3 forward pass in numpy (float64 activations) on the
weights of a GGUF file, dequantized by gguf-py (the `gguf` package from PyPI,
which the loki team did not write), for tests/test_gemma3_model.c.

It follows transformers' Gemma3ForCausalLM (modeling_gemma3.py) step by
step, written independently of loki's C code:
  x = embed * sqrt(n_embd); per layer: h = rmsnorm(x) (weights as stored:
  llama.cpp's converter already added Gemma's 1 to every norm weight);
  q, k, v projections; per-head rmsnorm of q and k; rotate-half RoPE with
  base 10000 on local layers and `gemma3.rope.freq_base` on global ones
  (every 6th layer, il % 6 == 5); causal softmax(q k^T / sqrt(head_dim)),
  local layers masked to the last `sliding_window` keys; o projection,
  post-attention rmsnorm, residual; rmsnorm, GeGLU (tanh GELU), down
  projection, post-feed-forward rmsnorm, residual; final rmsnorm; tied head.

  gemma3_ref.py --probe                 exit 0 when gguf and numpy import
  gemma3_ref.py --norms GGUF            prints "norms N as_stored K minus_one M": of
      the N values of every *norm.weight tensor, K are exactly bf16 numbers as
      stored and M after subtracting 1 (the checkpoint is bf16, so M == N shows
      that the converter stored 1 + w)
  gemma3_ref.py GGUF IDS OUT LAST N_GREEDY
      IDS: token ids, whitespace separated, in a file; writes OUT: float32
      logits (LAST, n_vocab) of the last LAST positions; prints
      "greedy ID:MARGIN ..." with N_GREEDY greedy tokens after the prompt,
      each with its logit lead over the runner-up.

The wheel lookup is tests/quant_ref.py's (LOKI_WHEELS, ~/.cache/loki/wheels).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from quant_ref import import_gguf  # noqa: E402


def main():
    gguf = import_gguf()
    import numpy as np
    from gguf.quants import dequantize
    if sys.argv[1:] == ["--probe"]:
        return 0
    if sys.argv[1] == "--norms":
        r = gguf.GGUFReader(sys.argv[2])
        n = k = m = 0
        for t in r.tensors:
            if t.name.endswith("norm.weight"):
                a = np.asarray(t.data, dtype=np.float32)
                n += a.size
                k += int(((a.view(np.uint32) & 0xFFFF) == 0).sum())
                m += int((((a - np.float32(1)).view(np.uint32) & 0xFFFF) == 0).sum())
        print(f"norms {n} as_stored {k} minus_one {m}")
        return 0
    path, ids_path, out_path, last, n_greedy = sys.argv[1:6]
    last, n_greedy = int(last), int(n_greedy)
    r = gguf.GGUFReader(path)

    def kv(key, default=None):
        f = r.fields.get(key)
        return default if f is None else f.contents()

    E = kv("gemma3.embedding_length")
    L = kv("gemma3.block_count")
    H = kv("gemma3.attention.head_count")
    Hkv = kv("gemma3.attention.head_count_kv")
    D = kv("gemma3.attention.key_length")
    W = kv("gemma3.attention.sliding_window")
    eps = kv("gemma3.attention.layer_norm_rms_epsilon")
    theta_global = kv("gemma3.rope.freq_base", 1e6)
    theta_local = 10000.0  # llama.cpp / Gemma3TextConfig.rope_local_base_freq
    T = {}
    for t in r.tensors:
        a = dequantize(t.data, t.tensor_type).astype(np.float32)
        T[t.name] = a.reshape([int(x) for x in reversed(t.shape)])
    emb = T["token_embd.weight"]  # (V, E) float32

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    def rope(x, pos, theta):  # x (n, heads, D), rotate-half pairs (i, i + D/2)
        half = D // 2
        inv = 1.0 / theta ** (np.arange(0, D, 2, dtype=np.float64) / D)
        ang = pos[:, None] * inv[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        a, b = x[..., :half], x[..., half:]
        return np.concatenate([a * c - b * s, b * c + a * s], -1)

    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))

    def mat(name):
        return T[name].T.astype(np.float64)

    def forward(ids, n_last):
        n = len(ids)
        x = emb[ids].astype(np.float64) * np.sqrt(E)
        pos = np.arange(n, dtype=np.float64)
        i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        for il in range(L):
            p = f"blk.{il}."
            local = (il + 1) % 6 != 0
            h = rms(x, T[p + "attn_norm.weight"])
            q = (h @ mat(p + "attn_q.weight")).reshape(n, H, D)
            k = (h @ mat(p + "attn_k.weight")).reshape(n, Hkv, D)
            v = (h @ mat(p + "attn_v.weight")).reshape(n, Hkv, D)
            q = rms(q, T[p + "attn_q_norm.weight"])
            k = rms(k, T[p + "attn_k_norm.weight"])
            theta = theta_local if local else theta_global
            q, k = rope(q, pos, theta), rope(k, pos, theta)
            mask = (j <= i) & ((i - j < W) if local else True)
            out = np.zeros((n, H, D))
            for hh in range(H):
                kh = hh // (H // Hkv)
                sc = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(float(D))
                sc = np.where(mask, sc, -np.inf)
                sc = np.exp(sc - sc.max(-1, keepdims=True))
                sc /= sc.sum(-1, keepdims=True)
                out[:, hh, :] = sc @ v[:, kh, :]
            a = out.reshape(n, H * D) @ mat(p + "attn_output.weight")
            x = x + rms(a, T[p + "post_attention_norm.weight"])
            h = rms(x, T[p + "ffn_norm.weight"])
            g = h @ mat(p + "ffn_gate.weight")
            u = h @ mat(p + "ffn_up.weight")
            f = (gelu_tanh(g) * u) @ mat(p + "ffn_down.weight")
            x = x + rms(f, T[p + "post_ffw_norm.weight"])
        xl = rms(x[-n_last:], T["output_norm.weight"])
        return (xl.astype(np.float32) @ emb.T).astype(np.float64)  # (n_last, V)

    with open(ids_path) as f:
        ids = [int(s) for s in f.read().split()]
    lg = forward(ids, last)
    lg.astype(np.float32).tofile(out_path)
    greedy = []
    seq = list(ids)
    for step in range(n_greedy):
        row = lg[-1] if step == 0 else forward(seq, 1)[-1]
        top2 = np.argsort(-row)[:2]
        nxt = int(top2[0])
        greedy.append(f"{nxt}:{row[top2[0]] - row[top2[1]]:.4f}")
        seq.append(nxt)
    print("greedy " + " ".join(greedy))
    return 0


if __name__ == "__main__":
    sys.exit(main())

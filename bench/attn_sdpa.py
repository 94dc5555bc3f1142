#!/usr/bin/env python3
"""bench/attn_sdpa.py - the baseline of `loki bench attention --device cuda`:
one decode step of PyTorch's torch.nn.functional.scaled_dot_product_attention
(bf16; q (B, H, 1, D), k and v (B, Hkv, S, D), enable_gqa when Hkv < H) on the
same grid of shapes, timed the same way:

  - a cache smaller than 1 GiB is allocated C = ceil(1 GiB / size) times and
    the steps rotate over the copies, so the 60 MB L2 never holds it;
  - a CUDA graph (torch.cuda.CUDAGraph) holds the C steps; it is replayed
    `reps` times between two CUDA events, per step = time / (C * reps), the
    median of `runs` such timings.

Prints one JSON line per shape on stdout (bench/attn_table.py joins them with
loki's), notes on stderr. Needs only torch.

    python3 bench/attn_sdpa.py [--S 4096,16384] [--B 1,16] [--kv-heads 32,8] [--paper]
"""
import argparse
import contextlib
import datetime
import json
import math
import statistics
import sys

GIB = 1 << 30


def int_list(s):
    try:
        v = [int(x) for x in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of integers, got '{s}'")
    if not v or min(v) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive integers, got '{s}'")
    return v


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    # the shape options have the names and defaults of `loki bench attention --device cuda`
    ap.add_argument("--S", type=int_list, default="4096,16384,32768,65536,131072", help="cached tokens per sequence")
    ap.add_argument("--B", type=int_list, default="1,16", help="sequences in the batch")
    ap.add_argument("--heads", type=int, default=32, help="query heads")
    ap.add_argument("--kv-heads", type=int_list, default="32,8", help="KV heads, each dividing --heads")
    ap.add_argument("--head-dim", type=int, default=128, help="head dimension")
    ap.add_argument("--paper", action="store_true", help="also the paper's setting: B=16, 32/32 heads, S=3072")
    ap.add_argument("-r", "--reps", type=int, default=50, help="graph replays per timing")
    ap.add_argument("--runs", type=int, default=3, help="timings; the median is reported")
    ap.add_argument("--dev-mem-gib", type=float, default=100.0, help="skip shapes whose K+V exceed this (GiB)")
    ap.add_argument("--device-id", type=int, default=0, help="GPU index")
    ap.add_argument("--backend", default="auto", choices=["auto", "flash", "efficient", "cudnn", "math"],
                    help="SDPA backend (auto: PyTorch's choice)")
    a = ap.parse_args()
    if any(a.heads % h for h in a.kv_heads) or a.heads <= 0 or a.head_dim <= 0 or a.reps < 1 or a.runs < 1:
        ap.error("--heads must be a positive multiple of every --kv-heads; --head-dim, -r, --runs positive")
    return a


def backend_ctx(torch, name):
    """A context that restricts SDPA to one backend (auto: no restriction)."""
    if name == "auto":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel
    return sdpa_kernel({"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
                        "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}[name])


def gqa_call(torch, F, dev):
    """The SDPA call for Hkv < H: enable_gqa=True (torch >= 2.5); else the
    query heads of a group as G query rows over their KV head (the same
    result: a decode step has one query token and no mask)."""
    q = torch.zeros(1, 2, 1, 8, device=dev, dtype=torch.bfloat16)
    kv = torch.zeros(1, 1, 4, 8, device=dev, dtype=torch.bfloat16)
    try:
        F.scaled_dot_product_attention(q, kv, kv, enable_gqa=True)
        return "enable_gqa", lambda q, k, v: F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
    except TypeError:
        def rows(q, k, v):
            B, H, _, D = q.shape
            return F.scaled_dot_product_attention(q.view(B, k.shape[1], H // k.shape[1], D), k, v).view(B, H, 1, D)
        return "query-rows", rows


def chosen_backend(torch, a, q, k, v):
    """The backend SDPA dispatches these inputs to (private API, so '?' when
    it is not there): with --backend auto, which kernel the numbers are."""
    try:
        from torch.nn.attention import SDPBackend
        with backend_ctx(torch, a.backend):
            n = torch._fused_sdp_choice(q, k, v, enable_gqa=k.shape[1] < q.shape[1])
        return SDPBackend(n).name.lower()
    except Exception:  # noqa: BLE001 - informational only
        return "?"


def time_shape(torch, F, a, dev, gqa, B, H, Hkv, D, S):
    """Per-step microseconds (median, all runs), the copies, the backend."""
    size = B * Hkv * S * D * 2 * 2  # K and V, bf16
    C = math.ceil(GIB / size) if size < GIB else 1
    q = torch.randn(B, H, 1, D, device=dev, dtype=torch.bfloat16)
    ks = [torch.empty(B, Hkv, S, D, device=dev, dtype=torch.bfloat16).normal_() for _ in range(C)]
    vs = [torch.empty(B, Hkv, S, D, device=dev, dtype=torch.bfloat16).uniform_(-1, 1) for _ in range(C)]
    call = gqa[1] if Hkv < H else F.scaled_dot_product_attention
    used = chosen_backend(torch, a, q, ks[0], vs[0])
    with backend_ctx(torch, a.backend):
        # warm-up on a side stream before the capture, as torch.cuda.graphs asks
        side = torch.cuda.Stream(device=dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(2):
                for c in range(C):
                    call(q, ks[c], vs[c])
        torch.cuda.current_stream(dev).wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            outs = [call(q, ks[c], vs[c]) for c in range(C)]
    for _ in range(max(3, a.reps // 5)):
        g.replay()
    torch.cuda.synchronize(dev)
    runs = []
    for _ in range(a.runs):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        for _ in range(a.reps):
            g.replay()
        e1.record()
        e1.synchronize()
        runs.append(e0.elapsed_time(e1) * 1e3 / (C * a.reps))
    del g, outs, ks, vs, q
    return statistics.median(runs), runs, C, used


def main():
    a = parse_args()
    try:
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        sys.exit(f"attn_sdpa.py: needs PyTorch ({e})")
    if not torch.cuda.is_available():
        sys.exit("attn_sdpa.py: no CUDA device visible to PyTorch (torch.cuda.is_available() is False)")
    dev = torch.device("cuda", a.device_id)
    torch.cuda.set_device(dev)
    gqa = gqa_call(torch, F, dev)
    common = {"bench": "attention", "impl": "sdpa", "gpu": torch.cuda.get_device_name(dev),
              "torch": torch.__version__, "backend": a.backend,
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")}
    shapes = [(B, a.heads, Hkv, a.head_dim, S, "grid") for B in a.B for Hkv in a.kv_heads for S in a.S]
    if a.paper:  # Loki paper, Llama-2-7B-like attention
        shapes.append((16, 32, 32, a.head_dim, 3072, "paper"))
    print(f"attn_sdpa.py: {common['gpu']}, torch {torch.__version__}, backend {a.backend}, "
          f"GQA through {gqa[0]}", file=sys.stderr)
    for B, H, Hkv, D, S, setting in shapes:
        size = B * Hkv * S * D * 2 * 2
        if size > a.dev_mem_gib * GIB:
            print(f"attn_sdpa.py: B={B} Hkv={Hkv} S={S} skipped: K+V is {size / GIB:.1f} GiB, "
                  f"over --dev-mem-gib {a.dev_mem_gib:g}", file=sys.stderr)
            continue
        try:
            us, runs, C, used = time_shape(torch, F, a, dev, gqa, B, H, Hkv, D, S)
        except torch.cuda.OutOfMemoryError as e:
            print(f"attn_sdpa.py: B={B} Hkv={Hkv} S={S} skipped: out of GPU memory ({str(e).splitlines()[0]})",
                  file=sys.stderr)
            continue
        except RuntimeError as e:  # e.g. "No available kernel" for a --backend that cannot run the shape
            print(f"attn_sdpa.py: B={B} Hkv={Hkv} S={S} skipped: {str(e).splitlines()[0]}", file=sys.stderr)
            continue
        finally:
            torch.cuda.empty_cache()
        gbs = size / (us * 1e-6) / 1e9
        row = dict(common, setting=setting, B=B, heads=H, kv_heads=Hkv, head_dim=D, S=S, us=round(us, 3),
                   us_runs=[round(x, 3) for x in runs], bytes=size, gb_per_s=round(gbs, 1), copies=C,
                   reps=a.reps, backend_used=used, gqa_impl=gqa[0] if Hkv < H else "none")
        print(json.dumps(row), flush=True)
        print(f"attn_sdpa.py: B={B:<2} H={H}/{Hkv:<2} S={S:<6} {us:9.1f} us {gbs:7.1f} GB/s  ({C} copies, {used})",
              file=sys.stderr)


if __name__ == "__main__":
    main()

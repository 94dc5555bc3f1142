#!/usr/bin/env python3
"""Dequantize ggml blocks with gguf-py (the `gguf` package from PyPI, which
the loki team did not write) for tests/test_quant.c.

  quant_ref.py --probe                      exit 0 when gguf and numpy import
  quant_ref.py TYPE_ID IN OUT [TYPE_ID IN OUT ...]
      IN: raw blocks of ggml type TYPE_ID (one row); OUT: float32 values

When `gguf` is not installed, a wheel from scripts/get-gguf-py.sh is used:
the newest gguf-*.whl in $LOKI_WHEELS (default ~/.cache/loki/wheels); a
wheel is a zip, so Python imports from it directly. gguf needs numpy and
PyYAML at import (Debian: python3-numpy, python3-yaml).
"""
import glob
import os
import sys


def import_gguf():
    try:
        import gguf  # noqa: F401
        return gguf
    except ImportError:
        pass
    wheels = os.environ.get("LOKI_WHEELS", os.path.expanduser("~/.cache/loki/wheels"))
    found = sorted(glob.glob(os.path.join(wheels, "gguf-*.whl")), key=os.path.getmtime)
    if not found:
        raise ImportError(f"gguf not installed and no gguf-*.whl in {wheels}")
    sys.path.insert(0, found[-1])
    import gguf
    return gguf


def main(argv):
    try:
        import numpy as np
        gguf = import_gguf()
        from gguf.quants import dequantize
        from gguf.constants import GGMLQuantizationType
    except Exception as e:  # ImportError, or a broken dependency
        print(f"quant_ref: cannot import gguf/numpy: {e}", file=sys.stderr)
        return 3
    if argv[1:2] == ["--probe"]:
        print(f"gguf {getattr(gguf, '__file__', '?')} numpy {np.__version__}")
        return 0
    args = argv[1:]
    if not args or len(args) % 3:
        print(__doc__, file=sys.stderr)
        return 2
    for i in range(0, len(args), 3):
        qtype = GGMLQuantizationType(int(args[i]))
        raw = np.fromfile(args[i + 1], dtype=np.uint8)
        out = dequantize(raw, qtype).astype(np.float32).reshape(-1)
        out.tofile(args[i + 2])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

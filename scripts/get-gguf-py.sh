#!/usr/bin/env bash
# Fetch gguf-py (the `gguf` package from PyPI) as a wheel into a cache outside
# the repository, for tests/quant_ref.py (the reference dequantization that
# tests/test_quant.c compares against). Not installed into any environment:
# the helper imports it from the wheel. Its import needs numpy and PyYAML
# (Debian python3-numpy, python3-yaml; scripts/setup.sh installs them).
# Idempotent; a registry that cannot be reached is reported, not fatal (the
# comparison then skips). LOKI_WHEELS overrides the cache directory.
set -uo pipefail
dir=${LOKI_WHEELS:-$HOME/.cache/loki/wheels}
mkdir -p "$dir"
if ls "$dir"/gguf-*.whl >/dev/null 2>&1; then
  echo "get-gguf-py: $(ls -t "$dir"/gguf-*.whl | head -1)"
  exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
  echo "get-gguf-py: pip not available; the gguf-py comparison in test_quant will skip" >&2
  exit 0
fi
if python3 -m pip download -q --no-deps --only-binary=:all: -d "$dir" gguf; then
  echo "get-gguf-py: $(ls -t "$dir"/gguf-*.whl | head -1)"
else
  echo "get-gguf-py: could not download gguf from PyPI; the gguf-py comparison in test_quant will skip" >&2
fi
exit 0

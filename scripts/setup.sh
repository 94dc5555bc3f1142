#!/usr/bin/env bash
# Install the Debian packages loki needs to build and test (only the missing
# ones). Runs apt-get as root, or through sudo when available.
set -euo pipefail
# python3-numpy, python3-yaml: tests/quant_ref.py (gguf-py reference dequantization);
# python3-jinja2: tests/chat_template_ref.py (cli_chat.sh re-renders the chat template fixture)
# clang: the libFuzzer harnesses (fuzz/run.sh, run by .ci/run)
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libpcre2-dev libcjson-dev libssl-dev python3
      python3-numpy python3-yaml python3-jinja2 clang)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all build dependencies present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

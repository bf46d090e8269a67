#!/usr/bin/env bash
# The GPU check, for a machine with a GPU lent for a few minutes: builds luzao with every backend
# the machine has (CUDA when nvcc is present), runs the conformance suite on each device, then
# `luzao bench` on SmolLM2-135M and a Qwen2.5-0.5B-shaped model on each GPU device and on cpu.
# Everything it prints is also written under $OUT (default build/device-check/out).
#
# Usage: bench/device-check.sh [DEVICE...]      (default: every cuda:N and opencl:N found)
# Environment: LUZAO_BUILD (build dir), OUT, JOBS (default nproc), CUDA_ARCH (default native),
#              SMOLLM2 (a SmolLM2-135M GGUF; default the luzao cache), BENCH_TYPES (q4_0,q8_0).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${LUZAO_BUILD:-$ROOT/build/device-check}"
OUT="${OUT:-$BUILD/out}"
JOBS="${JOBS:-$(nproc)}"
CACHE="${LUZAO_CACHE:-$HOME/.cache/luzao}"
SMOLLM2="${SMOLLM2:-$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
BENCH_TYPES="${BENCH_TYPES:-q4_0,q8_0}"
mkdir -p "$OUT"
log() { printf '== %s\n' "$*" | tee -a "$OUT/summary.txt"; }
: >"$OUT/summary.txt"

log "machine: $(nproc) cores; $(nvidia-smi -L 2>/dev/null | tr '\n' ';' || echo 'no nvidia-smi')"
if command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  cuda=ON
else
  cuda=OFF
  log "nvcc not found: building without CUDA"
fi

log "configure + build ($BUILD, CUDA $cuda, arch ${CUDA_ARCH:-native})"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLUZAO_BUILD_BENCH=OFF \
  -DLUZAO_BACKEND_CUDA="$cuda" -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-native}" \
  >"$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
cmake --build "$BUILD" --target luzao test_conformance -j "$JOBS" >"$OUT/build.log" 2>&1 ||
  { tail -40 "$OUT/build.log"; exit 1; }

log "luzao devices (quick conformance per device)"
"$BUILD/luzao" devices -v | tee "$OUT/devices.txt" || true

if (($# > 0)); then
  devices=("$@")
else
  mapfile -t devices < <(awk '$1 ~ /^(cuda|opencl):[0-9]+$/ {print $1}' "$OUT/devices.txt")
fi
log "devices under test: ${devices[*]:-none}"

for dev in "${devices[@]}"; do
  filter="*${dev/:/_}*"
  log "conformance on $dev"
  "$BUILD/tests/conformance/test_conformance" --gtest_filter="$filter" \
    | tee "$OUT/conformance-${dev/:/_}.txt" | grep -E 'nmse|FAILED|PASSED' || true
done

# Models: SmolLM2 from the cache; Qwen2.5-0.5B-shaped random weights from bench/make_models.py.
models=()
[[ -f "$SMOLLM2" ]] && models+=("$SMOLLM2")
if python3 -c 'import gguf, numpy' 2>/dev/null; then
  python3 "$ROOT/bench/make_models.py" -o "$CACHE/bench-models" --models qwen2.5-0.5b \
    --types "$BENCH_TYPES" >"$OUT/make_models.log" 2>&1 || log "make_models.py failed (see log)"
  for f in "$CACHE"/bench-models/*qwen2.5-0.5b*.gguf; do [[ -f "$f" ]] && models+=("$f"); done
else
  log "python gguf/numpy missing: no Qwen2.5-0.5B-shaped model"
fi

for model in "${models[@]}"; do
  for dev in "${devices[@]}" cpu; do
    name="$(basename "$model" .gguf)-${dev/:/_}"
    log "bench $(basename "$model") on $dev"
    "$BUILD/luzao" bench -m "$model" --device "$dev" -p 512 -n 128 -r 3 \
      >"$OUT/bench-$name.txt" 2>&1 || log "bench failed on $dev (see bench-$name.txt)"
    tail -4 "$OUT/bench-$name.txt" | tee -a "$OUT/summary.txt"
  done
done
log "done: results in $OUT"

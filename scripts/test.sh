#!/usr/bin/env bash
# Runs luzao's tests: installs the dependencies, builds the asan and release presets, pulls
# SmolLM2, runs every gtest under ASan+UBSan, the end-to-end pytest suite against the asan binary
# and, where clang is present, a short fuzzing round. Stops at the first build failure; test
# stages all run and are summarised at the end. Exits non-zero when any stage failed.
#
# Usage: scripts/test.sh [--quick]     --quick skips fuzzing
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
for arg in "$@"; do
  case "$arg" in
    --quick) quick=1 ;;
    -h | --help)
      sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "test.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
  esac
done

VENV="${LUZAO_VENV:-$HOME/.cache/luzao/venv}"
failed=()
stage() {  # stage NAME COMMAND...: runs a test stage, remembers a failure and carries on
  local name="$1"
  shift
  printf '\n=== %s ===\n' "$name" >&2
  if ! "$@"; then
    failed+=("$name")
    printf '=== %s: FAILED ===\n' "$name" >&2
  fi
}

scripts/setup-deps.sh

for preset in asan release; do
  printf '\n=== build %s ===\n' "$preset" >&2
  cmake --preset "$preset"
  cmake --build --preset "$preset" -j"$(nproc)"
done

printf '\n=== pull smollm2 ===\n' >&2
if model="$(build/release/luzao pull smollm2)"; then
  export LUZAO_SMOLLM2="$model"
else
  failed+=("pull smollm2")
fi

stage "ctest (asan)" ctest --preset asan -j2 --output-on-failure
export LUZAO_BIN="$PWD/build/asan/luzao"
stage "pytest tests/e2e (asan)" "$VENV/bin/python" -m pytest tests/e2e -q -ra
if ((quick)); then
  echo "fuzzing skipped (--quick)" >&2
elif ! command -v clang >/dev/null; then
  echo "fuzzing skipped: clang is not installed" >&2
elif [[ ! -f scripts/fuzz.sh ]]; then
  echo "fuzzing skipped: scripts/fuzz.sh does not exist" >&2
else
  stage "fuzz (30 s per target)" bash scripts/fuzz.sh 30
fi

if ((${#failed[@]} > 0)); then
  printf '\ntest.sh: these stages FAILED:\n' >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\ntest.sh: all stages passed\n' >&2

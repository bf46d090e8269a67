#!/usr/bin/env bash
# Builds the GGUF libFuzzer target with the `fuzz` preset (clang) and runs it for N seconds.
# Usage: scripts/fuzz.sh [SECONDS=60] [extra libFuzzer flags...]
# Corpus: build/fuzz/corpus/gguf (kept between runs), seeded from tests/e2e/test_bad_gguf.py.
# Crashes are written to build/fuzz/artifacts/; the script exits non-zero when one is found.
set -euo pipefail

seconds="${1:-60}"
shift || true
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
build="build/fuzz"

cmake --preset fuzz >/dev/null
cmake --build "$build" --target luzao_fuzz_gguf -j"${JOBS:-2}"

corpus="$build/corpus/gguf"
seeds="$build/seeds/gguf"
artifacts="$build/artifacts/"
mkdir -p "$corpus" "$seeds" "$artifacts"
python3 tests/e2e/test_bad_gguf.py --write-seeds "$seeds" >/dev/null
python3 tests/format/make_gguf_fixture.py "$seeds/fixture.gguf" >/dev/null 2>&1 ||
  cp tests/format/data/fixture.gguf "$seeds/fixture.gguf"

log="$build/fuzz_gguf.log"
set +e
"$build/tests/fuzz/luzao_fuzz_gguf" -max_total_time="$seconds" -max_len=16384 -timeout=10 \
  -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$artifacts" \
  -dict=tests/fuzz/gguf.dict "$@" "$corpus" "$seeds" >"$log" 2>&1
status=$?
set -e

runs="$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')"
echo "luzao_fuzz_gguf: ${runs:-?} executions in ${seconds} s (log: $log)"
if [[ $status -ne 0 ]]; then
  echo "fuzzer stopped with status $status; last lines of the log:" >&2
  tail -n 40 "$log" >&2
  ls -1 "$artifacts" >&2 || true
  exit "$status"
fi

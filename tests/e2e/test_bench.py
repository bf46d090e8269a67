"""`luzao bench` end to end: llama-bench's JSON rows, and --parallel (several sequences decoding
together, as llama-batched-bench's -npl) on a tiny model."""
from __future__ import annotations

import json

from conftest import run_cli


def test_parallel_generation_rows(luzao_bin, tiny_models):
    model = str(tiny_models["tiny-q8_0"])
    proc = run_cli(luzao_bin, "bench", "-m", model, "-p", "8", "-n", "5", "--parallel", "1,3",
                   "-r", "2", "-t", "2", "--json", timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    rows = json.loads(proc.stdout)
    assert [(r["test"], r["n_prompt"], r["n_gen"], r["n_parallel"]) for r in rows] == [
        ("pp8", 8, 0, 1), ("tg5", 0, 5, 1), ("tg5x3", 0, 5, 3)]
    for r in rows:
        assert len(r["samples_ts"]) == 2 and all(v > 0 for v in r["samples_ts"])


def test_parallel_table_and_bad_values(luzao_bin, tiny_models):
    model = str(tiny_models["tiny-q8_0"])
    proc = run_cli(luzao_bin, "bench", "-m", model, "-p", "0", "-n", "4", "--parallel", "2",
                   "-r", "1", "-t", "1", timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert "tg4x2" in proc.stdout.decode()
    bad = run_cli(luzao_bin, "bench", "-m", model, "-n", "4", "--parallel", "0", timeout=60)
    assert bad.returncode != 0
    assert "parallel" in bad.stderr.decode()

"""`luzao perplexity` end to end: chunking and counts, KL-divergence against saved base logits,
bad input; with llama-cpp-python, agreement within 1% with llama.cpp's perplexity computed the way
llama-perplexity does (bench/perplexity_llamacpp.py) on SmolLM2 and tinyshakespeare.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, run_cli

SHAKESPEARE = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"


def perplexity(luzao: Path, model: Path, text: Path, *extra: str) -> dict:
    proc = run_cli(luzao, "perplexity", "-m", str(model), "-f", str(text), "-t", "2", "--json", *extra,
                   timeout=900)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return json.loads(proc.stdout.decode().strip().splitlines()[-1])


@pytest.fixture(scope="module")
def tiny(tiny_models) -> Path:
    return tiny_models["tiny-f32"]


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ppl") / "text.txt"
    path.write_text("when the code is wrong the tests say so, and the model learns. " * 300)
    return path


def test_chunks_and_counts(luzao_bin, tiny, text):
    r = perplexity(luzao_bin, tiny, text, "--ctx", "64", "--chunks", "3")
    assert r["chunks"] == 3 and r["ctx"] == 64
    assert r["scored_tokens"] == 3 * (64 - 1 - 32), "second half of each chunk, minus the last token"
    assert r["ppl"] > 1.0 and r["ppl_stderr"] > 0
    all_chunks = perplexity(luzao_bin, tiny, text, "--ctx", "64")
    assert all_chunks["chunks"] == all_chunks["text_tokens"] // 64
    # Smaller forward passes change nothing but rounding.
    small = perplexity(luzao_bin, tiny, text, "--ctx", "64", "--chunks", "3", "-b", "16")
    assert abs(small["ppl"] - r["ppl"]) / r["ppl"] < 1e-4


def test_kl_divergence(luzao_bin, tiny, text, tmp_path):
    base = tmp_path / "base.lzl"
    r = perplexity(luzao_bin, tiny, text, "--ctx", "64", "--chunks", "3", "--save-logits", str(base))
    assert base.is_file() and not Path(str(base) + ".tmp").exists()
    same = perplexity(luzao_bin, tiny, text, "--ctx", "64", "--chunks", "3", "--kl-base", str(base))
    assert same["kld_mean"] < 1e-4, "against itself (fp16-rounded log-probs)"
    assert same["top1_agreement"] == 1.0
    assert abs(same["base_ppl"] - r["ppl"]) / r["ppl"] < 1e-3
    q = tmp_path / "q2k.gguf"
    assert run_cli(luzao_bin, "quantize", str(tiny), str(q), "Q2_K").returncode == 0
    worse = perplexity(luzao_bin, q, text, "--ctx", "64", "--chunks", "3", "--kl-base", str(base))
    assert worse["kld_mean"] > 10 * max(same["kld_mean"], 1e-6)
    assert worse["kld_p99"] >= worse["kld_mean"]
    assert 0 <= worse["top1_agreement"] <= 1
    # A base saved with another context size does not fit.
    proc = run_cli(luzao_bin, "perplexity", "-m", str(tiny), "-f", str(text), "--ctx", "32",
                   "--chunks", "2", "--kl-base", str(base))
    err = proc.stderr.decode().strip().splitlines()[-1]
    assert proc.returncode != 0 and "error" in err and "ctx" in err, err


def test_bad_input(luzao_bin, tiny, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("too short")
    proc = run_cli(luzao_bin, "perplexity", "-m", str(tiny), "-f", str(short), "--ctx", "64")
    err = proc.stderr.decode().strip().splitlines()
    assert proc.returncode != 0 and "2 * ctx" in err[-1], err


def test_agrees_with_llamacpp(luzao_bin, smollm2_model):
    pytest.importorskip("llama_cpp")
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not found")
    ours = perplexity(luzao_bin, smollm2_model, SHAKESPEARE, "--chunks", "3")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "perplexity_llamacpp.py"), "-m",
                           str(smollm2_model), "-f", str(SHAKESPEARE), "--chunks", "3", "-t", "2"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    theirs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert ours["text_tokens"] == theirs["text_tokens"], "same tokenization of the whole text"
    assert ours["scored_tokens"] == theirs["scored_tokens"]
    rel = abs(ours["ppl"] - theirs["ppl"]) / theirs["ppl"]
    print(f"luzao {ours['ppl']:.4f}, llama.cpp {theirs['ppl']:.4f}, relative difference {rel:.4%}")
    assert rel < 0.01

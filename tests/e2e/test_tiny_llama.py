"""luzao against Hugging Face transformers on the tiny random Llama models (tests/golden/
tiny_llama.json, recorded by scripts/record_goldens.py): tokenization, last-prompt logits and the
greedy continuation, for F32 (tied and untied output), F16, Q8_0, Q4_0 and Q4_1 weights.

Tolerances (reference: transformers in float64 on the gguf-dequantized weights). llama.cpp, run on
the same models when the goldens were recorded, lands at relative max diff <= 2.1e-3 for F32/F16
(it keeps the KV cache in F16) and <= 4.3e-2 (relative rms <= 4.4e-2) for the block formats (it
rounds activations to 8 bits); its greedy path left the reference only at steps whose top-2 gap
was <= 0.18. The limits below are about twice those figures.
"""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import (GOLDEN, REPO, Tolerance, compare_greedy, compare_logits, load_golden,
                      luzao_generate, run_cli)

GOLD = load_golden("tiny_llama.json")
FLOAT_TOL = Tolerance(rel_max=5e-3, rel_rms=5e-3, margin=0.05)
QUANT_TOL = Tolerance(rel_max=8e-2, rel_rms=8e-2, margin=0.3)
EOG = {2}  # </s>
DEVICES = ["cpu", "reference"]


def tolerance(model: str) -> Tolerance:
    return FLOAT_TOL if model.startswith(("tiny-f32", "tiny-f16")) else QUANT_TOL


CASES = [(m, i) for m, e in GOLD["models"].items() for i in range(len(e["cases"]))]
CASE_IDS = [f"{m}-{GOLD['models'][m]['cases'][i]['name']}" for m, i in CASES]


def test_goldens_cover_every_variant():
    sys.path.insert(0, str(REPO / "scripts"))
    import make_tiny_llama

    assert sorted(GOLD["models"]) == sorted(v.name for v in make_tiny_llama.VARIANTS)


@pytest.mark.parametrize("model", sorted(GOLD["models"]))
def test_regenerated_weights_match_goldens(tiny_models, model):
    sys.path.insert(0, str(REPO / "scripts"))
    import make_tiny_llama

    digest = make_tiny_llama.weights_digest(tiny_models[model])
    assert digest == GOLD["models"][model]["weights_sha256"], (
        f"{model}: make_tiny_llama.py now writes other weights than the goldens were recorded "
        f"on; rerun scripts/record_goldens.py all")


@pytest.mark.parametrize("case", range(len(GOLD["models"]["tiny-f32"]["cases"])),
                         ids=[c["name"] for c in GOLD["models"]["tiny-f32"]["cases"]])
def test_tokenize_matches_llama_cpp(luzao_bin, tiny_models, case):
    c = GOLD["models"]["tiny-f32"]["cases"][case]
    proc = run_cli(luzao_bin, "tokenize", "-m", str(tiny_models["tiny-f32"]), "-p", c["prompt"],
                   "--add-special")
    assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
    assert json.loads(proc.stdout) == c["prompt_ids"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model,case", CASES, ids=CASE_IDS)
def test_logits_and_greedy_match_transformers(luzao_bin, tiny_models, tmp_path, model, case,
                                              device):
    entry = GOLD["models"][model]
    c = entry["cases"][case]
    ref_logits = np.load(GOLDEN / entry["hf_logits"])[case]
    tol = tolerance(model)
    r = luzao_generate(luzao_bin, tiny_models[model], c["prompt"], GOLD["n_predict"], tmp_path,
                       extra=("--device", device), timeout=120)
    assert r.prompt_ids == c["prompt_ids"]
    compare_logits(r.logits, ref_logits, tol)
    compare_greedy(r.generated, c["hf"]["generated"], c["hf"]["margins"], EOG, GOLD["n_predict"],
                   tol.margin)


def test_tolerances_admit_llama_cpp():
    """The limits must hold for llama.cpp itself, the second engine, on the same goldens (a
    guard against tolerances drifting below what a correct engine achieves)."""
    for model, entry in GOLD["models"].items():
        tol = tolerance(model)
        cpp = np.load(GOLDEN / entry["llama_cpp_logits"])
        hf = np.load(GOLDEN / entry["hf_logits"])
        for k, c in enumerate(entry["cases"]):
            compare_logits(cpp[k], hf[k], tol)
            compare_greedy(c["llama_cpp"]["generated"], c["hf"]["generated"], c["hf"]["margins"],
                           EOG, GOLD["n_predict"], tol.margin)


def test_tolerances_reject_a_wrong_model():
    """The limits must catch a real mistake: logits of the untied model judged against the
    tied model's reference (same weights but the output matrix), and F32 against Q4_0."""
    hf = {m: np.load(GOLDEN / e["hf_logits"]) for m, e in GOLD["models"].items()}
    with pytest.raises(AssertionError):
        compare_logits(hf["tiny-f32"][0], hf["tiny-f32-tied"][0], QUANT_TOL)
    with pytest.raises(AssertionError):
        compare_logits(hf["tiny-q4_0"][0], hf["tiny-f32"][0], FLOAT_TOL)

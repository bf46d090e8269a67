"""`luzao quantize` and `luzao imatrix` end to end.

Always (CI venv: gguf, numpy): the tiny models quantized to every scheme, read back by the gguf
package (an independent reader), each tensor dequantized by gguf and compared with the source; bad
input gives a one-line error and leaves no output file.
With llama-cpp-python (the reference venv): luzao's files are byte-identical to llama.cpp's
quantizer's on SmolLM2 (F16 base), llama.cpp loads luzao's Q4_K_M file and its greedy text is
luzao's on the same file, and a file quantized by llama.cpp runs in luzao.
"""
from __future__ import annotations

import ctypes
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import compare_greedy, luzao_generate, run_cli

gguf = pytest.importorskip("gguf")

SCHEMES = ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"]
# Relative RMS error bound of a dequantized tensor against its source, per element type
# (well above each format's typical error on Gaussian-like weights, far below garbage's ~1).
REL_RMS = {"F16": 1e-3, "Q8_0": 0.02, "Q6_K": 0.05, "Q5_0": 0.08, "Q5_1": 0.08, "Q5_K": 0.08,
           "Q4_0": 0.15, "Q4_1": 0.15, "Q4_K": 0.15, "Q3_K": 0.3, "Q2_K": 0.6}
LLAMA_FTYPE = {"Q8_0": 7, "Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q2_K": 10, "Q3_K_M": 12,
               "Q4_K_M": 15, "Q5_K_M": 17, "Q6_K": 18}


def quantize(luzao: Path, src: Path, dst: Path, scheme: str, *extra: str):
    return run_cli(luzao, "quantize", str(src), str(dst), scheme, "-t", "2", *extra)


def tensors(path: Path) -> dict:
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def dequant(t) -> np.ndarray:
    return np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float64).reshape(-1)


@pytest.fixture(scope="module")
def tiny(tiny_models) -> Path:
    return tiny_models["tiny-f32"]


@pytest.mark.parametrize("scheme", SCHEMES)
def test_tiny_model_every_scheme(luzao_bin, tiny, tmp_path, scheme):
    out = tmp_path / f"{scheme}.gguf"
    proc = quantize(luzao_bin, tiny, out, scheme)
    assert proc.returncode == 0, proc.stderr.decode()
    assert not Path(str(out) + ".tmp").exists()
    src, dst = tensors(tiny), tensors(out)
    assert list(src) == list(dst), "tensor order and names are kept"
    r = gguf.GGUFReader(str(out))
    assert int(r.fields["general.file_type"].parts[-1][0]) == LLAMA_FTYPE[scheme]
    changed = 0
    for name, s in src.items():
        d = dst[name]
        assert list(d.shape) == list(s.shape), name
        if len(s.shape) < 2 or name.endswith("norm.weight"):
            assert d.tensor_type == s.tensor_type, f"{name}: 1-D tensors are copied"
            continue
        ref = dequant(s)
        got = dequant(d)
        rel = np.sqrt(np.mean((got - ref) ** 2) / np.mean(ref ** 2))
        assert rel < REL_RMS[d.tensor_type.name], f"{name} as {d.tensor_type.name}: rel rms {rel:.3g}"
        changed += d.tensor_type != s.tensor_type
    assert changed > 0
    # The quantized model runs.
    run = run_cli(luzao_bin, "run", "-m", str(out), "-p", "hello", "-n", "4", "--temp", "0")
    assert run.returncode == 0, run.stderr.decode()[-2000:]


def one_line_error(proc) -> str:
    err = proc.stderr.decode().strip()
    assert proc.returncode != 0
    assert err.count("\n") == 0, f"expected one line, got:\n{err}"
    assert "error" in err
    return err


def test_bad_input(luzao_bin, tiny, tmp_path):
    out = tmp_path / "out.gguf"
    err = one_line_error(quantize(luzao_bin, tiny, out, "Q7_Z"))
    assert "Q7_Z" in err and "Q4_K_M" in err
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + b"\0" * 10)
    one_line_error(quantize(luzao_bin, junk, out, "Q4_0"))
    err = one_line_error(quantize(luzao_bin, tiny, out, "Q4_0", "--override", "attn_q"))
    assert "REGEX=TYPE" in err
    # An imatrix made for another model: names that match nothing here.
    w = gguf.GGUFWriter(str(tmp_path / "other.imatrix"), arch="")
    w.add_string("general.type", "imatrix")
    w.add_tensor("blk.0.not_a_tensor.weight.in_sum2", np.ones((1, 4096), dtype=np.float32))
    w.add_tensor("blk.0.not_a_tensor.weight.counts", np.ones((1, 1), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    err = one_line_error(quantize(luzao_bin, tiny, out, "Q4_0", "--imatrix", str(tmp_path / "other.imatrix")))
    assert "another model" in err
    assert not out.exists() and not Path(str(out) + ".tmp").exists(), "no partial output"


def test_imatrix_then_quantize(luzao_bin, tiny, tmp_path):
    text = tmp_path / "calib.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    imatrix = tmp_path / "tiny.imatrix"
    proc = run_cli(luzao_bin, "imatrix", "-m", str(tiny), "-f", str(text), "-o", str(imatrix),
                   "--ctx", "64", "--chunks", "3")
    assert proc.returncode == 0, proc.stderr.decode()
    r = gguf.GGUFReader(str(imatrix))
    names = {t.name for t in r.tensors}
    src = tensors(tiny)
    for layer in range(2):
        for w in ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]:
            name = f"blk.{layer}.{w}.weight"
            assert f"{name}.in_sum2" in names and f"{name}.counts" in names, name
            sums = next(t for t in r.tensors if t.name == f"{name}.in_sum2")
            counts = next(t for t in r.tensors if t.name == f"{name}.counts")
            assert sums.data.size == src[name].shape[0], name  # one value per input column
            assert float(counts.data.reshape(-1)[0]) == 3 * 64, "every token of every chunk"
            assert np.all(sums.data >= 0) and np.any(sums.data > 0)
    out = tmp_path / "q4.gguf"
    proc = quantize(luzao_bin, tiny, out, "Q4_0", "--imatrix", str(imatrix))
    assert proc.returncode == 0, proc.stderr.decode()
    plain = tmp_path / "plain.gguf"
    assert quantize(luzao_bin, tiny, plain, "Q4_0").returncode == 0
    a, b = tensors(out), tensors(plain)
    assert any(a[n].data.tobytes() != b[n].data.tobytes() for n in a), "the imatrix changed rounding"


# ---- against llama.cpp (reference venv only) ----

@pytest.fixture(scope="module")
def llama_cpp():
    return pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def smollm2_f16(luzao_bin, smollm2_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("smollm2") / "smollm2-f16.gguf"
    proc = quantize(luzao_bin, smollm2_model, out, "F16")
    assert proc.returncode == 0, proc.stderr.decode()
    return out


def llama_quantize(llama_cpp, src: Path, dst: Path, ftype: int) -> None:
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p)) == 0


@pytest.mark.parametrize("scheme", ["Q4_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K"])
def test_bytes_equal_llamacpp_quantizer(llama_cpp, luzao_bin, smollm2_f16, tmp_path, scheme):
    ours, theirs = tmp_path / "luzao.gguf", tmp_path / "llama.gguf"
    assert quantize(luzao_bin, smollm2_f16, ours, scheme).returncode == 0
    llama_quantize(llama_cpp, smollm2_f16, theirs, LLAMA_FTYPE[scheme])
    a, b = tensors(ours), tensors(theirs)
    assert set(a) == set(b)
    for name in a:
        assert a[name].tensor_type == b[name].tensor_type, name
        assert a[name].data.tobytes() == b[name].data.tobytes(), f"{name} ({a[name].tensor_type.name})"


def llama_greedy(llama_cpp, model: Path, prompt_ids: list[int], n: int) -> tuple[list[int], list[float]]:
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=256, n_threads=2, logits_all=False, verbose=False)
    ids, margins = [], []
    llm.eval(prompt_ids)
    for _ in range(n + 1):
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        top2 = np.sort(logits)[-2:]
        margins.append(float(top2[1] - top2[0]))
        tok = int(np.argmax(logits))
        if tok in (0, 2) or len(ids) == n:
            break
        ids.append(tok)
        llm.eval([tok])
    return ids, margins


@pytest.mark.parametrize("scheme", ["Q4_K_M", "Q2_K"])
def test_llamacpp_runs_luzao_quantized(llama_cpp, luzao_bin, smollm2_f16, tmp_path, scheme):
    model = tmp_path / f"{scheme}.gguf"
    assert quantize(luzao_bin, smollm2_f16, model, scheme).returncode == 0
    r = luzao_generate(luzao_bin, model, "The capital of France is", 24, tmp_path)
    ref, margins = llama_greedy(llama_cpp, model, r.prompt_ids, 24)
    compare_greedy(r.generated, ref, margins, {0, 2}, 24, 0.25)


def test_luzao_runs_llamacpp_quantized(llama_cpp, luzao_bin, smollm2_f16, tmp_path):
    model = tmp_path / "llama-q4km.gguf"
    llama_quantize(llama_cpp, smollm2_f16, model, LLAMA_FTYPE["Q4_K_M"])
    r = luzao_generate(luzao_bin, model, "Once upon a time", 24, tmp_path)
    ref, margins = llama_greedy(llama_cpp, model, r.prompt_ids, 24)
    compare_greedy(r.generated, ref, margins, {0, 2}, 24, 0.25)

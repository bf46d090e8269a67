"""`luzao convert` end to end on tiny random Hugging Face directories (llama, qwen2, qwen3) that
scripts/record_convert_goldens.py builds with numpy + json only (no torch needed here).

Against the goldens recorded by that script (tests/golden/convert.json):
- llama.cpp's convert_hf_to_gguf.py on the same directories: every metadata key and value (arrays
  by hash) and the tensor table (names, shapes, dtypes) for --outtype f32, f16, bf16 and q8_0,
  read back with the gguf package (an independent reader).
- transformers (float64) on the same directories: the prompt's token ids, the last-position
  logits and the greedy continuation, which luzao must reproduce on its converted F32 file.
- llama.cpp (llama-cpp-python) loading luzao's converted file: recorded by the script, and rerun
  here when llama_cpp is importable.
Bad input gives a one-line error naming the file, tensor or key, exit code 1, and no output file.
A reference-tier test (skipped without transformers) saves a tiny model with `save_pretrained`
and compares logits with transformers directly.
"""
from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import (GOLDEN, REPO, Tolerance, compare_greedy, compare_logits, load_golden,
                      luzao_generate, run_cli)

gguf = pytest.importorskip("gguf")
sys.path.insert(0, str(REPO / "scripts"))
import record_convert_goldens as rc  # noqa: E402

GOLD = load_golden("convert.json")
VARIANTS = list(rc.VARIANTS)
# Keys llama.cpp derives from the directory name and parameter count (cosmetic, not compared).
COSMETIC = {"general.name", "general.size_label", "general.basename", "general.finetune"}
# F32 weights equal to the HF ones: the tiny-model tolerances (tests/e2e/test_tiny_qwen.py).
FLOAT_TOL = Tolerance(rel_max=5e-3, rel_rms=5e-3, margin=0.05)


@pytest.fixture(scope="module")
def hf_dirs(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("hf")
    return {name: rc.build_hf_dir(out, name) for name in VARIANTS}


@pytest.fixture(scope="module")
def converted(luzao_bin, hf_dirs, tmp_path_factory) -> dict[tuple[str, str], Path]:
    out = tmp_path_factory.mktemp("gguf")
    files = {}
    for name, d in hf_dirs.items():
        for outtype in rc.OUTTYPES:
            path = out / f"{name}-{outtype}.gguf"
            proc = run_cli(luzao_bin, "convert", str(d), str(path), "--outtype", outtype, "-q")
            assert proc.returncode == 0, proc.stderr.decode(errors="replace")
            assert not Path(str(path) + ".tmp").exists()
            files[(name, outtype)] = path
    return files


def test_hf_dirs_are_the_recorded_ones(hf_dirs):
    """The directories are rebuilt byte for byte (the goldens describe these exact weights)."""
    for name, d in hf_dirs.items():
        digest = {p.name: rc_sha256(p) for p in sorted(d.iterdir())}
        assert digest == GOLD["models"][name]["files_sha256"], name


def rc_sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("outtype", rc.OUTTYPES)
@pytest.mark.parametrize("name", VARIANTS)
def test_metadata_and_tensors_match_llama_cpp_converter(converted, name, outtype):
    ref = GOLD["models"][name]["llama_cpp_convert"][outtype]
    mine = rc.gguf_summary(converted[(name, outtype)])
    ref_meta = {k: v for k, v in ref["metadata"].items() if k not in COSMETIC}
    my_meta = {k: v for k, v in mine["metadata"].items() if k not in COSMETIC}
    assert sorted(my_meta) == sorted(ref_meta), (
        f"keys only in luzao's file: {sorted(set(my_meta) - set(ref_meta))}; "
        f"only in llama.cpp's: {sorted(set(ref_meta) - set(my_meta))}")
    for key, want in ref_meta.items():
        assert my_meta[key] == want, f"{key}: luzao {my_meta[key]}, llama.cpp {want}"
    assert mine["tensors"] == ref["tensors"]


@pytest.mark.parametrize("name", VARIANTS)
def test_f32_weights_are_the_hf_weights(converted, name):
    """Every tensor equals the HF one (llama Q/K rows permuted for ggml's rope layout)."""
    v = rc.VARIANTS[name]
    _, _, _, n_tok = rc.tokenizer_files(name)
    hf = rc.hf_tensors(name, n_tok + v["pad_vocab"])
    r = gguf.GGUFReader(str(converted[(name, "f32")]))
    got = {t.name: np.asarray(t.data) for t in r.tensors}
    store = {"F32": np.float32, "F16": np.float16}

    def stored(a):  # the HF file's rounding (BF16 by truncation to its nearest even)
        if v["dtype"] == "BF16":
            u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
            return (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(
                np.float32)
        return a.astype(store[v["dtype"]]).astype(np.float32)

    hd = v["head_dim"] or rc.DIM // rc.N_HEAD
    for i in range(rc.N_LAYER):
        want = stored(hf[f"model.layers.{i}.self_attn.q_proj.weight"])
        if name == "llama":  # row (h, i, j) <- (h, j, i) over [heads, 2, hd/2]
            want = want.reshape(rc.N_HEAD, 2, hd // 2, -1).swapaxes(1, 2).reshape(want.shape)
        np.testing.assert_array_equal(got[f"blk.{i}.attn_q.weight"], want)
        np.testing.assert_array_equal(got[f"blk.{i}.ffn_down.weight"],
                                      stored(hf[f"model.layers.{i}.mlp.down_proj.weight"]))
    np.testing.assert_array_equal(got["token_embd.weight"],
                                  stored(hf["model.embed_tokens.weight"]))
    assert ("output.weight" in got) == (not v["tied"])


@pytest.mark.parametrize("device", ["cpu", "reference"])
@pytest.mark.parametrize("name", VARIANTS)
def test_logits_match_transformers(luzao_bin, converted, tmp_path, name, device):
    gold = GOLD["models"][name]["hf"]
    res = luzao_generate(luzao_bin, converted[(name, "f32")], GOLD["prompt"], GOLD["n_predict"],
                         tmp_path, extra=("--device", device, "--cache-type", "f32"))
    assert res.prompt_ids == gold["prompt_ids"], "tokenization differs from HF tokenizers"
    ref = np.load(GOLDEN / "convert" / f"{name}.hf.npy")
    compare_logits(res.logits, ref, FLOAT_TOL)
    compare_greedy(res.generated, gold["generated"], gold["margins"], set(gold["eog"]),
                   GOLD["n_predict"], FLOAT_TOL.margin)


@pytest.mark.parametrize("name", VARIANTS)
def test_llama_cpp_loads_luzao_file(converted, name):
    """Recorded: llama.cpp loaded luzao's F32 file and followed transformers' greedy path. Rerun
    live where llama-cpp-python is installed (the reference venv)."""
    rec = GOLD["models"][name]["llama_cpp_on_luzao_file"]
    assert rec["loads"] and rec["same_greedy_as_hf"], rec
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return
    import record_goldens as rg

    llm = rg.llama_open(converted[(name, "f32")], 256)
    _, gen, _, _ = rg.llama_greedy(llm, GOLD["models"][name]["hf"]["prompt_ids"], GOLD["n_predict"])
    assert gen == rec["generated"]


# ---------------------------------------------------------------------------------------------
# Bad input

def expect_failure(luzao_bin, src: Path, out: Path, *needles: str, extra=()):
    proc = run_cli(luzao_bin, "convert", str(src), str(out), *extra)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 1, f"exit {proc.returncode}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for n in needles:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"
    assert not out.exists() and not Path(str(out) + ".tmp").exists()


@pytest.fixture()
def broken(hf_dirs, tmp_path) -> Path:
    d = tmp_path / "qwen3"
    shutil.copytree(hf_dirs["qwen3"], d)
    return d


def header_of(path: Path) -> tuple[dict, int]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), n


def rewrite_header(path: Path, header: dict) -> None:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n:])


def test_truncated_safetensors(luzao_bin, broken, tmp_path):
    st = broken / "model.safetensors"
    st.write_bytes(st.read_bytes()[:-1000])
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "model.safetensors", "truncated")


def test_header_length_past_the_file(luzao_bin, broken, tmp_path):
    st = broken / "model.safetensors"
    raw = st.read_bytes()
    st.write_bytes(struct.pack("<Q", len(raw) * 2) + raw[8:])
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "model.safetensors", "header length")


def test_unsupported_dtype(luzao_bin, broken, tmp_path):
    st = broken / "model.safetensors"
    header, _ = header_of(st)
    header["model.norm.weight"]["dtype"] = "I32"  # same size as F32, so the file stays valid
    rewrite_header(st, header)
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "model.norm.weight", "I32")


def test_missing_tensor(luzao_bin, broken, tmp_path):
    st = broken / "model.safetensors"
    header, _ = header_of(st)
    del header["model.layers.1.mlp.up_proj.weight"]
    rewrite_header(st, header)
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "blk.1.ffn_up.weight")


def test_shape_contradicts_config(luzao_bin, broken, tmp_path):
    cfg = json.loads((broken / "config.json").read_text())
    cfg["intermediate_size"] = 256
    (broken / "config.json").write_text(json.dumps(cfg))
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "mlp.", "shape", "config.json")


def test_unknown_architecture(luzao_bin, broken, tmp_path):
    cfg = json.loads((broken / "config.json").read_text())
    cfg["architectures"] = ["GPTNeoXForCausalLM"]
    (broken / "config.json").write_text(json.dumps(cfg))
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "config.json", "GPTNeoXForCausalLM")


def test_missing_config_key(luzao_bin, broken, tmp_path):
    cfg = json.loads((broken / "config.json").read_text())
    del cfg["num_attention_heads"]
    (broken / "config.json").write_text(json.dumps(cfg))
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "config.json", "num_attention_heads")


def test_shard_missing_from_index(luzao_bin, hf_dirs, tmp_path):
    d = tmp_path / "qwen2"
    shutil.copytree(hf_dirs["qwen2"], d)
    (d / "model-00002-of-00002.safetensors").unlink()
    expect_failure(luzao_bin, d, tmp_path / "o.gguf", "model-00002-of-00002.safetensors")


def test_sentencepiece_only_is_reported(luzao_bin, broken, tmp_path):
    (broken / "tokenizer.json").unlink()
    (broken / "tokenizer.model").write_bytes(b"\x0a\x00")
    expect_failure(luzao_bin, broken, tmp_path / "o.gguf", "SentencePiece")


def test_failure_keeps_an_existing_output(luzao_bin, broken, tmp_path):
    """A failed conversion leaves a previous file at the output path untouched."""
    out = tmp_path / "o.gguf"
    out.write_bytes(b"previous")
    (broken / "config.json").write_text("{not json")
    proc = run_cli(luzao_bin, "convert", str(broken), str(out))
    assert proc.returncode == 1 and b"config.json" in proc.stderr
    assert out.read_bytes() == b"previous"


# ---------------------------------------------------------------------------------------------
# Reference tier: a model saved by transformers itself

def test_save_pretrained_model_matches_transformers(luzao_bin, hf_dirs, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    for name, cls, cfg_cls, extra in [
            ("llama", "LlamaForCausalLM", "LlamaConfig", {}),
            ("qwen2", "Qwen2ForCausalLM", "Qwen2Config", {}),
            ("qwen3", "Qwen3ForCausalLM", "Qwen3Config", {"head_dim": 32})]:
        torch.manual_seed(0)
        src_cfg = json.loads((hf_dirs[name] / "config.json").read_text())
        cfg = getattr(transformers, cfg_cls)(
            vocab_size=src_cfg["vocab_size"], hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=256, tie_word_embeddings=name != "llama",
            bos_token_id=src_cfg["bos_token_id"], eos_token_id=src_cfg["eos_token_id"], **extra)
        model = getattr(transformers, cls)(cfg).to(torch.float64)
        with torch.no_grad():  # initializer_range 0.02 gives near-uniform logits: widen them
            for p in model.parameters():
                if p.dim() == 2:
                    p.mul_(20.0)
        d = tmp_path / name
        model.to(torch.float32).save_pretrained(str(d))
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(hf_dirs[name] / f, d / f)
        out = tmp_path / f"{name}.gguf"
        proc = run_cli(luzao_bin, "convert", str(d), str(out), "--outtype", "f32", "-q")
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        ids = GOLD["models"][name]["hf"]["prompt_ids"]
        res = luzao_generate(luzao_bin, out, GOLD["prompt"], 1, tmp_path,
                             extra=("--cache-type", "f32"))
        assert res.prompt_ids == ids
        ref_model = getattr(transformers, cls).from_pretrained(str(d), dtype=torch.float64)
        with torch.no_grad():
            ref = ref_model(torch.tensor([ids])).logits[0, -1].numpy()
        compare_logits(res.logits, ref, FLOAT_TOL)

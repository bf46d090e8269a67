#!/usr/bin/env python3
"""Goldens for `luzao convert`: tiny random Hugging Face model directories (llama, qwen2, qwen3),
built deterministically here with numpy + json only (safetensors and tokenizer.json written by
hand), so that CI rebuilds them byte for byte without torch.

References recorded (tests/golden/convert.json, tests/golden/convert/*.npy):
- llama.cpp's own converter, convert_hf_to_gguf.py (from the llama-cpp-python sdist, unpacked in
  ~/.cache/luzao/llama-cpp-python-src: `pip download --no-deps --no-binary :all:
  llama-cpp-python==0.3.36`, then the vendor/llama.cpp/{convert_hf_to_gguf.py,conversion,gguf-py}
  folders), run on the same directory: its metadata keys/values and tensor names, shapes and
  dtypes for every --outtype (f32, f16, bf16, q8_0). Its pre-tokenizer check hashes a tokenization against a list
  of known models, which a random vocabulary can never be in: the script names the pre-tokenizer
  instead (the one patch; `sentencepiece` is also stubbed out, as these directories have no
  tokenizer.model and the converter imports it before looking for one).
- Hugging Face transformers (torch venv) in float64 on the directory: the prompt's token ids (the
  `tokenizers` library on tokenizer.json), last-position logits and the greedy continuation.
- llama.cpp via llama-cpp-python (ref venv) on luzao's converted file: that it loads, and its
  greedy tokens.

Usage:
  record_convert_goldens.py build OUT_DIR            [any venv with numpy] write the HF dirs
  record_convert_goldens.py all --luzao BIN          run everything (uses both venvs)
  record_convert_goldens.py hf DIR... / llamacpp ... internal steps (one per venv)
"""
from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
GOLDEN_JSON = GOLDEN / "convert.json"
CACHE = Path.home() / ".cache" / "luzao"
TORCH_PY = CACHE / "torch-venv" / "bin" / "python"
REF_PY = CACHE / "ref-venv" / "bin" / "python"
LLAMA_SRC = CACHE / "llama-cpp-python-src"
SEED = 20251128
N_PREDICT = 8
OUTTYPES = ("f32", "f16", "bf16", "q8_0")

CORPUS = """The quick brown fox jumps over the lazy dog. Hello world, hello stove, hello kitchen.
A stove of your own is the start of a new kitchen; the tests should be honest and fail when the
code is wrong. We count one two three four five, 12345 and 2026. The cat sat on the mat and the
dog sat on the log. Models that run on any device are better than models that run on one."""

PROMPT = "Hello world! The quick brown fox counts 12345 cats."

LLAMA3_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?"
                "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
QWEN2_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?"
               "[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
                   "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + "
                   "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
                   "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")

# name: (HF class, model_type, stored dtype, shards, tied, head_dim in config, extra vocab rows)
VARIANTS = {
    "llama": dict(cls="LlamaForCausalLM", model_type="llama", dtype="F16", shards=1, tied=False,
                  head_dim=None, pad_vocab=0, n_merges=120, pre="llama-bpe"),
    "qwen2": dict(cls="Qwen2ForCausalLM", model_type="qwen2", dtype="BF16", shards=2, tied=True,
                  head_dim=None, pad_vocab=21, n_merges=100, pre="qwen2"),
    "qwen3": dict(cls="Qwen3ForCausalLM", model_type="qwen3", dtype="F32", shards=1, tied=True,
                  head_dim=32, pad_vocab=0, n_merges=90, pre="qwen2"),
}
DIM, N_LAYER, N_HEAD, N_HEAD_KV, FFN, CTX = 64, 2, 4, 2, 128, 256


# ---------------------------------------------------------------------------------------------
# HF directory builder (numpy + json only; used by tests/e2e/test_convert.py)

def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def learn_merges(n_merges: int) -> tuple[list[str], list[tuple[str, str]]]:
    """Greedy BPE on the corpus's space-prefixed words; ties broken by the pair's text."""
    b2u = bytes_to_unicode()
    words = Counter()
    for i, w in enumerate(CORPUS.split()):
        text = (" " if i else "") + w
        words[tuple(b2u[b] for b in text.encode("utf-8"))] += 1
    merges: list[tuple[str, str]] = []
    new_tokens: list[str] = []
    for _ in range(n_merges):
        pairs = Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] += c
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        new_tokens.append(best[0] + best[1])
        merged = Counter()
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            merged[tuple(out)] += c
        words = merged
    base = [b2u[b] for b in range(256)]
    return base + new_tokens, merges


def specials_for(name: str) -> list[tuple[str, bool]]:
    if name == "llama":
        return [("<|begin_of_text|>", True), ("<|end_of_text|>", True), ("<|eot_id|>", True),
                ("<|start_header_id|>", True), ("<|end_header_id|>", True)]
    return [("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
            ("<tool_call>", False)]


def tokenizer_files(name: str) -> tuple[dict, dict, dict, int]:
    """(tokenizer.json, tokenizer_config.json, config extras, tokenizer vocab size)."""
    v = VARIANTS[name]
    vocab_list, merges = learn_merges(v["n_merges"])
    vocab = {t: i for i, t in enumerate(vocab_list)}
    added = []
    for content, special in specials_for(name):
        added.append({"id": len(vocab) + len(added), "content": content, "single_word": False,
                      "lstrip": False, "rstrip": False, "normalized": not special,
                      "special": special})
    ids = {a["content"]: a["id"] for a in added}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                  "use_regex": False}
    regex = LLAMA3_REGEX if v["pre"] == "llama-bpe" else QWEN2_REGEX
    pre = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        byte_level]}
    # qwen3 stores merges as [a, b] pairs (tokenizers >= 0.20), the others as "a b" strings.
    merge_list = [[a, b] for a, b in merges] if name == "qwen3" else [f"{a} {b}" for a, b in merges]
    if name == "llama":
        bos = "<|begin_of_text|>"
        post = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
             "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos: {"id": bos, "ids": [ids[bos]], "tokens": [bos]}}}]}
        tc = {"bos_token": bos, "eos_token": "<|eot_id|>", "chat_template": LLAMA3_TEMPLATE,
              "model_max_length": CTX, "tokenizer_class": "PreTrainedTokenizerFast",
              "clean_up_tokenization_spaces": True}
        extra = {"bos_token_id": ids[bos], "eos_token_id": ids["<|end_of_text|>"]}
    else:
        post = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                "use_regex": False}
        eos = {"__type": "AddedToken", "content": "<|im_end|>", "lstrip": False,
               "normalized": False, "rstrip": False, "single_word": False, "special": True}
        tc = {"bos_token": None, "eos_token": eos,
              "pad_token": "<|endoftext|>", "add_bos_token": False, "model_max_length": CTX,
              "tokenizer_class": "PreTrainedTokenizerFast", "errors": "replace"}
        if name == "qwen2":
            tc["chat_template"] = CHATML  # qwen3 ships it as chat_template.jinja instead
        extra = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"]}
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": None, "pre_tokenizer": pre, "post_processor": post,
          "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                      "use_regex": True},
          "model": {"type": "BPE", "dropout": None, "unk_token": None,
                    "continuing_subword_prefix": None, "end_of_word_suffix": None,
                    "fuse_unk": False, "byte_fallback": False,
                    "ignore_merges": name == "llama", "vocab": vocab, "merges": merge_list}}
    return tj, tc, extra, len(vocab) + len(added)


def hf_tensors(name: str, n_vocab: int) -> dict[str, np.ndarray]:
    """Random float32 weights in HF layout ([out, in]), seeded per variant."""
    v = VARIANTS[name]
    rng = np.random.default_rng([SEED, list(VARIANTS).index(name)])
    hd = v["head_dim"] or DIM // N_HEAD
    q, kv = N_HEAD * hd, N_HEAD_KV * hd

    def w(*shape, scale=None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    t = {"model.embed_tokens.weight": w(n_vocab, DIM, scale=1.0)}
    for i in range(N_LAYER):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = norm(DIM)
        t[p + "self_attn.q_proj.weight"] = w(q, DIM)
        t[p + "self_attn.k_proj.weight"] = w(kv, DIM)
        t[p + "self_attn.v_proj.weight"] = w(kv, DIM)
        # Output projections 4x the usual scale: the blocks, not the embedding carried along the
        # residual, then decide the (tied) logits, so greedy does not just repeat the last token.
        t[p + "self_attn.o_proj.weight"] = w(DIM, q, scale=4.0 / np.sqrt(q))
        if name == "qwen2":
            for proj, n in (("q", q), ("k", kv), ("v", kv)):
                t[p + f"self_attn.{proj}_proj.bias"] = w(n, scale=0.2)
        if name == "qwen3":
            t[p + "self_attn.q_norm.weight"] = norm(hd)
            t[p + "self_attn.k_norm.weight"] = norm(hd)
        t[p + "post_attention_layernorm.weight"] = norm(DIM)
        t[p + "mlp.gate_proj.weight"] = w(FFN, DIM)
        t[p + "mlp.up_proj.weight"] = w(FFN, DIM)
        t[p + "mlp.down_proj.weight"] = w(DIM, FFN, scale=4.0 / np.sqrt(FFN))
    t["model.norm.weight"] = norm(DIM)
    if not v["tied"]:
        t["lm_head.weight"] = w(n_vocab, DIM)
    return t


def to_dtype_bytes(a: np.ndarray, dtype: str) -> bytes:
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    # BF16: round to nearest even from float32 (finite inputs)
    u = a.astype("<f4").view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")
    return r.tobytes()


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    """The safetensors layout by hand: u64 header length, JSON header, data (8-byte padded)."""
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        blob = to_dtype_bytes(tensors[name], dtype)
        header[name] = {"dtype": dtype, "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def build_hf_dir(out: Path, name: str) -> Path:
    """Writes the variant's HF directory under out/name and returns it."""
    v = VARIANTS[name]
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    tj, tc, extra, n_tok = tokenizer_files(name)
    n_vocab = n_tok + v["pad_vocab"]
    config = {"architectures": [v["cls"]], "model_type": v["model_type"], "hidden_act": "silu",
              "hidden_size": DIM, "intermediate_size": FFN, "num_hidden_layers": N_LAYER,
              "num_attention_heads": N_HEAD, "num_key_value_heads": N_HEAD_KV,
              "max_position_embeddings": CTX, "rms_norm_eps": 1e-6 if name != "llama" else 1e-5,
              "rope_parameters": {"rope_theta": 10000.0 if name == "llama" else 1000000.0,
                                  "rope_type": "default"},
              "tie_word_embeddings": v["tied"], "vocab_size": n_vocab,
              "dtype": {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[v["dtype"]],
              "attention_bias": name == "qwen2", "attention_dropout": 0.0,
              "initializer_range": 0.02, "use_cache": True, "pad_token_id": None, **extra}
    if v["head_dim"]:
        config["head_dim"] = v["head_dim"]
    (d / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (d / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": extra["bos_token_id"], "eos_token_id": extra["eos_token_id"]}) + "\n")
    (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False) + "\n", encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
    if name == "qwen3":
        (d / "chat_template.jinja").write_text(CHATML)
    tensors = hf_tensors(name, n_vocab)
    if v["shards"] == 1:
        write_safetensors(d / "model.safetensors", tensors, v["dtype"])
    else:
        names = sorted(tensors)
        parts = [names[i::v["shards"]] for i in range(v["shards"])]
        weight_map = {}
        for i, part in enumerate(parts):
            fname = f"model-{i + 1:05d}-of-{v['shards']:05d}.safetensors"
            write_safetensors(d / fname, {n: tensors[n] for n in part}, v["dtype"])
            weight_map.update({n: fname for n in part})
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2) + "\n")
    return d


# ---------------------------------------------------------------------------------------------
# Recording (reference venvs)

def gguf_summary(path: Path) -> dict:
    """Metadata (scalars as values, arrays as length + sha256 of their JSON) and tensor table."""
    import hashlib

    import gguf

    r = gguf.GGUFReader(str(path))
    meta = {}
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            continue
        t = field.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            vals = field.contents()
            meta[key] = {"len": len(vals), "sha256": hashlib.sha256(
                json.dumps(vals, ensure_ascii=False).encode()).hexdigest(),
                "type": field.types[-1].name}
        else:
            val = field.contents()
            meta[key] = {"value": val, "type": t.name}
    tensors = {t.name: {"shape": [int(x) for x in t.shape], "dtype": t.tensor_type.name}
               for t in r.tensors}
    return {"metadata": meta, "tensors": tensors}


def run_llama_cpp_convert(hf_dir: Path, out: Path, outtype: str, pre: str) -> None:
    """convert_hf_to_gguf.py with the pre-tokenizer named (see the module docstring)."""
    code = f"""
import sys
sys.argv = ["convert_hf_to_gguf.py", {str(hf_dir)!r}, "--outfile", {str(out)!r},
            "--outtype", {outtype!r}]
sys.path.insert(0, {str(LLAMA_SRC)!r})
sys.path.insert(1, {str(LLAMA_SRC / 'gguf-py')!r})
import importlib.machinery, types
_sp = types.ModuleType("sentencepiece")
_sp.__spec__ = importlib.machinery.ModuleSpec("sentencepiece", None)
_sp.SentencePieceProcessor = None
sys.modules.setdefault("sentencepiece", _sp)
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: {pre!r}
import runpy
runpy.run_path({str(LLAMA_SRC / 'convert_hf_to_gguf.py')!r}, run_name="__main__")
"""
    proc = subprocess.run([str(TORCH_PY), "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"convert_hf_to_gguf.py failed on {hf_dir}:\n{proc.stderr[-3000:]}")


def cmd_hf(args) -> None:
    """[torch venv] transformers float64 logits + greedy, HF tokenization; JSON to stdout."""
    import tokenizers
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    sys.path.insert(0, str(REPO / "scripts"))
    import record_goldens as rg

    out = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "tokenizers": tokenizers.__version__}, "models": {}}
    for d in map(Path, args.dirs):
        tok = tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
        ids = tok.encode(PROMPT, add_special_tokens=True).ids
        model = AutoModelForCausalLM.from_pretrained(str(d), dtype=torch.float64)
        model.eval()
        cfg = json.loads((d / "config.json").read_text())
        eog = {cfg["eos_token_id"]}
        first, gen, margins, stop = rg.hf_greedy(model, ids, N_PREDICT, eog)
        np.save(args.npy_dir / f"{d.name}.hf.npy", first.astype(np.float32))
        out["models"][d.name] = {"prompt_ids": ids, "generated": gen, "margins": margins,
                                 "stop": stop, "eog": sorted(eog)}
    print(json.dumps(out))


def cmd_llamacpp(args) -> None:
    """[ref venv] llama.cpp greedy on luzao's converted files; JSON to stdout."""
    import llama_cpp

    sys.path.insert(0, str(REPO / "scripts"))
    import record_goldens as rg

    res = {"llama_cpp_python": llama_cpp.__version__, "models": {}}
    for spec in args.models:
        name, path, ids = spec.split("=", 2)
        llm = rg.llama_open(Path(path), 256)
        first, gen, margins, stop = rg.llama_greedy(llm, json.loads(ids), N_PREDICT)
        np.save(args.npy_dir / f"{name}.llama_cpp.npy", first.astype(np.float32))
        res["models"][name] = {"loads": True, "generated": gen, "margins": margins, "stop": stop}
    print(json.dumps(res))


def cmd_all(args) -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    import record_goldens as rg

    npy_dir = GOLDEN / "convert"
    npy_dir.mkdir(parents=True, exist_ok=True)
    gold = {"about": __doc__.split("\n\n")[0] + " See scripts/record_convert_goldens.py.",
            "recorded_by": "scripts/record_convert_goldens.py", "seed": SEED, "prompt": PROMPT,
            "n_predict": N_PREDICT, "models": {}}
    with tempfile.TemporaryDirectory() as td:
        tdp = Path(td)
        dirs = {name: build_hf_dir(tdp / "hf", name) for name in VARIANTS}
        hf = json.loads(subprocess.run(
            [str(TORCH_PY), __file__, "hf", "--npy-dir", str(npy_dir), *map(str, dirs.values())],
            check=True, capture_output=True, text=True).stdout)
        gold["versions"] = hf["versions"]
        specs = []
        for name, d in dirs.items():
            entry = {"files_sha256": {p.name: rg.sha256_file(p) for p in sorted(d.iterdir())},
                     "hf": hf["models"][name], "llama_cpp_convert": {}}
            for outtype in OUTTYPES:
                ref = tdp / f"{name}-{outtype}.ref.gguf"
                run_llama_cpp_convert(d, ref, outtype, VARIANTS[name]["pre"])
                entry["llama_cpp_convert"][outtype] = gguf_summary(ref)
            mine = tdp / f"{name}-f32.luzao.gguf"
            subprocess.run([args.luzao, "convert", str(d), str(mine), "--outtype", "f32", "-q"],
                           check=True)
            ids = hf["models"][name]["prompt_ids"]
            specs.append(f"{name}={mine}={json.dumps(ids)}")
            gold["models"][name] = entry
        lc = json.loads(subprocess.run(
            [str(REF_PY), __file__, "llamacpp", "--npy-dir", str(npy_dir), *specs],
            check=True, capture_output=True, text=True).stdout)
        gold["versions"]["llama_cpp_python"] = lc["llama_cpp_python"]
        for name in VARIANTS:
            gold["models"][name]["llama_cpp_on_luzao_file"] = lc["models"][name]
            same = lc["models"][name]["generated"] == gold["models"][name]["hf"]["generated"]
            gold["models"][name]["llama_cpp_on_luzao_file"]["same_greedy_as_hf"] = same
    rg.write_json(GOLDEN_JSON, gold)
    print(f"wrote {GOLDEN_JSON}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("out", type=Path)
    h = sub.add_parser("hf")
    h.add_argument("--npy-dir", type=Path, required=True)
    h.add_argument("dirs", nargs="+")
    lc = sub.add_parser("llamacpp")
    lc.add_argument("--npy-dir", type=Path, required=True)
    lc.add_argument("models", nargs="+", help="NAME=GGUF=IDS_JSON")
    a = sub.add_parser("all")
    a.add_argument("--luzao", default=str(REPO / "build" / "release" / "luzao"))
    args = ap.parse_args(argv)
    if args.cmd == "build":
        for name in VARIANTS:
            print(build_hf_dir(args.out, name))
    elif args.cmd == "hf":
        cmd_hf(args)
    elif args.cmd == "llamacpp":
        cmd_llamacpp(args)
    else:
        cmd_all(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

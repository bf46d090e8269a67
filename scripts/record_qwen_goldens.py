#!/usr/bin/env python3
"""Records the goldens of the tiny random Qwen2/Qwen3 models (scripts/make_tiny_qwen.py).

References:
- Hugging Face transformers Qwen2ForCausalLM / Qwen3ForCausalLM in float64 on CPU, built from a
  config with the same hyper-parameters and the weights dequantized by the `gguf` package, so the
  reference sees exactly the (quantized) weights luzao reads. Qwen GGUFs keep HF's Q/K row order
  (no permutation), so the weights map one to one.
- llama.cpp via llama-cpp-python: the tokenization of the prompts (the authority on GGUF
  tokenization) and its own logits/greedy path, kept to show how far a second engine lands from
  the reference (the yardstick for the test tolerances).

Subcommands (each needs its own venv, see scripts/record_goldens.py for the setup):
  llamacpp  [ref venv]    make the models, tokenize the prompts, llama.cpp logits + greedy
  hf        [torch venv]  transformers logits + greedy (the goldens luzao is tested against)
  all       both, with --ref-python / --torch-python
  deepseek-standin [ref venv] --part0 model_part_0000 --out FILE: the DeepSeek-R1-Distill-Qwen-7B
            header with random valid weights (when not all parts are published)
  deepseek  [ref venv] --model FILE [--luzao BIN]: luzao next to llama.cpp, Chinese and English
            prompts, greedy text and tokens/s (outside CI: several GB and slow)
Output: tests/golden/tiny_qwen.json and tests/golden/tiny_qwen/*.npy.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
import make_tiny_qwen as tiny  # noqa: E402
import record_goldens as rg  # noqa: E402

import gguf  # noqa: E402

GOLDEN = REPO / "tests" / "golden"
JSON = GOLDEN / "tiny_qwen.json"
N_PREDICT = 16
EOG = {tiny.ENDOFTEXT, tiny.IM_END}

PROMPTS = {
    "en": "The quick brown fox jumps over the lazy dog.",
    "zh": "\u4eba\u5de5\u667a\u80fd\u662f\u8ba1\u7b97\u673a\u79d1\u5b66\u7684\u4e00\u4e2a\u5206"
          "\u652f\uff0c\u5b83",  # 人工智能是计算机科学的一个分支，它
    "chatml": "<|im_start|>user\n\u4f60\u597d\uff0c\u4e16\u754c\uff01<|im_end|>\n"
              "<|im_start|>assistant\n",
    "mixed": "def main():\n    return 12345 + caf\u00e9  \u7089\u7076\u00e9",
}


def make_all(td: str) -> dict[str, Path]:
    out = {}
    for v in tiny.VARIANTS:
        path = Path(td) / f"{v.name}.gguf"
        tiny.write_model(path, v)
        out[v.name] = path
    return out


def cmd_llamacpp(args) -> None:
    import llama_cpp

    data = {
        "about": "Goldens for the tiny random Qwen2/Qwen3 models of scripts/make_tiny_qwen.py. "
                 "prompt_ids: llama.cpp tokenization (no BOS, as the models say; parse special). "
                 "hf: transformers Qwen2ForCausalLM/Qwen3ForCausalLM in float64 on the gguf-"
                 "dequantized weights (the reference luzao is tested against). llama_cpp: "
                 "llama.cpp's own result, kept to show how far a second engine lands from the "
                 "reference. margins: the reference's top-2 logit gap at each greedy step.",
        "recorded_by": "scripts/record_qwen_goldens.py",
        "versions": {"llama_cpp_python": llama_cpp.__version__, "gguf": rg._gguf_version(),
                     "numpy": np.__version__},
        "seed": tiny.SEED,
        "n_predict": N_PREDICT,
        "eog": sorted(EOG),
        "models": {},
    }
    GOLDEN.joinpath("tiny_qwen").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as td:
        for name, path in make_all(td).items():
            llm = rg.llama_open(path, tiny.CTX)
            cases, rows = [], []
            for cname, text in PROMPTS.items():
                ids = llm.tokenize(text.encode(), add_bos=False, special=True)
                first, gen, margins, stop = rg.llama_greedy(llm, ids, N_PREDICT)
                rows.append(first)
                cases.append({"name": cname, "prompt": text, "prompt_ids": ids,
                              "llama_cpp": {"generated": gen, "stop": stop,
                                            "min_margin": min(margins)}})
            rel = f"tiny_qwen/{name}.llama_cpp.npy"
            np.save(GOLDEN / rel, np.stack(rows).astype(np.float32))
            data["models"][name] = {"weights_sha256": tiny.weights_digest(path),
                                    "llama_cpp_logits": rel, "cases": cases}
            del llm
            print(f"{name}: {len(cases)} prompts through llama.cpp")
    rg.write_json(JSON, data)


def hf_model_from_gguf(path: Path):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    r = gguf.GGUFReader(str(path))
    arch = r.fields["general.architecture"].contents()

    def field(key, default=None):
        f = r.fields.get(f"{arch}.{key}")
        return default if f is None else f.contents()

    weights = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64)
        want = tuple(int(x) for x in reversed(t.shape))
        if w.shape != want:
            raise SystemExit(f"{path}: tensor {t.name} dequantized to {w.shape}, want {want}")
        weights[t.name] = w
    tied = "output.weight" not in weights
    n_head, dim = int(field("attention.head_count")), int(field("embedding_length"))
    common = dict(
        vocab_size=weights["token_embd.weight"].shape[0],
        hidden_size=dim,
        intermediate_size=int(field("feed_forward_length")),
        num_hidden_layers=int(field("block_count")),
        num_attention_heads=n_head,
        num_key_value_heads=int(field("attention.head_count_kv")),
        max_position_embeddings=int(field("context_length")),
        rms_norm_eps=float(field("attention.layer_norm_rms_epsilon")),
        rope_parameters={"rope_type": "default", "rope_theta": float(field("rope.freq_base"))},
        tie_word_embeddings=tied,
        use_sliding_window=False,
        bos_token_id=tiny.ENDOFTEXT, eos_token_id=tiny.IM_END,
    )
    if arch == "qwen2":
        cfg, cls = Qwen2Config(**common), Qwen2ForCausalLM
    elif arch == "qwen3":
        cfg = Qwen3Config(head_dim=int(field("attention.key_length")), attention_bias=False,
                          **common)
        cls = Qwen3ForCausalLM
    else:
        raise SystemExit(f"{path}: unexpected architecture {arch}")
    cfg._attn_implementation = "eager"
    model = cls(cfg).to(torch.float64).eval()
    sd = {"model.embed_tokens.weight": weights["token_embd.weight"],
          "model.norm.weight": weights["output_norm.weight"],
          "lm_head.weight": weights["token_embd.weight" if tied else "output.weight"]}
    names = {"attn_norm.weight": "input_layernorm.weight",
             "ffn_norm.weight": "post_attention_layernorm.weight",
             "attn_q.weight": "self_attn.q_proj.weight", "attn_k.weight": "self_attn.k_proj.weight",
             "attn_v.weight": "self_attn.v_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
             "attn_k.bias": "self_attn.k_proj.bias", "attn_v.bias": "self_attn.v_proj.bias",
             "attn_q_norm.weight": "self_attn.q_norm.weight",
             "attn_k_norm.weight": "self_attn.k_norm.weight",
             "attn_output.weight": "self_attn.o_proj.weight",
             "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
             "ffn_down.weight": "mlp.down_proj.weight"}
    for name, w in weights.items():
        if not name.startswith("blk."):
            continue
        _, i, rest = name.split(".", 2)
        if rest not in names:
            raise SystemExit(f"{path}: no transformers name for tensor {name}")
        sd[f"model.layers.{i}.{names[rest]}"] = w  # Qwen: no Q/K permutation to undo
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [m for m in missing if not (tied and m == "lm_head.weight")]
    if missing or unexpected:
        raise SystemExit(f"{path}: state dict mismatch: missing={missing} unexpected={unexpected}")
    return model


def cmd_hf(args) -> None:
    import torch
    import transformers

    data = rg.json.loads(JSON.read_text())
    data["versions"].update({"torch": torch.__version__, "transformers": transformers.__version__})
    with tempfile.TemporaryDirectory() as td:
        for name, path in make_all(td).items():
            entry = data["models"][name]
            if tiny.weights_digest(path) != entry["weights_sha256"]:
                raise SystemExit(f"{name}: weights differ from the llamacpp step; rerun both")
            model = hf_model_from_gguf(path)
            cpp = np.load(GOLDEN / entry["llama_cpp_logits"])
            rows = []
            for k, case in enumerate(entry["cases"]):
                first, gen, margins, stop = rg.hf_greedy(model, case["prompt_ids"], N_PREDICT,
                                                         eog=EOG)
                rows.append(first)
                case["hf"] = {"generated": gen, "stop": stop,
                              "margins": [round(m, 5) for m in margins]}
                d = cpp[k].astype(np.float64) - first
                scale = float(np.max(np.abs(first)))
                lc = case["llama_cpp"]
                lc["max_abs_diff_vs_hf"] = float(np.max(np.abs(d)))
                lc["rel_max_diff_vs_hf"] = lc["max_abs_diff_vs_hf"] / scale
                lc["rel_rms_diff_vs_hf"] = float(np.sqrt(np.mean(d * d)) /
                                                 np.sqrt(np.mean(first * first)))
                lc["same_greedy_as_hf"] = lc["generated"] == gen
                print(f"{name}/{case['name']}: llama.cpp rel max {lc['rel_max_diff_vs_hf']:.1e} "
                      f"rel rms {lc['rel_rms_diff_vs_hf']:.1e} greedy equal="
                      f"{lc['same_greedy_as_hf']} min margin={min(margins):.3f}")
            rel = f"tiny_qwen/{name}.hf.npy"
            np.save(GOLDEN / rel, np.stack(rows).astype(np.float32))
            entry["hf_logits"] = rel
    rg.write_json(JSON, data)


# ---------------------------------------------------------------------------------------------
# DeepSeek-R1-Distill-Qwen-7B side by side (ref venv; outside CI, several GB)

DEEPSEEK_PROMPTS = {
    "zh": "<\uff5cUser\uff5c>\u8bf7\u7528\u4e00\u53e5\u8bdd\u4ecb\u7ecd\u957f\u57ce\u3002"
          "<\uff5cAssistant\uff5c><think>\n",  # 请用一句话介绍长城。
    "en": "<\uff5cUser\uff5c>Explain in one sentence why the sky is blue."
          "<\uff5cAssistant\uff5c><think>\n",
}


def read_gguf_header(path: Path) -> tuple[list, list, int]:
    """(key/values, tensor infos, data offset) of a GGUF file from its header alone, so that part
    0000 of a split model (whose tensors run past its end) can be read. Values are kept raw:
    (key, type, value, array item type)."""
    import struct

    with open(path, "rb") as f:
        buf = f.read(64 << 20)
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        pos += n
        return buf[pos - n:pos].decode("utf-8")

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            item, n = take("I"), take("Q")
            return [value(item) for _ in range(n)], item
        return take(scalar[t])

    if buf[:4] != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    pos = 4
    take("I")
    n_tensors, n_kv = take("Q"), take("Q")
    kvs = []
    for _ in range(n_kv):
        key, t = string(), take("I")
        v = value(t)
        kvs.append((key, t, v[0], v[1]) if t == 9 else (key, t, v, None))
    tensors = []
    for _ in range(n_tensors):
        name, nd = string(), take("I")
        dims = [take("Q") for _ in range(nd)]
        tensors.append((name, dims, take("I"), take("Q")))
    align = next((v for k, _, v, _ in kvs if k == "general.alignment"), 32)
    return kvs, tensors, (pos + align - 1) // align * align


def cmd_deepseek_standin(args) -> None:
    """A file with the exact header of the real model (metadata, tokenizer, tensor names, shapes
    and types) and random but valid weights, for speed and engine-agreement checks at 7B shape
    when the real parts are not all published."""
    sys.path.insert(0, str(REPO / "bench"))
    import make_models as mm

    kvs, tensors, _ = read_gguf_header(Path(args.part0))
    arch = next(v for k, _, v, _ in kvs if k == "general.architecture")
    wr = gguf.GGUFWriter(args.out, arch)
    for key, t, v, item in kvs:
        if key in ("general.architecture", "general.alignment"):
            continue
        if key == "general.name":
            v = v + " (random weights, real shapes)"
        wr.add_key_value(key, v, gguf.GGUFValueType(t),
                         sub_type=None if item is None else gguf.GGUFValueType(item))
    rng = np.random.default_rng(7)
    for name, dims, t, _ in tensors:
        qt = gguf.GGMLQuantizationType(t)
        shape = tuple(reversed(dims))
        if qt == gguf.GGMLQuantizationType.F32:
            mean = 1.0 if name.endswith("norm.weight") else 0.0
            wr.add_tensor(name, (mean + 0.05 * rng.standard_normal(shape)).astype(np.float32))
        else:
            wr.add_tensor(name, mm.random_quant(rng, qt, shape[0], shape[1]), raw_dtype=qt)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file(progress=True)
    wr.close()
    print(args.out)


def cmd_deepseek(args) -> None:
    """Greedy output and tokens/s of luzao and llama.cpp on one model, prompts in Chinese and
    English; runs alternate so machine noise hits both alike."""
    import re
    import time

    import llama_cpp

    llm = llama_cpp.Llama(args.model, n_ctx=512, n_batch=512, n_threads=args.threads,
                          verbose=False)
    for name, prompt in DEEPSEEK_PROMPTS.items():
        ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        gen, margins = [], []
        logits = rg.llama_last_logits(llm)
        first = logits.astype(np.float64)
        for _ in range(args.n):
            tok = int(np.argmax(logits))
            margins.append(rg.top2_margin(logits))
            if llama_cpp.llama_vocab_is_eog(llama_cpp.llama_model_get_vocab(llm.model), tok):
                break
            gen.append(tok)
            if len(gen) == args.n:
                break
            llm.eval([tok])
            logits = rg.llama_last_logits(llm)
        t2 = time.perf_counter()
        cpp_text = llm.detokenize(gen).decode("utf-8", "replace")
        with tempfile.TemporaryDirectory() as td:
            tok_file, logits_file = Path(td) / "tokens.json", Path(td) / "logits.f32"
            proc = subprocess.run([args.luzao, "run", "-m", args.model, "-p", prompt, "-n",
                                   str(args.n), "--temp", "0", "-t", str(args.threads),
                                   "--tokens-out", str(tok_file), "--logits-out",
                                   str(logits_file)], capture_output=True, check=True)
            lz = rg.json.loads(tok_file.read_text())
            d = np.fromfile(logits_file, dtype="<f4").astype(np.float64) - first
        m = re.search(r"prompt: (\d+) tokens in [\d.]+ s \(([\d.]+) tok/s\); generated: (\d+) "
                      r"tokens, ([\d.]+) tok/s", proc.stderr.decode())
        lz_gen = lz["generated"]
        if len(lz_gen) == len(gen) + 1:
            lz_gen = lz_gen[:-1]  # luzao lists the end-of-generation token it stopped at
        same = next((i for i, (a, b) in enumerate(zip(gen, lz_gen)) if a != b), None)
        print(f"== {name}: {len(ids)} prompt tokens; luzao prompt ids identical: "
              f"{lz['prompt'] == ids}")
        print(f"llama.cpp: {cpp_text!r}")
        print(f"luzao:     {proc.stdout.decode('utf-8', 'replace')!r}")
        print(f"last prompt position logits, luzao vs llama.cpp: rel max "
              f"{np.max(np.abs(d)) / np.max(np.abs(first)):.2e}, rel rms "
              f"{np.sqrt(np.mean(d * d) / np.mean(first * first)):.2e}")
        print(f"greedy ids identical: {gen == lz_gen}"
              + ("" if same is None else f" (first difference at token {same}, where "
                 f"llama.cpp's top-2 gap is {margins[same]:.3g})"))
        print(f"llama.cpp: prompt {len(ids) / (t1 - t0):.2f} tok/s, generation "
              f"{max(len(gen) - 1, 1) / (t2 - t1):.2f} tok/s")
        if m:
            print(f"luzao:     prompt {float(m.group(2)):.2f} tok/s, generation "
                  f"{float(m.group(4)):.2f} tok/s")


def cmd_all(args) -> None:
    me = str(Path(__file__).resolve())
    for py, sub in ((args.ref_python, "llamacpp"), (args.torch_python, "hf")):
        print(f"== {py} {sub}", flush=True)
        subprocess.run([py, me, sub], check=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("command", choices=["llamacpp", "hf", "all", "deepseek-standin",
                                        "deepseek"])
    ap.add_argument("--part0", help="deepseek-standin: model_part_0000 of the split model")
    ap.add_argument("--out", help="deepseek-standin: the file to write")
    ap.add_argument("--model", help="deepseek: the GGUF to run")
    ap.add_argument("--luzao", default=str(REPO / "build" / "release" / "luzao"))
    ap.add_argument("-n", type=int, default=32, help="deepseek: tokens to generate")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--ref-python", default=str(rg.CACHE / "ref-venv" / "bin" / "python"))
    ap.add_argument("--torch-python", default=str(rg.CACHE / "torch-venv" / "bin" / "python"))
    args = ap.parse_args(argv)
    {"llamacpp": cmd_llamacpp, "hf": cmd_hf, "all": cmd_all, "deepseek": cmd_deepseek,
     "deepseek-standin": cmd_deepseek_standin}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

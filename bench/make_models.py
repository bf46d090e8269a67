#!/usr/bin/env python3
"""Random-weight GGUF files with the exact shapes of real models, for speed measurements.

Writes SmolLM2-135M (llama architecture) and Qwen2.5-0.5B (qwen2) in F16, Q8_0, Q4_0, Q4_1 and
Q4_K_M. Weights are random but every block is valid: quantized blocks are written directly as
random codes with scales chosen so that the weights have a standard deviation near 0.02 (no
quantizer runs, so even the K-quants of Q4_K_M are cheap to make). Per-tensor types follow
llama-quantize's choices for these files: the tied embedding/output gets Q6_K (Q8_0 when its rows
are not a multiple of 256), Q4_K_M uses Q6_K for attn_v/ffn_down in the first and last eighth and
every third layer and Q4_K elsewhere, and a K-quant whose rows are not a multiple of 256 falls back
to Q5_0 (Q4_K) or Q8_0 (Q6_K). The tokenizer is copied from a real vocabulary file (the
SmolLM2-135M-Instruct model in the luzao cache, ../shared/tokenizers/ggml-vocab-qwen2.gguf), so
that llama.cpp and luzao both load the files.

Usage: python bench/make_models.py [-o DIR] [--models smollm2,qwen2.5] [--types f16,q4_0,...]
Needs numpy and gguf (the ref-venv has both). Existing files are kept unless --force.
"""
import argparse
import os
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as Q
except ImportError:  # pragma: no cover
    sys.exit("make_models.py needs the gguf package: pip install gguf numpy")

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("LUZAO_CACHE", Path.home() / ".cache" / "luzao"))

MODELS = {
    "smollm2-135m": dict(arch="llama", n_embd=576, n_layer=30, n_head=9, n_head_kv=3, n_ff=1536,
                         n_vocab=49152, ctx=8192, rope_base=100000.0, eps=1e-5, qkv_bias=False,
                         vocab=[CACHE / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"]),
    "qwen2.5-0.5b": dict(arch="qwen2", n_embd=896, n_layer=24, n_head=14, n_head_kv=2, n_ff=4864,
                         n_vocab=151936, ctx=32768, rope_base=1000000.0, eps=1e-6, qkv_bias=True,
                         vocab=[HERE.parent.parent / "shared" / "tokenizers" / "ggml-vocab-qwen2.gguf"]),
}
FILE_TYPES = {"f16": 1, "q8_0": 7, "q4_0": 2, "q4_1": 3, "q4_k_m": 15}
TARGET_STD = 0.02


def blocks(rng, n_blocks, layout):
    """A structured array of n_blocks random blocks: layout is [(name, dtype, count, generator)]."""
    dt = np.dtype([(name, t, (count,)) if count > 1 else (name, t) for name, t, count, _ in layout])
    out = np.empty(n_blocks, dtype=dt)
    for name, t, count, gen in layout:
        out[name] = gen(rng, (n_blocks, count) if count > 1 else (n_blocks,))
    return out


def const(v):
    return lambda rng, shape: np.full(shape, v)


def rand_bytes(rng, shape):
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


def rand_half(scale):
    # Scales vary by +-25% around `scale`, like a real quantizer's per-block maxima.
    return lambda rng, shape: (scale * rng.uniform(0.75, 1.25, size=shape)).astype(np.float16)


def random_quant(rng, qtype, rows, cols):
    """Random valid blocks of `qtype` for a rows x cols matrix, as uint8 [rows, row_bytes]."""
    n = rows * cols
    if qtype == Q.Q4_0:  # w = d * (q - 8), q uniform in 0..15 (std 4.6)
        b = blocks(rng, n // 32, [("d", "<f2", 1, rand_half(TARGET_STD / 4.6)),
                                  ("qs", "u1", 16, rand_bytes)])
    elif qtype == Q.Q4_1:  # w = d * q + m
        d = TARGET_STD / 4.6
        b = blocks(rng, n // 32, [("d", "<f2", 1, rand_half(d)), ("m", "<f2", 1, rand_half(-7.5 * d)),
                                  ("qs", "u1", 16, rand_bytes)])
    elif qtype == Q.Q5_0:  # w = d * (q - 16), q in 0..31 (std 9.2)
        b = blocks(rng, n // 32, [("d", "<f2", 1, rand_half(TARGET_STD / 9.2)),
                                  ("qh", "u1", 4, rand_bytes), ("qs", "u1", 16, rand_bytes)])
    elif qtype == Q.Q8_0:  # w = d * q, q in -128..127 (std 74)
        b = blocks(rng, n // 32, [("d", "<f2", 1, rand_half(TARGET_STD / 74)),
                                  ("qs", "u1", 32, rand_bytes)])
    elif qtype == Q.Q4_K:  # w = d * sc * q - dmin * m, 6-bit sc/m (mean 32), q in 0..15
        d = TARGET_STD / (32 * 4.6)
        b = blocks(rng, n // 256, [("d", "<f2", 1, rand_half(d)), ("dmin", "<f2", 1, rand_half(7.5 * d)),
                                   ("scales", "u1", 12, rand_bytes), ("qs", "u1", 128, rand_bytes)])
    elif qtype == Q.Q6_K:  # w = d * sc * (q - 32), int8 sc in 4..19, q in 0..63 (std 18.5)
        b = blocks(rng, n // 256, [("ql", "u1", 128, rand_bytes), ("qh", "u1", 64, rand_bytes),
                                   ("scales", "i1", 16, lambda r, s: r.integers(4, 20, size=s)),
                                   ("d", "<f2", 1, rand_half(TARGET_STD / (12 * 18.5)))])
    else:
        raise ValueError(f"no random generator for {qtype.name}")
    raw = b.view(np.uint8)
    assert raw.size == gguf.quant_shape_to_byte_shape((rows, cols), qtype)[1] * rows
    return raw.reshape(rows, -1)


def fallback(qtype, cols):
    """llama-quantize's replacement for K-quants on rows that are not a multiple of 256."""
    if cols % 256 == 0:
        return qtype
    return {Q.Q4_K: Q.Q5_0, Q.Q6_K: Q.Q8_0}.get(qtype, qtype)


def tensor_type(ftype, name, layer, n_layer, cols):
    if ftype == "f16":
        return Q.F16
    if ftype == "q8_0":
        return Q.Q8_0
    if name == "token_embd.weight":  # tied: it is also the output projection
        return fallback(Q.Q6_K, cols)
    base = {"q4_0": Q.Q4_0, "q4_1": Q.Q4_1, "q4_k_m": Q.Q4_K}[ftype]
    if ftype == "q4_k_m" and (name.endswith("attn_v.weight") or name.endswith("ffn_down.weight")):
        more_bits = layer < n_layer // 8 or layer >= 7 * n_layer // 8 or (layer - n_layer // 8) % 3 == 2
        if more_bits:
            base = Q.Q6_K
    return fallback(base, cols)


def copy_tokenizer(writer, vocab_path, n_vocab):
    reader = gguf.GGUFReader(vocab_path)
    tokens = reader.fields["tokenizer.ggml.tokens"]
    if len(tokens.data) != n_vocab:
        sys.exit(f"{vocab_path}: {len(tokens.data)} tokens, the model needs {n_vocab}")
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(key, field.contents(), vtype, sub_type=sub)


def make_model(name, spec, ftype, path, seed):
    rng = np.random.default_rng(seed)
    d, n_ff, hd = spec["n_embd"], spec["n_ff"], spec["n_embd"] // spec["n_head"]
    kv = spec["n_head_kv"] * hd
    arch = spec["arch"]
    vocab = next((p for p in spec["vocab"] if p.exists()), None)
    if vocab is None:
        sys.exit(f"{name}: no vocabulary file found (looked for {', '.join(map(str, spec['vocab']))})")

    tmp = path.with_suffix(".tmp")  # renamed when complete: an interrupted run leaves no half file
    w = gguf.GGUFWriter(str(tmp), arch)
    w.add_name(f"{name} random weights ({ftype})")
    w.add_block_count(spec["n_layer"])
    w.add_context_length(spec["ctx"])
    w.add_embedding_length(d)
    w.add_feed_forward_length(n_ff)
    w.add_head_count(spec["n_head"])
    w.add_head_count_kv(spec["n_head_kv"])
    w.add_rope_freq_base(spec["rope_base"])
    w.add_layer_norm_rms_eps(spec["eps"])
    w.add_rope_dimension_count(hd)
    w.add_vocab_size(spec["n_vocab"])
    w.add_file_type(FILE_TYPES[ftype])
    w.add_quantization_version(2)
    copy_tokenizer(w, vocab, spec["n_vocab"])

    def matrix(tname, rows, cols, layer=-1):
        qtype = tensor_type(ftype, tname, layer, spec["n_layer"], cols)
        if qtype == Q.F16:
            data = (rng.standard_normal((rows, cols), dtype=np.float32) * TARGET_STD).astype(np.float16)
            w.add_tensor(tname, data)
        else:
            w.add_tensor(tname, random_quant(rng, qtype, rows, cols), raw_dtype=qtype)

    def vector(tname, n, mean=1.0, std=0.05):
        w.add_tensor(tname, (mean + std * rng.standard_normal(n)).astype(np.float32))

    matrix("token_embd.weight", spec["n_vocab"], d)
    vector("output_norm.weight", d)
    for i in range(spec["n_layer"]):
        p = f"blk.{i}."
        vector(p + "attn_norm.weight", d)
        vector(p + "ffn_norm.weight", d)
        matrix(p + "attn_q.weight", d, d, i)
        matrix(p + "attn_k.weight", kv, d, i)
        matrix(p + "attn_v.weight", kv, d, i)
        matrix(p + "attn_output.weight", d, d, i)
        matrix(p + "ffn_gate.weight", n_ff, d, i)
        matrix(p + "ffn_up.weight", n_ff, d, i)
        matrix(p + "ffn_down.weight", d, n_ff, i)
        if spec["qkv_bias"]:
            vector(p + "attn_q.bias", d, 0.0, 0.02)
            vector(p + "attn_k.bias", kv, 0.0, 0.02)
            vector(p + "attn_v.bias", kv, 0.0, 0.02)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.rename(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--out", default=str(CACHE / "bench-models"), help="output directory")
    ap.add_argument("--models", default=",".join(MODELS), help="comma-separated: " + ", ".join(MODELS))
    ap.add_argument("--types", default=",".join(FILE_TYPES), help="comma-separated: " + ", ".join(FILE_TYPES))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--force", action="store_true", help="rewrite existing files")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models.split(","):
        if name not in MODELS:
            sys.exit(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
        for ftype in args.types.split(","):
            if ftype not in FILE_TYPES:
                sys.exit(f"unknown type {ftype!r}; choose from {', '.join(FILE_TYPES)}")
            path = out / f"{name}-{ftype}.gguf"
            if path.exists() and not args.force:
                print(f"kept    {path}")
                continue
            make_model(name, MODELS[name], ftype, path, args.seed)
            print(f"wrote   {path} ({path.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()

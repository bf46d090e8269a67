#!/usr/bin/env python3
"""Writes small deterministic random-weight Llama GGUF models for luzao's end-to-end tests.

Usage: make_tiny_llama.py OUT_DIR [--list]
Needs only numpy and the `gguf` package (the CI venv has both).

Design (chosen to be honest and small):
- Weights come from numpy's legacy RandomState, whose stream numpy keeps frozen, so the same
  seed gives the same bytes on every machine. `weights_digest()` hashes the tensor data so the
  goldens can tell when a regenerated model differs from the one they were recorded on.
- Tokenizer: a SentencePiece-style ("llama") vocab of 512 tokens: <unk>, <s>, </s>, the 256
  byte-fallback tokens <0x00>..<0xFF>, then every character of a small built-in corpus and the
  pieces of a greedy BPE trained on that corpus (score = -merge rank, so every piece is reachable
  by llama.cpp's highest-score-first SPM merging). Text outside the corpus alphabet falls back to
  bytes. tokenizer.ggml.add_space_prefix is deliberately left unset (llama.cpp's default applies).
- Shapes: dim 64, 2 layers, 4 query heads, 2 KV heads (GQA), head dim 16, FFN 128, rope base
  10000 (normal, non-neox llama rope), rms eps 1e-5, context 256. Rows are multiples of 32 so
  every block format applies.
- Variants: F32 with tied output (no output.weight), and F32/F16/Q8_0/Q4_0/Q4_1 with a separate
  output.weight. Norms stay F32 as llama.cpp's quantizer leaves them.
- Q and K are stored in GGUF's llama layout (interleaved rope pairs), i.e. what
  convert_hf_to_gguf.py writes after its `permute`; a Hugging Face reference must undo it
  (see `unpermute_qk`).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gguf

N_VOCAB = 512
DIM = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
HEAD_DIM = DIM // N_HEAD
FFN = 128
CTX = 256
ROPE_BASE = 10000.0
RMS_EPS = 1e-5
SEED = 20240611
SPACE = "\u2581"  # SentencePiece's visible space

CORPUS = """
The quick brown fox jumps over the lazy dog. A stove of your own is the start of a new kitchen.
Hello world! This is a tiny model for testing the inference engine, and it speaks no language at
all. The weights are random, but the numbers are exact: every logit must match the reference.
In the beginning there was a token, and the token was followed by another token. We count one,
two, three, four, five, six, seven, eight, nine, ten. Tests should be honest and they should fail
when the code is wrong. def main(): return print("hello") if x == 1 else None
The cat sat on the mat. Models that run on any device are better than models that run on one.
"""


@dataclass(frozen=True)
class Variant:
    name: str
    qtype: gguf.GGMLQuantizationType  # type of the 2-D weight matrices
    file_type: gguf.LlamaFileType
    tied_output: bool


VARIANTS = [
    Variant("tiny-f32-tied", gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32, True),
    Variant("tiny-f32", gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32, False),
    Variant("tiny-f16", gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16, False),
    Variant("tiny-q8_0", gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0, False),
    Variant("tiny-q4_0", gguf.GGMLQuantizationType.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0, False),
    Variant("tiny-q4_1", gguf.GGMLQuantizationType.Q4_1, gguf.LlamaFileType.MOSTLY_Q4_1, False),
]


def build_vocab() -> tuple[list[str], list[float], list[int]]:
    """Returns (tokens, scores, token types) of the synthetic SPM vocab."""
    tokens = ["<unk>", "<s>", "</s>"]
    scores = [0.0, 0.0, 0.0]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        scores.append(0.0)
        types.append(gguf.TokenType.BYTE)

    words = Counter(SPACE + w for w in CORPUS.split())
    chars = sorted({c for w in words for c in w})
    # Greedy BPE over the corpus words: merge the most frequent adjacent pair, ties broken by the
    # pair's text so the result does not depend on dict ordering.
    seqs = {w: list(w) for w in words}
    merges: list[str] = []
    budget = N_VOCAB - len(tokens) - len(chars)
    known = set(chars)
    while len(merges) < budget:
        pairs: Counter[tuple[str, str]] = Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        if not pairs:
            break
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        piece = best[0] + best[1]
        for w in words:
            s = seqs[w]
            out, i = [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(piece)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
        if piece not in known:
            known.add(piece)
            merges.append(piece)
    for rank, piece in enumerate(merges):
        tokens.append(piece)
        scores.append(-float(rank))
        types.append(gguf.TokenType.NORMAL)
    for i, c in enumerate(chars):
        tokens.append(c)
        scores.append(-1000.0 - i)
        types.append(gguf.TokenType.NORMAL)
    # Pad with unused tokens if the corpus ran out of merges (it does not at 512, but stay exact).
    while len(tokens) < N_VOCAB:
        tokens.append(f"<unused{len(tokens)}>")
        scores.append(-1e9)
        types.append(gguf.TokenType.UNUSED)
    assert len(tokens) == N_VOCAB, len(tokens)
    assert len(set(tokens)) == N_VOCAB, "duplicate vocab entries"
    return tokens, scores, [int(t) for t in types]


def make_weights(tied: bool) -> dict[str, np.ndarray]:
    """Float32 weights in GGUF layout (numpy shape = (rows, row_length) = (out, in))."""
    rng = np.random.RandomState(SEED)

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    w: dict[str, np.ndarray] = {}
    # Small embeddings so that the layers, not the input token, dominate the residual stream
    # (with std 1 the tied model just repeats its last token).
    w["token_embd.weight"] = (0.3 * rng.standard_normal((N_VOCAB, DIM))).astype(np.float32)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w[p + "attn_norm.weight"] = norm(DIM)
        w[p + "attn_q.weight"] = mat(N_HEAD * HEAD_DIM, DIM, 1.5)
        w[p + "attn_k.weight"] = mat(N_HEAD_KV * HEAD_DIM, DIM, 1.5)
        w[p + "attn_v.weight"] = mat(N_HEAD_KV * HEAD_DIM, DIM, 1.0)
        w[p + "attn_output.weight"] = mat(DIM, N_HEAD * HEAD_DIM, 1.0)
        w[p + "ffn_norm.weight"] = norm(DIM)
        w[p + "ffn_gate.weight"] = mat(FFN, DIM, 1.0)
        w[p + "ffn_up.weight"] = mat(FFN, DIM, 1.0)
        w[p + "ffn_down.weight"] = mat(DIM, FFN, 1.0)
    w["output_norm.weight"] = norm(DIM)
    # Drawn in both variants so the other tensors are identical between tied and untied models.
    out = mat(N_VOCAB, DIM, 4.0)
    if not tied:
        w["output.weight"] = out
    return w


def write_model(path: Path, v: Variant) -> None:
    tokens, scores, types = build_vocab()
    wr = gguf.GGUFWriter(str(path), "llama")
    wr.add_name(v.name)
    wr.add_file_type(int(v.file_type))
    wr.add_context_length(CTX)
    wr.add_embedding_length(DIM)
    wr.add_block_count(N_LAYER)
    wr.add_feed_forward_length(FFN)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD_KV)
    wr.add_rope_freq_base(ROPE_BASE)
    wr.add_rope_dimension_count(HEAD_DIM)
    wr.add_layer_norm_rms_eps(RMS_EPS)
    wr.add_vocab_size(N_VOCAB)
    wr.add_tokenizer_model("llama")
    wr.add_token_list(tokens)
    wr.add_token_scores(scores)
    wr.add_token_types(types)
    wr.add_bos_token_id(1)
    wr.add_eos_token_id(2)
    wr.add_unk_token_id(0)
    wr.add_add_bos_token(True)
    wr.add_add_eos_token(False)
    for name, arr in make_weights(v.tied_output).items():
        if arr.ndim == 1 or v.qtype == gguf.GGMLQuantizationType.F32:
            wr.add_tensor(name, arr)
        elif v.qtype == gguf.GGMLQuantizationType.F16:
            wr.add_tensor(name, arr.astype(np.float16))
        else:
            wr.add_tensor(name, gguf.quants.quantize(arr, v.qtype), raw_dtype=v.qtype)
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


def weights_digest(path: Path) -> str:
    """sha256 over tensor names, types, shapes and bytes (independent of metadata layout)."""
    r = gguf.GGUFReader(str(path))
    h = hashlib.sha256()
    for t in sorted(r.tensors, key=lambda t: t.name):
        h.update(f"{t.name}:{t.tensor_type.name}:{list(map(int, t.shape))}\n".encode())
        h.update(np.ascontiguousarray(t.data).tobytes())
    return h.hexdigest()


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """GGUF llama Q/K rows -> Hugging Face rows.

    convert_hf_to_gguf.py reorders each head's rows from HF's rotate_half layout (pairs i and
    i + d/2) to interleaved pairs (2i, 2i+1): reshape(n_head, 2, d/2, in).swapaxes(1, 2). This is
    the inverse: reshape(n_head, d/2, 2, in).swapaxes(1, 2).
    """
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--only", action="append", help="variant name (repeatable); default all")
    args = ap.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    names = {v.name for v in VARIANTS}
    for n in args.only or []:
        if n not in names:
            ap.error(f"unknown variant {n!r}; known: {sorted(names)}")
    for v in VARIANTS:
        if args.only and v.name not in args.only:
            continue
        path = args.out_dir / f"{v.name}.gguf"
        write_model(path, v)
        print(f"{path} {weights_digest(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

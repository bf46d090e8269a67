#!/usr/bin/env python3
"""Writes small deterministic random-weight Qwen2 and Qwen3 GGUF models for luzao's tests.

Usage: make_tiny_qwen.py OUT_DIR [--only NAME ...]
Needs only numpy and the `gguf` package (the CI venv has both).

The files follow what llama.cpp's convert_hf_to_gguf.py writes for Qwen2ForCausalLM and
Qwen3ForCausalLM (facts checked against the converter and gguf's MODEL_TENSORS table):
- general.architecture "qwen2" / "qwen3"; keys <arch>.context_length, .embedding_length,
  .block_count, .feed_forward_length, .attention.head_count, .attention.head_count_kv,
  .rope.freq_base, .attention.layer_norm_rms_epsilon; Qwen3 also writes .attention.key_length and
  .attention.value_length (its config has head_dim). No rope.dimension_count: the converter writes
  none for these families and llama.cpp rotates the whole head.
- Q and K are NOT permuted (Qwen uses the neox rotate-half layout, which llama.cpp keeps); HF
  weights map one to one.
- Qwen2: blk.N.attn_{q,k,v}.bias (no bias on attn_output). Qwen3: blk.N.attn_q_norm.weight and
  blk.N.attn_k_norm.weight of head_dim values, no biases. Tied embeddings: no output.weight.
- Tokenizer: byte-level BPE (tokenizer.ggml.model "gpt2", pre "qwen2"): the 256 byte symbols
  (GPT-2 byte-to-unicode alphabet), merges learned greedily from a small English/Chinese corpus,
  then the control tokens <|endoftext|>, <|im_start|>, <|im_end|> at the end as in Qwen's vocab.
  add_bos_token false; eos <|im_end|>; bos and padding <|endoftext|> (Qwen2.5-Instruct's choice).
- Shapes: dim 64, 2 layers, 4 query heads, 2 KV heads (GQA), FFN 128, rope base 1e6, rms eps
  1e-6, context 256. Qwen2 heads are 64/4 = 16 wide; Qwen3 heads are 32 wide (key_length 32,
  q dim 128 != dim), to exercise head sizes that are not embedding_length / head_count.
- Variants per architecture: F32 with tied output, F32 with a separate output.weight, and Q8_0
  (tied, as the small Qwen models ship). 1-D tensors (norms, biases) stay F32, as llama.cpp's
  quantizer leaves them.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import gguf

DIM = 64
N_LAYER = 2
N_HEAD = 4
N_HEAD_KV = 2
FFN = 128
CTX = 256
ROPE_BASE = 1000000.0
RMS_EPS = 1e-6
SEED = 20250101
N_MERGES = 400
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
N_VOCAB = 256 + N_MERGES + len(SPECIALS)
ENDOFTEXT, IM_START, IM_END = 256 + N_MERGES, 256 + N_MERGES + 1, 256 + N_MERGES + 2

HEAD_DIM = {"qwen2": DIM // N_HEAD, "qwen3": 32}

CORPUS = """
The quick brown fox jumps over the lazy dog. A stove of your own is the start of a new kitchen.
Hello world! This tiny model speaks no language at all: its weights are random, but every logit
must match the reference. We count one, two, three, four, five; 12345 and 2025-01-01 are numbers.
def main():
    return print("hello") if x == 1 else None
满纸荒唐言，一把辛酸泪。都云作者痴，谁解其中味？
人工智能是计算机科学的一个分支，它研究如何让机器像人一样思考和学习。
今天天气很好，我们一起去公园散步吧。你好，世界！中国的模型在任何设备上都能运行。
另起炉灶：自己动手，从头开始。测试必须诚实，代码错了测试就要失败。
春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。床前明月光，疑是地上霜。
Models that run on any device are better than models that run on one. The cat sat on the mat,
and the tests should be honest: they should fail when the code is wrong.
"""


# Chinese words that the corpus repeats; they become single tokens.
RECURRING = {"测试", "模型", "天气", "人工", "智能", "世界", "你好", "计算"}


@dataclass(frozen=True)
class Variant:
    name: str
    arch: str
    qtype: gguf.GGMLQuantizationType
    file_type: gguf.LlamaFileType
    tied_output: bool


def _variants() -> list[Variant]:
    f32, q8 = gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.Q8_0
    ft32, ft8 = gguf.LlamaFileType.ALL_F32, gguf.LlamaFileType.MOSTLY_Q8_0
    out = []
    for arch in ("qwen2", "qwen3"):
        out.append(Variant(f"tiny-{arch}-f32", arch, f32, ft32, True))
        out.append(Variant(f"tiny-{arch}-f32-untied", arch, f32, ft32, False))
        out.append(Variant(f"tiny-{arch}-q8_0", arch, q8, ft8, True))
    return out


VARIANTS = _variants()


def byte_alphabet() -> list[str]:
    """GPT-2's byte-to-unicode map as a list indexed by byte: printable Latin-1 bytes stand for
    themselves, the others are moved to code points 256, 257, ... in byte order."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(256 + extra))
            extra += 1
    return out


def corpus_words() -> Counter[str]:
    """Training words in the byte alphabet, split roughly as Qwen's pre-tokenizer does (letters
    with one leading non-letter, single digits, punctuation runs, whitespace). The split only
    chooses which merges exist; llama.cpp and luzao both tokenize with the real qwen2 rules."""
    alpha = byte_alphabet()
    pieces = re.findall(r"[^\r\n\w]?[^\W\d_]+|\d| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+", CORPUS)
    words: Counter[str] = Counter()
    for p in pieces:
        # A Chinese run trains as single characters and the pairs that recur, so the vocab
        # gets character and word tokens rather than whole memorised sentences.
        if any(ord(c) >= 0x3000 for c in p):
            chars = [c for c in p if ord(c) >= 0x3000]
            words.update(chars)
            words.update(a + b for a, b in zip(chars, chars[1:]) if (a + b) in RECURRING)
        else:
            words[p] += 1
    return Counter({"".join(alpha[b] for b in w.encode("utf-8")): n for w, n in words.items()})


def build_vocab() -> tuple[list[str], list[int], list[str]]:
    """Returns (tokens, token types, merges) of the synthetic byte-level BPE vocab."""
    alpha = byte_alphabet()
    words = corpus_words()
    seqs = {w: list(w) for w in words}
    tokens = list(alpha)
    known = set(tokens)
    merges: list[str] = []
    while len(tokens) < 256 + N_MERGES:
        pairs: Counter[tuple[str, str]] = Counter()
        for w, n in words.items():
            s = seqs[w]
            for a, b in zip(s, s[1:]):
                pairs[(a, b)] += n
        if not pairs:
            raise SystemExit(f"corpus too small: {len(tokens) - 256} merge pieces, want {N_MERGES}")
        # Most frequent pair; ties broken by text so the result never depends on dict order.
        best = min(pairs.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        piece = best[0] + best[1]
        for w in words:
            s, out, i = seqs[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and (s[i], s[i + 1]) == best:
                    out.append(piece)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            seqs[w] = out
        merges.append(f"{best[0]} {best[1]}")
        if piece not in known:
            known.add(piece)
            tokens.append(piece)
    # Two merges may build the same piece ("a"+"bc", "ab"+"c"): both stay in the merge list, the
    # piece is one token.
    types = [int(gguf.TokenType.NORMAL)] * len(tokens)
    tokens += SPECIALS
    types += [int(gguf.TokenType.CONTROL)] * len(SPECIALS)
    assert len(tokens) == N_VOCAB and len(set(tokens)) == N_VOCAB
    return tokens, types, merges


def make_weights(arch: str, tied: bool) -> dict[str, np.ndarray]:
    """Float32 weights in GGUF layout (numpy shape = (rows, row_length) = (out, in))."""
    rng = np.random.RandomState(SEED + (0 if arch == "qwen2" else 1))
    hd = HEAD_DIM[arch]
    q_dim, kv_dim = N_HEAD * hd, N_HEAD_KV * hd

    def mat(rows: int, cols: int, scale: float) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * scale / np.sqrt(cols)).astype(np.float32)

    def norm(n: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def vec(n: int, scale: float) -> np.ndarray:
        return (scale * rng.standard_normal(n)).astype(np.float32)

    w: dict[str, np.ndarray] = {}
    w["token_embd.weight"] = (0.3 * rng.standard_normal((N_VOCAB, DIM))).astype(np.float32)
    for i in range(N_LAYER):
        p = f"blk.{i}."
        w[p + "attn_norm.weight"] = norm(DIM)
        w[p + "attn_q.weight"] = mat(q_dim, DIM, 1.5)
        w[p + "attn_k.weight"] = mat(kv_dim, DIM, 1.5)
        w[p + "attn_v.weight"] = mat(kv_dim, DIM, 1.0)
        if arch == "qwen2":
            # Real Qwen2 K biases are large; these are big enough to move the attention pattern.
            w[p + "attn_q.bias"] = vec(q_dim, 0.5)
            w[p + "attn_k.bias"] = vec(kv_dim, 1.0)
            w[p + "attn_v.bias"] = vec(kv_dim, 0.2)
        else:
            w[p + "attn_q_norm.weight"] = norm(hd)
            w[p + "attn_k_norm.weight"] = norm(hd)
        w[p + "attn_output.weight"] = mat(DIM, q_dim, 1.0)
        w[p + "ffn_norm.weight"] = norm(DIM)
        w[p + "ffn_gate.weight"] = mat(FFN, DIM, 1.0)
        w[p + "ffn_up.weight"] = mat(FFN, DIM, 1.0)
        w[p + "ffn_down.weight"] = mat(DIM, FFN, 1.0)
    w["output_norm.weight"] = norm(DIM)
    out = mat(N_VOCAB, DIM, 4.0)  # drawn in both cases so the other tensors do not change
    if not tied:
        w["output.weight"] = out
    return w


def write_model(path: Path, v: Variant) -> None:
    tokens, types, merges = build_vocab()
    wr = gguf.GGUFWriter(str(path), v.arch)
    wr.add_name(v.name)
    wr.add_file_type(int(v.file_type))
    wr.add_context_length(CTX)
    wr.add_embedding_length(DIM)
    wr.add_block_count(N_LAYER)
    wr.add_feed_forward_length(FFN)
    wr.add_head_count(N_HEAD)
    wr.add_head_count_kv(N_HEAD_KV)
    wr.add_rope_freq_base(ROPE_BASE)
    wr.add_layer_norm_rms_eps(RMS_EPS)
    if v.arch == "qwen3":
        wr.add_key_length(HEAD_DIM["qwen3"])
        wr.add_value_length(HEAD_DIM["qwen3"])
    wr.add_tokenizer_model("gpt2")
    wr.add_tokenizer_pre("qwen2")
    wr.add_token_list(tokens)
    wr.add_token_types(types)
    wr.add_token_merges(merges)
    wr.add_eos_token_id(IM_END)
    wr.add_pad_token_id(ENDOFTEXT)
    wr.add_bos_token_id(ENDOFTEXT)
    wr.add_add_bos_token(False)
    for name, arr in make_weights(v.arch, v.tied_output).items():
        if arr.ndim == 1 or v.qtype == gguf.GGMLQuantizationType.F32:
            wr.add_tensor(name, arr)
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

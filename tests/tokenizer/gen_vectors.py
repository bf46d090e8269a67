#!/usr/bin/env python3
"""Records llama.cpp's tokenization (through llama-cpp-python) of tests/tokenizer/data/extra.inp
for every vocabulary in ../shared/tokenizers, as reference vectors for tokenizer_vocab_test.

For each ggml-vocab-NAME.gguf it writes, under tests/tokenizer/data/:
  NAME.out          one line of ids per input: add_special=false, parse_special=false
  NAME.special.out  the same with add_special=true, parse_special=true
  NAME.meta         n_vocab, bos, eos, the end-of-generation ids, and FNV-1a 64 digests of every
                    token's piece with and without special rendering (token_to_piece)
  NAME.chunks       per chunk of ../shared/data (see text_chunks): token count and FNV-1a 64
                    digest of the ids (little-endian int32), add_special=false, parse_special=false
extra.inp itself is written from the shared test texts plus the extra texts below.

Usage: /root/.cache/luzao/ref-venv/bin/python tests/tokenizer/gen_vectors.py
"""
import ctypes
import glob
import os

import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared", "tokenizers")
SEP = b"\n__ggml_vocab_test__\n"

EXTRA = [
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n",
    "<s>[INST] Hello [/INST] hi</s>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<|endoftext|>after <|endoftext|> end",
    "<|user|>\n hello  <|end|>\n<|assistant|>  ok",
    "<fim_prefix>def f():<fim_suffix>\n<fim_middle>  x",
    ">>TITLE<<Falcon>>ABSTRACT<< text",
    "[PAD151646] <unk> </s> <s>",
    "\u00f5\u00f7\u00c1 \u00fd\u00c0\u00ff (byte-looking user tokens)",
    "e\u0301 cafe\u0301 na\u00efve \u0915\u094d\u0937 \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35\u0e04\u0e23\u0e31\u0e1a",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e",
    "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4 \u3053\u3093\u306b\u3061\u306f\u4e16\u754c\u3001\u30ab\u30bf\u30ab\u30ca",
    "\u0661\u0662\u0663\u0664 \uff21\uff22\uff23\uff01\uff1f \uff11\uff12\uff13",
    "a\u3000b\u00a0c\u2003d\u2028e\u0085f",
    "\r\n\r\n  \t x\r\n",
    "def f(x):\n    return x**2  # 100000\n\n\nclass A:\n\tpass\n",
    "3.14159 1,000,000 2024\u5e7412\u670831\u65e5 0x1F 1e-10",
    "\U0001f44d\U0001f3fd \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f",
    "          x",
    "a    \n\n   b  ",
    "It's I'M we'LL they'Re you'VE he'D she'S",
    "\u201cquoted\u201d \u2018single\u2019 \u2014 dash\u2026 \u00ab\u00bb",
    "\u7b2c\u4e00\u56de\u3000\u7504\u58eb\u9690\u68a6\u5e7b\u8bc6\u901a\u7075\u3000\u8d3e\u96e8\u6751\u98ce\u5c18\u6000\u95fa\u79c0",
    "\u6b64\u5f00\u5377\u7b2c\u4e00\u56de\u4e5f\u3002\u4f5c\u8005\u81ea\u4e91\uff1a\u56e0\u66fe\u5386\u8fc7\u4e00\u756a\u68a6\u5e7b\u4e4b\u540e\uff0c\u6545\u5c06\u771f\u4e8b\u9690\u53bb\uff0c\u800c\u501f\u201c\u901a\u7075\u201d\u4e4b\u8bf4\uff0c\u64b0\u6b64\u300a\u77f3\u5934\u8bb0\u300b\u4e00\u4e66\u4e5f\u3002",
    "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n",
]
# Texts that are not valid UTF-8 (bytes), to pin down the replacement behaviour.
EXTRA_BYTES = [b"abc\xff\xfe def \xe4\xb8", b"\xc3(\xa0\xa1 ok"]


def fnv1a64(chunks):
    h = 0xCBF29CE484222325
    for c in chunks:
        for b in len(c).to_bytes(4, "little") + c:
            h ^= b
            h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def text_chunks(max_bytes=48 * 1024, chunk=4096):
    """Whole lines of the first max_bytes of each file, in chunks ending at the first line end
    at or after `chunk` bytes (tokenizer_vocab_test cuts them the same way)."""
    chunks = []
    for name in ("tinyshakespeare.txt", "hongloumeng.txt"):
        path = os.path.join(SHARED, "..", "data", name)
        if not os.path.exists(path):
            continue
        data = open(path, "rb").read()
        data = data[: data.rfind(b"\n", 0, max_bytes) + 1]
        pos = 0
        while pos < len(data):
            end = data.find(b"\n", min(len(data), pos + chunk))
            end = len(data) if end < 0 else end + 1
            chunks.append(data[pos:end])
            pos = end
    return chunks


def piece(vocab, token, special):
    buf = ctypes.create_string_buffer(256)
    n = llama_cpp.llama_token_to_piece(vocab, token, buf, 256, 0, special)
    if n < 0:
        buf = ctypes.create_string_buffer(-n)
        n = llama_cpp.llama_token_to_piece(vocab, token, buf, -n, 0, special)
    return buf.raw[:n]


def main():
    shared_inp = open(os.path.join(SHARED, "ggml-vocab-llama-spm.gguf.inp"), "rb").read()
    texts = [t for t in shared_inp.split(SEP) if t]
    texts += [t.encode("utf-8") for t in EXTRA] + EXTRA_BYTES
    data = os.path.join(HERE, "data")
    os.makedirs(data, exist_ok=True)
    with open(os.path.join(data, "extra.inp"), "wb") as f:
        for t in texts:
            f.write(t + SEP)
    for path in sorted(glob.glob(os.path.join(SHARED, "ggml-vocab-*.gguf"))):
        name = os.path.basename(path)[len("ggml-vocab-"):-len(".gguf")]
        llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        for suffix, special in ((".out", False), (".special.out", True)):
            with open(os.path.join(data, name + suffix), "w") as f:
                for t in texts:
                    ids = llm.tokenize(t, add_bos=special, special=special)
                    f.write("".join(f" {i}" for i in ids) + "\n")
        n = llama_cpp.llama_vocab_n_tokens(vocab)
        eog = [i for i in range(n) if llama_cpp.llama_vocab_is_eog(vocab, i)]
        with open(os.path.join(data, name + ".meta"), "w") as f:
            f.write(f"n_vocab {n}\n")
            f.write(f"bos {llama_cpp.llama_vocab_bos(vocab)}\n")
            f.write(f"eos {llama_cpp.llama_vocab_eos(vocab)}\n")
            f.write("eog" + "".join(f" {i}" for i in eog) + "\n")
            for flag in (True, False):
                digest = fnv1a64(piece(vocab, i, flag) for i in range(n))
                f.write(f"pieces_{'special' if flag else 'plain'} {digest:016x}\n")
        with open(os.path.join(data, name + ".chunks"), "w") as f:
            for chunk in text_chunks():
                ids = llm.tokenize(chunk, add_bos=False, special=False)
                digest = fnv1a64([b"".join(i.to_bytes(4, "little", signed=True) for i in ids)])
                f.write(f"{len(ids)} {digest:016x}\n")
        print(name, len(texts), "texts,", len(eog), "eog")


if __name__ == "__main__":
    main()

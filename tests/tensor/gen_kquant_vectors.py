#!/usr/bin/env python3
"""Writes tests/tensor/data/kquant_vectors.bin: golden K-quant and importance-weighted quantizer
outputs from llama.cpp's own code (libggml-base of llama-cpp-python, called through ctypes).

Run with the reference venv:
    /root/.cache/luzao/ref-venv/bin/python tests/tensor/gen_kquant_vectors.py

Same LZQV container as quant_vectors.bin (see scripts/gen_quant_vectors.py). Entries:
  input        f32 [kRows, kCols]: rows that stress the scale searches
  importance   f32 [kCols]: positive column weights with a few zeros (an imatrix entry)
  ref/<type>   bytes: quantize_row_<type>_ref(input) for q2_K q3_K q4_K q5_K q6_K
  imat/<type>  bytes: quantize_<type>(input, rows, cols, importance) for the K-quants and
               q4_0 q4_1 q5_0 q5_1 (llama.cpp's path when llama-quantize gets an imatrix)
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np

kRows = 8
kCols = 512
kSeed = 20250105
kBlock = {"q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
          "q2_K": (256, 84), "q3_K": (256, 110), "q4_K": (256, 144), "q5_K": (256, 176),
          "q6_K": (256, 210)}
kKQuants = ["q2_K", "q3_K", "q4_K", "q5_K", "q6_K"]


def load_ggml() -> ctypes.CDLL:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        sys.exit("gen_kquant_vectors.py: llama_cpp (llama-cpp-python) is needed")
    return ctypes.CDLL(str(Path(spec.origin).parent / "lib" / "libggml-base.so"))


def make_input(rng: np.random.Generator) -> np.ndarray:
    x = np.empty((kRows, kCols), dtype=np.float32)
    x[0] = rng.standard_normal(kCols) * 0.02                        # weight-like
    x[1] = rng.standard_t(3, kCols) * 0.05                          # heavy tails
    x[2] = rng.standard_normal(kCols)
    x[2, 256:] = 0.0                                                # a zero super-block
    x[2, 10] = 8.0                                                  # an outlier
    x[3] = np.abs(rng.standard_normal(kCols)) + 0.5                 # all positive, offset
    x[4] = -np.abs(rng.standard_normal(kCols)) * 1e-3               # all negative, small
    x[5] = rng.uniform(-1, 1, kCols)
    x[5, 0:16] = 0.0                                                # a zero group of 16
    x[5, 32:64] = 0.25                                              # a constant group of 32
    x[6] = np.round(rng.standard_normal(kCols) * 4) / 4             # many ties
    x[7] = rng.standard_normal(kCols) * np.linspace(0.01, 3, kCols)  # growing scale
    return x.astype(np.float32)


def quantize_ref(ggml: ctypes.CDLL, name: str, x: np.ndarray) -> bytes:
    fn = getattr(ggml, f"quantize_row_{name}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    elems, size = kBlock[name]
    out = np.zeros(x.size // elems * size, dtype=np.uint8)
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out.tobytes()


def quantize_weighted(ggml: ctypes.CDLL, name: str, x: np.ndarray, qw: np.ndarray) -> bytes:
    fn = getattr(ggml, f"quantize_{name}")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                   ctypes.c_void_p]
    fn.restype = ctypes.c_size_t
    elems, size = kBlock[name]
    out = np.zeros(x.size // elems * size, dtype=np.uint8)
    written = fn(x.ctypes.data, out.ctypes.data, x.shape[0], x.shape[1], qw.ctypes.data)
    assert written == out.size, (name, written, out.size)
    return out.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parent / "data/kquant_vectors.bin")
    args = parser.parse_args()
    ggml = load_ggml()
    rng = np.random.default_rng(kSeed)
    x = np.ascontiguousarray(make_input(rng))
    qw = (rng.chisquare(2, kCols) * 0.1).astype(np.float32)
    qw[::37] = 0.0
    entries: list[tuple[str, int, bytes]] = [("input", 0, x.tobytes()),
                                             ("importance", 0, qw.tobytes())]
    for name in kKQuants:
        entries.append((f"ref/{name}", 1, quantize_ref(ggml, name, x)))
    for name in kKQuants + ["q4_0", "q4_1", "q5_0", "q5_1"]:
        entries.append((f"imat/{name}", 1, quantize_weighted(ggml, name, x, qw)))
    out = bytearray(b"LZQV" + struct.pack("<II", 1, len(entries)))
    for name, kind, payload in entries:
        enc = name.encode("ascii")
        out += struct.pack("<I", len(enc)) + enc + struct.pack("<IQ", kind, len(payload)) + payload
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(bytes(out))
    print(f"wrote {args.out} ({len(out)} bytes, {len(entries)} entries)")


if __name__ == "__main__":
    main()

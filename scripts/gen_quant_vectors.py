#!/usr/bin/env python3
"""Writes tests/tensor/data/quant_vectors.bin: golden quantize/dequantize vectors for luzao's tensor
tests, produced by the gguf Python package and cross-checked against llama.cpp's own reference code
(libggml-base from llama-cpp-python, called through ctypes).

Run with the reference venv:
    /root/.cache/luzao/ref-venv/bin/python scripts/gen_quant_vectors.py

File layout (little-endian): b"LZQV", u32 version (1), u32 entry count, then per entry:
u32 name length, name (ASCII), u32 kind (0 = float32 array, 1 = raw bytes, 2 = int64 array),
u64 payload bytes, payload. Entries:
  input                     f32, the seeded random rows every quantizer is fed (kN floats)
  quant/<type>              bytes, quantize(input) for f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q8_1 q8_K
  dequant/<type>            f32, dequantize(quant/<type>) for the same types
  blocks/<type>             bytes, random but valid blocks (random bits, sane fp16/fp32 scales) for
                            every block type, K-quants included
  blocks_dequant/<type>     f32, dequantize(blocks/<type>)
  table                     i64, rows of (ggml type id, block size, type size) for every dtype
  names                     bytes, ggml_type_name of each table row, '\n'-separated
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import struct
import sys
from pathlib import Path

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf import quants as gq
except ImportError:  # pragma: no cover - environment problem
    sys.exit("gen_quant_vectors.py: the gguf package is missing; use /root/.cache/luzao/ref-venv")

kN = 2048  # a multiple of 256, so every format takes the same input
kBlocksPerType = 8
kSeed = 20240601

# (luzao/ggml name, ggml type id) of the GGUF dtypes luzao knows, plus the internal Q8_1.
kTypes = {
    "f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q8_1": 9,
    "q2_K": 10, "q3_K": 11, "q4_K": 12, "q5_K": 13, "q6_K": 14, "q8_K": 15, "bf16": 30,
}
kBlock = {  # ggml block_* sizes: elements, bytes (Q8_1 with fp16 d and s, as ggml compiles it)
    "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34),
    "q8_1": (32, 36), "q2_K": (256, 84), "q3_K": (256, 110), "q4_K": (256, 144),
    "q5_K": (256, 176), "q6_K": (256, 210), "q8_K": (256, 292),
}
# Byte offsets of the fp16 scale fields in each block (d first), to make random blocks sane.
kHalfFields = {
    "q4_0": [0], "q4_1": [0, 2], "q5_0": [0], "q5_1": [0, 2], "q8_0": [0], "q8_1": [0, 2],
    "q2_K": [80, 82], "q3_K": [108], "q4_K": [0, 2], "q5_K": [0, 2], "q6_K": [208],
}


def load_ggml() -> ctypes.CDLL:
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        sys.exit("gen_quant_vectors.py: llama_cpp (llama-cpp-python) is needed for the Q8_1/Q8_K "
                 "vectors and the cross-check; install it into the reference venv")
    lib = Path(spec.origin).parent / "lib" / "libggml-base.so"
    if not lib.exists():
        sys.exit(f"gen_quant_vectors.py: {lib} not found")
    return ctypes.CDLL(str(lib))


def make_input(rng: np.random.Generator) -> np.ndarray:
    """Rows with the shapes that stress quantizers: ordinary data, outliers, constants, zeros,
    sign-skewed blocks, exact rounding ties and tiny values."""
    x = rng.standard_normal(kN).astype(np.float32)
    blocks = x.reshape(-1, 32)
    blocks[1] = 0.0                                               # all-zero block
    blocks[2] = 0.75                                              # constant block
    blocks[3] = -np.abs(blocks[3])                                # all negative
    blocks[4] = np.abs(blocks[4]) + 1.0                           # all positive, offset
    blocks[5, 7] = 40.0                                           # one large outlier
    blocks[6, 9] = -40.0                                          # one large negative outlier
    blocks[7] = np.arange(-16, 16, dtype=np.float32) * 0.5        # exact ties for several formats
    blocks[8] = np.arange(32, dtype=np.float32) - 8.0             # integer ramp
    blocks[9] *= np.float32(1e-3)                                 # small magnitudes
    blocks[10] *= np.float32(1e4)                                 # large magnitudes
    blocks[11] = rng.uniform(-1, 1, 32).astype(np.float32)
    blocks[12, :] = 3.0
    blocks[12, 5] = -3.0                                          # equal magnitudes, first wins
    # A whole 256-element super-block of zeros exercises Q8_K's zero path.
    x[256 * 5: 256 * 6] = 0.0
    # Super-block 6: largest magnitude -127 makes Q8_K's iscale and Q8_0's d exactly 1, so the
    # half-integers that follow are exact ties (Q8_K rounds them to even, Q8_0 away from zero).
    ties = x[256 * 6: 256 * 7]
    ties[:] = (np.arange(256, dtype=np.float32) % 100) - np.float32(49.5)
    ties[0::32] = -127.0
    return x


def ggml_quantize(ggml: ctypes.CDLL, name: str, x: np.ndarray) -> bytes:
    fn = getattr(ggml, f"quantize_row_{name}_ref")
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    elems, size = kBlock[name]
    out = np.zeros(x.size // elems * size, dtype=np.uint8)  # zeroed: Q8_K leaves bsums of zero blocks
    fn(x.ctypes.data, out.ctypes.data, x.size)
    return out.tobytes()


def ggml_dequantize(ggml: ctypes.CDLL, name: str, data: bytes) -> np.ndarray | None:
    fn_name = f"dequantize_row_{name}"
    if not hasattr(ggml, fn_name):
        return None
    fn = getattr(ggml, fn_name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn.restype = None
    elems, size = kBlock[name]
    n = len(data) // size * elems
    src = np.frombuffer(data, dtype=np.uint8).copy()
    out = np.zeros(n, dtype=np.float32)
    fn(src.ctypes.data, out.ctypes.data, n)
    return out


def random_blocks(rng: np.random.Generator, name: str) -> bytes:
    elems, size = kBlock[name]
    raw = rng.integers(0, 256, size=(kBlocksPerType, size), dtype=np.uint8)
    for b in range(kBlocksPerType):
        for off in kHalfFields.get(name, []):
            mag = np.float32(10.0 ** rng.uniform(-4, 0))
            val = mag if rng.random() < 0.7 else -mag
            raw[b, off:off + 2] = np.frombuffer(np.float16(val).tobytes(), dtype=np.uint8)
        if name == "q8_K":
            d = np.float32(10.0 ** rng.uniform(-4, 0)) * (1 if rng.random() < 0.5 else -1)
            raw[b, 0:4] = np.frombuffer(np.float32(d).tobytes(), dtype=np.uint8)
    if name in ("q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "q8_0", "q4_0"):
        # The last block gets scale fields of exact 1.0/-1.0 so every code maps to a small integer.
        for i, off in enumerate(kHalfFields[name]):
            raw[-1, off:off + 2] = np.frombuffer(np.float16(1.0 if i == 0 else -1.0).tobytes(),
                                                 dtype=np.uint8)
    return raw.tobytes()


class Writer:
    def __init__(self) -> None:
        self.entries: list[tuple[str, int, bytes]] = []

    def f32(self, name: str, a: np.ndarray) -> None:
        self.entries.append((name, 0, np.ascontiguousarray(a, dtype="<f4").tobytes()))

    def raw(self, name: str, b: bytes) -> None:
        self.entries.append((name, 1, bytes(b)))

    def i64(self, name: str, a: np.ndarray) -> None:
        self.entries.append((name, 2, np.ascontiguousarray(a, dtype="<i8").tobytes()))

    def write(self, path: Path) -> None:
        out = bytearray(b"LZQV" + struct.pack("<II", 1, len(self.entries)))
        for name, kind, payload in self.entries:
            enc = name.encode("ascii")
            out += struct.pack("<I", len(enc)) + enc + struct.pack("<IQ", kind, len(payload)) + payload
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(out))


def same_floats(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.all((a.view(np.uint32) == b.view(np.uint32)) |
                                               (np.isnan(a) & np.isnan(b))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    root = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=root / "tests/tensor/data/quant_vectors.bin")
    args = parser.parse_args()

    ggml = load_ggml()
    ggml.ggml_type_name.restype = ctypes.c_char_p
    ggml.ggml_type_size.restype = ctypes.c_size_t
    ggml.ggml_blck_size.restype = ctypes.c_int64

    rng = np.random.default_rng(kSeed)
    w = Writer()

    # The dtype table, from ggml itself (and agreeing with gguf's GGML_QUANT_SIZES for file types).
    rows, names = [], []
    for name, tid in kTypes.items():
        blck, size = int(ggml.ggml_blck_size(tid)), int(ggml.ggml_type_size(tid))
        if name in kBlock:
            assert kBlock[name] == (blck, size), (name, blck, size)
        if name != "q8_1":
            assert gguf.GGML_QUANT_SIZES[T(tid)] == (blck, size), name
        rows.append((tid, blck, size))
        names.append(ggml.ggml_type_name(tid).decode())
        assert names[-1] == name, (names[-1], name)
    w.i64("table", np.array(rows, dtype=np.int64))
    w.raw("names", "\n".join(names).encode())

    x = make_input(rng)
    w.f32("input", x)

    # Plain float formats.
    w.raw("quant/f16", x.astype("<f2").tobytes())
    w.f32("dequant/f16", x.astype(np.float16).astype(np.float32))
    bf = gq.quantize(x, T.BF16)
    w.raw("quant/bf16", bf.tobytes())
    w.f32("dequant/bf16", gq.dequantize(bf, T.BF16).reshape(-1))

    # Quantizers: gguf package where it has one, llama.cpp's *_ref for all, and they must agree.
    for name in ("q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1", "q8_K"):
        ref = ggml_quantize(ggml, name, x)
        if name not in ("q8_1", "q8_K"):
            q = gq.quantize(x, T(kTypes[name])).tobytes()
            assert q == ref, f"{name}: gguf and llama.cpp quantizers disagree"
        w.raw(f"quant/{name}", ref)
        deq = ggml_dequantize(ggml, name, ref)
        if name not in ("q8_1", "q8_K"):
            d2 = gq.dequantize(np.frombuffer(ref, dtype=np.uint8), T(kTypes[name])).reshape(-1)
            assert deq is not None and same_floats(deq, d2), f"{name}: dequantizers disagree"
        if deq is None:  # ggml has no dequantize_row_q8_1; d * q by its definition
            blocks = np.frombuffer(ref, dtype=np.uint8).reshape(-1, 36)
            d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
            deq = (blocks[:, 4:].copy().view(np.int8).astype(np.float32) * d).reshape(-1)
        w.f32(f"dequant/{name}", deq)

    # Random valid blocks for every block type, dequantized by both references where both exist.
    for name in kBlock:
        data = random_blocks(rng, name)
        w.raw(f"blocks/{name}", data)
        deq = ggml_dequantize(ggml, name, data)
        if name not in ("q8_1", "q8_K"):
            d2 = gq.dequantize(np.frombuffer(data, dtype=np.uint8), T(kTypes[name])).reshape(-1)
            assert deq is not None and same_floats(deq, d2), f"{name}: dequantizers disagree"
        if deq is None:
            blocks = np.frombuffer(data, dtype=np.uint8).reshape(-1, 36)
            d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
            deq = (blocks[:, 4:].copy().view(np.int8).astype(np.float32) * d).reshape(-1)
        w.f32(f"blocks_dequant/{name}", deq)

    w.write(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(w.entries)} entries)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Writes tests/format/data/fixture.gguf with the `gguf` Python package (the reference writer).

gguf_fixture_test.cpp checks every key, value and tensor written here; keep the two in step.
Run: /root/.cache/luzao/ref-venv/bin/python tests/format/make_gguf_fixture.py
"""
import math
import pathlib
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType, GGUFValueType

OUT = pathlib.Path(__file__).resolve().parent / "data" / "fixture.gguf"


def main() -> int:
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(out), "llama")  # writes general.architecture = "llama"
    w.add_custom_alignment(64)  # general.alignment (uint32)
    w.add_name("luzao fixture")
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.15625)
    w.add_uint64("test.u64", 2**63 + 5)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", 2.718281828459045)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "爐灶 — stove")
    w.add_array("test.arr_int", [1, -2, 3])
    w.add_array("test.arr_float", [0.5, -1.25])
    w.add_array("test.arr_str", ["a", "bb", ""])
    w.add_array("test.arr_bool", [True, False])
    w.add_array("test.arr_nested", [[1, 2], [3]])
    w.add_array("test.arr_nested_str", [["x"], ["y", "z"]])

    # numpy shape (rows, cols) is stored in GGUF order [cols, rows].
    embd = (np.arange(32, dtype=np.float32) * 0.25 - 4.0).reshape(4, 8)
    w.add_tensor("token_embd.weight", embd)
    norm = np.array([1.0, -2.0, 0.5, 0.0, 65504.0, -0.25, 3.0, 1e-3], dtype=np.float16)
    w.add_tensor("blk.0.attn_norm.weight", norm)
    ffn = np.array([3.0 * math.sin(i) for i in range(128)], dtype=np.float32).reshape(2, 64)
    q = gguf.quants.quantize(ffn, GGMLQuantizationType.Q8_0)
    w.add_tensor("blk.0.ffn_down.weight", q, raw_dtype=GGMLQuantizationType.Q8_0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

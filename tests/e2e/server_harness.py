"""Starts `luzao serve` on a free port for the end-to-end server tests and stops it afterwards."""
from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path


def http_request(url: str, method: str = "GET", body: bytes | None = None,
                 headers: dict[str, str] | None = None, timeout: float = 60):
    """Returns (status, headers, body bytes) without raising on HTTP errors; a body without
    headers is sent as JSON."""
    if headers is None:
        headers = {"Content-Type": "application/json"} if body else {}
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class ListeningProcess:
    """A luzao subprocess (serve, router) that prints 'on http://HOST:PORT' on stderr when it
    listens; .url is that address."""

    def __init__(self, args: list[str], timeout: float = 60):
        self.args = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.url = ""
        found = threading.Event()

        def read_stderr():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"on (http://[0-9.]+:\d+)", line)
                if m and not found.is_set():
                    self.url = m.group(1)
                    found.set()
            found.set()

        threading.Thread(target=read_stderr, daemon=True).start()
        if not found.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError(f"luzao {args[1]} did not start:\n{''.join(self.log)[-4000:]}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ServerProcess(ListeningProcess):
    """A running `luzao serve`; .url is http://127.0.0.1:PORT, .model_id the served id."""

    def __init__(self, luzao: Path, model: Path, *args: str, startup_timeout: float = 120):
        self.model_id = model.name.removesuffix(".gguf")
        super().__init__([str(luzao), "serve", "-m", str(model), "--port", "0", *args],
                         startup_timeout)
        deadline = time.monotonic() + startup_timeout
        while True:
            try:
                if self.get("/health")[0] == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"luzao serve is not healthy:\n{''.join(self.log)[-4000:]}")
            time.sleep(0.1)

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None, timeout: float = 120):
        """Returns (status, headers, body bytes) without raising on HTTP errors."""
        return http_request(self.url + path, method, body, headers or {}, timeout)

    def get(self, path: str, **kw):
        return self.request("GET", path, **kw)

    def post_json(self, path: str, obj, **kw):
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return self.request("POST", path, json.dumps(obj).encode(), headers=headers, **kw)

    def metrics(self) -> dict[str, float]:
        """Prometheus samples by full name with labels."""
        status, _, body = self.get("/metrics")
        assert status == 200
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

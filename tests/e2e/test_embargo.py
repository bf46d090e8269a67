"""The embargo drill: `luzao serve --pool` on a cpu device and the fault-injection plugin
(examples/fault_plugin, device "faulty:0", slowed down so that requests are in flight), 32
concurrent streaming greedy requests through the official `openai` client, and the faulty device
withdrawn mid-generation: drained by an administrator, failing by itself, hanging (the watchdog).
Every request completes with exactly the text of an undisturbed run, /metrics counts the
migrations, /v1/pool shows the device withdrawn. Where PoCL is installed, the pool of all three
kinds (cpu, opencl:0, the plugin) loses its OpenCL vendor to an embargo mid-generation, with the
same result. Also: the admin endpoints' errors, and the
cancellation of a non-streaming request whose client disconnects.

The model is the tiny F32 llama: on it the cpu backend and the example plugin (the faulty
device's math) give the same greedy tokens (tests/e2e/test_devices.py compares them), so a
request may move between them without changing its text.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse

import pytest

from server_harness import ServerProcess

openai = pytest.importorskip("openai", reason="the openai package is not installed "
                                              "(scripts/setup-deps.sh installs it)")

N_REQUESTS = 32
MAX_TOKENS = 40
PROMPTS = [f"Story {i}: once upon a time the {w}" for i, w in enumerate(
    ["fox", "cat", "king", "river", "moon", "bird", "tree", "ship"] * 4)]
SLOW_MS = "15"  # added to every step of the faulty device: requests stay in flight for a while


def fault_plugin(luzao_bin) -> Path:
    path = luzao_bin.parent / "examples" / "fault_plugin" / "libluzao-faulty.so"
    if not path.is_file():
        pytest.skip(f"fault-injection plugin not built at {path}")
    return path


@pytest.fixture(scope="module")
def model(tiny_models) -> Path:
    return tiny_models["tiny-f32"]


def write_pool(tmp: Path) -> Path:
    pool = {"devices": [
        {"id": "cpu0", "device": "cpu", "price_per_hour": 0.50, "labels": {"vendor": "hostco"}},
        {"id": "faulty0", "device": "faulty:0", "price_per_hour": 0.20,
         "labels": {"vendor": "faultco"}}]}
    path = tmp / "pool.json"
    path.write_text(json.dumps(pool))
    return path


def start(luzao_bin, model, tmp: Path, *args: str, control: str = "ok") -> tuple[ServerProcess, Path]:
    control_file = tmp / "fault-control"
    set_control(control_file, control)
    env = {"LUZAO_PLUGIN_PATH": str(fault_plugin(luzao_bin)),
           "LUZAO_FAULT_CONTROL": str(control_file), "LUZAO_FAULT_DELAY_MS": SLOW_MS}
    with mock.patch.dict(os.environ, env):
        server = ServerProcess(luzao_bin, model, "-t", "1", "--parallel", "4", "-c", "256", *args)
    return server, control_file


def set_control(path: Path, word: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(word + "\n")
    tmp.replace(path)  # atomic: the plugin never reads a half-written word


class Drill:
    """32 concurrent streaming requests; `started` is set once `threshold` chunks have arrived."""

    def __init__(self, server: ServerProcess, threshold: int = 16):
        self.client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused",
                                    max_retries=0, timeout=300)
        self.server = server
        self.model = server.model_id
        self.go = threading.Barrier(N_REQUESTS)
        self.chunks = 0
        self.lock = threading.Lock()
        self.started = threading.Event()
        self.threshold = threshold
        self.durations: list[float] = []

    def one(self, prompt: str, together: bool = False) -> tuple[str, str]:
        if together:
            self.go.wait(60)  # all at once, before any device has been measured
        t0 = time.monotonic()
        text, finish = "", None
        stream = self.client.completions.create(model=self.model, prompt=prompt,
                                                max_tokens=MAX_TOKENS, temperature=0, stream=True)
        for chunk in stream:
            choice = chunk.choices[0]
            text += choice.text
            finish = choice.finish_reason or finish
            with self.lock:
                self.chunks += 1
                if self.chunks >= self.threshold:
                    self.started.set()
        with self.lock:
            self.durations.append(time.monotonic() - t0)
        return text, finish

    def run(self, disturb=None, target: str = "faulty0") -> list[tuple[str, str]]:
        with ThreadPoolExecutor(N_REQUESTS) as pool:
            futures = [pool.submit(self.one, p, True) for p in PROMPTS]
            if disturb is not None:
                assert self.started.wait(120), "the requests did not start"
                device = next(d for d in pool_state(self.server)["devices"] if d["id"] == target)
                assert device["requests_running"] + device["requests_queued"] > 0, (
                    f"the router left {target} idle: {device}")
                disturb()
            return [f.result() for f in futures]


@pytest.fixture(scope="module")
def undisturbed(luzao_bin, model, tmp_path_factory) -> list[tuple[str, str]]:
    """The texts of a run on the cpu alone, nothing withdrawn."""
    server, _ = start(luzao_bin, model, tmp_path_factory.mktemp("base"))
    try:
        out = Drill(server).run()
    finally:
        server.stop()
    assert all(finish in ("length", "stop") for _, finish in out)
    return out


def pool_state(server: ServerProcess) -> dict:
    status, _, body = server.get("/v1/pool")
    assert status == 200, body
    return json.loads(body)


def check_drill(server: ServerProcess, got, undisturbed, state: str) -> dict:
    assert len(got) == N_REQUESTS
    for i, ((text, finish), (ref_text, ref_finish)) in enumerate(zip(got, undisturbed)):
        assert text == ref_text, f"request {i}: {text!r} != undisturbed {ref_text!r}"
        assert finish == ref_finish, f"request {i}: finish {finish} != {ref_finish}"
    m = server.metrics()
    assert m["luzao_migrations_total"] > 0, "nothing moved: the device was withdrawn too late"
    assert m["luzao_migrations_failed_total"] == 0
    assert m['luzao_replica_up{replica="faulty0",device="faulty:0",vendor="faultco",'
             f'state="{state}"}}'] == 0
    assert m['luzao_replica_up{replica="cpu0",device="cpu",vendor="hostco",state="serving"}'] == 1
    pool = pool_state(server)
    faulty = next(d for d in pool["devices"] if d["id"] == "faulty0")
    assert faulty["state"] == state and faulty["requests_moved_out"] > 0
    assert pool["migrations"] == m["luzao_migrations_total"] and pool["lost_requests"] == 0
    delays = pool["resume_seconds"]
    print(f"{state}: {pool['migrations']} requests moved; resume p50 {delays['p50']:.3f} s, "
          f"p99 {delays['p99']:.3f} s")
    return pool


def test_drain_mid_generation(luzao_bin, model, tmp_path, undisturbed):
    server, _ = start(luzao_bin, model, tmp_path, "--pool", str(write_pool(tmp_path)))
    try:
        before = pool_state(server)
        assert [d["state"] for d in before["devices"]] == ["serving", "serving"]
        drill = Drill(server)

        def drain():
            status, _, body = server.request("POST", "/admin/devices/faulty0/drain")
            assert status == 200, body

        got = drill.run(drain)
        pool = check_drill(server, got, undisturbed, "drained")
        # New requests avoid the drained device.
        routed = next(d for d in pool["devices"] if d["id"] == "faulty0")["requests_routed"]
        Drill(server).one(PROMPTS[0])
        assert next(d for d in pool_state(server)["devices"]
                    if d["id"] == "faulty0")["requests_routed"] == routed
        d = sorted(drill.durations)
        print(f"drain run: request duration p50 {statistics.median(d):.3f} s, max {d[-1]:.3f} s")
    finally:
        server.stop()


def test_device_fails_by_itself(luzao_bin, model, tmp_path, undisturbed):
    server, control = start(luzao_bin, model, tmp_path, "--pool", str(write_pool(tmp_path)))
    try:
        got = Drill(server).run(lambda: set_control(control, "fail"))
        pool = check_drill(server, got, undisturbed, "failed")
        reason = next(d for d in pool["devices"] if d["id"] == "faulty0")["reason"]
        assert "injected device failure" in reason
    finally:
        server.stop()


def test_hung_device_is_failed_by_the_watchdog(luzao_bin, model, tmp_path, undisturbed):
    server, control = start(luzao_bin, model, tmp_path, "--pool", str(write_pool(tmp_path)),
                            "--watchdog-ms", "1000")
    try:
        got = Drill(server).run(lambda: set_control(control, "hang"))
        pool = check_drill(server, got, undisturbed, "failed")
        reason = next(d for d in pool["devices"] if d["id"] == "faulty0")["reason"]
        assert "no progress" in reason
    finally:
        set_control(control, "ok")  # the device comes back, so the server can stop cleanly
        server.stop()


def test_opencl_vendor_embargoed_mid_generation(luzao_bin, model, tmp_path, undisturbed):
    """The CI pool with all three kinds of device: cpu, OpenCL (PoCL) and the plugin. The OpenCL
    vendor is embargoed while requests run on it; they finish on the others with the same text.
    The plugin computes as the reference backend does, and on a few of these prompts that picks
    another token at a near-tie late in the answer than the cpu does (so would the undisturbed
    run on it); the check covers the prompts on which every device alone agrees."""
    listing = subprocess.run([str(luzao_bin), "devices", "--no-check"], capture_output=True,
                             timeout=120)
    if re.search(r"^opencl:0 ", listing.stdout.decode(), re.M) is None:
        pytest.skip("no OpenCL device (PoCL) on this machine")
    agree = set(range(N_REQUESTS))
    for device in ("opencl:0", "faulty:0"):
        alone, _ = start(luzao_bin, model, tmp_path, "--device", device)
        try:
            out = Drill(alone).run()
        finally:
            alone.stop()
        agree -= {i for i in range(N_REQUESTS) if out[i] != undisturbed[i]}
    assert len(agree) >= N_REQUESTS * 3 // 4, f"the devices agree on too few prompts: {agree}"
    pool_file = tmp_path / "pool.json"
    pool_file.write_text(json.dumps({"devices": [
        {"id": "cpu0", "device": "cpu", "price_per_hour": 0.50, "labels": {"vendor": "hostco"}},
        {"id": "ocl0", "device": "opencl:0", "price_per_hour": 0.30,
         "labels": {"vendor": "pocl"}},
        {"id": "faulty0", "device": "faulty:0", "price_per_hour": 0.20,
         "labels": {"vendor": "faultco"}}]}))
    server, _ = start(luzao_bin, model, tmp_path, "--pool", str(pool_file))
    try:
        assert [d["state"] for d in pool_state(server)["devices"]] == ["serving"] * 3

        # The cpu, the fastest, would take every request once measured: it sits out the start,
        # so that requests run on ocl0, and comes back just before the embargo.
        status, _, body = server.request("POST", "/admin/devices/cpu0/drain")
        assert status == 200, body

        def embargo():
            status, _, body = server.request("POST", "/admin/devices/cpu0/restore")
            assert status == 200, body
            status, _, body = server.post_json("/admin/embargo", {"vendor": "pocl"})
            assert status == 200 and json.loads(body)["withdrawn"] == ["ocl0"], body

        got = Drill(server, threshold=1).run(embargo, target="ocl0")  # early: ocl0 is quick
        assert len(got) == N_REQUESTS
        for i, ((text, finish), (ref_text, ref_finish)) in enumerate(zip(got, undisturbed)):
            if i not in agree:
                continue
            assert text == ref_text, f"request {i}: {text!r} != undisturbed {ref_text!r}"
            assert finish == ref_finish, f"request {i}: finish {finish} != {ref_finish}"
        pool = pool_state(server)
        ocl = next(d for d in pool["devices"] if d["id"] == "ocl0")
        assert ocl["state"] == "embargoed" and ocl["requests_moved_out"] > 0, ocl
        assert pool["lost_requests"] == 0
        m = server.metrics()
        assert m["luzao_migrations_total"] >= ocl["requests_moved_out"]
        assert m["luzao_migrations_failed_total"] == 0
        print(f"opencl embargo: {ocl['requests_moved_out']} requests moved off ocl0")
    finally:
        server.stop()


def test_admin_endpoints(luzao_bin, model, tmp_path):
    server, _ = start(luzao_bin, model, tmp_path, "--pool", str(write_pool(tmp_path)),
                      "--api-key", "sesame")
    auth = {"Authorization": "Bearer sesame"}
    try:
        status, _, body = server.request("POST", "/admin/devices/faulty0/drain")
        assert status == 401, body
        assert server.get("/v1/pool")[0] == 401
        status, _, body = server.request("POST", "/admin/devices/nope/drain", headers=auth)
        assert status == 404 and json.loads(body)["error"]["code"] == "device_not_found"
        status, _, body = server.post_json("/admin/embargo", {"vendor": 3}, headers=auth)
        assert status == 400 and json.loads(body)["error"]["param"] == "vendor"
        status, _, body = server.request("POST", "/admin/embargo", b"{not json", headers=auth)
        assert status == 400, body
        status, _, body = server.post_json("/admin/embargo", {"vendor": "FAULTCO"}, headers=auth)
        assert status == 200 and json.loads(body)["withdrawn"] == ["faulty0"], body
        # The cpu is now the last serving device: withdrawing it needs force.
        status, _, body = server.post_json("/admin/embargo", {"vendor": "hostco"}, headers=auth)
        assert status == 409 and json.loads(body)["error"]["code"] == "last_device", body
        status, _, body = server.request("POST", "/admin/devices/cpu0/drain", headers=auth)
        assert status == 409, body
        status, _, body = server.request("POST", "/admin/devices/faulty0/restore", headers=auth)
        assert status == 409, body  # its vendor is embargoed
        status, _, body = server.request("POST", "/admin/devices/cpu0/drain?force=1", headers=auth)
        assert status == 200, body
        # Nothing serves: a clear 503, and the server stays up.
        status, headers, body = server.post_json(
            "/v1/completions", {"prompt": "hi", "max_tokens": 2}, headers=auth)
        assert status == 503 and json.loads(body)["error"]["code"] == "no_device", body
        status, _, body = server.request("POST", "/admin/devices/cpu0/restore", headers=auth)
        assert status == 200, body
        status, _, body = server.post_json(
            "/v1/completions", {"prompt": "hi", "max_tokens": 2}, headers=auth)
        assert status == 200, body
        assert server.get("/health")[0] == 200
    finally:
        server.stop()


def test_non_streaming_disconnect_cancels(luzao_bin, model, tmp_path):
    # The faulty device alone, slowed: 200 tokens would take seconds.
    server, _ = start(luzao_bin, model, tmp_path, "--device", "faulty:0")
    try:
        u = urlparse(server.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        conn.request("POST", "/v1/completions", json.dumps(
            {"prompt": "Once upon a time", "max_tokens": 200, "temperature": 0}),
            {"Content-Type": "application/json"})
        time.sleep(0.5)
        conn.sock.close()  # the client gives up before the answer
        conn.close()
        deadline = time.monotonic() + 30
        while server.metrics().get("luzao_requests_cancelled_total", 0) < 1:
            assert time.monotonic() < deadline, "the abandoned request was not cancelled"
            time.sleep(0.1)
        m = server.metrics()
        assert m["luzao_requests_running"] == 0
        assert m["luzao_generated_tokens_total"] < 150, "generation did not stop early"
        assert m.get('luzao_requests_total{endpoint="/v1/completions",status="499"}') == 1
    finally:
        server.stop()

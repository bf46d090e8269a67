"""Placement in `luzao serve --pool`: with a `workload` in the pool file and the devices' speeds in
POOL.probe.json (written here, so the placement is known), only the cheapest sufficient devices
load the model and the others wait on standby; when a placed device is drained mid-load its
requests move at once and complete with the text of an undisturbed run, and the re-plan starts
the standby device (the fault-injection plugin's faulty:0) in the background, which then serves
new requests. With `survive_vendor_loss` the placement spans two vendors. Without a workload every
device serves (test_embargo.py), and the placement is null.

The model is the tiny F32 llama. The drill's requests only ever run on the two cpu devices (the
standby device starts after they were all routed), so their greedy texts are compared exactly
with a run on the cpu alone; faulty:0 differs from the cpu on a few prompts late in the answer
(see test_embargo.py), so the requests it serves after the re-plan are checked for completion.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from test_embargo import (Drill, MAX_TOKENS, N_REQUESTS, PROMPTS, pool_state, start,  # noqa: F401
                          undisturbed)  # a module fixture: the texts of a run on the cpu alone

# Probed speeds, stated by the test. The cpus: prefill 1000 t/s, decode 100 t/s alone, 200 t/s
# batched; a request of 50 prompt + 40 output tokens keeps one busy 50/1000 + 40/200 = 0.25 s, so
# it takes 0.8 / 0.25 = 3.2 requests/s at the 80% target utilisation, and 5 requests/s need both.
# faulty0 is stated far faster when batched (1e5 t/s; 100 t/s alone, like the cpus, for the TPOT
# limit below) so that, once started, the router sends it new requests by its probed speed before
# traffic has measured it; with `replicas: 2` and its 0.90/h it is still left on standby (the
# cpus' pair costs 1.00/h, a cpu and faulty0 1.40/h).
SPEED = {"prefill_tps": 1000.0, "decode_tps": 100.0, "decode_tps_batched": 200.0, "parallel": 4}
FAST = {"prefill_tps": 1e6, "decode_tps": 100.0, "decode_tps_batched": 1e5, "parallel": 4}
WORKLOAD = {"rps": 5, "prompt_tokens": 50, "output_tokens": 40}  # two replicas needed
DEVICES = [
    {"id": "cpu-a", "device": "cpu", "price_per_hour": 0.50, "labels": {"vendor": "hostco"}},
    {"id": "cpu-b", "device": "cpu", "price_per_hour": 0.50, "labels": {"vendor": "hostco"}},
    {"id": "faulty0", "device": "faulty:0", "price_per_hour": 0.90,
     "labels": {"vendor": "faultco"}},
]


@pytest.fixture(scope="module")
def model(tiny_models) -> Path:
    return tiny_models["tiny-f32"]


def write_pool(tmp: Path, **extra) -> Path:
    path = tmp / "pool.json"
    path.write_text(json.dumps({"devices": DEVICES, **extra}))
    probe = {"devices": {d["id"]: {"device": d["device"], "model": "tiny-f32.gguf",
                                   **(FAST if d["id"] == "faulty0" else SPEED)}
                         for d in DEVICES}}
    (tmp / "pool.probe.json").write_text(json.dumps(probe))
    return path


def device(pool: dict, id_: str) -> dict:
    return next(d for d in pool["devices"] if d["id"] == id_)


def wait_state(server, id_: str, state: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        pool = pool_state(server)
        if device(pool, id_)["state"] == state:
            return pool
        assert time.monotonic() < deadline, f"{id_} is not {state}: {device(pool, id_)}"
        time.sleep(0.1)


def test_standby_device_started_by_the_replan_after_a_drain(luzao_bin, model, tmp_path,
                                                            undisturbed):
    server, _ = start(luzao_bin, model, tmp_path, "--pool",
                      str(write_pool(tmp_path, workload=WORKLOAD, replicas=2)))
    try:
        log = "".join(server.log)
        assert "placement for 5 requests/s" in log and "standby: faulty0" in log, log
        before = pool_state(server)
        assert [d["state"] for d in before["devices"]] == ["serving", "serving", "standby"]
        placement = before["placement"]
        assert sorted(placement["replicas"]) == ["cpu-a", "cpu-b"]
        assert placement["feasible"] and placement["reason"] is None
        assert placement["cost_per_hour"] == pytest.approx(1.0)
        # 1.0 per hour / (5 requests/s * 40 tokens * 3600 s) * 1e6
        assert placement["cost_per_million_tokens"] == pytest.approx(1e6 / 720000)
        assert placement["replans"] == []
        m = server.metrics()
        assert m['luzao_replica_up{replica="faulty0",device="faulty:0",vendor="faultco",'
                 'state="standby"}'] == 0
        assert m['luzao_replica_up{replica="cpu-a",device="cpu",vendor="hostco",'
                 'state="serving"}'] == 1

        def drain():
            # Once every request of the drill has been routed (to the two cpus), so that none of
            # them can reach the device the re-plan starts.
            deadline = time.monotonic() + 60
            while sum(d["requests_routed"] for d in pool_state(server)["devices"]) < N_REQUESTS:
                assert time.monotonic() < deadline, "the drill's requests were not all routed"
                time.sleep(0.01)
            status, _, body = server.request("POST", "/admin/devices/cpu-a/drain")
            assert status == 200, body

        got = Drill(server).run(drain, target="cpu-a")
        assert len(got) == N_REQUESTS
        for i, ((text, finish), (ref_text, ref_finish)) in enumerate(zip(got, undisturbed)):
            assert text == ref_text, f"request {i}: {text!r} != undisturbed {ref_text!r}"
            assert finish == ref_finish, f"request {i}: finish {finish} != {ref_finish}"
        pool = pool_state(server)
        assert device(pool, "cpu-a")["state"] == "drained"
        assert device(pool, "cpu-a")["requests_moved_out"] > 0
        assert pool["migrations"] > 0 and pool["lost_requests"] == 0
        assert device(pool, "faulty0")["requests_routed"] == 0  # the drill ran on the cpus only
        replans = pool["placement"]["replans"]
        assert len(replans) == 1, replans
        assert replans[0]["added"] == ["faulty0"] and replans[0]["removed"] == ["cpu-a"]
        assert "'cpu-a' was drained" in replans[0]["trigger"] and replans[0]["feasible"]
        assert sorted(pool["placement"]["replicas"]) == ["cpu-b", "faulty0"]
        assert pool["placement"]["cost_per_hour"] == pytest.approx(1.4)

        pool = wait_state(server, "faulty0", "serving")
        assert device(pool, "faulty0")["reason"] is None
        routed_a = device(pool, "cpu-a")["requests_routed"]
        # New requests reach the started device (first by its probed speed).
        drill = Drill(server)
        results: list[tuple[str, str]] = []
        lock = threading.Lock()

        def one(prompt: str) -> None:
            r = drill.one(prompt)
            with lock:
                results.append(r)

        threads = [threading.Thread(target=one, args=(p,)) for p in PROMPTS[:8]]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert len(results) == 8
        assert all(text and finish in ("length", "stop") for text, finish in results), results
        pool = pool_state(server)
        faulty = device(pool, "faulty0")
        assert faulty["requests_routed"] > 0 and faulty["requests_served"] > 0, faulty
        assert device(pool, "cpu-a")["requests_routed"] == routed_a  # drained: nothing new
        m = server.metrics()
        assert m['luzao_replica_up{replica="faulty0",device="faulty:0",vendor="faultco",'
                 'state="serving"}'] == 1
        assert "started by the re-plan" in "".join(server.log)
    finally:
        server.stop()


def test_survive_vendor_loss_places_two_vendors(luzao_bin, model, tmp_path):
    # 1 request/s: one replica would do; the policy wants the loss of either vendor covered, so a
    # cpu and the faulty device serve (1.40/h) and the other cpu waits.
    pool_file = write_pool(tmp_path, workload={**WORKLOAD, "rps": 1},
                           policy={"survive_vendor_loss": True})
    server, _ = start(luzao_bin, model, tmp_path, "--pool", str(pool_file))
    try:
        pool = pool_state(server)
        serving = [d for d in pool["devices"] if d["state"] == "serving"]
        assert sorted(d["vendor"] for d in serving) == ["faultco", "hostco"], pool["devices"]
        assert [d["state"] for d in pool["devices"]].count("standby") == 1
        assert pool["placement"]["feasible"], pool["placement"]
        assert pool["placement"]["cost_per_hour"] == pytest.approx(1.4)
        status, _, body = server.post_json(
            "/v1/completions", {"prompt": PROMPTS[0], "max_tokens": 4, "temperature": 0})
        assert status == 200, body
    finally:
        server.stop()


def test_without_workload_every_device_serves_and_an_impossible_slo_starts_all(
        luzao_bin, model, tmp_path):
    server, _ = start(luzao_bin, model, tmp_path, "--pool", str(write_pool(tmp_path)))
    try:
        pool = pool_state(server)
        assert [d["state"] for d in pool["devices"]] == ["serving"] * 3
        assert pool["placement"] is None
    finally:
        server.stop()
    # No device decodes a token in 5 ms (10 ms each): nothing can be placed, every device starts.
    pool_file = write_pool(tmp_path, workload=WORKLOAD, policy={"slo": {"tpot_ms": 5}})
    server, _ = start(luzao_bin, model, tmp_path, "--pool", str(pool_file))
    try:
        pool = pool_state(server)
        assert [d["state"] for d in pool["devices"]] == ["serving"] * 3
        placement = pool["placement"]
        assert not placement["feasible"] and "SLO" in placement["reason"], placement
        assert placement["fallback"] is True
        assert "starting every eligible device (3)" in "".join(server.log)
        status, _, body = server.post_json(
            "/v1/completions", {"prompt": PROMPTS[1], "max_tokens": MAX_TOKENS, "temperature": 0})
        assert status == 200, body
    finally:
        server.stop()

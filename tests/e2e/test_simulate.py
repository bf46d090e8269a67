"""`luzao simulate` and `luzao pool plan` end to end: a vendor withdrawn from a simulated pool loses
no request while capacity remains, a 1,000-device three-vendor pool simulates in seconds, traces and
pool files are read, and bad input gets a one-line error.
"""
from __future__ import annotations

import json

import pytest

from conftest import run_cli


def simulate(luzao_bin, *args, timeout=300):
    proc = run_cli(luzao_bin, "simulate", "--json", *args, timeout=timeout)
    out = proc.stdout.decode()
    return proc.returncode, (json.loads(out) if out.strip().startswith("{") else None), proc.stderr.decode()


def test_withdrawal_loses_nothing(luzao_bin):
    rc, r, err = simulate(luzao_bin, "--devices", "30", "--vendors", "3", "--rps", "40",
                          "--duration", "20", "--withdraw-vendor", "nvidia", "--at", "10",
                          "--spinup", "2", "--seed", "3")
    assert rc == 0, err
    assert r["devices"] == 30
    assert r["all"]["lost"] == 0
    assert r["all"]["completed"] == r["all"]["requests"] == r["requests"]
    assert r["before"]["requests"] + r["after"]["requests"] == r["requests"]
    assert r["withdrawn_vendor"] == "nvidia"
    assert "nvidia" not in r["replanned"]["by_vendor"]
    assert r["replanned"]["feasible"]
    if "nvidia" in r["initial"]["by_vendor"]:
        # Requests were in flight on the withdrawn replicas at 40 requests/s: they moved.
        assert r["all"]["moved"] > 0
        assert r["all"]["reprefilled_tokens"] > 0
    assert 0 < r["all"]["slo_attainment"] <= 1
    assert r["all"]["cost_per_million_tokens"] > 0


def test_same_seed_same_report(luzao_bin):
    args = ("--devices", "12", "--vendors", "2", "--rps", "10", "--duration", "10", "--seed", "9")
    _, a, _ = simulate(luzao_bin, *args)
    _, b, _ = simulate(luzao_bin, *args)
    for key in ("all", "initial"):
        assert a[key] == b[key]


def test_thousand_devices_three_vendors(luzao_bin):
    rc, r, err = simulate(luzao_bin, "--devices", "1000", "--vendors", "3", "--duration", "20",
                          "--withdraw-vendor", "ascend", timeout=600)
    assert rc == 0, err
    assert r["devices"] == 1000
    assert r["requests"] > 10000
    assert r["all"]["lost"] == 0
    assert r["all"]["completed"] == r["requests"]
    assert set(r["initial"]["by_vendor"]) <= {"nvidia", "ascend", "cambricon"}
    assert "ascend" not in r["replanned"]["by_vendor"]
    assert r["wall_seconds"] < 120  # "in seconds" on a quiet machine; generous for sanitizers


def test_withdrawing_the_only_vendor_loses_requests(luzao_bin):
    rc, r, _ = simulate(luzao_bin, "--devices", "4", "--vendors", "1", "--rps", "5",
                        "--duration", "10", "--withdraw-vendor", "nvidia")
    assert rc == 1
    assert r["all"]["lost"] > 0
    assert not r["replanned"]["feasible"]


def test_trace_file(luzao_bin, tmp_path):
    trace = tmp_path / "trace.csv"
    rows = [f"{i * 0.05:.2f},{100 + i},{20 + i % 7},{i % 3}" for i in range(200)]
    trace.write_text("arrival_s,prompt_tokens,output_tokens,prefix_group\n" + "\n".join(rows) + "\n")
    rc, r, err = simulate(luzao_bin, "--devices", "6", "--vendors", "2", "--trace", str(trace))
    assert rc == 0, err
    assert r["requests"] == 200
    assert r["all"]["generated_tokens"] == sum(20 + i % 7 for i in range(200))
    assert r["affinity_hits"] > 0


def test_text_report(luzao_bin):
    proc = run_cli(luzao_bin, "simulate", "--devices", "9", "--rps", "5", "--duration", "10",
                   "--withdraw-vendor", "cambricon", "--at", "5")
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    for needle in ("placement:", "withdrawn at 5.0 s: vendor cambricon", "before", "after", "COST/MTOK"):
        assert needle in out


@pytest.mark.parametrize("args, needle", [
    (("--withdraw-vendor", "acme"), "--withdraw-vendor acme: no device of that vendor"),
    (("--trace", "/nonexistent/trace.csv"), "/nonexistent/trace.csv: cannot open"),
    (("--vendors", "9"), "--vendors"),
])
def test_bad_input_one_line(luzao_bin, args, needle):
    proc = run_cli(luzao_bin, "simulate", "--devices", "3", "--duration", "2", *args)
    assert proc.returncode in (1, 2)
    err = proc.stderr.decode()
    assert needle in err, err


POOL = """
devices:
  - {id: cpu0, device: cpu, price_per_hour: 0.2, labels: {vendor: intel}}
  - {id: gpu0, device: "cuda:0", price_per_hour: 2.0, labels: {vendor: nvidia}}
policy:
  slo: {ttft_ms: 5000, tpot_ms: 200}
workload: {rps: 0.5, prompt_tokens: 100, output_tokens: 50}
"""


def test_pool_plan(luzao_bin, tmp_path):
    pool = tmp_path / "pool.yaml"
    pool.write_text(POOL)
    # Measured speeds beside the pool file: the cpu is slow, the GPU fast.
    (tmp_path / "pool.probe.json").write_text(json.dumps({"devices": {
        "cpu0": {"device": "cpu", "prefill_tps": 400, "decode_tps": 20, "decode_tps_batched": 60, "parallel": 4},
        "gpu0": {"device": "cuda:0", "prefill_tps": 8000, "decode_tps": 100, "decode_tps_batched": 1500, "parallel": 16},
    }}))
    proc = run_cli(luzao_bin, "pool", "plan", str(pool), "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    plan = json.loads(proc.stdout)
    assert plan["feasible"]
    # 0.5 requests/s: the cpu (service 0.25 + 0.83 s, up to 0.74 requests/s) suffices and is cheapest.
    assert [r["id"] for r in plan["replicas"]] == ["cpu0"]
    assert plan["cost_per_million_tokens"] == pytest.approx(0.2 / (0.5 * 50 * 3600) * 1e6)
    proc = run_cli(luzao_bin, "pool", "plan", str(pool), "--rps", "5", "--json")
    plan = json.loads(proc.stdout)
    assert [r["id"] for r in plan["replicas"]] == ["gpu0"]
    proc = run_cli(luzao_bin, "pool", "plan", str(pool), "--rps", "1000")
    assert proc.returncode == 1
    assert "INFEASIBLE" in proc.stdout.decode()


def test_pool_plan_bad_file(luzao_bin, tmp_path):
    pool = tmp_path / "bad.yaml"
    pool.write_text("devices:\n  - {id: a, device: cpu, price_per_hour: -1}\n")
    proc = run_cli(luzao_bin, "pool", "plan", str(pool))
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert "\n" not in err
    assert f"{pool}: devices[0].price_per_hour: must not be negative" in err


def test_pool_status_unreachable(luzao_bin):
    proc = run_cli(luzao_bin, "pool", "status", "--url", "http://127.0.0.1:9", "--timeout", "2")
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert "\n" not in err
    assert "http://127.0.0.1:9/v1/pool" in err


def test_survive_vendor_loss_keeps_the_slo_through_a_withdrawal(luzao_bin):
    """The dominant vendor withdrawn with a 5 s spin-up: without spare capacity the survivors are
    overloaded until replacements load; with survive_vendor_loss they carry the load at once."""
    args = ("--devices", "60", "--vendors", "3", "--duration", "20", "--withdraw-vendor", "ascend",
            "--at", "10", "--spinup", "5", "--seed", "3")
    rc, plain, err = simulate(luzao_bin, *args)
    assert rc == 0, err
    rc, spare, err = simulate(luzao_bin, *args, "--survive-vendor-loss")
    assert rc == 0, err
    assert not plain["survive_vendor_loss"] and spare["survive_vendor_loss"]
    assert spare["initial"]["feasible"], spare["initial"]["reason"]
    assert len(spare["initial"]["by_vendor"]) >= 2
    # Spare capacity costs more before the withdrawal ...
    assert spare["initial"]["cost_per_hour"] > plain["initial"]["cost_per_hour"]
    # ... and needs no replacement to start after it: the survivors suffice.
    assert spare["replanned"]["started"] == 0
    assert plain["replanned"]["started"] > 0
    assert spare["all"]["lost"] == plain["all"]["lost"] == 0
    assert spare["after"]["slo_attainment"] >= 0.99
    assert plain["after"]["slo_attainment"] < spare["after"]["slo_attainment"]


TWO_VENDOR_POOL = """
devices:
  - {id: a0, device: "cuda:0", price_per_hour: 1.0, labels: {vendor: nv}}
  - {id: a1, device: "cuda:1", price_per_hour: 1.0, labels: {vendor: nv}}
  - {id: b0, device: "npu:0", price_per_hour: 1.5, labels: {vendor: hw}}
  - {id: b1, device: "npu:1", price_per_hour: 1.5, labels: {vendor: hw}}
policy: {survive_vendor_loss: true}
workload: {rps: 2, prompt_tokens: 0, output_tokens: 80}
"""


def test_pool_plan_survive_vendor_loss(luzao_bin, tmp_path):
    pool = tmp_path / "pool.yaml"
    pool.write_text(TWO_VENDOR_POOL)
    # Each device: service 80/100 s, 1 request/s at 80% utilisation.
    (tmp_path / "pool.probe.json").write_text(json.dumps({"devices": {
        d: {"device": "x", "prefill_tps": 1000, "decode_tps": 100, "decode_tps_batched": 100,
            "parallel": 4} for d in ("a0", "a1", "b0", "b1")}}))
    proc = run_cli(luzao_bin, "pool", "plan", str(pool), "--json")
    assert proc.returncode == 0, proc.stderr.decode()
    plan = json.loads(proc.stdout)
    assert plan["policy"]["survive_vendor_loss"] is True
    # 2 requests/s and either vendor may go: both vendors must carry 2 requests/s alone.
    assert sorted(r["id"] for r in plan["replicas"]) == ["a0", "a1", "b0", "b1"]
    assert plan["cost_per_hour"] == pytest.approx(5.0)
    text = run_cli(luzao_bin, "pool", "plan", str(pool)).stdout.decode()
    assert "policy: survive_vendor_loss on" in text
    assert "worst vendor loss:" in text
    # Without the policy the two cheapest devices suffice.
    pool.write_text(TWO_VENDOR_POOL.replace("survive_vendor_loss: true", "survive_vendor_loss: false"))
    plan = json.loads(run_cli(luzao_bin, "pool", "plan", str(pool), "--json").stdout)
    assert plan["policy"]["survive_vendor_loss"] is False
    assert sorted(r["id"] for r in plan["replicas"]) == ["a0", "a1"]
    # The command-line flag sets it too; one vendor excluded leaves nothing to fail over to.
    pool.write_text(TWO_VENDOR_POOL.replace("survive_vendor_loss: true",
                                            "survive_vendor_loss: false, exclude_vendors: [hw]"))
    proc = run_cli(luzao_bin, "pool", "plan", str(pool), "--survive-vendor-loss", "--json")
    assert proc.returncode == 1
    plan = json.loads(proc.stdout)
    assert not plan["feasible"]
    assert "the loss of vendor 'nv' is not covered" in plan["reason"]
    # A bad value is a one-line error naming the file and the key.
    pool.write_text(TWO_VENDOR_POOL.replace("survive_vendor_loss: true", "survive_vendor_loss: 3"))
    proc = run_cli(luzao_bin, "pool", "plan", str(pool))
    assert proc.returncode == 1
    err = proc.stderr.decode().strip()
    assert "\n" not in err
    assert f"{pool}: policy.survive_vendor_loss: expected true or false, found '3'" in err

#!/usr/bin/env python3
"""Cost per million generated tokens on the CI pool: each device alone vs the scheduled placement.

The pool is the CI's: cpu, opencl:0 (when PoCL or another OpenCL driver is present) and faulty:0
(the fault-injection plugin, examples/fault_plugin, over the example plugin's math), with the
prices below. The script
  (a) probes the devices: `luzao devices --probe -m MODEL --pool POOL` (POOL.probe.json);
  (b) serves the model on each device alone (`serve --device D`) and with the scheduled placement
      (`serve --pool POOL` with a `workload`: the placement on the probed speeds chooses the
      devices), and runs the same fixed load against each: --clients concurrent streaming greedy
      chat clients, each sending --requests requests (fixed prompts, --max-tokens each);
and reports per configuration: aggregate generated tokens/s, the hourly price of the replicas that
served, cost per million generated tokens = price per hour / (tokens/s * 3600) * 1e6, and the
requests that failed. A markdown table goes to stdout, everything to --json.

The example plugin under faulty:0 multiplies F32, F16, Q8_0 and Q4_0 weights only, so by default
the script first writes a Q4_0 copy of the model (`luzao quantize MODEL copy Q4_0`, from the
model's own weights) and measures every configuration on that same file; --quantize none keeps
the model as given (devices that cannot run it are then left out, as the probe reports).

The scheduled placement is measured for two stated workloads (--rps, default "auto"): half of
what the fastest single device carries within the placement model's 80% target utilisation (from
the probe), where the best-value device alone suffices, and 1.2x that, where the placement must
combine devices. The same fixed load is run against both: the stated workload only decides
which devices serve. The router takes each replica at its probed speed until traffic measures it.
Only the standard library is needed.

Caveat printed with the results: on a CI machine every "device" (cpu, PoCL's OpenCL, the plugin)
runs on the same host cores, so replicas side by side share those cores; a placement's throughput
is then at most what those cores give, not the sum of the devices' probed speeds.

Example:
  python3 bench/pool_cost.py --luzao build/release/luzao --json pool_cost.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_load import free_port, run_level, stop, stream_request, wait_healthy  # noqa: E402

DEFAULT_MODEL = Path.home() / ".cache/luzao/models/SmolLM2-135M-Instruct.Q4_1.gguf"
# Stated prices (currency per hour) and vendors of the CI pool's devices.
PRICES = {"cpu": 0.50, "opencl:0": 0.30, "faulty:0": 0.20}
IDS = {"cpu": "cpu0", "opencl:0": "ocl0", "faulty:0": "faulty0"}
VENDORS = {"cpu": "hostco", "opencl:0": "pocl", "faulty:0": "faultco"}
SHARED_CORES_NOTE = ("all devices (cpu, OpenCL via PoCL, the plugin) run on the same {} host "
                     "core(s): replicas side by side share them")


def http_json(port: int, path: str) -> dict:
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit(f"GET {path}: HTTP {r.status}: {body[:200]!r}")
    return json.loads(body)


def plugin_env(args) -> dict:
    env = dict(os.environ)
    env["LUZAO_PLUGIN_PATH"] = str(args.plugin)
    control = Path(args.workdir) / "fault-control"
    control.write_text("ok\n")
    env["LUZAO_FAULT_CONTROL"] = str(control)
    env.pop("LUZAO_FAULT_DELAY_MS", None)  # full speed: the plugin is measured as it is
    return env


def pool_devices(args, env) -> list[str]:
    listing = subprocess.run([args.luzao, "devices", "--no-check"], capture_output=True, text=True,
                             env=env, timeout=120).stdout
    present = [d for d in PRICES if d == "cpu" or re.search(rf"^{re.escape(d)} ", listing, re.M)]
    if "faulty:0" not in present:
        print(f"note: faulty:0 not found (plugin {args.plugin}); measuring without it",
              file=sys.stderr)
    return present


def write_pool(path: Path, devices: list[str], workload: dict | None) -> None:
    pool = {"devices": [{"id": IDS[d], "device": d, "price_per_hour": PRICES[d],
                         "labels": {"vendor": VENDORS[d]}} for d in devices],
            "max_parallel": 4}
    if workload:
        pool["workload"] = workload
    path.write_text(json.dumps(pool, indent=1))


def probe(args, pool: Path, env) -> dict:
    t0 = time.monotonic()
    proc = subprocess.run([args.luzao, "devices", "--probe", "-m", str(args.model), "--pool",
                           str(pool), "-t", str(args.threads), "--parallel", "4"],
                          capture_output=True, text=True, env=env, timeout=1800)
    print(proc.stdout.strip(), file=sys.stderr)
    probe_file = pool.with_suffix(".probe.json")
    if proc.returncode != 0 and not probe_file.is_file():
        raise SystemExit(f"luzao devices --probe failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"probe: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    return json.loads(pool.with_suffix(".probe.json").read_text())["devices"]


def capacity_rps(speed: dict, prompt_tokens: float, output_tokens: float) -> float:
    """The placement model's lambda_max without an SLO: 0.8 / (p/P + o/D_B)."""
    batched = max(speed["decode_tps"], speed.get("decode_tps_batched") or 0)
    service = prompt_tokens / speed["prefill_tps"] + output_tokens / batched
    return 0.8 / service


def measure(args, env, name: str, serve_args: list[str]) -> dict:
    port = free_port()
    cmd = [args.luzao, "serve", "-m", str(args.model), "--port", str(port), "-t", str(args.threads),
           "--parallel", "4", "-c", "1024", "--queue-limit", "256", *serve_args]
    log = Path(args.workdir) / f"serve-{re.sub(r'[^A-Za-z0-9.]+', '-', name)}.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        try:
            wait_healthy(port, proc, "/health")
            model_id = Path(args.model).name.removesuffix(".gguf")
            stream_request(port, {"model": model_id, "stream": True, "max_tokens": 4,
                                  "temperature": 0, "messages": [{"role": "user", "content": "Hi"}]},
                           args.timeout)  # warm-up
            before = http_json(port, "/v1/pool")
            row = run_level(port, model_id, args.clients, args.requests, args.max_tokens,
                            args.timeout)
            pool = http_json(port, "/v1/pool")
        finally:
            stop(proc)
    served = [d for d in pool["devices"] if d["state"] == "serving"]
    price = sum(d["price_per_hour"] for d in served)
    tps = row["tok_per_s"]
    out = {"config": name, "replicas": [d["id"] for d in served],
           "standby": [d["id"] for d in pool["devices"] if d["state"] == "standby"],
           "price_per_hour": price, "tok_per_s": tps,
           "cost_per_million_tokens": price / (tps * 3600) * 1e6 if tps > 0 else None,
           "requests": row["requests"], "failed": row["failed"], "errors": row["errors"],
           "wall_s": row["wall_s"], "ttft_p50": row["ttft_p50"], "itl_p50": row["itl_p50"],
           "tokens_by_replica": {d["id"]: d["generated_tokens"] - next(
               b["generated_tokens"] for b in before["devices"] if b["id"] == d["id"])
               for d in served}}
    if pool.get("placement"):
        out["planned"] = pool["placement"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--luzao", default="build/release/luzao")
    p.add_argument("--quantize", default="Q4_0",
                   help="measure a copy of the model in this type, which every CI device runs "
                        "('none': the model as given)")
    p.add_argument("--plugin", type=Path, default=None,
                   help="libluzao-faulty.so (default: beside luzao, examples/fault_plugin/)")
    p.add_argument("--threads", type=int, default=1, help="worker threads per replica")
    p.add_argument("--clients", type=int, default=8, help="concurrent streaming clients")
    p.add_argument("--requests", type=int, default=2, help="requests per client")
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--prompt-tokens", type=float, default=40,
                   help="mean prompt tokens stated in the workload (the chat prompts are ~40)")
    p.add_argument("--rps", default="auto",
                   help="comma list of workload requests/s for the placement ('auto': 0.5x and "
                        "1.2x what the fastest device alone carries)")
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--workdir", default=None, help="where the pool, probe and logs go")
    p.add_argument("--reuse-probe", action="store_true",
                   help="keep WORKDIR/pool.probe.json from an earlier run instead of probing")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"{args.model}: no such model")
    args.luzao = str(Path(args.luzao).resolve())
    if args.plugin is None:
        args.plugin = Path(args.luzao).parent / "examples/fault_plugin/libluzao-faulty.so"
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="pool_cost_")
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    env = plugin_env(args)
    started = time.monotonic()
    source = args.model
    if args.quantize.lower() != "none":
        copy = Path(args.workdir) / f"{args.model.stem}.{args.quantize}.gguf"
        proc = subprocess.run([args.luzao, "quantize", str(args.model), str(copy), args.quantize],
                              capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise SystemExit(f"luzao quantize failed:\n{proc.stderr}")
        args.model = copy

    devices = pool_devices(args, env)
    pool_file = Path(args.workdir) / "pool.json"
    write_pool(pool_file, devices, None)
    probe_file = pool_file.with_suffix(".probe.json")
    if args.reuse_probe and probe_file.is_file():
        speeds = json.loads(probe_file.read_text())["devices"]
    else:
        speeds = probe(args, pool_file, env)
    dropped = [d for d in devices if IDS[d] not in speeds]  # the probe failed there (see above)
    devices = [d for d in devices if IDS[d] in speeds]
    if not devices:
        raise SystemExit("no device could run the model")
    caps = {d: capacity_rps(speeds[IDS[d]], args.prompt_tokens, args.max_tokens) for d in devices}
    if args.rps == "auto":
        loads = [round(f * max(caps.values()), 3) for f in (0.5, 1.2)]
    else:
        loads = [float(x) for x in args.rps.split(",") if x]

    rows = []
    for d in devices:
        rows.append(measure(args, env, f"{d} alone", ["--device", d]))
        print(f"{rows[-1]['config']}: {rows[-1]['tok_per_s']:.1f} tok/s", file=sys.stderr)
    for rps in loads:
        workload = {"rps": rps, "prompt_tokens": args.prompt_tokens,
                    "output_tokens": args.max_tokens}
        write_pool(pool_file, devices, workload)  # the probe file beside it stays
        rows.append(measure(args, env, f"scheduled for {rps:g} req/s", ["--pool", str(pool_file)]))
        rows[-1]["workload"] = workload
        print(f"{rows[-1]['config']}: {rows[-1]['tok_per_s']:.1f} tok/s", file=sys.stderr)
    for r in rows:
        if r["config"].startswith("scheduled"):
            continue
        d = r["config"].removesuffix(" alone")
        r["price_per_hour"] = PRICES[d]  # served with --device: the pool's price for it
        tps = r["tok_per_s"]
        r["cost_per_million_tokens"] = PRICES[d] / (tps * 3600) * 1e6 if tps > 0 else None
        r["replicas"] = [IDS[d]]
    cores = os.cpu_count() or 0
    out = {"model": args.model.name, "source_model": source.name,
           "prices_per_hour": {d: PRICES[d] for d in devices},
           "threads_per_replica": args.threads, "clients": args.clients,
           "requests_per_client": args.requests, "max_tokens": args.max_tokens,
           "workloads_rps": loads, "probe": speeds,
           "capacity_rps": {IDS[d]: caps[d] for d in devices},
           "note": SHARED_CORES_NOTE.format(cores), "results": rows,
           "dropped": {d: "the probe could not run the model there" for d in dropped},
           "seconds": time.monotonic() - started}
    print(f"\nModel {args.model.name} (from {source.name}); prices/h: "
          + ", ".join(f"{d} {PRICES[d]:.2f}" for d in devices)
          + f"; load: {args.clients} streaming greedy clients x {args.requests} requests x "
          f"{args.max_tokens} tokens; {args.threads} thread(s) per replica.")
    print("Probed (prefill / decode / decode x4 t/s): " + "; ".join(
        f"{d} {speeds[IDS[d]]['prefill_tps']:.1f} / {speeds[IDS[d]]['decode_tps']:.1f} / "
        f"{speeds[IDS[d]]['decode_tps_batched']:.1f}" for d in devices) + ".")
    for r in rows:
        planned = r.get("planned")
        if not planned:
            continue
        print(f"Workload stated for '{r['config']}': {r['workload']['rps']:g} requests/s, "
              f"{args.prompt_tokens:g} prompt + {args.max_tokens} output tokens; placed "
              f"{planned['replicas']} at {planned['cost_per_hour']:.2f}/h, planned "
              f"{planned['cost_per_million_tokens']:.4f} per Mtok, "
              + ("feasible." if planned["feasible"] else f"infeasible ({planned['reason']})."))
    print(f"Note: {out['note']}.")
    for d in dropped:
        print(f"Left out: {d} (the probe could not run the model there; see the probe output).")
    print()
    print("| Configuration | Replicas | Price/h | Tokens/s | Cost per Mtok | Failed |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        cost = r["cost_per_million_tokens"]
        print(f"| {r['config']} | {', '.join(r['replicas'])} | {r['price_per_hour']:.2f} | "
              f"{r['tok_per_s']:.1f} | {cost:.3f} | {r['failed']}/{r['requests']} |"
              if cost is not None else
              f"| {r['config']} | {', '.join(r['replicas'])} | {r['price_per_hour']:.2f} | "
              f"{r['tok_per_s']:.1f} | - | {r['failed']}/{r['requests']} |")
    print(f"\n({out['seconds']:.0f} s in all; logs and pool files in {args.workdir})")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

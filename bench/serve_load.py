#!/usr/bin/env python3
"""Load test of OpenAI-compatible servers: `luzao serve` and llama.cpp's server (from
llama-cpp-python[server]) side by side on the same GGUF, prompts, threads and token counts.

For each concurrency level N, N clients each send --requests streaming chat requests back to back
(greedy, --max-tokens each) and time every SSE chunk. Reported per level: aggregate generated
tokens/s (all tokens / wall time), time to first token p50/p99 and inter-token latency p50/p99.
--soak N runs N clients for --soak-seconds against luzao only and counts failed requests.
--trials N repeats the levels (interleaved) and reports, per level, the run of median tok/s with
failures summed over all runs; with levels 1 and 8 it prints the 8-to-1 ratio of every trial.

Only the standard library is needed on the client side. The llama.cpp side needs
  ~/.cache/luzao/ref-venv/bin/pip install 'llama-cpp-python[server]'
and is started with that venv's python (--llamacpp-python). llama-cpp-python's server runs one
request at a time (a lock around one llama context; started with --interrupt_requests False so
that a new request waits instead of cutting off the running one); that is what it offers, so it is
what is measured.

Example:
  python3 bench/serve_load.py -m ~/.cache/luzao/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      --luzao build/release/luzao --threads 2 --concurrency 1,4,8,16 --json out.json
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PROMPTS = [f"Write a short story about {t}." for t in (
    "a lighthouse keeper", "a lost robot", "a dragon who bakes bread", "the last tree on Mars",
    "a cat who learns to read", "a river that flows uphill", "a clockmaker's apprentice",
    "a city under the sea", "a violin that plays itself", "an old map", "a winter festival",
    "a friendly ghost", "a journey by balloon", "a garden on the moon", "a lost key",
    "a talking parrot")]


@dataclass
class RequestResult:
    ok: bool
    error: str = ""
    tokens: int = 0
    ttft: float | None = None
    itl: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(port: int, proc: subprocess.Popen, path: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become healthy")


def stream_request(port: int, body: dict, timeout: float) -> RequestResult:
    """One streaming chat request; tokens are counted from usage when sent, else by chunks."""
    start = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        conn.request("POST", "/v1/chat/completions", json.dumps(body),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        if resp.status != 200:
            return RequestResult(False, f"HTTP {resp.status}: {resp.read()[:200]!r}")
        times, usage, buf = [], None, b""
        while True:
            line = resp.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            data = line[6:]
            if data == b"[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                return RequestResult(False, str(chunk["error"]))
            if chunk.get("usage"):
                usage = chunk["usage"]
            choices = chunk.get("choices") or []
            if choices and (choices[0].get("delta") or {}).get("content"):
                times.append(time.perf_counter())
        conn.close()
    except (OSError, http.client.HTTPException, json.JSONDecodeError) as e:
        return RequestResult(False, f"{type(e).__name__}: {e}")
    if not times:
        return RequestResult(False, "no tokens")
    tokens = usage["completion_tokens"] if usage else len(times)
    itl = [b - a for a, b in zip(times, times[1:])]
    return RequestResult(True, tokens=tokens, ttft=times[0] - start, itl=itl)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def run_level(port: int, model_id: str, clients: int, requests: int, max_tokens: int,
              timeout: float) -> dict:
    results: list[RequestResult] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        for r in range(requests):
            body = {"model": model_id, "stream": True, "max_tokens": max_tokens, "temperature": 0,
                    "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": PROMPTS[(i + r * clients) % len(PROMPTS)]}]}
            res = stream_request(port, body, timeout)
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r.ok]
    tokens = sum(r.tokens for r in ok)
    ttft = [r.ttft for r in ok]
    itl = [x for r in ok for x in r.itl]
    return {"clients": clients, "requests": len(results), "failed": len(results) - len(ok),
            "errors": sorted({r.error for r in results if not r.ok})[:5], "tokens": tokens,
            "wall_s": wall, "tok_per_s": tokens / wall if wall > 0 else 0.0,
            "ttft_p50": percentile(ttft, 0.5), "ttft_p99": percentile(ttft, 0.99),
            "itl_p50": percentile(itl, 0.5), "itl_p99": percentile(itl, 0.99)}


def start_luzao(args, port: int, parallel: int) -> subprocess.Popen:
    cmd = [args.luzao, "serve", "-m", args.model, "--port", str(port), "-t", str(args.threads),
           "--parallel", str(parallel), "-c", str(args.ctx), "--queue-limit", str(max(64, 2 * parallel))]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(port, proc, "/health")
    return proc


def start_llamacpp(args, port: int) -> subprocess.Popen:
    cmd = [args.llamacpp_python, "-m", "llama_cpp.server", "--model", args.model, "--port", str(port),
           "--host", "127.0.0.1", "--n_threads", str(args.threads), "--n_ctx", str(args.ctx),
           "--model_alias", Path(args.model).name.removesuffix(".gguf"),
           "--interrupt_requests", "False"]  # queue concurrent requests instead of cutting them off
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthy(port, proc, "/v1/models")
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def soak(args) -> dict:
    port = free_port()
    proc = start_luzao(args, port, args.parallel or 16)
    model_id = Path(args.model).name.removesuffix(".gguf")
    stop_at = time.monotonic() + args.soak_seconds
    results: list[RequestResult] = []
    lock = threading.Lock()

    def client(i: int) -> None:
        n = 0
        while time.monotonic() < stop_at:
            body = {"model": model_id, "stream": True, "max_tokens": args.max_tokens, "temperature": 0.7,
                    "seed": i * 1000 + n, "messages": [{"role": "user", "content": PROMPTS[(i + n) % len(PROMPTS)]}]}
            res = stream_request(port, body, args.timeout)
            n += 1
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.soak)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    alive = proc.poll() is None
    stop(proc)
    ok = [r for r in results if r.ok]
    return {"clients": args.soak, "seconds": wall, "requests": len(results), "failed": len(results) - len(ok),
            "errors": sorted({r.error for r in results if not r.ok})[:5], "server_alive": alive,
            "tokens": sum(r.tokens for r in ok), "ttft_p99": percentile([r.ttft for r in ok], 0.99)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-m", "--model", required=True)
    p.add_argument("--luzao", default="build/release/luzao")
    p.add_argument("--llamacpp-python", default=str(Path.home() / ".cache/luzao/ref-venv/bin/python"))
    p.add_argument("--servers", default="luzao,llamacpp", help="comma list: luzao, llamacpp")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--concurrency", default="1,4,8,16")
    p.add_argument("--parallel", type=int, default=0, help="luzao --parallel (default: the largest level)")
    p.add_argument("--requests", type=int, default=2, help="requests per client per level")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("--ctx", type=int, default=1024)
    p.add_argument("--timeout", type=float, default=600)
    p.add_argument("--soak", type=int, default=0, help="clients of a soak run against luzao (0: none)")
    p.add_argument("--soak-seconds", type=float, default=300)
    p.add_argument("--trials", type=int, default=1,
                   help="run every level this many times and report the run of median tok/s "
                        "(levels interleaved: 1,4,8,16,1,4,... so that machine noise hits all alike)")
    p.add_argument("--json", help="write all results to this file")
    args = p.parse_args()
    levels = [int(x) for x in args.concurrency.split(",") if x]
    model_id = Path(args.model).name.removesuffix(".gguf")
    out: dict = {"model": os.path.basename(args.model), "threads": args.threads,
                 "max_tokens": args.max_tokens, "requests_per_client": args.requests, "servers": {}}
    if args.soak:
        out["soak"] = soak(args)
        print(json.dumps(out["soak"], indent=1))
    else:
        for server in args.servers.split(","):
            port = free_port()
            proc = (start_luzao(args, port, args.parallel or max(levels)) if server == "luzao"
                    else start_llamacpp(args, port))
            try:
                stream_request(port, {"model": model_id, "stream": True, "max_tokens": 4, "temperature": 0,
                                      "messages": [{"role": "user", "content": "Hi"}]}, args.timeout)  # warm-up
                runs: dict[int, list[dict]] = {n: [] for n in levels}
                for trial in range(args.trials):
                    for n in levels:
                        runs[n].append(run_level(port, model_id, n, args.requests, args.max_tokens,
                                                 args.timeout))
                rows = []
                for n in levels:
                    ordered = sorted(runs[n], key=lambda r: r["tok_per_s"])
                    row = dict(ordered[len(ordered) // 2])
                    row["trials_tok_per_s"] = [r["tok_per_s"] for r in runs[n]]
                    row["failed"] = sum(r["failed"] for r in runs[n])
                    rows.append(row)
                    print(f"{server:9s} c={n:<3d} {row['tok_per_s']:8.1f} tok/s  ttft p50 {row['ttft_p50']*1e3:7.0f} ms"
                          f" p99 {row['ttft_p99']*1e3:7.0f} ms  itl p50 {row['itl_p50']*1e3:6.1f} ms"
                          f" p99 {row['itl_p99']*1e3:6.1f} ms  failed {row['failed']}", flush=True)
                out["servers"][server] = rows
                if 1 in runs and 8 in runs:
                    ratios = [b["tok_per_s"] / a["tok_per_s"] for a, b in zip(runs[1], runs[8])]
                    print(f"{server}: 8 clients / 1 client, per trial: "
                          + ", ".join(f"{r:.2f}x" for r in ratios)
                          + f"; of the medians {rows[levels.index(8)]['tok_per_s'] / rows[levels.index(1)]['tok_per_s']:.2f}x",
                          flush=True)
            finally:
                stop(proc)
        print("\n| server | clients | tok/s | TTFT p50 (ms) | TTFT p99 (ms) | ITL p50 (ms) | ITL p99 (ms) | failed |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for server, rows in out["servers"].items():
            for r in rows:
                print(f"| {server} | {r['clients']} | {r['tok_per_s']:.1f} | {r['ttft_p50']*1e3:.0f} | "
                      f"{r['ttft_p99']*1e3:.0f} | {r['itl_p50']*1e3:.1f} | {r['itl_p99']*1e3:.1f} | {r['failed']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

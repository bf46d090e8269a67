"""`luzao router` in front of three `luzao serve` processes on the tiny model, driven by the official
`openai` client: many concurrent greedy requests (streaming and not) with one engine process killed
with SIGKILL mid-stream; every request completes with the text of an undisturbed run. Also: all
backends down -> 503 with Retry-After, one back -> served again; bad input; and failover decisions
checked against fake Python backends that break a stream on purpose (sampled streams end with an
error event, diverging regenerations are refused). The router seeds its speed estimates from what
each backend reports in GET /v1/pool (fake backends, and a warmed-up `luzao serve --pool`)."""
from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest

from server_harness import ListeningProcess, http_request

openai = pytest.importorskip("openai", reason="the openai package is not installed "
                                              "(scripts/setup-deps.sh installs it)")

CTX = 256
MODEL = "tiny-q8_0"
N_TOKENS = 120
PROMPTS = [f"The {w} sat on the mat and" for w in (
    "cat", "dog", "fox", "kitchen", "stove", "model", "token", "river", "tests", "numbers",
    "engine", "world")]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def metrics(url: str) -> dict[str, float]:
    status, _, body = http_request(url + "/metrics")
    assert status == 200
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def healthy(url: str) -> bool:
    try:
        return http_request(url + "/health", timeout=5)[0] == 200
    except (urllib.error.URLError, ConnectionError):
        return False


class Cluster:
    def __init__(self, luzao, model):
        self.luzao, self.model = luzao, model
        self.engines = [self.serve(0) for _ in range(3)]
        self.router = ListeningProcess([str(luzao), "router", "--port", "0", "--health-interval-ms", "100",
                            "--failover-wait-ms", "20000"] +
                           [a for e in self.engines for a in ("--backend", e.url)])
        wait_for(lambda: self.pool_healthy() == 3, 30, "three healthy backends")
        self.client = openai.OpenAI(base_url=self.router.url + "/v1", api_key="unused",
                                    max_retries=0, timeout=120)

    def serve(self, port: int) -> Proc:
        p = ListeningProcess([str(self.luzao), "serve", "-m", str(self.model), "--port", str(port), "-t", "1",
                  "--parallel", "4", "-c", str(CTX)])
        wait_for(lambda: healthy(p.url), 60, "luzao serve to be healthy")
        return p

    def pool(self) -> dict:
        return json.loads(http_request(self.router.url + "/v1/pool")[2])

    def pool_healthy(self) -> int:
        return sum(b["healthy"] for b in self.pool()["backends"])

    def stop(self):
        self.router.stop()
        for e in self.engines:
            e.stop()


@pytest.fixture(scope="module")
def cluster(luzao_bin, tiny_models):
    c = Cluster(luzao_bin, tiny_models[MODEL])
    yield c
    c.stop()


def run_one(client, index: int, on_text=None) -> tuple[str, str]:
    """Request `index` of the workload: even ones stream. Returns (text, backend of the stream)."""
    prompt = PROMPTS[index % len(PROMPTS)]
    chat = index % 4 in (0, 1)
    stream = index % 2 == 0
    kw = dict(model=MODEL, max_tokens=N_TOKENS, temperature=0)
    if chat:
        kw["messages"] = [{"role": "user", "content": prompt}]
        api = client.chat.completions
    else:
        kw["prompt"] = prompt
        api = client.completions
    if not stream:
        r = api.create(**kw)
        return (r.choices[0].message.content if chat else r.choices[0].text), ""
    raw = api.with_raw_response.create(stream=True, stream_options={"include_usage": True}, **kw)
    backend = raw.headers.get("x-luzao-backend", "")
    text, usage, finish = "", None, None
    for chunk in raw.parse():
        if chunk.usage is not None:
            usage = chunk.usage
        if not chunk.choices:
            continue
        c = chunk.choices[0]
        piece = (c.delta.content if chat else c.text) or ""
        text += piece
        finish = c.finish_reason or finish
        if piece and on_text:
            on_text(index, backend, text)
    assert finish in ("length", "stop"), f"request {index}: stream ended without a finish reason"
    assert usage is not None, f"request {index}: no usage chunk"
    assert usage.completion_tokens <= N_TOKENS and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    return text, backend


def test_router_serves_and_reports(cluster):
    status, _, body = http_request(cluster.router.url + "/health")
    assert status == 200 and json.loads(body)["backends_up"] == 3
    assert [m.id for m in cluster.client.models.list().data] == [MODEL]
    direct = openai.OpenAI(base_url=cluster.engines[1].url + "/v1", api_key="x", max_retries=0)
    want = direct.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=20,
                                     temperature=0).choices[0].text
    got = cluster.client.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=20,
                                            temperature=0)
    assert got.choices[0].text == want
    assert got.usage.completion_tokens == 20
    pool = cluster.pool()
    assert [b["url"] for b in pool["backends"]] == [e.url for e in cluster.engines]
    assert sum(b["requests"] for b in pool["backends"]) >= 1
    m = metrics(cluster.router.url)
    assert m['luzao_router_requests_total{endpoint="/v1/completions",status="200"}'] >= 1
    for e in cluster.engines:
        assert m[f'luzao_router_backend_up{{backend="{e.url}"}}'] == 1


def test_bad_input_and_backend_errors_pass_through(cluster):
    status, _, body = http_request(cluster.router.url + "/v1/chat/completions", "POST", b"{oops")
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = http_request(cluster.router.url + "/v1/completions", "POST",
                                   json.dumps({"prompt": "x", "stream": "yes"}).encode())
    assert status == 400 and json.loads(body)["error"]["param"] == "stream"
    # The backend's own 400 (prompt longer than the context) reaches the client unchanged,
    # for plain and streaming requests alike.
    long_prompt = {"prompt": "the cat " * 400, "max_tokens": 4}
    direct = http_request(cluster.engines[0].url + "/v1/completions", "POST",
                          json.dumps(long_prompt).encode())
    assert direct[0] == 400
    for stream in (False, True):
        status, _, body = http_request(cluster.router.url + "/v1/completions", "POST",
                                       json.dumps({**long_prompt, "stream": stream}).encode())
        assert status == 400
        assert json.loads(body)["error"] == json.loads(direct[2])["error"]
    status, _, body = http_request(cluster.router.url + "/v1/nothing")
    assert status == 404 and "error" in json.loads(body)


def test_kill_one_engine_under_load(cluster):
    n = 24
    baseline = {}
    with ThreadPoolExecutor(n) as pool:
        for i, (text, _) in zip(range(n), pool.map(lambda i: run_one(cluster.client, i), range(n))):
            baseline[i] = text
    assert all(baseline.values()), "every undisturbed request generated text"

    before = metrics(cluster.router.url)
    victim: dict[str, Proc] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def on_text(index, backend, text):
        # The first stream well into a long answer has its backend killed, from the thread that
        # reads it, so the kill lands mid-stream.
        if len(text) < 8 or len(baseline[index]) < len(text) + 100:
            return
        with lock:
            if victim:
                return
            victim["engine"] = next(e for e in cluster.engines if e.url == backend)
            victim["engine"].kill()
            killed.set()

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(run_one, cluster.client, i, on_text) for i in range(n)]
        results = {i: f.result(timeout=120)[0] for i, f in enumerate(futures)}
    assert killed.is_set(), "no stream was long enough to kill its backend mid-way"
    engine = victim["engine"]
    for i in range(n):
        assert results[i] == baseline[i], f"request {i}: output differs from the undisturbed run"
    after = metrics(cluster.router.url)
    assert after["luzao_router_failovers_total"] > before["luzao_router_failovers_total"]
    assert after["luzao_router_stream_resumes_total"] > before["luzao_router_stream_resumes_total"]
    assert after["luzao_router_unserved_total"] == before["luzao_router_unserved_total"]
    assert after[f'luzao_router_backend_up{{backend="{engine.url}"}}'] == 0
    # Bring it back on the same port for the next test.
    cluster.engines[cluster.engines.index(engine)] = cluster.serve(engine.port)
    wait_for(lambda: cluster.pool_healthy() == 3, 30, "the restarted backend to be healthy")


def test_all_down_then_one_back(cluster):
    expected = cluster.client.completions.create(model=MODEL, prompt=PROMPTS[3], max_tokens=12,
                                                 temperature=0).choices[0].text
    ports = [e.port for e in cluster.engines]
    for e in cluster.engines:
        e.kill()
    wait_for(lambda: cluster.pool_healthy() == 0, 30, "every backend to be marked down")
    status, headers, body = http_request(cluster.router.url + "/health")
    assert status == 503
    with pytest.raises(openai.APIStatusError) as err:
        cluster.client.completions.create(model=MODEL, prompt=PROMPTS[3], max_tokens=12,
                                          temperature=0)
    assert err.value.status_code == 503
    assert err.value.response.headers.get("retry-after")
    assert err.value.response.json()["error"]["code"] == "no_backend_available"
    cluster.engines[1] = cluster.serve(ports[1])
    wait_for(lambda: healthy(cluster.router.url), 30, "the router to see a backend")
    r = cluster.client.completions.create(model=MODEL, prompt=PROMPTS[3], max_tokens=12,
                                          temperature=0)
    assert r.choices[0].text == expected
    for i in (0, 2):
        cluster.engines[i] = cluster.serve(ports[i])


# ---- fake backends: exact control over when a stream breaks --------------------------------

def chat_chunk(piece: str | None, finish: str | None = None, role: bool = False) -> bytes:
    delta = {"role": "assistant"} if role else {}
    if piece is not None:
        delta["content"] = piece
    c = {"id": "fake", "object": "chat.completion.chunk", "created": 1, "model": "fake",
         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], "usage": None}
    return b"data: " + json.dumps(c).encode() + b"\n\n"


class FakeBackend:
    """Streams `pieces`; with `break_after` set, drops the connection after that many pieces."""

    def __init__(self, pieces: list[str], break_after: int | None = None, pool: dict | None = None):
        self.pieces, self.break_after, self.requests = pieces, break_after, 0
        self.pool = pool  # the answer to GET /v1/pool (None: 404, as from an older backend)
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                body = b'{"status":"ok"}'
                if self.path == "/v1/pool":
                    body = json.dumps(fake.pool).encode() if fake.pool is not None else b"{}"
                self.send_response(404 if self.path == "/v1/pool" and fake.pool is None else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(chat_chunk(None, role=True))
                for k, piece in enumerate(fake.pieces):
                    if fake.break_after is not None and k == fake.break_after:
                        self.wfile.flush()
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        self.connection.close()  # a reset, as from a killed process
                        return
                    self.wfile.write(chat_chunk(piece))
                    self.wfile.flush()
                    time.sleep(0.02)
                self.wfile.write(chat_chunk(None, "stop"))
                usage = {"id": "fake", "object": "chat.completion.chunk", "created": 1,
                         "model": "fake", "choices": [],
                         "usage": {"prompt_tokens": 5, "completion_tokens": len(fake.pieces),
                                   "total_tokens": 5 + len(fake.pieces)}}
                self.wfile.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
                self.wfile.flush()

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_router(luzao_bin):
    made = []

    def make(first: FakeBackend, second: FakeBackend, *args: str) -> tuple[Proc, openai.OpenAI]:
        r = ListeningProcess([str(luzao_bin), "router", "--port", "0", "--health-interval-ms", "50",
                  "--backend", first.url, "--backend", second.url, *args])
        made.append(r)
        wait_for(lambda: healthy(r.url), 30, "the router to see its fake backends")
        return r, openai.OpenAI(base_url=r.url + "/v1", api_key="x", max_retries=0, timeout=30)

    yield make
    for r in made:
        r.stop()


def stream_text(client, **kw) -> str:
    text = ""
    for chunk in client.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": "hi"}], stream=True, **kw):
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text


PIECES = ["Hel", "lo", ", ", "wor", "ld", "!"]


def test_fake_greedy_stream_resumes_without_repeats(fake_router):
    a, b = FakeBackend(PIECES, break_after=3), FakeBackend(["He", "llo, w", "orld", "!"])
    router, client = fake_router(a, b)
    assert stream_text(client, temperature=0) == "Hello, world!"
    assert (a.requests, b.requests) == (1, 1)
    m = metrics(router.url)
    assert m["luzao_router_stream_resumes_total"] == 1
    a.close()
    b.close()


def test_fake_sampled_stream_ends_with_an_error_event(fake_router):
    a, b = FakeBackend(PIECES, break_after=3), FakeBackend(PIECES)
    _, client = fake_router(a, b)
    with pytest.raises(openai.APIError) as err:
        stream_text(client, temperature=0.8)
    assert "cannot be resumed" in str(err.value)
    assert b.requests == 0
    a.close()
    b.close()


def test_fake_sampled_stream_retried_before_any_text(fake_router):
    a, b = FakeBackend(PIECES, break_after=0), FakeBackend(PIECES)
    _, client = fake_router(a, b)
    assert stream_text(client, temperature=0.8) == "Hello, world!"
    assert b.requests == 1
    a.close()
    b.close()


def test_fake_diverging_regeneration_is_refused(fake_router):
    a, b = FakeBackend(PIECES, break_after=3), FakeBackend(["Help", " me"])
    router, client = fake_router(a, b)
    with pytest.raises(openai.APIError) as err:
        stream_text(client, temperature=0, seed=1)
    assert "different text" in str(err.value)
    assert metrics(router.url)["luzao_router_stream_divergences_total"] == 1
    a.close()
    b.close()


def test_fake_api_key(fake_router):
    a, b = FakeBackend(PIECES), FakeBackend(PIECES)
    router, _ = fake_router(a, b, "--api-key", "sesame")
    wrong = openai.OpenAI(base_url=router.url + "/v1", api_key="nope", max_retries=0, timeout=30)
    with pytest.raises(openai.AuthenticationError) as err:
        stream_text(wrong, temperature=0)
    assert err.value.response.json()["error"]["code"] == "invalid_api_key"
    right = openai.OpenAI(base_url=router.url + "/v1", api_key="sesame", max_retries=0, timeout=30)
    assert stream_text(right, temperature=0) == "Hello, world!"
    assert http_request(router.url + "/health")[0] == 200  # no key needed
    assert (a.requests, b.requests) == (1, 0)
    a.close()
    b.close()


def backend_speeds(router_url: str) -> list[tuple[float, float, float, float]]:
    """(prefill, decode, seeded prefill, seeded decode) per backend, from the router's /v1/pool."""
    pool = json.loads(http_request(router_url + "/v1/pool")[2])
    return [(b["prefill_tokens_per_second"], b["decode_tokens_per_second"],
             b["seeded_prefill_tokens_per_second"], b["seeded_decode_tokens_per_second"])
            for b in pool["backends"]]


def test_fake_backends_seed_the_speed_estimates(fake_router):
    # A serve-shaped /v1/pool with two serving devices and a drained one, and a backend without it.
    reported = {"object": "pool", "devices": [
        {"id": "d0", "state": "serving", "measured": {"prefill_tps": 1500.0, "decode_tps": 60.0}},
        {"id": "d1", "state": "serving", "measured": {"prefill_tps": 500.0, "decode_tps": 20.0}},
        {"id": "d2", "state": "drained", "measured": {"prefill_tps": 9999.0, "decode_tps": 999.0}}]}
    a, b = FakeBackend(PIECES, pool=reported), FakeBackend(PIECES)
    router, client = fake_router(a, b)
    wait_for(lambda: backend_speeds(router.url)[0][3] > 0, 10, "the seeded speed")
    speeds = backend_speeds(router.url)
    assert speeds[0] == (2000.0, 80.0, 2000.0, 80.0)
    assert speeds[1] == (0, 0, 0, 0)  # nothing reported: learned from traffic alone
    m = metrics(router.url)
    assert m[f'luzao_router_backend_seeded_decode_tokens_per_second{{backend="{a.url}"}}'] == 80
    a.close()
    b.close()


def test_fake_backend_reported_faster_gets_the_request(fake_router):
    # Idle, with unknown speeds the tie would go to the first backend; the second reports being
    # fast (the defaults for the unknown one are 1000 and 50 tokens/s), so it gets the request.
    slow = FakeBackend(PIECES)
    fast = FakeBackend(PIECES, pool={"object": "pool", "devices": [
        {"id": "d0", "state": "serving", "measured": {"prefill_tps": 50000.0, "decode_tps": 5000.0}}]})
    router, client = fake_router(slow, fast)
    wait_for(lambda: backend_speeds(router.url)[1][3] > 0, 10, "the seeded speed")
    assert stream_text(client, temperature=0) == "Hello, world!"
    assert (slow.requests, fast.requests) == (0, 1)
    slow.close()
    fast.close()


def test_router_seeds_from_a_warm_serve_pool(luzao_bin, tiny_models, tmp_path):
    """A router started in front of a `luzao serve --pool` that has already served traffic starts
    with the speeds that backend measured, before any request goes through the router."""
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps({"devices": [
        {"id": "cpu0", "device": "cpu", "price_per_hour": 0.5, "labels": {"vendor": "hostco"}}]}))
    engine = ListeningProcess([str(luzao_bin), "serve", "-m", str(tiny_models[MODEL]), "--port", "0",
                               "-t", "1", "--parallel", "2", "-c", str(CTX), "--pool", str(pool)])
    router = None
    try:
        wait_for(lambda: healthy(engine.url), 60, "luzao serve --pool to be healthy")
        direct = openai.OpenAI(base_url=engine.url + "/v1", api_key="x", max_retries=0, timeout=60)
        direct.completions.create(model=MODEL, prompt=PROMPTS[0], max_tokens=32, temperature=0)
        measured = json.loads(http_request(engine.url + "/v1/pool")[2])["devices"][0]["measured"]
        assert measured["decode_tps"] > 0 and measured["prefill_tps"] > 0
        router = ListeningProcess([str(luzao_bin), "router", "--port", "0", "--health-interval-ms",
                                   "100", "--backend", engine.url])
        wait_for(lambda: healthy(router.url), 30, "the router to see its backend")
        wait_for(lambda: backend_speeds(router.url)[0][3] > 0, 10, "the seeded speed")
        prefill, decode, seeded_prefill, seeded_decode = backend_speeds(router.url)[0]
        # No traffic went through the router: its estimate is exactly what the backend reported.
        assert seeded_decode == pytest.approx(measured["decode_tps"])
        assert seeded_prefill == pytest.approx(measured["prefill_tps"])
        assert (prefill, decode) == (seeded_prefill, seeded_decode)
    finally:
        if router is not None:
            router.stop()
        engine.stop()

"""`luzao serve` against the official `openai` Python client on SmolLM2: chat and text
completions (JSON and SSE), greedy text identical to `luzao run`, 16 concurrent clients identical
to sequential runs, stop strings, seeds, cancellation on disconnect, metrics, and every error case
in OpenAI's error format (400, 401, 404, 413, 503 with Retry-After)."""
from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import pytest

from conftest import run_cli
from server_harness import ServerProcess

openai = pytest.importorskip("openai", reason="the openai package is not installed "
                                              "(scripts/setup-deps.sh installs it)")

CTX = 512
MAX_BODY = 200_000
QUESTIONS = [f"In one sentence, what is {thing}?" for thing in (
    "a river", "the moon", "bread", "a violin", "rain", "a library", "iron", "a bridge", "snow",
    "a lighthouse", "honey", "a compass", "glass", "a volcano", "paper", "a kite")]


@pytest.fixture(scope="module")
def server(luzao_bin, smollm2_model):
    s = ServerProcess(luzao_bin, smollm2_model, "-t", "2", "--parallel", "4", "-c", str(CTX),
                      "--max-body", str(MAX_BODY))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def cli_greedy(luzao_bin, model, prompt: str, n: int, chat: bool) -> str:
    args = ["run", "-m", str(model), "-p", prompt, "-n", str(n), "--temp", "0", "-t", "2",
            "--no-timings"] + (["--chat"] if chat else [])
    proc = run_cli(luzao_bin, *args)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    out = proc.stdout.decode("utf-8", errors="replace")
    return out[:-1] if out.endswith("\n") else out


def chat(client, server, question: str, n: int = 8, **kw):
    return client.chat.completions.create(model=server.model_id, max_tokens=n, temperature=0,
                                          messages=[{"role": "user", "content": question}], **kw)


def test_health_and_models(server, client):
    status, _, body = server.get("/health")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    models = client.models.list()
    assert [m.id for m in models.data] == [server.model_id]
    assert client.models.retrieve(server.model_id).id == server.model_id


def test_chat_greedy_matches_luzao_run(server, client, luzao_bin, smollm2_model):
    r = chat(client, server, QUESTIONS[0], n=12)
    expected = cli_greedy(luzao_bin, smollm2_model, QUESTIONS[0], 12, chat=True)
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == expected
    assert r.choices[0].finish_reason in ("length", "stop")
    u = r.usage
    assert u.completion_tokens <= 12 and u.prompt_tokens > 5
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert r.object == "chat.completion" and r.model == server.model_id


def test_chat_stream_with_usage(server, client):
    plain = chat(client, server, QUESTIONS[1], n=10).choices[0].message.content
    chunks = list(chat(client, server, QUESTIONS[1], n=10, stream=True,
                       stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["length"], ["stop"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens <= 10
    assert all(c.usage is None for c in chunks[:-1])
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 2  # streamed


def test_completions_match_luzao_run(server, client, luzao_bin, smollm2_model):
    prompt = "The three primary colours are"
    expected = cli_greedy(luzao_bin, smollm2_model, prompt, 10, chat=False)
    r = client.completions.create(model=server.model_id, prompt=prompt, max_tokens=10, temperature=0)
    assert r.choices[0].text == expected
    assert r.object == "text_completion"
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=server.model_id, prompt=prompt, max_tokens=10, temperature=0, stream=True) if c.choices)
    assert streamed == expected
    default = client.completions.create(model=server.model_id, prompt=prompt, temperature=0)
    assert default.usage.completion_tokens <= 16  # OpenAI's default max_tokens for completions


def test_stop_string_cuts_before_it(server, client):
    full = chat(client, server, QUESTIONS[2], n=16).choices[0].message.content
    assert len(full) > 8
    stop = full[5:8]
    r = chat(client, server, QUESTIONS[2], n=16, stop=[stop])
    assert r.choices[0].message.content == full[:full.index(stop)]
    assert r.choices[0].finish_reason == "stop"


def test_seeded_sampling_repeats(server, client):
    def once(seed):
        return client.chat.completions.create(
            model=server.model_id, messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=12, temperature=1.0, top_p=0.9, seed=seed).choices[0].message.content
    assert once(7) == once(7)


def test_sixteen_concurrent_clients_match_sequential(server, client):
    sequential = [chat(client, server, q).choices[0].message.content for q in QUESTIONS]
    before = server.metrics()
    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(lambda q: chat(client, server, q).choices[0].message.content,
                                   QUESTIONS))
    assert concurrent == sequential
    after = server.metrics()
    # Batched: the 16 requests took fewer forward steps than tokens generated.
    steps = after["luzao_decode_steps_total"] - before["luzao_decode_steps_total"]
    generated = after["luzao_generated_tokens_total"] - before["luzao_generated_tokens_total"]
    assert steps < generated


def test_client_disconnect_cancels(server):
    before = server.metrics()["luzao_generated_tokens_total"]
    u = urlparse(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps({
        "model": server.model_id, "stream": True, "max_tokens": 400, "temperature": 0,
        "messages": [{"role": "user", "content": "Write a long essay about the sea."}]}),
        {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200
    got = b""
    while got.count(b"data: ") < 3:
        got += resp.read1(4096)
    conn.sock.close()  # the client goes away mid-stream
    conn.close()
    deadline = time.monotonic() + 30
    while server.metrics()["luzao_requests_running"] > 0:
        assert time.monotonic() < deadline, "the abandoned request is still running"
        time.sleep(0.1)
    assert server.metrics()["luzao_generated_tokens_total"] - before < 400


def test_metrics_exposition(server, client):
    chat(client, server, QUESTIONS[3], n=4)
    status, headers, body = server.get("/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    m = server.metrics()
    assert m['luzao_requests_total{endpoint="/v1/chat/completions",status="200"}'] >= 1
    assert m["luzao_time_to_first_token_seconds_count"] >= 1
    assert m['luzao_time_to_first_token_seconds_bucket{le="+Inf"}'] == m["luzao_time_to_first_token_seconds_count"]
    assert m["luzao_prompt_tokens_total"] > 0 and m["luzao_generated_tokens_total"] > 0
    for name in ("luzao_requests_queued", "luzao_kv_cache_usage_ratio",
                 "luzao_time_per_output_token_seconds_sum"):
        assert name in m, name
    assert "# TYPE luzao_time_to_first_token_seconds histogram" in text


def assert_error(status, body, code: int, param=None):
    assert status == code, body
    err = json.loads(body)["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert "type" in err and "code" in err and "param" in err
    if param is not None:
        assert err["param"] == param, err


def test_bad_requests_get_openai_errors(server, client):
    status, _, body = server.request("POST", "/v1/chat/completions", b'{"messages": [',
                                     {"Content-Type": "application/json"})
    assert_error(status, body, 400)
    assert_error(*server.post_json("/v1/chat/completions", {"model": server.model_id})[::2], 400, "messages")
    bad_type = {"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}
    assert_error(*server.post_json("/v1/chat/completions", bad_type)[::2], 400, "temperature")
    assert_error(*server.post_json("/v1/completions", {"prompt": 5})[::2], 400, "prompt")
    assert_error(*server.get("/v1/no-such-thing")[::2], 404)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=server.model_id, prompt="word " * (CTX + 50), max_tokens=1)
    assert e.value.code == "context_length_exceeded"
    big = {"messages": [{"role": "user", "content": "x" * (MAX_BODY + 10)}]}
    assert_error(*server.post_json("/v1/chat/completions", big)[::2], 413)
    # The server keeps serving after all of that.
    assert chat(client, server, QUESTIONS[4], n=2).choices[0].message.content


def test_api_key_and_busy_queue(luzao_bin, smollm2_model):
    s = ServerProcess(luzao_bin, smollm2_model, "-t", "2", "--parallel", "1", "--queue-limit", "1",
                      "-c", "4096", "--api-key", "sesame")
    try:
        assert s.get("/health")[0] == 200  # health needs no key
        wrong = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as e:
            wrong.models.list()
        assert e.value.code == "invalid_api_key"
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model=s.model_id, messages=[{"role": "user", "content": "x"}])
        status, _, body = s.get("/v1/models")  # no key at all
        assert_error(status, body, 401)
        good = openai.OpenAI(base_url=s.url + "/v1", api_key="sesame", max_retries=0, timeout=120)
        assert good.models.list().data[0].id == s.model_id

        # One running, one queued: the third gets 503 with Retry-After. The two run for seconds
        # whatever the speed: thousands of tokens drawn nearly uniformly (an end-of-text token
        # is 1 in ~49,000 there).
        u = urlparse(s.url)
        held = []
        for _ in range(2):
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            conn.request("POST", "/v1/completions", json.dumps({
                "prompt": "Once upon a time", "max_tokens": 4000, "stream": True,
                "temperature": 2.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0, "seed": 7}),
                {"Content-Type": "application/json", "Authorization": "Bearer sesame"})
            held.append(conn)
            time.sleep(0.3)  # the first is admitted before the second queues
        status, headers, body = s.post_json("/v1/completions", {"prompt": "Hi", "max_tokens": 1},
                                            headers={"Authorization": "Bearer sesame"})
        assert_error(status, body, 503)
        assert headers.get("Retry-After") == "1"
        for conn in held:
            conn.close()
    finally:
        s.stop()


def test_port_in_use_is_a_clear_error(server, luzao_bin, smollm2_model):
    port = urlparse(server.url).port
    proc = run_cli(luzao_bin, "serve", "-m", str(smollm2_model), "--port", str(port), "-t", "1",
                   timeout=120)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr.decode()

"""mmlink.serve.app in isolation: the FastAPI app over a scripted fake engine, driven through ASGI directly (no
server, no model) — routes, the OpenAI response and stream formats, every refusal's status and error body, the API
key, the image limit, and a client that leaves. tests/serve/test_server.py runs it end to end with `tiny`."""

import asyncio
import base64
import io
import json
from types import SimpleNamespace

import pytest
from PIL import Image

from mmlink.serve.app import ServeLimits, create_app
from mmlink.serve.engine import EngineBusy, EngineClosed, Event


def _url(color=(255, 0, 0)) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


class FakeEngine:
    """What the app uses of an `Engine`: it emits a scripted list of events for each job it is given."""

    def __init__(self, events=(), refuse=None, max_images=None, aio=None):
        self.processor = SimpleNamespace(max_images=max_images) if max_images else SimpleNamespace()
        self.events, self.refuse, self.aio = list(events), refuse, aio
        self.jobs, self.calls = [], []

    def start(self):
        self.calls.append("start")

    def close(self):
        self.calls.append("close")

    def prepare(self, job, default_max_tokens):
        job.prompt_tokens = 7
        self.calls.append(("prepare", default_max_tokens))

    def submit(self, job):
        if self.refuse is not None:
            raise self.refuse
        self.jobs.append(job)
        job.aio_result = self.aio
        for event in self.events:
            job.emit(event)


def _call(app, method, path, body=b"", headers=None, disconnect=False, length=True, timeout=30.0):
    """One ASGI request: (status, headers, body). ``disconnect``: the client is gone after sending the body;
    ``timeout``: TimeoutError when the app has not finished by then."""
    head = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if length:
        head.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": head,
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    chunks = [body[i:i + 64] for i in range(0, len(body), 64)] or [b""]
    sent, out = [], []

    async def receive():
        if len(sent) < len(chunks):
            sent.append(1)
            return {"type": "http.request", "body": chunks[len(sent) - 1], "more_body": len(sent) < len(chunks)}
        if disconnect:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)  # the client stays connected

    async def send(message):
        out.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout))
    start = next(m for m in out if m["type"] == "http.response.start")
    return start["status"], dict((k.decode(), v.decode()) for k, v in start["headers"]), b"".join(
        m.get("body", b"") for m in out if m["type"] == "http.response.body")


def _post(app, headers=None, **fields):
    body = {"model": "tiny", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": _url()}}, {"type": "text", "text": "Colour?"}]}], **fields}
    status, head, data = _call(app, "POST", "/v1/chat/completions", json.dumps(body).encode(), headers)
    return status, head, data


def _json(result):
    status, _, data = result
    return status, json.loads(data)


DONE = [Event("delta", 0, "Re"), Event("delta", 0, "d. "), Event("done", 0, finish_reason="stop", completion_tokens=2)]


def test_health_models_and_the_chat_page():
    app = create_app(FakeEngine(), "tiny")
    assert _json(_call(app, "GET", "/health")) == (200, {"status": "ok", "model": "tiny"})
    status, models = _json(_call(app, "GET", "/v1/models"))
    assert status == 200 and [(m["id"], m["object"], m["owned_by"]) for m in models["data"]] == [
        ("tiny", "model", "mmlink")]
    status, head, page = _call(app, "GET", "/")
    assert status == 200 and head["content-type"].startswith("text/html")
    assert b"<title>mmlink chat</title>" in page and b'fetch("v1/chat/completions"' in page


def test_a_completion_gathers_the_deltas_and_counts_tokens():
    engine = FakeEngine(DONE)
    status, body = _json(_post(create_app(engine, "tiny", limits=ServeLimits(default_max_tokens=33)), max_tokens=5))
    assert status == 200 and body["object"] == "chat.completion" and body["model"] == "tiny"
    assert body["id"].startswith("chatcmpl-") and isinstance(body["created"], int)
    assert body["choices"] == [{"index": 0, "message": {"role": "assistant", "content": "Red."},
                                "finish_reason": "stop", "logprobs": None}]
    assert body["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    assert "mmlink_aio" not in body and ("prepare", 33) in engine.calls
    (job,) = engine.jobs
    assert job.conversation.turns == [{"from": "human", "value": "<image>\nColour?"}]
    assert job.sampling.max_tokens == 5 and job.sampling.greedy and not job.cancelled.is_set()


def test_n_choices_interleave_and_aio_steps_come_back():
    events = [Event("delta", 1, "b"), Event("delta", 0, "a"), Event("done", 1, finish_reason="length",
              completion_tokens=4), Event("done", 0, finish_reason="stop", completion_tokens=1)]
    aio = SimpleNamespace(to_dict=lambda: {"prompt": "<image>\nColour?", "candidates": ["Colour?"]})
    status, body = _json(_post(create_app(FakeEngine(events, aio=aio), "tiny"), n=2, temperature=0.5, mmlink_aio=True))
    assert status == 200 and [(c["message"]["content"], c["finish_reason"]) for c in body["choices"]] == [
        ("a", "stop"), ("b", "length")]
    assert body["usage"]["completion_tokens"] == 5 and body["mmlink_aio"]["candidates"] == ["Colour?"]


def test_the_stream_is_openais_server_sent_events():
    status, head, data = _post(create_app(FakeEngine(DONE), "tiny"), stream=True,
                               stream_options={"include_usage": True})
    assert status == 200 and head["content-type"].startswith("text/event-stream")
    lines = data.decode().split("\n\n")
    assert lines[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-2]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"} and len({c["id"] for c in chunks}) == 1
    assert [c["choices"] for c in chunks] == [
        [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        [{"index": 0, "delta": {"content": "Re"}, "finish_reason": None}],
        [{"index": 0, "delta": {"content": "d. "}, "finish_reason": None}],
        [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        []]
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
    _, _, plain = _post(create_app(FakeEngine(DONE), "tiny"), stream=True)
    assert b'"usage"' not in plain and plain.endswith(b"data: [DONE]\n\n")


def test_a_generation_error_is_a_500_or_an_error_event():
    failing = [Event("delta", 0, "x"), Event("error", 0, "CUDA out of memory")]
    status, body = _json(_post(create_app(FakeEngine(failing), "tiny")))
    assert status == 500 and body["error"] == {"message": "CUDA out of memory", "type": "server_error",
                                               "param": None, "code": "generation_failed"}
    _, _, stream = _post(create_app(FakeEngine(failing), "tiny"), stream=True)
    assert b'"code": "generation_failed"' in stream and b'"finish_reason": "stop"' not in stream


@pytest.mark.parametrize("refuse, status, code, kind", [
    (EngineBusy("the queue is full (--max-queue 2)"), 429, "queue_full", "rate_limit_error"),
    (EngineClosed("the server is shutting down"), 503, "shutting_down", "server_error"),
])
def test_engine_refusals(refuse, status, code, kind):
    got, body = _json(_post(create_app(FakeEngine(refuse=refuse), "tiny")))
    assert got == status and (body["error"]["code"], body["error"]["type"]) == (code, kind)
    assert body["error"]["message"] == str(refuse)


def test_request_refusals_name_the_field_or_the_limit():
    app = create_app(FakeEngine(DONE), "tiny", limits=ServeLimits(max_request_bytes=4096))
    status, body = _json(_post(app, model="gpt-9"))
    assert status == 404 and body["error"]["param"] == "model" and body["error"]["code"] == "model_not_found"
    assert "this server serves 'tiny'" in body["error"]["message"]
    status, body = _json(_call(app, "POST", "/v1/chat/completions", b"{not json"))
    assert status == 400 and body["error"]["message"].startswith("the body is not valid JSON")
    status, body = _json(_post(app, temperature=3))
    assert status == 400 and body["error"]["param"] == "temperature"
    big = b'{"model": "tiny", "pad": "' + b"x" * 5000 + b'"}'
    status, body = _json(_call(app, "POST", "/v1/chat/completions", big))
    assert status == 413
    assert body["error"]["message"] == f"request body of {len(big)} bytes exceeds 4096 (--max-request-bytes)"
    status, body = _json(_call(app, "POST", "/v1/chat/completions", big, length=False))  # no declared length
    assert status == 413 and body["error"]["message"] == "request body exceeds 4096 bytes (--max-request-bytes)"


def test_the_image_limit_is_the_lower_of_the_servers_and_the_models():
    app = create_app(FakeEngine(DONE, max_images=1), "tiny", limits=ServeLimits(limit_images=4))
    two = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": _url()}}] * 2}]
    status, body = _json(_post(app, messages=two))
    assert status == 400 and body["error"]["code"] == "too_many_images"
    assert body["error"]["message"].startswith("2 images exceed the limit of 1 per request")


def test_the_api_key_guards_v1_only():
    app = create_app(FakeEngine(DONE), "tiny", api_key="s3cret")
    status, body = _json(_post(app))
    assert status == 401 and body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert _post(app, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert _post(app, headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert _call(app, "GET", "/v1/models", headers={"Authorization": "s3cret"})[0] == 401  # "Bearer " is required
    assert _call(app, "GET", "/health")[0] == 200


def _leave(stream: bool, timeout: float):
    engine = FakeEngine([Event("delta", 0, "never finished")])
    app = create_app(engine, "tiny", limits=ServeLimits(poll_s=0.01))
    body = json.dumps({"model": "tiny", "stream": stream, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": _url()}}]}]}).encode()
    status, _, _ = _call(app, "POST", "/v1/chat/completions", body, disconnect=True, timeout=timeout)
    return status, engine.jobs[0]


def test_a_streaming_client_that_leaves_cancels_its_job():
    status, job = _leave(stream=True, timeout=30)
    assert status == 200 and job.cancelled.is_set()


def test_a_non_streaming_client_that_leaves_cancels_its_job():
    status, job = _leave(stream=False, timeout=5.0)  # answered 499 within a few polls of 10 ms
    assert status == 499 and job.cancelled.is_set()


def test_the_lifespan_starts_and_closes_the_engine():
    engine = FakeEngine()
    app = create_app(engine, "tiny")
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message["type"])

    asyncio.run(app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send))
    assert engine.calls == ["start", "close"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]

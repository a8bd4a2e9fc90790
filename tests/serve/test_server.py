"""`mmlink serve` as a user meets it: a real uvicorn server on a free localhost port with `tiny`, spoken to with the
official `openai` client (several images in one message, multi-turn, streaming, n, stop, usage) and abused over
raw HTTP (malformed JSON, wrong types, a 50 MB body, an image bomb, forbidden files and hosts, too many images, an
unknown model, a prompt beyond the context, a full queue). Every abuse gets its 4xx and /health stays OK."""

import base64
import http.client
import io
import json
import socket
import threading
import time

import openai
import pytest
import uvicorn
from PIL import Image

from mmlink.models import load
from mmlink.serve.app import create_app
from mmlink.serve.engine import Engine
from mmlink.serve.limits import EngineSettings, ServeLimits
from mmlink.serve.media import MediaPolicy

pytestmark = pytest.mark.usefixtures("one_thread")


def _image(color, size=(32, 32), mode="RGB") -> str:
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


RED, BLUE = _image((220, 20, 20)), _image((20, 20, 220))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, app):
        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)

    def post(self, body: bytes | str, path="/v1/chat/completions", headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()


@pytest.fixture(scope="module")
def tiny():
    model, processor = load("tiny")
    return model.eval(), processor


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    media = tmp_path_factory.mktemp("media")
    Image.new("RGB", (16, 16), (0, 200, 0)).save(media / "green.png")
    engine = Engine(*tiny, EngineSettings(max_batch=8, batch_window_ms=20))
    app = create_app(engine, "tiny", MediaPolicy(allowed_local_path=media),
                     ServeLimits(limit_images=3, max_request_bytes=2 * 2**20))
    with Server(app) as s:
        s.media = media
        s.engine = engine
        yield s


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="unused", max_retries=0)


def _user(*parts):
    return {"role": "user", "content": [({"type": "image_url", "image_url": {"url": p}} if p.startswith(("data:", "file:", "http"))
                                         else {"type": "text", "text": p}) for p in parts]}


def test_several_images_in_one_message_and_the_usage(client, tiny):
    model, processor = tiny
    response = client.chat.completions.create(model="tiny", messages=[_user(RED, BLUE, "What differs?")],
                                              max_tokens=6)
    choice = response.choices[0]
    assert response.object == "chat.completion" and response.model == "tiny"
    assert choice.message.role == "assistant" and choice.finish_reason in ("stop", "length")
    # the same answer as the model gives directly, greedy
    from mmlink.generate import answer, make_generation_config

    images = [Image.open(io.BytesIO(base64.b64decode(u.split(",", 1)[1]))).convert("RGB") for u in (RED, BLUE)]
    direct = answer(model, processor, "<image>\n<image>\nWhat differs?", images,
                    make_generation_config(max_new_tokens=6), fast_greedy=False)[0]
    assert choice.message.content == direct
    prompt = processor.encode_conversation([[{"from": "human", "value": "<image>\n<image>\nWhat differs?"}]],
                                           [images], encode_images=False)["input_ids"].shape[1]
    assert response.usage.prompt_tokens == prompt and 1 <= response.usage.completion_tokens <= 6
    assert response.usage.total_tokens == prompt + response.usage.completion_tokens


def test_multi_turn_with_images_in_several_messages(client):
    messages = [{"role": "system", "content": "Answer briefly."}, _user(RED, "Describe it."),
                {"role": "assistant", "content": "A red square."}, _user(BLUE, "And this one?")]
    response = client.chat.completions.create(model="tiny", messages=messages, max_tokens=4)
    assert response.choices[0].finish_reason in ("stop", "length")


def test_streaming_matches_the_whole_answer_and_reports_usage(client):
    kwargs = dict(model="tiny", messages=[_user(RED, "Describe.")], max_tokens=8)
    whole = client.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == whole
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and chunks[-1].usage.completion_tokens >= 1


def test_n_sampled_choices_with_a_seed_repeat(client):
    kwargs = dict(model="tiny", messages=[_user(RED, "Describe.")], max_tokens=6, n=3, temperature=1.0, seed=7)
    first, again = client.chat.completions.create(**kwargs), client.chat.completions.create(**kwargs)
    assert [c.index for c in first.choices] == [0, 1, 2]
    assert [c.message.content for c in first.choices] == [c.message.content for c in again.choices]


def test_a_client_that_leaves_stops_its_generation(tiny):
    engine, jobs, entered, gate = Engine(*tiny), [], threading.Event(), threading.Event()
    run, submit = engine._run, engine.submit
    engine._run = lambda batch: (entered.set(), gate.wait(60), run(batch))  # decodes once the client has gone
    engine.submit = lambda job: (jobs.append(job), submit(job))[1]
    with Server(create_app(engine, "tiny")) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("POST", "/v1/chat/completions", body=_body(max_tokens=60, stream=True),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and response.readline().startswith(b"data: ")  # the role chunk
        assert entered.wait(30)  # the job is in a batch
        conn.sock.shutdown(socket.SHUT_RDWR)
        conn.close()
        deadline = time.monotonic() + 30
        while not jobs[0].cancelled.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert jobs[0].cancelled.is_set()
        gate.set()
        while engine.cancelled_rows == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert engine.cancelled_rows == 1 and server.get("/health")[0] == 200


def test_a_stop_string_ends_the_answer_before_it(client):
    full = client.chat.completions.create(model="tiny", messages=[_user(RED, "Go.")], max_tokens=12)
    text = full.choices[0].message.content
    if len(text) < 3:
        pytest.skip("the tiny model's answer is too short to cut")
    stop = text[1:3]
    cut = client.chat.completions.create(model="tiny", messages=[_user(RED, "Go.")], max_tokens=12, stop=[stop])
    assert cut.choices[0].finish_reason == "stop" and cut.choices[0].message.content == text[:text.find(stop)].strip()


def test_concurrent_requests_are_batched(server, client):
    before = (server.engine.batches, server.engine.rows)
    results = [None] * 6

    def ask(i):
        results[i] = client.chat.completions.create(model="tiny", messages=[_user(RED, f"Item {i}?")], max_tokens=4)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.choices[0].message.content is not None for r in results)
    batches, rows = server.engine.batches - before[0], server.engine.rows - before[1]
    assert rows == 6 and batches < 6  # at least two requests shared a forward pass


def test_local_file_inside_the_allowed_directory(client, server):
    response = client.chat.completions.create(
        model="tiny", messages=[_user(f"file://{server.media}/green.png", "Colour?")], max_tokens=3)
    assert response.choices[0].message.content is not None


def test_models_health_and_the_chat_page(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny"]
    status, page = server.get("/")
    assert status == 200 and b"v1/chat/completions" in page and b"image_url" in page


def _body(**over):
    body = {"model": "tiny", "messages": [_user(RED, "Hi?")], "max_tokens": 3}
    body.update(over)
    return json.dumps(body)


def test_abuse_gets_the_right_4xx_and_the_server_stays_up(server):
    bomb = io.BytesIO()
    Image.new("1", (6000, 6000), 1).save(bomb, format="PNG")
    bomb_url = "data:image/png;base64," + base64.b64encode(bomb.getvalue()).decode()
    cases = [
        ("{not json", 400, None),
        (json.dumps([1, 2]), 400, None),
        (_body(max_tokens="many"), 400, "max_tokens"),
        (_body(temperature=5), 400, "temperature"),
        (_body(messages=[]), 400, "messages"),
        (_body(messages=[{"role": "robot", "content": "x"}]), 400, "messages.0.role"),
        (_body(model="gpt-9"), 404, "model"),
        (_body(messages=[_user(RED, RED, RED, RED, "Four?")]), 400, "messages"),
        (_body(messages=[_user(bomb_url, "Bomb?")]), 413, "messages.0.content.0.image_url"),
        (_body(messages=[_user("file:///etc/passwd", "Read?")]), 403, "messages.0.content.0.image_url"),
        (_body(messages=[_user(f"file://{server.media}/../../../etc/passwd", "Up?")]), 403, None),
        (_body(messages=[_user("https://example.com/a.png", "Remote?")]), 403, None),
        (_body(messages=[{"role": "user", "content": "no image"}]), 400, "messages"),
        (_body(messages=[_user(RED, "word " * 400)]), 400, "messages"),
        (_body(messages=[_user(RED, "<image> smuggled")]), 400, None),
        (_body(stop=["", "x"]), 400, "stop"),
    ]
    for body, status, param in cases:
        got, error = server.post(body)
        assert got == status, (body[:80], got, error)
        assert error["error"]["message"] and error["error"]["type"]
        if param:
            assert error["error"]["param"] == param, (body[:80], error)
    huge = _body(messages=[_user("data:image/png;base64," + "A" * (50 * 2**20), "Huge?")])  # a 50 MB body
    got, error = server.post(huge)
    assert got == 413 and "--max-request-bytes" in error["error"]["message"]
    assert server.get("/health")[0] == 200
    status, ok = server.post(_body())
    assert status == 200 and ok["choices"][0]["message"]["role"] == "assistant"


def test_a_full_queue_answers_429_at_once_and_loses_nothing(tiny):
    engine = Engine(*tiny, EngineSettings(max_queue=2, max_batch=1, batch_window_ms=0))
    gate, run = threading.Event(), engine._run
    engine._run = lambda batch: (gate.wait(60), run(batch))  # the worker holds its first job until the gate opens
    with Server(create_app(engine, "tiny")) as server:
        results = []
        threads = [threading.Thread(target=lambda: results.append(server.post(_body(max_tokens=4))))
                   for _ in range(12)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(results) < 9 and time.monotonic() < deadline:  # one decoding, two queued: the rest refused now
            time.sleep(0.01)
        refused = list(results)
        gate.set()
        for t in threads:
            t.join()
    assert len(refused) >= 9 and all(code == 429 for code, _ in refused)
    assert all(body["error"]["code"] == "queue_full" and "--max-queue" in body["error"]["message"]
               for _, body in refused)
    codes = [code for code, _ in results]  # every request got an answer: 3 (2 if the worker was slow to take one)
    assert len(codes) == 12 and codes.count(200) in (2, 3) and codes.count(200) + codes.count(429) == 12


def test_api_key_is_required_when_set(tiny):
    engine = Engine(*tiny)
    with Server(create_app(engine, "tiny", api_key="s3cret")) as server:
        assert server.post(_body())[0] == 401
        assert server.post(_body(), headers={"Authorization": "Bearer wrong"})[0] == 401
        assert server.post(_body(), headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert server.get("/health")[0] == 200  # health needs no key
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{server.port}/v1", api_key="s3cret", max_retries=0)
        assert client.chat.completions.create(model="tiny", messages=[_user(RED, "Hi")], max_tokens=2).choices


def test_aio_extension_returns_its_steps(server):
    status, body = server.post(_body(mmlink_aio=True))
    assert status == 200
    steps = body["mmlink_aio"]
    assert steps["candidates"][0] == "Hi?" and len(steps["ias"]) == len(steps["candidates"])
    assert steps["prompt"].startswith("<image>")

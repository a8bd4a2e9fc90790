"""mmlink.eval.judge: strict rating parse, retries, failures never scored 0, on-disk cache, OpenAI-compatible HTTP."""

from __future__ import annotations

import json
import socket
import string
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from mmlink.eval import judge as judge_mod
from mmlink.eval.judge import (
    PROMPT_TEMPLATE,
    PROMPT_VERSION,
    RETRY_REMINDER,
    Judge,
    JudgeBackendError,
    LocalBackend,
    OpenAIBackend,
    TextBackend,
    build_prompt,
    cache_key,
    make_backend,
    parse_rating,
)


class FakeBackend:
    """Scripted responses in call order; an Exception instance in the script is raised instead."""

    weak = False

    def __init__(self, responses: list, name: str = "fake:judge") -> None:
        self.responses = list(responses)
        self.name = name
        self.prompts: list[str] = []

    @property
    def calls(self) -> int:
        return len(self.prompts)

    def complete(self, prompt: str) -> str:
        self.prompts.append(prompt)
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        return response


Q, REF, PRED = "What differs between the images?", "The left cup is red, the right one blue.", "The cups' colours."


def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if not p.name.startswith(".tmp-"))


# --------------------------------------------------------------------------- parse


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Rating: 4", 4),
        ("rating:4", 4),
        ("**Rating:** 3", 3),
        ("Rating: 4/5", 4),
        ("3", 3),
        (" 0.\n", 0),
        ("5/5", 5),
        ("RATING = 2", 2),
        ("The prediction names the colours but not which cup.\nRating: 2", 2),
        ("Rating: 3\nSo, Rating: 3.", 3),  # repeated but consistent
        ("Rating: 6", None),
        ("Rating: -1", None),
        ("-1", None),
        ("6", None),
        ("Rating: 4.5", None),
        ("Rating: 4/10", None),
        ("Rating: 3 ... on reflection, Rating: 4", None),  # ambiguous
        ("Rating: 3\nRating: 9", None),  # one valid, one not
        ("I would give it a 4", None),  # unlabelled free text is not guessed at
        ("Rating: four", None),
        ("", None),
        ("no idea", None),
    ],
)
def test_parse_rating(text: str, expected: int | None) -> None:
    assert parse_rating(text) == expected


def test_prompt_is_versioned_and_complete() -> None:
    prompt = build_prompt(Q, REF, PRED)
    assert PROMPT_VERSION == "cadqa-judge-v1"
    assert Q in prompt and REF in prompt and PRED in prompt
    assert "Rating: N" in prompt and "0 = " in prompt and "5 = " in prompt
    assert RETRY_REMINDER not in prompt
    assert build_prompt(Q, REF, PRED, retry=True) == prompt + "\n\n" + RETRY_REMINDER
    # Braces in user text are data, not format fields.
    assert "{x}" in build_prompt("What is {x}?", REF, PRED)
    fields = {f for _, f, _, _ in string.Formatter().parse(PROMPT_TEMPLATE) if f}
    assert fields == {"question", "reference", "prediction"}


# --------------------------------------------------------------------------- retries and failures


def test_retry_then_success(tmp_path: Path) -> None:
    backend = FakeBackend(["I think it is fine.", "Rating: 4"])
    result = Judge(backend, tmp_path).rate(Q, REF, PRED)
    assert (result.rating, result.attempts, result.failed, result.cached) == (4, 2, False, False)
    assert result.raw == "Rating: 4"
    assert backend.prompts[0] == build_prompt(Q, REF, PRED)
    assert backend.prompts[1] == build_prompt(Q, REF, PRED, retry=True)


def test_retries_exhausted_is_a_failure_not_zero(tmp_path: Path) -> None:
    backend = FakeBackend(["Rating: 5", "good", "fine", "ok"])
    summary = Judge(backend, tmp_path, retries=2).rate_all(
        [{"id": 1, "question": Q, "reference": REF, "prediction": PRED}, ("b", "Q2?", "R2", "P2")], progress=False
    )
    assert backend.calls == 4
    bad = summary.results["b"]
    assert (bad.rating, bad.failed, bad.attempts, bad.raw) == (None, True, 3, "ok")
    assert summary.results["1"].rating == 5
    assert (summary.rated, summary.failures, summary.failed_ids) == (1, 1, ["b"])
    assert summary.mean_rating == 5.0  # the failure is excluded, not averaged in as 0
    assert (summary.backend, summary.weak, summary.n) == ("fake:judge", False, 2)
    assert summary.prompt_version == PROMPT_VERSION
    assert json.loads(json.dumps(summary.to_dict()))["results"]["b"]["rating"] is None


def test_all_failed_mean_is_none(tmp_path: Path) -> None:
    summary = Judge(FakeBackend(["?"]), tmp_path, retries=0).rate_all([("x", Q, REF, PRED)], progress=False)
    assert summary.mean_rating is None and summary.rated == 0 and summary.failed_ids == ["x"]


def test_rate_all_rejects_duplicate_ids_and_bad_items(tmp_path: Path) -> None:
    judge = Judge(FakeBackend([]), tmp_path)
    with pytest.raises(ValueError, match="duplicate ids: 1"):
        judge.rate_all([(1, Q, REF, PRED), ("1", Q, REF, PRED)], progress=False)
    with pytest.raises(ValueError, match="prediction"):
        judge.rate_all([{"id": 1, "question": Q, "reference": REF}], progress=False)
    with pytest.raises(ValueError, match="retries"):
        Judge(FakeBackend([]), tmp_path, retries=-1)


# --------------------------------------------------------------------------- cache


def test_cache_hit_on_a_fresh_judge(tmp_path: Path) -> None:
    first = Judge(FakeBackend(["unsure", "Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    files = cache_files(tmp_path)
    assert len(files) == 2
    entry = json.loads(files[0].read_text())
    assert set(entry) >= {"prompt", "model", "response", "version"}
    assert entry["version"] == PROMPT_VERSION and entry["model"] == "fake:judge"
    assert files[0].parent.name == files[0].stem[:2]

    again = FakeBackend([])
    second = Judge(again, tmp_path).rate(Q, REF, PRED)
    assert again.calls == 0
    assert (second.rating, second.raw, second.attempts, second.cached) == (first.rating, first.raw, 2, True)
    assert first.cached is False


def test_cache_key_depends_on_model_version_prompt_and_attempt(tmp_path: Path) -> None:
    prompt = build_prompt(Q, REF, PRED)
    key = cache_key("fake:judge", prompt, 0)
    assert len(key) == 64 and key == cache_key("fake:judge", prompt, 0, PROMPT_VERSION)
    assert key != cache_key("fake:other", prompt, 0)
    assert key != cache_key("fake:judge", prompt, 0, "cadqa-judge-v2")
    assert key != cache_key("fake:judge", prompt + " ", 0)
    assert key != cache_key("fake:judge", prompt, 1)

    Judge(FakeBackend(["Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    other = FakeBackend(["Rating: 1"], name="fake:other")
    assert Judge(other, tmp_path).rate(Q, REF, PRED).rating == 1  # another model does not reuse the cache
    assert other.calls == 1 and len(cache_files(tmp_path)) == 2


def test_prompt_version_change_misses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Judge(FakeBackend(["Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    monkeypatch.setattr(judge_mod, "PROMPT_VERSION", "cadqa-judge-v2")
    backend = FakeBackend(["Rating: 2"])
    assert Judge(backend, tmp_path).rate(Q, REF, PRED).rating == 2
    assert backend.calls == 1


def test_backend_error_is_a_failed_attempt_and_not_cached(tmp_path: Path) -> None:
    backend = FakeBackend([JudgeBackendError("http://x/chat/completions returned HTTP 503")] * 3)
    result = Judge(backend, tmp_path).rate(Q, REF, PRED)
    assert (result.rating, result.failed, result.attempts, result.cached) == (None, True, 3, False)
    assert "HTTP 503" in result.raw
    assert cache_files(tmp_path) == []

    recovering = FakeBackend([JudgeBackendError("timeout"), "Rating: 5"])
    result = Judge(recovering, tmp_path).rate(Q, REF, PRED)
    assert (result.rating, result.attempts) == (5, 2)
    assert len(cache_files(tmp_path)) == 1  # only the real response


def test_damaged_cache_file_is_recomputed(tmp_path: Path) -> None:
    Judge(FakeBackend(["Rating: 3"]), tmp_path).rate(Q, REF, PRED)
    (path,) = cache_files(tmp_path)
    path.write_text("{not json")
    backend = FakeBackend(["Rating: 4"])
    assert Judge(backend, tmp_path).rate(Q, REF, PRED).rating == 4 and backend.calls == 1
    assert json.loads(path.read_text())["response"] == "Rating: 4"


# --------------------------------------------------------------------------- OpenAI-compatible backend


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, payload = self.server.reply
        data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:  # keep the test output clean
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests = []
    srv.reply = (200, {"choices": [{"message": {"role": "assistant", "content": "Rating: 4"}}]})
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_openai_backend_request(server, monkeypatch: pytest.MonkeyPatch) -> None:
    base = f"http://127.0.0.1:{server.server_port}/v1/"
    monkeypatch.setenv("MMLINK_TEST_JUDGE_KEY", "sk-test")
    backend = OpenAIBackend(base, "judge-model", api_key_env="MMLINK_TEST_JUDGE_KEY", timeout=5, max_tokens=20)
    assert isinstance(backend, TextBackend)
    assert backend.name == f"openai:judge-model@http://127.0.0.1:{server.server_port}/v1"
    assert backend.complete("Rate this.") == "Rating: 4"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["body"]["model"] == "judge-model"
    assert req["body"]["messages"] == [{"role": "user", "content": "Rate this."}]
    assert req["body"]["temperature"] == 0.0 and req["body"]["max_tokens"] == 20
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert headers["authorization"] == "Bearer sk-test"

    monkeypatch.delenv("MMLINK_TEST_JUDGE_KEY")
    backend.complete("Again.")
    assert "authorization" not in {k.lower() for k in server.requests[-1]["headers"]}


def test_openai_backend_http_error(server, tmp_path: Path) -> None:
    server.reply = (500, {"error": "model overloaded"})
    backend = OpenAIBackend(f"http://127.0.0.1:{server.server_port}", "m", timeout=5)
    with pytest.raises(JudgeBackendError, match=r"/chat/completions returned HTTP 500.*model overloaded"):
        backend.complete("x")
    result = Judge(backend, tmp_path, retries=1).rate(Q, REF, PRED)
    assert result.failed and result.attempts == 2 and "HTTP 500" in result.raw
    assert len(server.requests) == 3 and cache_files(tmp_path) == []


def test_openai_backend_malformed_reply(server) -> None:
    server.reply = (200, "<html>not json</html>")
    with pytest.raises(JudgeBackendError, match="sent no chat completion"):
        OpenAIBackend(f"http://127.0.0.1:{server.server_port}", "m", timeout=5).complete("x")


def test_openai_backend_unreachable() -> None:
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(JudgeBackendError, match=rf"127\.0\.0\.1:{port}/chat/completions unreachable"):
        OpenAIBackend(f"http://127.0.0.1:{port}", "m", timeout=5).complete("x")


# --------------------------------------------------------------------------- make_backend, LocalBackend


def test_make_backend() -> None:
    backend = make_backend("http://localhost:8000/v1", "qwen", api_key_env="X_KEY")
    assert isinstance(backend, OpenAIBackend) and backend.api_key_env == "X_KEY" and not backend.weak
    with pytest.raises(ValueError, match="--judge-model"):
        make_backend("http://localhost:8000/v1")
    with pytest.raises(ValueError, match="--judge-url"):
        make_backend(judge_model="qwen")
    local = make_backend()
    assert isinstance(local, LocalBackend) and local.weak and not local.loaded
    assert local.name == "local:mini:SmolLM2-135M-Instruct"
    custom = make_backend(local_model="/models/judge/")
    assert isinstance(custom, LocalBackend) and not custom.weak and custom.name == "local:/models/judge"


def test_import_and_construction_load_no_torch() -> None:
    code = (
        "import sys; from mmlink.eval.judge import make_backend, LocalBackend; "
        "b = make_backend(); assert isinstance(b, LocalBackend) and b.weak; "
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; "
        "assert not bad, bad"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


@pytest.mark.slow
def test_local_backend_tiny_llama(tmp_path: Path) -> None:
    """A random 2-layer Llama with a chat template: greedy decoding is deterministic and returns only new text."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmlink.models.presets import byte_tokenizer

    tok = byte_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}<s>{{ m['content'] }}</s>{% endfor %}{% if add_generation_prompt %}A:{% endif %}"
    )
    config = LlamaConfig(vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    backend = LocalBackend(tmp_path, max_new_tokens=5)
    assert not backend.loaded
    first = backend.complete("Rate it.")
    assert backend.loaded and isinstance(first, str) and "Rate it." not in first
    assert backend.complete("Rate it.") == first

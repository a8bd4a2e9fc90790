"""mmlink.textllm: backend specs, versioned prompts, the template backend, the OpenAI-compatible backend over HTTP
(a server on 127.0.0.1 inside the test) and the local backend on a tiny random Llama."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lightimport import run_light

from mmlink.textllm import (
    MINI_LLM,
    LocalLLM,
    OpenAILLM,
    Prompt,
    TemplateLLM,
    TextLLM,
    TextLLMError,
    TextLLMSettings,
    load_prompt,
    make_backend,
)

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- specs


def test_make_backend_specs() -> None:
    assert isinstance(make_backend("template"), TemplateLLM)
    local = make_backend("local", max_new_tokens=7)
    assert isinstance(local, LocalLLM) and local.weak and not local.loaded and local.max_new_tokens == 7
    assert local.name == f"local:{MINI_LLM}" and local.spec == "local"
    custom = make_backend("local:/models/judge/")
    assert isinstance(custom, LocalLLM) and not custom.weak and custom.name == "local:/models/judge"
    server = make_backend("openai:qwen@http://localhost:8000/v1/", api_key_env="X_KEY", max_new_tokens=20)
    assert isinstance(server, OpenAILLM) and not server.weak
    assert (server.model, server.url, server.api_key_env, server.max_tokens) == (
        "qwen", "http://localhost:8000/v1", "X_KEY", 20)
    assert server.name == server.spec == "openai:qwen@http://localhost:8000/v1"
    assert make_backend(server.spec).name == server.name  # a backend's spec builds it again
    by_url = make_backend("openai:http://localhost:8000", TextLLMSettings(model="llama3:8b"))
    assert by_url.name == "openai:llama3:8b@http://localhost:8000/v1"  # a bare host gets /v1
    ready = TemplateLLM()
    assert make_backend(ready) is ready


@pytest.mark.parametrize("spec, message", [
    ("gpt", "valid: template, local, local:PATH, openai:MODEL@URL"),
    ("transformers", "unknown text-LLM backend 'transformers'"),
    ("", "must be one of"),
    ("openai", "openai needs a server"),
    ("openai:http://localhost:8000/v1", "needs a model name"),
    ("openai:qwen", "expected openai:MODEL@URL"),
    ("openai:qwen@localhost:8000", "must start with http"),
    ("template:x", "takes no argument"),
])
def test_make_backend_errors_list_the_valid_forms(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_backend(spec)


def test_settings_are_validated() -> None:
    for bad in ({"max_new_tokens": 0}, {"max_new_tokens": True}, {"temperature": -1}, {"timeout": 0},
                {"api_key_env": ""}):
        with pytest.raises(ValueError):
            TextLLMSettings(**bad)


def test_import_and_construction_load_no_torch() -> None:
    run_light("from mmlink.textllm import make_backend; b = make_backend('local'); from mmlink.eval.judge import Judge")


# --------------------------------------------------------------------------- prompts and the template backend


def test_prompt_render_checks_fields() -> None:
    prompt = Prompt("greet_v1", "Hello {name}, {what}?", template=lambda name, what: f"{what} for {name}")
    assert prompt.fields == {"name", "what"}
    assert prompt.render(name="Ada", what="tea {x}") == "Hello Ada, tea {x}?"  # braces in values are data
    with pytest.raises(ValueError, match=r"missing fields \['what'\], unknown fields \['who'\]"):
        prompt.render(name="Ada", who="x")
    llm = TemplateLLM()
    assert llm.ask(prompt, name="Ada", what="tea") == "tea for Ada"
    with pytest.raises(ValueError, match="missing"):
        llm.ask(prompt, name="Ada")
    with pytest.raises(TextLLMError, match="no template answer"):
        llm.ask(Prompt("free_v1", "Say {x}."), x="hi")
    with pytest.raises(TextLLMError, match="writes no free text"):
        llm.complete("hi")
    assert llm.deterministic and llm.weak


def test_packaged_prompts_load_and_are_package_data() -> None:
    for package, name, fields in [("mmlink.eval", "cadqa_judge_v1", {"question", "reference", "prediction",
                                                                     "reminder"}),
                                  ("mmlink.eval", "cadqa_judge_v1_retry", set()),
                                  ("mmlink.data", "cad_summary_v1", {"caption1", "caption2"}),
                                  ("mmlink.data", "synth_background_v1", {"context", "hint"}),
                                  ("mmlink.data", "synth_refine_v1", {"text"})]:
        prompt = load_prompt(package, name)
        assert prompt.fields == fields and not prompt.text.endswith("\n"), name
    # a wheel carries them only if pyproject declares them
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    for package in ("mmlink.eval", "mmlink.data"):
        assert "prompts/*.txt" in data[package]
        assert list((ROOT / "src" / package.replace(".", "/") / "prompts").glob("*.txt"))


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

    def log_message(self, *args) -> None:
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


def test_openai_request_shape_key_and_system(server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMLINK_TEST_KEY", "sk-test")
    llm = make_backend(f"openai:m1@http://127.0.0.1:{server.server_port}", api_key_env="MMLINK_TEST_KEY",
                       max_new_tokens=20)
    assert llm.complete("Rate this.", system="be brief") == "Rating: 4"
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["body"] == {"model": "m1", "temperature": 0.0, "max_tokens": 20,
                           "messages": [{"role": "system", "content": "be brief"},
                                        {"role": "user", "content": "Rate this."}]}
    assert {k.lower(): v for k, v in req["headers"].items()}["authorization"] == "Bearer sk-test"
    monkeypatch.delenv("MMLINK_TEST_KEY")
    assert llm.ask(Prompt("p_v1", "Say {x}."), x="hi") == "Rating: 4"
    assert server.requests[-1]["body"]["messages"] == [{"role": "user", "content": "Say hi."}]
    assert "authorization" not in {k.lower() for k in server.requests[-1]["headers"]}


def test_openai_errors(server) -> None:
    llm = OpenAILLM(f"http://127.0.0.1:{server.server_port}/v1", "m", timeout=5)
    server.reply = (500, {"error": "model overloaded"})
    with pytest.raises(TextLLMError, match=r"/v1/chat/completions returned HTTP 500.*model overloaded"):
        llm.complete("x")
    server.reply = (200, "<html>not json</html>")
    with pytest.raises(TextLLMError, match="sent no chat completion"):
        llm.complete("x")
    with socket.socket() as s:  # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TextLLMError, match=rf"127\.0\.0\.1:{port}/v1/chat/completions unreachable"):
        OpenAILLM(f"http://127.0.0.1:{port}/v1", "m", timeout=5).complete("x")


# --------------------------------------------------------------------------- local backend


def _tiny_llama(tmp_path: Path | None = None):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmlink.models.presets import byte_tokenizer

    torch.manual_seed(0)
    tok = byte_tokenizer()
    tok.chat_template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</s>{% endfor %}"
                         "{% if add_generation_prompt %}A:{% endif %}")
    config = LlamaConfig(vocab_size=260, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model = LlamaForCausalLM(config)
    if tmp_path is not None:
        model.save_pretrained(tmp_path)
        tok.save_pretrained(tmp_path)
    return model, tok


def test_local_backend_from_a_directory_and_from_objects(tmp_path: Path) -> None:
    model, tok = _tiny_llama(tmp_path)
    llm = make_backend(f"local:{tmp_path}", max_new_tokens=5)
    assert not llm.loaded and llm.name == f"local:{tmp_path}"
    first = llm.complete("Rate it.", system="You rate.")
    assert llm.loaded and isinstance(first, str) and "Rate it." not in first
    assert llm.complete("Rate it.", system="You rate.") == first  # greedy: deterministic
    given = LocalLLM(model=model, tokenizer=tok, max_new_tokens=5)
    assert given.loaded and isinstance(given.complete("x"), str) and not given.weak
    with pytest.raises(ValueError, match="both"):
        LocalLLM(model=object())
    with pytest.raises(ValueError, match="not both"):
        LocalLLM(tmp_path, model=model, tokenizer=tok)
    assert isinstance(given, TextLLM)


def test_local_backend_batches_prompts_of_any_length_as_one_at_a_time() -> None:
    model, tok = _tiny_llama()
    llm = LocalLLM(model=model, tokenizer=tok, max_new_tokens=6)
    prompts = ["Rate it.", "A much longer prompt, so the others are padded on the left.", "x"]
    batched = llm.complete_many(prompts, system="You rate.")
    assert batched == [llm.complete(p, system="You rate.") for p in prompts]
    assert len(set(batched)) > 1 and llm.complete_many([]) == []
    assert tok.padding_side == "right"  # the tokenizer (possibly a model's own) is left as it was

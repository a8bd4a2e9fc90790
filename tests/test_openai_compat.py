"""`mmlink.openai_compat.chat_completion` against a real local HTTP server: the text, the key header, and each
failure kind (http, unreachable, malformed)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from mmlink.openai_compat import EndpointError, chat_completion


class _Handler(BaseHTTPRequestHandler):
    replies: dict = {}
    seen: list = []

    def do_POST(self):  # noqa: N802 (the stdlib's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        status, payload = type(self).replies[self.path]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload if isinstance(payload, bytes) else json.dumps(payload).encode())

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_returns_the_first_choice_and_sends_the_key_only_when_set(server, monkeypatch):
    _Handler.replies["/ok"] = (200, {"choices": [{"message": {"content": "Rating: 4"}}]})
    monkeypatch.setenv("MY_KEY", "sk-test")
    assert chat_completion(f"{server}/ok", {"model": "m", "messages": []}, "MY_KEY", 5) == "Rating: 4"
    assert _Handler.seen[-1]["auth"] == "Bearer sk-test" and _Handler.seen[-1]["body"]["model"] == "m"
    monkeypatch.delenv("MY_KEY")
    chat_completion(f"{server}/ok", {"model": "m"}, "MY_KEY", 5)
    assert _Handler.seen[-1]["auth"] is None


@pytest.mark.parametrize("path, reply, kind", [
    ("/busy", (503, {"error": "overloaded"}), "http"),
    ("/junk", (200, b"not json"), "malformed"),
    ("/empty", (200, {"choices": []}), "malformed"),
    ("/null", (200, {"choices": [{"message": {"content": None}}]}), "malformed"),
])
def test_failures_say_which_kind(server, path, reply, kind):
    _Handler.replies[path] = reply
    with pytest.raises(EndpointError) as err:
        chat_completion(f"{server}{path}", {}, "NO_SUCH_VAR", 5)
    assert err.value.kind == kind
    if kind == "http":
        assert err.value.status == 503 and "overloaded" in err.value.detail


def test_nothing_listening_is_unreachable():
    with pytest.raises(EndpointError) as err:
        chat_completion("http://127.0.0.1:9/v1/chat/completions", {}, "NO_SUCH_VAR", 2)
    assert err.value.kind == "unreachable"

"""One chat-completion request to an OpenAI-compatible server (OpenAI, vLLM, TGI, llama.cpp, Ollama), standard
library only. Shared by the MmLINK synthesis LLM and the evaluation judge; each words its own errors."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request


class EndpointError(RuntimeError):
    """A failed request: ``kind`` is ``"http"`` (``status`` set), ``"unreachable"`` or ``"malformed"``."""

    def __init__(self, kind: str, url: str, detail: str, status: int | None = None, reason: str = ""):
        super().__init__(f"{url}: {kind} {status or ''} {detail}".strip())
        self.kind, self.url, self.detail, self.status, self.reason = kind, url, detail, status, reason


def chat_completion(endpoint: str, body: dict, api_key_env: str, timeout: float) -> str:
    """POST ``body`` to ``endpoint`` (a full ``…/chat/completions`` URL) and return the first choice's text.

    The key is read from the environment variable ``api_key_env`` at each call and sent as ``Authorization:
    Bearer …``; when the variable is unset no header is sent (local servers need none).
    """
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(endpoint, data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as e:
        detail = e.read()[:500].decode("utf-8", "replace").strip()
        raise EndpointError("http", endpoint, detail, status=e.code, reason=str(e.reason)) from e
    except (urllib.error.URLError, OSError) as e:  # refused, DNS, timeout
        raise EndpointError("unreachable", endpoint, str(getattr(e, "reason", e))) from e
    try:
        content = json.loads(payload)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise EndpointError("malformed", endpoint, repr(payload[:300])) from e
    if not isinstance(content, str):
        raise EndpointError("malformed", endpoint, f"a completion without text content: {content!r}")
    return content


__all__ = ["EndpointError", "chat_completion"]

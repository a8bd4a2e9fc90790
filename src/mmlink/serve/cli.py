"""``mmlink serve`` and ``mmlink chat``: argument parsing and model loading (the `mmlink` command's wiring)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mmlink.settings import add_command, add_flags, from_args

SERVE_DESCRIPTION = """An OpenAI-compatible server for mmlink's models (either family): POST /v1/chat/completions with
several images per message and per conversation (image_url parts: data: URLs; file:// and http(s):// where allowed),
multi-turn history, stream (server-sent events), n, stop, seed, max_tokens, usage; GET /v1/models, GET /health, and
a chat page at /. Requests arriving together are decoded as one batch."""

CHAT_DESCRIPTION = """A terminal chat: /image PATH attaches an image to the next message (repeat for several), /reset
clears the conversation, /save FILE writes it as a LLaVA record, /quit ends. Answers stream as they are decoded."""

SERVE_EPILOG = """examples:
  mmlink serve --model mini --port 8000
  curl localhost:8000/v1/chat/completions -H 'Content-Type: application/json' -d '{"model": "mini", "messages":
    [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}},
                                  {"type": "text", "text": "What is in the image?"}]}]}'

Sampling: temperature 0 or absent decodes greedily; above 0 samples (top_p, seed). The extension field
"mmlink_aio": true optimizes the last user instruction first (VisLingInstruct's AIO) and returns its steps.
Limits answer 4xx with an OpenAI error body naming the flag; a full queue answers 429 at once."""


def _engine(args: argparse.Namespace):
    from mmlink.models import load
    from mmlink.models.decoding import ready_for_inference
    from mmlink.runtime import choose_dtype
    from mmlink.serve.engine import Engine
    from mmlink.serve.limits import EngineSettings

    settings = from_args(EngineSettings, args)
    model, processor = load(args.model)
    choice = choose_dtype(args.dtype, str(next(model.parameters()).device))
    ready_for_inference(model, choice.dtype)
    return Engine(model, processor, settings)


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a preset (tiny, mini, mini-llava, ...) or a checkpoint directory")
    p.add_argument("--dtype", default="auto", help="auto (default: bf16 where the CPU/GPU computes it natively), "
                                                    "float32, bfloat16, float16")
    from mmlink.serve.limits import EngineSettings

    add_flags(p.add_argument_group("batching"), EngineSettings)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "serve", help="an OpenAI-compatible multi-image chat server (and a chat page at /)",
                    description=SERVE_DESCRIPTION, epilog=SERVE_EPILOG)
    _add_engine_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--served-model-name", default=None, metavar="NAME",
                   help="the name clients send as model (default: the --model preset or directory name)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1/ (default: "
                                                   "$MMLINK_API_KEY when set, else no key)")
    from mmlink.serve.limits import ServeLimits
    from mmlink.serve.media import MediaPolicy

    limits = p.add_argument_group("limits (an OpenAI error body names the flag a request exceeds)")
    add_flags(limits, MediaPolicy, custom={  # vLLM's spellings
        "allowed_local_path": {"flag": "--allowed-local-media-path", "metavar": "DIR"},
        "allowed_domains": {"flag": "--allowed-media-domains", "metavar": "HOSTS"}})
    add_flags(limits, ServeLimits, skip=("poll_s",), custom={"default_max_tokens": {"flag": "--max-tokens-default"}})
    p.set_defaults(func=_serve)

    c = add_command(sub, "chat", help="chat with a model in the terminal (/image PATH, /reset, /save FILE)",
                    description=CHAT_DESCRIPTION)
    _add_engine_args(c)
    c.add_argument("--max-tokens", type=int, default=256, metavar="N", help="answer length (default 256)")
    c.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; above 0: sampling")
    c.set_defaults(func=_chat)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mmlink.serve.app import create_app
    from mmlink.serve.limits import ServeLimits
    from mmlink.serve.media import MediaPolicy

    policy, limits = from_args(MediaPolicy, args), from_args(ServeLimits, args)
    name = args.served_model_name or Path(str(args.model).rstrip("/")).name
    app = create_app(_engine(args), name, policy, limits, api_key=args.api_key or os.environ.get("MMLINK_API_KEY"))
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", timeout_graceful_shutdown=30)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from mmlink.serve.chat import chat

    engine = _engine(args).start()
    try:
        chat(engine, max_tokens=args.max_tokens, temperature=args.temperature)
    finally:
        engine.close()
    return 0


__all__ = ["add_parsers"]

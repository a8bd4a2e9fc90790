"""``mmlink serve`` and ``mmlink chat``: argument parsing and model loading (the `mmlink` command's wiring)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

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
    from mmlink.serve.engine import Engine, EngineSettings

    settings = EngineSettings(max_batch=args.max_batch, batch_window_ms=args.batch_window_ms,
                              max_queue=args.max_queue, max_prompt_tokens=args.max_prompt_tokens)
    model, processor = load(args.model)
    choice = choose_dtype(args.dtype, str(next(model.parameters()).device))
    ready_for_inference(model, choice.dtype)
    return Engine(model, processor, settings)


def _add_engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="a preset (tiny, mini, mini-llava, ...) or a checkpoint directory")
    p.add_argument("--dtype", default="auto", help="auto (default: bf16 where the CPU/GPU computes it natively), "
                                                    "float32, bfloat16, float16")
    p.add_argument("--max-batch", type=int, default=8, metavar="N", help="rows (choices) decoded together (default 8)")
    p.add_argument("--batch-window-ms", type=float, default=10.0, metavar="MS",
                   help="how long a request waits for others to batch with (default 10)")
    p.add_argument("--max-queue", type=int, default=64, metavar="N",
                   help="requests waiting at most; beyond it 429 at once (default 64)")
    p.add_argument("--max-prompt-tokens", type=int, default=None, metavar="N",
                   help="longest prompt, images' tokens included (default: the LLM's context minus max_tokens)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="an OpenAI-compatible multi-image chat server (and a chat page at /)",
                       description=SERVE_DESCRIPTION, epilog=SERVE_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_engine_args(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--served-model-name", default=None, metavar="NAME",
                   help="the name clients send as model (default: the --model preset or directory name)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1/ (default: "
                                                   "$MMLINK_API_KEY when set, else no key)")
    p.add_argument("--allowed-local-media-path", type=Path, default=None, metavar="DIR",
                   help="serve file:// images below DIR only (default: no local files)")
    p.add_argument("--allowed-media-domains", default="", metavar="HOSTS",
                   help="comma-separated hosts whose http(s) images may be fetched (default: none)")
    p.add_argument("--limit-images", type=int, default=8, metavar="N", help="images per request (default 8)")
    p.add_argument("--max-request-bytes", type=int, default=20 * 2**20, metavar="B",
                   help="request body size (default 20 MiB)")
    p.add_argument("--max-image-bytes", type=int, default=10 * 2**20, metavar="B",
                   help="one image's encoded size (default 10 MiB)")
    p.add_argument("--max-image-pixels", type=int, default=4096 * 4096, metavar="N",
                   help="one image's width × height, checked before decoding (default 4096²)")
    p.add_argument("--max-tokens-default", type=int, default=256, metavar="N",
                   help="answer length when a request sets no max_tokens (default 256)")
    p.set_defaults(func=_serve)

    c = sub.add_parser("chat", help="chat with a model in the terminal (/image PATH, /reset, /save FILE)",
                       description=CHAT_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_engine_args(c)
    c.add_argument("--max-tokens", type=int, default=256, metavar="N", help="answer length (default 256)")
    c.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; above 0: sampling")
    c.set_defaults(func=_chat)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from mmlink.serve.app import ServeLimits, create_app
    from mmlink.serve.media import MediaPolicy

    for name in ("limit_images", "max_request_bytes", "max_image_bytes", "max_image_pixels", "max_tokens_default"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.allowed_local_media_path is not None and not args.allowed_local_media_path.is_dir():
        raise ValueError(f"--allowed-local-media-path {args.allowed_local_media_path}: not a directory")
    policy = MediaPolicy(allowed_local_path=args.allowed_local_media_path,
                         allowed_domains=tuple(h.strip().lower() for h in args.allowed_media_domains.split(",")
                                               if h.strip()),
                         max_image_bytes=args.max_image_bytes, max_image_pixels=args.max_image_pixels)
    limits = ServeLimits(limit_images=args.limit_images, max_request_bytes=args.max_request_bytes,
                         default_max_tokens=args.max_tokens_default)
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

"""`mmlink serve`'s HTTP side: an OpenAI-compatible FastAPI app over an `Engine`.

Routes: ``POST /v1/chat/completions`` (several images per message and per conversation, multi-turn, ``stream``
as server-sent events, ``n``, ``stop``, ``seed``, ``usage``), ``GET /v1/models``, ``GET /health`` and ``GET /``, a
small chat page on the same endpoint. Every refusal is a 4xx with an OpenAI error body naming the limit or field;
a client that disconnects stops its generation; an optional API key is compared in constant time.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from contextlib import asynccontextmanager
from importlib import resources
from typing import AsyncIterator, Optional

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from mmlink.serve.engine import Engine, EngineBusy, EngineClosed, Event, Job
from mmlink.serve.media import MediaPolicy, RequestError
from mmlink.serve.protocol import parse_request, sampling, to_conversation
from mmlink.serve.limits import ServeLimits


def _error(err: RequestError) -> JSONResponse:
    return JSONResponse(err.body(), status_code=err.status)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(f"request body of {declared} bytes exceeds {limit} (--max-request-bytes)", status=413,
                           code="request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(f"request body exceeds {limit} bytes (--max-request-bytes)", status=413,
                               code="request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(engine: Engine, model_name: str, policy: MediaPolicy | None = None,
               limits: ServeLimits | None = None, api_key: Optional[str] = None) -> FastAPI:
    """The app; it starts the engine's worker with the server and closes it on shutdown."""
    policy, limits = policy or MediaPolicy(), limits or ServeLimits()
    limit_images = min(limits.limit_images, getattr(engine.processor, "max_images", limits.limit_images))
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        engine.start()
        yield
        await run_in_threadpool(engine.close)

    app = FastAPI(title="mmlink", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    # A dependency of the /v1/ routes rather than an HTTP middleware: Starlette's BaseHTTPMiddleware wraps the
    # request's receive so that a non-streaming request never sees its client leave (Request.is_disconnected).
    def authenticate(request: Request) -> None:
        given = request.headers.get("authorization", "")
        if api_key and not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            raise RequestError("invalid or missing API key (Authorization: Bearer ...)", status=401,
                               code="invalid_api_key", kind="authentication_error")

    v1 = [Depends(authenticate)]

    @app.exception_handler(RequestError)
    async def refused(request: Request, err: RequestError):
        return _error(err)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models", dependencies=v1)
    async def models():
        return {"object": "list", "data": [{"id": model_name, "object": "model", "created": created,
                                            "owned_by": "mmlink"}]}

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return (resources.files("mmlink.serve") / "chat.html").read_text(encoding="utf-8")

    @app.post("/v1/chat/completions", dependencies=v1)
    async def chat_completions(request: Request):
        body = await _read_body(request, limits.max_request_bytes)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise RequestError(f"the body is not valid JSON: {err}") from None
        req = parse_request(data)
        if req.model != model_name:
            raise RequestError(f"the model {req.model!r} does not exist; this server serves {model_name!r}",
                               status=404, param="model", code="model_not_found")
        conversation = await run_in_threadpool(to_conversation, req, policy, limit_images)
        loop, events = asyncio.get_running_loop(), asyncio.Queue()
        job = Job(conversation, sampling(req),
                  emit=lambda e: loop.call_soon_threadsafe(events.put_nowait, e), aio=req.mmlink_aio)
        await run_in_threadpool(engine.prepare, job, limits.default_max_tokens)
        try:
            engine.submit(job)
        except EngineBusy as err:
            raise RequestError(str(err), status=429, code="queue_full", kind="rate_limit_error") from None
        except EngineClosed as err:
            raise RequestError(str(err), status=503, code="shutting_down", kind="server_error") from None
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name}
        if req.stream:
            usage = bool(req.stream_options and req.stream_options.include_usage)
            return StreamingResponse(_stream(request, job, events, meta, usage, limits.poll_s),
                                     media_type="text/event-stream")
        return await _complete(request, job, events, meta, limits.poll_s)

    return app


def _usage(job: Job, completion: int) -> dict:
    return {"prompt_tokens": job.prompt_tokens, "completion_tokens": completion,
            "total_tokens": job.prompt_tokens + completion}


def _aio(job: Job) -> dict:
    return {"mmlink_aio": job.aio_result.to_dict()} if job.aio_result is not None else {}


async def _complete(request: Request, job: Job, events: asyncio.Queue, meta: dict, poll_s: float) -> JSONResponse:
    texts, reasons, completion = [""] * job.sampling.n, [None] * job.sampling.n, 0
    try:
        while any(r is None for r in reasons):
            event = await _next(request, job, events, poll_s)
            if event is None:
                return JSONResponse({}, status_code=499)  # nobody reads it: the client closed the connection
            if event.kind == "error":
                return _error(RequestError(event.text, status=500, code="generation_failed", kind="server_error"))
            if event.kind == "delta":
                texts[event.index] += event.text
            else:
                reasons[event.index], completion = event.finish_reason, completion + event.completion_tokens
    finally:
        if any(r is None for r in reasons):
            job.cancel()
    choices = [{"index": i, "message": {"role": "assistant", "content": t.strip()}, "finish_reason": r,
                "logprobs": None} for i, (t, r) in enumerate(zip(texts, reasons))]
    return JSONResponse({**meta, "object": "chat.completion", "choices": choices, "usage": _usage(job, completion),
                         **_aio(job)})


async def _next(request: Request, job: Job, events: asyncio.Queue, poll_s: float) -> Event | None:
    """The job's next event, or None once its client has gone (checked every ``poll_s`` while waiting)."""
    while True:
        try:
            return await asyncio.wait_for(events.get(), poll_s)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                return None


async def _stream(request: Request, job: Job, events: asyncio.Queue, meta: dict, usage: bool,
                  poll_s: float) -> AsyncIterator[str]:
    """Server-sent events as OpenAI sends them: a role chunk per choice, content deltas, a finish chunk per choice,
    optionally a usage chunk, then ``[DONE]``. A client that leaves (noticed while waiting, or by the server when a
    write fails) cancels the job."""

    def chunk(choices: list, **extra) -> str:
        return "data: " + json.dumps({**meta, "object": "chat.completion.chunk", "choices": choices, **extra}) + "\n\n"

    open_, completion = set(range(job.sampling.n)), 0
    try:
        for i in sorted(open_):
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        while open_:
            event = await _next(request, job, events, poll_s)
            if event is None:
                return
            if event.kind == "error":
                yield "data: " + json.dumps(RequestError(event.text, status=500, code="generation_failed",
                                                         kind="server_error").body()) + "\n\n"
                break
            if event.kind == "delta":
                yield chunk([{"index": event.index, "delta": {"content": event.text}, "finish_reason": None}])
            else:
                open_.discard(event.index)
                completion += event.completion_tokens
                yield chunk([{"index": event.index, "delta": {}, "finish_reason": event.finish_reason}],
                            **(_aio(job) if not open_ else {}))
        if usage and not open_:
            yield chunk([], usage=_usage(job, completion))
        yield "data: [DONE]\n\n"
    finally:
        if open_:
            job.cancel()


__all__ = ["ServeLimits", "create_app"]

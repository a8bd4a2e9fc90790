"""The serving engine: one worker thread owns the model and answers queued jobs in batches.

A job is one chat request: its conversation, its sampling settings and ``n`` choices. The worker takes the oldest
job, waits up to ``batch_window_ms`` for more that decode the same way (greedy, or the same sampling settings), and
runs them as one left-padded batch of up to ``max_batch`` rows — one row per choice. Each decoding step passes
through `_Rows` (a transformers ``StoppingCriteria``): it decodes every row's new token, sends the text that is safe
to show (never a partial character, never the start of a stop string) to the job's ``emit`` callback, and ends a
row at EOS, at a stop string, at its own ``max_tokens``, or when its client has gone (``job.cancel()``). The queue is
bounded: `Engine.submit` raises `EngineBusy` at once when it is full, instead of letting clients wait unboundedly.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from mmlink.models.processing import IMAGE_PLACEHOLDER
from mmlink.serve.limits import EngineSettings
from mmlink.serve.media import RequestError
from mmlink.serve.protocol import Conversation, Sampling


class EngineBusy(Exception):
    """The queue is full (HTTP 429)."""


class EngineClosed(Exception):
    """The engine is shutting down (HTTP 503)."""


@dataclass
class Event:
    """What a job's ``emit`` receives: ``delta`` (new text of choice ``index``), ``done`` (its finish reason and
    token count) or ``error``."""

    kind: str
    index: int = 0
    text: str = ""
    finish_reason: Optional[str] = None
    completion_tokens: int = 0


@dataclass
class Job:
    conversation: Conversation
    sampling: Sampling
    emit: Callable[[Event], None]
    aio: bool = False
    prompt_tokens: int = 0
    aio_result: Any = None  # the AIO steps (`mmlink.aio.AioResult`) when ``aio``
    cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self.cancelled.set()


class _Row:
    """One choice being decoded: its token ids and the text already sent."""

    def __init__(self, job: Job, index: int):
        self.job, self.index = job, index
        self.ids: list[int] = []
        self.sent = ""
        self.finished = False

    def _text(self, tokenizer) -> str:
        return tokenizer.decode(self.ids, skip_special_tokens=True).lstrip()

    def step(self, token: int, tokenizer, eos: set[int]) -> None:
        if self.job.cancelled.is_set():
            self.finished = True  # nobody listens any more: nothing to send
            return
        if token in eos:
            return self.finish(tokenizer, "stop", extra=1)
        self.ids.append(token)
        text = self._text(tokenizer)
        for stop in self.job.sampling.stop:
            at = text.find(stop)
            if at >= 0:
                return self.finish(tokenizer, "stop", text=text[:at])
        if len(self.ids) >= self.job.sampling.max_tokens:
            return self.finish(tokenizer, "length")
        safe = len(text.rstrip("\ufffd"))  # an incomplete UTF-8 sequence decodes to U+FFFD: wait for the rest
        for stop in self.job.sampling.stop:  # the beginning of a stop string may still become one
            for k in range(min(len(stop) - 1, safe), 0, -1):
                if text[:safe].endswith(stop[:k]):
                    safe -= k
                    break
        self._send(text[:safe])

    def _send(self, text: str) -> None:
        if len(text) > len(self.sent):
            self.job.emit(Event("delta", self.index, text[len(self.sent):]))
            self.sent = text

    def finish(self, tokenizer, reason: str, text: Optional[str] = None, extra: int = 0) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.job.cancelled.is_set():
            self._send((self._text(tokenizer) if text is None else text).rstrip())
            self.job.emit(Event("done", self.index, finish_reason=reason, completion_tokens=len(self.ids) + extra))


class _Rows(StoppingCriteria):
    """Called by ``generate`` after every step with the ids so far: advances every row, returns which are done."""

    def __init__(self, rows: list[_Row], tokenizer, eos: set[int]):
        self.rows, self.tokenizer, self.eos = rows, tokenizer, eos

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        for row, token in zip(self.rows, input_ids[:, -1].tolist()):
            if not row.finished:
                row.step(token, self.tokenizer, self.eos)
        return torch.tensor([r.finished for r in self.rows], dtype=torch.bool, device=input_ids.device)


class Engine:
    """``model``/``processor`` as `mmlink.models.load` returns them, ready for inference."""

    def __init__(self, model, processor, settings: EngineSettings | None = None):
        self.model, self.processor = model, processor
        self.settings = settings or EngineSettings()
        self._queue: queue.Queue = queue.Queue(maxsize=self.settings.max_queue)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="mmlink-engine", daemon=True)
        text_config = getattr(model.config, "text_config", model.config)
        self.context = getattr(text_config, "max_position_embeddings", None)
        eos = getattr(getattr(model.language_model, "generation_config", None), "eos_token_id", None)
        eos = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
        if processor.tokenizer.eos_token_id is not None:
            eos.append(processor.tokenizer.eos_token_id)
        self.eos = set(eos)
        # what the worker did: batches, rows (choices) in them, rows ended because their client left
        self.batches = self.rows = self.cancelled_rows = 0

    # ------------------------------------------------------------------ the request side

    def start(self) -> "Engine":
        """Start the worker (again calls are no-ops)."""
        if not self._thread.is_alive() and not self._closing.is_set():
            self._thread.start()
        return self

    def prepare(self, job: Job, default_max_tokens: int = 256) -> None:
        """Count the job's prompt tokens, settle its ``max_tokens`` (unset: ``default_max_tokens`` or what the
        context leaves) and refuse what cannot be answered; runs on the caller's thread."""
        conv = job.conversation
        try:
            ids = self.processor.encode_conversation([conv.turns], [conv.images], encode_images=False)
        except ValueError as err:  # e.g. more images than the model takes
            raise RequestError(str(err), param="messages") from None
        job.prompt_tokens = int(ids["attention_mask"].sum())
        room = None if self.context is None else self.context - job.prompt_tokens
        if job.sampling.max_tokens is None:
            job.sampling.max_tokens = default_max_tokens if room is None else max(1, min(default_max_tokens, room))
        limit = self.settings.max_prompt_tokens
        if limit is None and self.context is not None:
            limit = self.context - job.sampling.max_tokens
        if limit is not None and job.prompt_tokens > limit:
            raise RequestError(f"the prompt has {job.prompt_tokens} tokens; at most {limit} fit with max_tokens "
                               f"{job.sampling.max_tokens} (context {self.context}, --max-prompt-tokens)",
                               param="messages", code="context_length_exceeded")
        if job.aio and IMAGE_PLACEHOLDER not in conv.turns[-1]["value"]:
            raise RequestError("mmlink_aio optimizes the last user message's instruction about its images: that "
                               "message has no image", param="mmlink_aio")

    def submit(self, job: Job) -> None:
        if self._closing.is_set():
            raise EngineClosed("the server is shutting down")
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise EngineBusy(f"{self.settings.max_queue} requests are waiting (--max-queue); retry later") from None

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking jobs, end the waiting ones with an error, let the running batch finish (up to ``timeout``)."""
        self._closing.set()
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            job.emit(Event("error", text="the server is shutting down"))
        if self._thread.is_alive():
            self._thread.join(timeout)

    # ------------------------------------------------------------------ the worker

    def _loop(self) -> None:
        held: deque[Job] = deque()  # taken from the queue but decoding differently from the batch being formed
        while not self._closing.is_set():
            if held:
                first = held.popleft()
            else:
                try:
                    first = self._queue.get(timeout=0.1)
                except queue.Empty:
                    continue
            batch, rows, key = [first], first.sampling.n, first.sampling.batch_key()
            deadline = time.monotonic() + self.settings.batch_window_ms / 1000
            for job in list(held):  # the held jobs are older than anything in the queue
                if job.sampling.batch_key() == key and rows + job.sampling.n <= self.settings.max_batch:
                    held.remove(job)
                    batch.append(job)
                    rows += job.sampling.n
            while rows < self.settings.max_batch:
                wait = deadline - time.monotonic()
                try:
                    job = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if job.sampling.batch_key() == key and rows + job.sampling.n <= self.settings.max_batch:
                    batch.append(job)
                    rows += job.sampling.n
                else:
                    held.append(job)
            batch = [j for j in batch if not j.cancelled.is_set()]
            if batch:
                self._run(batch)
        for job in held:
            job.emit(Event("error", text="the server is shutting down"))

    def _run(self, batch: list[Job]) -> None:
        try:
            self._optimize([j for j in batch if j.aio])
            rows = [_Row(job, i) for job in batch for i in range(job.sampling.n)]
            encoded = self.processor.encode_conversation([r.job.conversation.turns for r in rows],
                                                         [r.job.conversation.images for r in rows],
                                                         padding_side="left")
            param = next(self.model.parameters())
            encoded = {k: v.to(param.device) for k, v in encoded.items()}
            encoded["pixel_values"] = encoded["pixel_values"].to(param.dtype)
            sampling = batch[0].sampling
            config = sampling.generation_config(max(j.sampling.max_tokens for j in batch))
            config.pad_token_id = self.processor.pad_token_id
            stop = StoppingCriteriaList([_Rows(rows, self.processor.tokenizer, self.eos)])
            if not sampling.greedy and sampling.seed is not None:
                torch.manual_seed(sampling.seed)
            self.batches, self.rows = self.batches + 1, self.rows + len(rows)
            with torch.inference_mode():
                self.model.generate(**encoded, generation_config=config, stopping_criteria=stop)
            for row in rows:  # generate's own limit ended them
                row.finish(self.processor.tokenizer, "length")
            self.cancelled_rows += sum(r.job.cancelled.is_set() for r in rows)
        except Exception as err:  # one bad batch must not stop the server: its clients get the error
            for job in batch:
                job.emit(Event("error", text=f"{type(err).__name__}: {err}"))

    def _optimize(self, jobs: list[Job]) -> None:
        """VisLingInstruct's AIO on each job's last user message; the job is then answered with its result."""
        if not jobs:
            return
        from mmlink.aio import optimize

        images = []
        for job in jobs:
            k = job.conversation.turns[-1]["value"].count(IMAGE_PLACEHOLDER)
            images.append(job.conversation.images[len(job.conversation.images) - k:])
        results = optimize(self.model, self.processor, [j.conversation.turns[-1]["value"] for j in jobs], images)
        for job, result in zip(jobs, results):
            job.aio_result = result
            job.conversation.turns[-1] = {**job.conversation.turns[-1], "value": result.prompt}


__all__ = ["Engine", "EngineBusy", "EngineClosed", "EngineSettings", "Event", "Job"]

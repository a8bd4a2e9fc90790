"""LLM-as-judge for open-ended answers: the CaD-VI CaD-QA protocol.

A text LLM reads the question, the reference answer and a predicted answer, and rates the prediction with an integer
from 0 to 5 (`PROMPT_TEMPLATE`). The score of a run is the mean rating over the items the judge could rate.

* The prompt and the parser are fixed and versioned (`PROMPT_VERSION`): change either and bump the version, so that
  cached responses and reported numbers of different protocols are never mixed.
* `parse_rating` is strict (see its docstring). An unparseable response is retried with the same prompt plus
  `RETRY_REMINDER`, at most ``retries`` more times; an item still unrated is a **failure** (``rating=None``), counted
  and listed in the summary and excluded from the mean, never scored 0.
* Responses are cached on disk, one JSON file per sha256 key of (version, backend name, prompt, attempt index), so a
  re-run asks the backend nothing and gives the same numbers. Backend errors are not cached.
* Backends (`TextBackend`): `OpenAIBackend` for any OpenAI-compatible ``/chat/completions`` server (standard library
  only), `LocalBackend` for a local transformers causal LM (default: the ``mini`` preset's SmolLM2-135M-Instruct, a
  *weak* judge whose ratings are only a smoke test; reports carry the ``weak`` flag).

Importing this module is cheap: torch/transformers are imported by `LocalBackend` on first use only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from tqdm import tqdm

from mmlink.openai_compat import EndpointError, chat_completion

PROMPT_VERSION = "cadqa-judge-v1"
MINI_LLM = "mini:SmolLM2-135M-Instruct"  # the default local judge: the `mini` presets' (frozen) LLM
MIN_RATING, MAX_RATING = 0, 5

PROMPT_TEMPLATE = """You are grading a predicted answer to a question about one or more images. You cannot see the \
images: judge the predicted answer only against the reference answer.

Question: {question}
Reference answer: {reference}
Predicted answer: {prediction}

Rate the predicted answer with an integer from 0 to 5:
0 = wrong, irrelevant or empty;
1 = mostly wrong, with at most a minor correct detail;
2 = partly correct, but missing or contradicting important points of the reference;
3 = about half correct;
4 = mostly correct and complete, with small omissions or errors;
5 = fully correct and complete, matching the reference.

Answer in the form "Rating: N", where N is an integer from 0 to 5."""

# Appended (after a blank line) to the prompt of every retry; part of the `PROMPT_VERSION` protocol.
RETRY_REMINDER = (
    'Reply with exactly one line of the form "Rating: N", where N is an integer from 0 to 5, and nothing else.'
)

# "Rating: 4", "rating:4", "Rating = 4", "Rating: 4/5", "Rating: 4.5" (captured so it can be rejected), "Rating: -1".
_LABELLED = re.compile(r"\brating\s*[:=]\s*(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?", re.IGNORECASE)
# A whole answer that is one number, optionally "/5" and a final period: "3", "3.", "3/5".
_BARE = re.compile(r"(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?\.?")


class JudgeBackendError(RuntimeError):
    """A backend could not produce a response (network, HTTP status, malformed reply)."""


@runtime_checkable
class TextBackend(Protocol):
    """A text LLM the judge can ask. ``name`` is a stable model identifier (it is part of the cache key and the
    report); ``weak`` marks a judge too small for its ratings to mean much."""

    name: str
    weak: bool

    def complete(self, prompt: str) -> str:
        """Return the model's reply to one user message; raise `JudgeBackendError` when there is none."""
        ...


# --------------------------------------------------------------------------- prompt and parse


def build_prompt(question: str, reference: str, prediction: str, retry: bool = False) -> str:
    """The judge prompt of `PROMPT_VERSION`; ``retry=True`` appends `RETRY_REMINDER`."""
    prompt = PROMPT_TEMPLATE.format(question=question.strip(), reference=reference.strip(),
                                    prediction=prediction.strip())
    return f"{prompt}\n\n{RETRY_REMINDER}" if retry else prompt


def _valid(number: str, denominator: str | None) -> int | None:
    """An integer rating in [0, 5] (with an optional "/5"), else None."""
    if "." in number or (denominator and int(denominator) != MAX_RATING):  # findall gives "" for no "/N"
        return None
    value = int(number)
    return value if MIN_RATING <= value <= MAX_RATING else None


def parse_rating(text: str) -> int | None:
    """The rating in a judge response, or None when there is no single valid one.

    Rules (case-insensitive; Markdown emphasis ``*`` and ``_`` is ignored, so ``**Rating:** 3`` reads as
    ``Rating: 3``):

    1. Labelled ratings ``Rating: N`` (also ``Rating:N``, ``Rating = N``, ``Rating: N/5``) anywhere in the text.
       If there is at least one, every one must be a valid rating and all must agree; otherwise None (a rating
       outside 0..5, a fraction, a decimal, or ``Rating: 3`` ... ``Rating: 4`` is ambiguous).
    2. Without a label, the whole response (stripped) must be one integer, optionally ``/5`` and a final period:
       ``"3"``, ``"3."``, ``"3/5"``. Any other text, e.g. ``"I would give it 4"``, is None: guessing which number
       in free text is the rating is what makes judges irreproducible.
    """
    text = re.sub(r"[*_]", "", text).strip()
    labelled = _LABELLED.findall(text)
    if labelled:
        values = {_valid(number, denominator) for number, denominator in labelled}
        return values.pop() if len(values) == 1 else None  # a None in the set also fails here or below
    bare = _BARE.fullmatch(text)
    return _valid(*bare.groups()) if bare else None


# --------------------------------------------------------------------------- backends


class OpenAIBackend:
    """An OpenAI-compatible chat-completions server (OpenAI, vLLM, llama.cpp, Ollama ...), standard library only.

    ``url`` is the API base (e.g. ``https://api.openai.com/v1`` or ``http://localhost:8000/v1``); requests go to
    ``{url}/chat/completions``. The key is read from the environment variable ``api_key_env`` at each call; when it
    is unset no ``Authorization`` header is sent (local servers need none).
    """

    weak = False

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 60,
        temperature: float = 0.0,
        max_tokens: int = 64,
    ) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.temperature = temperature
        self.max_tokens = max_tokens
        # The stripped URL, so "…/v1" and "…/v1/" share one cache.
        self.name = f"openai:{model}@{self.url}"

    @property
    def endpoint(self) -> str:
        return f"{self.url}/chat/completions"

    def complete(self, prompt: str) -> str:
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        try:
            return chat_completion(self.endpoint, body, self.api_key_env, self.timeout)
        except EndpointError as e:
            if e.kind == "http":
                message = f"{self.endpoint} returned HTTP {e.status} {e.reason}: {e.detail[:300]}"
            elif e.kind == "unreachable":
                message = f"{self.endpoint} unreachable: {e.detail}"
            else:
                message = f"{self.endpoint} sent no chat completion: {e.detail}"
            raise JudgeBackendError(message) from e


class LocalBackend:
    """A local transformers causal LM, greedy decoding, through the tokenizer's chat template when it has one.

    ``model_name_or_path=None`` is the ``mini`` presets' LLM (SmolLM2-135M-Instruct; ``weak=True``); otherwise a
    checkpoint directory or hub id loaded with ``AutoModelForCausalLM`` (``weak=False``). Nothing is loaded, and
    torch is not imported, until the first `complete`.
    """

    def __init__(self, model_name_or_path: str | os.PathLike | None = None, max_new_tokens: int = 32,
                 device: str = "cpu") -> None:
        self.path = None if model_name_or_path is None else os.fspath(model_name_or_path).rstrip("/\\")
        self.max_new_tokens = max_new_tokens
        self.device = device
        self.weak = self.path is None
        self.name = f"local:{MINI_LLM}" if self.path is None else f"local:{self.path}"
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> None:
        if self.path is None:
            from mmlink.models import load

            # Only the LLM is used, and mmlink's training keeps it frozen in every `mini` variant: `mini-untrained`
            # holds the same SmolLM2-135M-Instruct weights and loads before/without the trained deltas.
            model, processor = load("mini-untrained", sam_mode="none")
            llm, tokenizer = model.language_model, processor.tokenizer
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            llm = AutoModelForCausalLM.from_pretrained(self.path)
            tokenizer = AutoTokenizer.from_pretrained(self.path)
        self._model = llm.to(self.device).eval()
        self._tokenizer = tokenizer

    def complete(self, prompt: str) -> str:
        import torch

        if self._model is None:
            self._load()
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                           tokenize=False)
            inputs = tok(text, add_special_tokens=False, return_tensors="pt")  # the template has the specials
        else:
            inputs = tok(prompt, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        with torch.inference_mode():
            out = self._model.generate(**inputs, do_sample=False, max_new_tokens=self.max_new_tokens,
                                       pad_token_id=pad)
        new = out[0, inputs["input_ids"].shape[1]:]
        return tok.decode(new, skip_special_tokens=True).strip()


def make_backend(
    judge_url: str | None = None,
    judge_model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    local_model: str | None = None,
) -> TextBackend:
    """`OpenAIBackend` when ``judge_url`` is given (``judge_model`` then required), else `LocalBackend(local_model)`."""
    if judge_url:
        if not judge_model:
            raise ValueError("--judge-url needs --judge-model (the model name the server should run)")
        return OpenAIBackend(judge_url, judge_model, api_key_env=api_key_env)
    if judge_model:
        # Silently judging with the local model instead of the named one would mislabel the report.
        raise ValueError(f"--judge-model {judge_model!r} needs --judge-url (the server that runs it)")
    return LocalBackend(local_model)


# --------------------------------------------------------------------------- judge


@dataclass
class JudgeResult:
    """One rated item. ``raw`` is the last response (or backend error); ``cached`` is True when no backend call
    was made; ``failed`` is True when no attempt gave a valid rating (``rating`` is then None)."""

    rating: int | None
    raw: str
    attempts: int
    cached: bool
    failed: bool


@dataclass
class JudgeSummary:
    """Per-id results and their aggregate. ``mean_rating`` is over rated items only (None when none)."""

    results: dict[str, JudgeResult]
    mean_rating: float | None
    rated: int
    failures: int
    failed_ids: list[str]
    backend: str
    weak: bool
    prompt_version: str = PROMPT_VERSION
    n: int = field(init=False)

    def __post_init__(self) -> None:
        self.n = len(self.results)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for reports."""
        return asdict(self)


def cache_key(backend_name: str, prompt: str, attempt: int, version: str | None = None) -> str:
    """sha256 hex of (version, backend name, full prompt, attempt index); ``version`` defaults to `PROMPT_VERSION`."""
    version = PROMPT_VERSION if version is None else version
    blob = json.dumps([version, backend_name, prompt, attempt], ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class Judge:
    """Rates predictions with a `TextBackend`, retrying unparseable responses and caching every response on disk."""

    def __init__(self, backend: TextBackend, cache_dir: str | os.PathLike, retries: int = 2) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.backend = backend
        self.cache_dir = Path(cache_dir)
        self.retries = retries

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _read(self, key: str) -> str | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):  # absent, or a damaged file: ask the backend again and overwrite it
            return None
        response = entry.get("response") if isinstance(entry, dict) else None
        return response if isinstance(response, str) else None

    def _write(self, key: str, prompt: str, response: str, attempt: int) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {"version": PROMPT_VERSION, "model": self.backend.name, "attempt": attempt, "prompt": prompt,
                 "response": response}
        # Temp file in the same directory + os.replace: a crash or a parallel run never leaves half a file.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(entry, f, ensure_ascii=False, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def rate(self, question: str, reference: str, prediction: str) -> JudgeResult:
        """Rate one prediction: up to ``1 + retries`` attempts; attempt 0 sends `build_prompt`, later attempts the
        prompt with `RETRY_REMINDER`. Backend errors count as failed attempts and are not cached."""
        raw, cached = "", True
        for attempt in range(self.retries + 1):
            prompt = build_prompt(question, reference, prediction, retry=attempt > 0)
            key = cache_key(self.backend.name, prompt, attempt)
            response = self._read(key)
            if response is None:
                cached = False
                try:
                    response = self.backend.complete(prompt)
                except JudgeBackendError as e:
                    raw = f"backend error: {e}"
                    continue
                self._write(key, prompt, response, attempt)
            raw = response
            rating = parse_rating(response)
            if rating is not None:
                return JudgeResult(rating=rating, raw=raw, attempts=attempt + 1, cached=cached, failed=False)
        return JudgeResult(rating=None, raw=raw, attempts=self.retries + 1, cached=cached, failed=True)

    def rate_all(self, items: Iterable[Mapping[str, Any] | Sequence[Any]], progress: bool = True) -> JudgeSummary:
        """Rate ``items``: dicts with ``id``, ``question``, ``reference``, ``prediction`` or 4-tuples in that order.
        Ids are compared as strings and must be unique."""
        rows = [_item(x) for x in items]
        duplicates = sorted(i for i, count in Counter(r[0] for r in rows).items() if count > 1)
        if duplicates:
            raise ValueError(f"duplicate ids: {', '.join(duplicates[:10])}")
        results: dict[str, JudgeResult] = {}
        failed_ids: list[str] = []
        bar = tqdm(rows, desc=f"judge {self.backend.name}", unit="item", disable=not progress)
        for item_id, question, reference, prediction in bar:
            result = self.rate(question, reference, prediction)
            results[item_id] = result
            if result.failed:
                failed_ids.append(item_id)
                bar.set_postfix(failures=len(failed_ids))
        ratings = [r.rating for r in results.values() if r.rating is not None]
        return JudgeSummary(
            results=results,
            mean_rating=sum(ratings) / len(ratings) if ratings else None,
            rated=len(ratings),
            failures=len(failed_ids),
            failed_ids=failed_ids,
            backend=self.backend.name,
            weak=bool(self.backend.weak),
            prompt_version=PROMPT_VERSION,
        )


def _item(x: Mapping[str, Any] | Sequence[Any]) -> tuple[str, str, str, str]:
    if isinstance(x, Mapping):
        missing = [k for k in ("id", "question", "reference", "prediction") if k not in x]
        if missing:
            raise ValueError(f"judge item lacks {', '.join(missing)}: {dict(x)!r}"[:300])
        values = (x["id"], x["question"], x["reference"], x["prediction"])
    else:
        if len(x) != 4:
            raise ValueError(f"judge item must be (id, question, reference, prediction), got {len(x)} fields")
        values = tuple(x)
    item_id, *texts = values
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"item {item_id}: question, reference and prediction must be str, got {type(t).__name__}")
    return (str(item_id), *texts)  # type: ignore[return-value]


__all__ = [
    "MAX_RATING",
    "MINI_LLM",
    "MIN_RATING",
    "PROMPT_TEMPLATE",
    "PROMPT_VERSION",
    "RETRY_REMINDER",
    "Judge",
    "JudgeBackendError",
    "JudgeResult",
    "JudgeSummary",
    "LocalBackend",
    "OpenAIBackend",
    "TextBackend",
    "build_prompt",
    "cache_key",
    "make_backend",
    "parse_rating",
]

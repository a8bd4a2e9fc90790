"""LLM-as-judge for open-ended answers: the CaD-VI CaD-QA protocol.

A text LLM reads the question, the reference answer and a predicted answer, and rates the prediction with an integer
from 0 to 5, as in the paper (the prompt: ``prompts/cadqa_judge_v1.txt``). The score of a run is the mean rating over
the items the judge could rate.

* The prompt and the parser are fixed and versioned (`PROMPT_VERSION`, the prompt files' name): change either and
  bump the version (a new file), so that cached responses and reported numbers of different protocols never mix.
* `parse_rating` is strict (see its docstring). An unparseable response is retried with the same prompt plus the
  reminder of ``prompts/cadqa_judge_v1_retry.txt``, at most ``retries`` more times; an item still unrated is a
  **failure** (``rating=None``), counted and listed in the summary and excluded from the mean, never scored 0.
* Responses are cached on disk, one JSON file per sha256 key of (version, backend name, prompt, attempt index), so a
  re-run asks the backend nothing and gives the same numbers. Backend errors are not cached, nor are the answers of
  the template backend (computed by code: a cache would keep stale ones).
* Backends are those of `mmlink.textllm` (``make_backend``): any OpenAI-compatible server, a local transformers
  causal LM (default: the ``mini`` preset's SmolLM2-135M-Instruct, a *weak* judge whose ratings are only a smoke
  test; reports carry the ``weak`` flag), or ``template``: `lexical_rating`, word overlap with the reference, the
  baseline a real judge must beat (it cannot see a changed colour; `mmlink.eval.judge_check` shows it).
* How far a judge can be trusted is measured, not assumed: `mmlink.eval.judge_check` rates right and certainly-wrong
  answers to world CaD-QA items and records the AUC under the cache directory; `discrimination` reads it back for
  reports.

Importing this module is cheap: torch/transformers are imported by the local backend on first use only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from tqdm import tqdm

from mmlink.data.nouns import content_words
from mmlink.fileio import atomic_write, cache_dir
from mmlink.textllm import TextLLM, TextLLMError, load_prompt, make_backend

PROMPT_VERSION = "cadqa-judge-v1"
MIN_RATING, MAX_RATING = 0, 5
JUDGE_MAX_NEW_TOKENS = 32  # "Rating: N" and a little slack; a longer answer is not needed to rate


def lexical_rating(question: str, reference: str, prediction: str, reminder: str = "") -> str:
    """The template backend's rating: round(5 x F1) of the content words of prediction vs reference.

    A bag-of-words baseline with no model: it rates an answer to another question low (0.6 of 5 on world CaD-QA
    items), but a reference with one fact swapped about as high as the right facts in other words (3.1 vs 3.8):
    which is why a judge has to be measured (`mmlink.eval.judge_check`).
    """
    ref, pred = set(content_words(reference)), set(content_words(prediction))
    common = len(ref & pred)
    f1 = 2 * common / (len(ref) + len(pred)) if common else 0.0
    return f"Rating: {round(MAX_RATING * f1)}"


JUDGE_PROMPT = load_prompt("mmlink.eval", "cadqa_judge_v1", template=lexical_rating)
PROMPT_TEMPLATE = JUDGE_PROMPT.text  # with a trailing {reminder} field: "" on the first attempt
# Appended (after a blank line) to the prompt of every retry; part of the `PROMPT_VERSION` protocol.
RETRY_REMINDER = load_prompt("mmlink.eval", "cadqa_judge_v1_retry").text

# "Rating: 4", "rating:4", "Rating = 4", "Rating: 4/5", "Rating: 4.5" (captured so it can be rejected), "Rating: -1".
_LABELLED = re.compile(r"\brating\s*[:=]\s*(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?", re.IGNORECASE)
# A whole answer that is one number, optionally "/5" and a final period: "3", "3.", "3/5".
_BARE = re.compile(r"(-?\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?\.?")


def judge_backend(url: str | None = None, model: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                  local_model: str | None = None, spec: str | None = None) -> TextLLM:
    """The judge `mmlink eval`'s options describe: ``spec`` (a `mmlink.textllm.make_backend` spec, e.g.
    ``template``) when given; else an OpenAI-compatible server when ``url`` is given (``model`` then required), else
    a local model (``local_model``, default mini's SmolLM2)."""
    if spec:
        if url or model or local_model:
            raise ValueError("--judge-backend names the whole judge; drop --judge-url/--judge-model/--judge-local-model")
        return make_backend(spec, api_key_env=api_key_env, max_new_tokens=JUDGE_MAX_NEW_TOKENS)
    if url:
        if not model:
            raise ValueError("--judge-url needs --judge-model (the model name the server should run)")
        return make_backend(f"openai:{model}@{url}", api_key_env=api_key_env, max_new_tokens=JUDGE_MAX_NEW_TOKENS)
    if model:
        # Silently judging with the local model instead of the named one would mislabel the report.
        raise ValueError(f"--judge-model {model!r} needs --judge-url (the server that runs it)")
    spec = f"local:{local_model}" if local_model else "local"
    return make_backend(spec, max_new_tokens=JUDGE_MAX_NEW_TOKENS)


# --------------------------------------------------------------------------- prompt and parse


def prompt_fields(question: str, reference: str, prediction: str, retry: bool = False) -> dict[str, str]:
    """The fields of `JUDGE_PROMPT`; ``retry=True`` adds `RETRY_REMINDER` after a blank line."""
    return {"question": question.strip(), "reference": reference.strip(), "prediction": prediction.strip(),
            "reminder": f"\n\n{RETRY_REMINDER}" if retry else ""}


def build_prompt(question: str, reference: str, prediction: str, retry: bool = False) -> str:
    """The judge prompt of `PROMPT_VERSION` as a model reads it."""
    return JUDGE_PROMPT.render(**prompt_fields(question, reference, prediction, retry))


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
    """Per-id results and their aggregate. ``mean_rating`` is over rated items only (None when none);
    ``discrimination`` is `Judge.discrimination` (the judge's measured AUC, or the flag that it was not measured)."""

    results: dict[str, JudgeResult]
    mean_rating: float | None
    rated: int
    failures: int
    failed_ids: list[str]
    backend: str
    weak: bool
    prompt_version: str = PROMPT_VERSION
    discrimination: dict[str, Any] | None = None
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


def default_cache_dir() -> Path:
    """The judge's response cache unless told otherwise: ``$MMLINK_CACHE/judge`` (``~/.cache/mmlink/judge``)."""
    return cache_dir() / "judge"


def check_path(cache_dir: str | os.PathLike, backend_name: str, version: str | None = None) -> Path:
    """Where `mmlink.eval.judge_check` records a judge's measured discrimination, beside its response cache."""
    version = PROMPT_VERSION if version is None else version
    key = hashlib.sha256(json.dumps([version, backend_name]).encode("utf-8")).hexdigest()[:24]
    return Path(cache_dir) / "checks" / f"{key}.json"


def read_discrimination(cache_dir: str | os.PathLike, backend_name: str) -> dict[str, Any] | None:
    """The last discrimination check of this judge and prompt version (its summary), or None if never measured."""
    try:
        record = json.loads(check_path(cache_dir, backend_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("backend") != backend_name:
        return None
    return record if record.get("prompt_version") == PROMPT_VERSION else None


class Judge:
    """Rates predictions with a text-LLM backend (`mmlink.textllm`; a spec string is built with `make_backend`),
    retrying unparseable responses and caching every response on disk."""

    def __init__(self, backend: TextLLM | str, cache_dir: str | os.PathLike, retries: int = 2) -> None:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.backend = make_backend(backend, max_new_tokens=JUDGE_MAX_NEW_TOKENS)
        self.cache_dir = Path(cache_dir)
        self.retries = retries

    def discrimination(self) -> dict[str, Any]:
        """What reports print beside this judge's ratings: its measured AUC (`mmlink.eval.judge_check`), or a flag
        saying it was never measured."""
        record = read_discrimination(self.cache_dir, self.backend.name)
        if record is None:
            return {"measured": False, "auc": None, "flagged": True,
                    "note": f"not measured: run mmlink judge-check --backend {self.backend.spec or 'SPEC'} "
                            f"--cache {self.cache_dir}"}
        keys = ("auc", "auc_ci", "auc_worst", "flagged", "min_auc", "n_items", "mean_ratings", "created", "out")
        return {"measured": True, **{k: record.get(k) for k in keys}}

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
        atomic_write(path, json.dumps(entry, ensure_ascii=False, indent=1))  # a parallel run may write it too

    def rate(self, question: str, reference: str, prediction: str) -> JudgeResult:
        """Rate one prediction: up to ``1 + retries`` attempts; attempt 0 sends `build_prompt`, later attempts the
        prompt with `RETRY_REMINDER`. Backend errors count as failed attempts and are not cached."""
        raw, cached = "", True
        use_cache = not self.backend.deterministic
        for attempt in range(self.retries + 1):
            fields = prompt_fields(question, reference, prediction, retry=attempt > 0)
            prompt = JUDGE_PROMPT.render(**fields)
            key = cache_key(self.backend.name, prompt, attempt)
            response = self._read(key) if use_cache else None
            if response is None:
                cached = False
                try:
                    response = self.backend.ask(JUDGE_PROMPT, **fields)
                except TextLLMError as e:
                    raw = f"backend error: {e}"
                    continue
                if use_cache:
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
            discrimination=self.discrimination(),
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
    "JUDGE_MAX_NEW_TOKENS", "JUDGE_PROMPT", "MAX_RATING", "MIN_RATING", "PROMPT_TEMPLATE", "PROMPT_VERSION",
    "RETRY_REMINDER", "Judge", "JudgeResult", "JudgeSummary", "build_prompt", "cache_key", "check_path",
    "default_cache_dir", "judge_backend", "lexical_rating", "parse_rating", "prompt_fields", "read_discrimination",
]  # fmt: skip

"""Caption metrics — BLEU-1..4, ROUGE-L, CIDEr(-D) — computed by ``pycocoevalcap`` (never re-implemented here).

``score(predictions, references)`` is the one implementation used by ``mmlink score``, by the evaluation harness and
by ``mmlink.data.tasks.stats.caption_scores``. Scores are × 100, as the papers report them.

Facts worth knowing (see also docs/DESIGN "Metrics facts"):

* BLEU is **corpus-level**: pycocoevalcap sums clipped n-gram counts over all items and applies one brevity penalty
  (closest reference length); it is *not* the mean of per-sentence BLEU.
* CIDEr is CIDEr-D (σ = 6, length penalty, clipping) whose **IDF is computed over the evaluated set**: a set of one
  item scores 0, a subset changes every item's score, and a set whose items all share the same references has IDF
  0 for every n-gram. So ``score`` refuses CIDEr on sets smaller than ``min_cider_set`` (default
  ``MIN_CIDER_SET`` = 10) and on sets whose reference lists are all identical; evaluate whole splits. Pass
  ``min_cider_set=None`` to turn both checks off (the number is then whatever pycocoevalcap returns).
* ROUGE-L is the LCS F-measure with β = 1.2, maximised over the references of an item, averaged over items.
* Tokenization: ``"simple"`` is SAM's scoring script — lowercase, ASCII punctuation (``string.punctuation``)
  removed, whitespace collapsed, no PTB tokenizer; ``"ptb"`` is pycocoevalcap's ``PTBTokenizer`` (Stanford CoreNLP
  3.4.1 through ``java``, as ``COCOEvalCap`` does; a clear `JavaNotFoundError` when ``java`` is not on PATH).
  The two give different numbers (e.g. "dog's" is one token in ``simple``, ``dog 's`` in ``ptb``): report which.
* Ids are compared **as strings**: ``1`` and ``"1"`` are the same id (and a duplicate if both appear in a file).
* An empty (or whitespace-only) prediction is allowed — it scores 0 for its item and still counts in ``n`` and in
  CIDEr's IDF — but it is reported with a `EmptyPredictionWarning`. An empty reference list, or an empty reference
  text, is an error.

Importing this module is cheap: pycocoevalcap is imported on first use, and torch/transformers never.
"""

from __future__ import annotations

import json
import os
import shutil
import string
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

MIN_CIDER_SET = 10
TOKENIZERS = ("simple", "ptb")
# metric name -> the key it has in the output
METRICS = {
    "bleu1": "BLEU-1",
    "bleu2": "BLEU-2",
    "bleu3": "BLEU-3",
    "bleu4": "BLEU-4",
    "rougeL": "ROUGE-L",
    "cider": "CIDEr",
}
DEFAULT_METRICS = ("bleu4", "rougeL", "cider")
_MAX_LISTED = 10
_PUNCT = str.maketrans("", "", string.punctuation)


class JavaNotFoundError(FileNotFoundError):
    """``tokenize="ptb"`` was asked for but no ``java`` executable is on PATH."""


class EmptyPredictionWarning(UserWarning):
    """Some predictions are empty; they score 0 for their item."""


def simple_tokenize(text: str) -> str:
    """SAM's scoring normalisation: lowercase, ASCII punctuation removed, tokens joined by single spaces."""
    return " ".join(text.lower().translate(_PUNCT).split())


def parse_metrics(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """Canonical metric names from a comma-separated string or a list (case-insensitive, duplicates dropped).

    Unknown names are a ValueError that lists the valid ones."""
    names = metrics.split(",") if isinstance(metrics, str) else list(metrics)
    by_lower = {m.lower(): m for m in METRICS}
    out: list[str] = []
    bad = []
    for name in names:
        key = str(name).strip().lower()
        if not key:
            continue
        if key not in by_lower:
            bad.append(str(name).strip())
        elif by_lower[key] not in out:
            out.append(by_lower[key])
    if bad:
        raise ValueError(f"unknown metric(s) {', '.join(map(repr, bad))}; valid metrics: {', '.join(METRICS)}")
    if not out:
        raise ValueError(f"no metric given; valid metrics: {', '.join(METRICS)}")
    return tuple(out)


def _list_ids(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_MAX_LISTED])
    return shown + (f", … and {len(ids) - _MAX_LISTED} more" if len(ids) > _MAX_LISTED else "")


def _string_keys(mapping: Mapping[Any, Any], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        sid = str(key)
        if sid in out:
            raise ValueError(f"duplicate id {sid!r} in {what} (ids are compared as strings)")
        out[sid] = value
    return out


def _check_same_ids(preds: Mapping, refs: Mapping, pred_name: str, ref_name: str) -> None:
    """Every id must be in both sets; the error names the ids on each side."""
    only_pred = sorted(set(preds) - set(refs))
    only_ref = sorted(set(refs) - set(preds))
    parts = []
    if only_pred:
        parts.append(f"{len(only_pred)} id(s) in {pred_name} but not in {ref_name}: {_list_ids(only_pred)}")
    if only_ref:
        parts.append(f"{len(only_ref)} id(s) in {ref_name} but not in {pred_name}: {_list_ids(only_ref)}")
    if parts:
        raise ValueError("; ".join(parts))


def _check_inputs(predictions: Mapping[Any, str], references: Mapping[Any, Sequence[str]]):
    preds = _string_keys(predictions, "predictions")
    refs = _string_keys(references, "references")
    if not preds:
        raise ValueError("no predictions to score")
    if not refs:
        raise ValueError("no references to score against")
    _check_same_ids(preds, refs, "the predictions", "the references")
    for sid, text in preds.items():
        if not isinstance(text, str):
            raise ValueError(f"prediction for id {sid!r} is {type(text).__name__}, not a string")
    for sid, rs in refs.items():
        if isinstance(rs, str) or not isinstance(rs, Sequence):
            raise ValueError(f"references for id {sid!r} must be a list of strings, not {type(rs).__name__}")
        if not rs:
            raise ValueError(f"references for id {sid!r} are an empty list")
        for k, r in enumerate(rs):
            if not isinstance(r, str):
                raise ValueError(f"reference {k} of id {sid!r} is {type(r).__name__}, not a string")
            if not r.strip():
                raise ValueError(f"reference {k} of id {sid!r} is empty")
    return preds, refs


def _ptb_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    """pycocoevalcap's PTBTokenizer on ``{id: [text, …]}``; java's progress line goes away unless it fails."""
    if shutil.which("java") is None:
        raise JavaNotFoundError(
            "--tokenize ptb needs Java: pycocoevalcap's PTB tokenizer runs Stanford CoreNLP with `java`, and no "
            "`java` is on PATH; install a Java runtime (e.g. apt-get install default-jre-headless) or use "
            "--tokenize simple (SAM's protocol)"
        )
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    inp = {k: [{"caption": t} for t in v] for k, v in captions.items()}
    with tempfile.TemporaryFile() as err_file:  # java writes "PTBTokenizer tokenized N tokens…" to fd 2
        saved = os.dup(2)
        try:
            os.dup2(err_file.fileno(), 2)
            out = PTBTokenizer().tokenize(inp)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        err_file.seek(0)
        java_err = err_file.read().decode(errors="replace").strip()
    if set(out) != set(captions) or any(len(out[k]) != len(v) for k, v in captions.items()):
        raise RuntimeError(f"the PTB tokenizer (java) did not return one line per caption; its stderr: {java_err}")
    return out


def _tokenized(preds: Mapping[str, str], refs: Mapping[str, Sequence[str]], ids: Sequence[str],
               tokenize: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """pycocoevalcap's inputs ``(gts, res)``: ``{id: [tokenized reference, …]}``, ``{id: [tokenized prediction]}``."""
    if tokenize == "simple":
        return ({i: [simple_tokenize(r) for r in refs[i]] for i in ids},
                {i: [simple_tokenize(preds[i])] for i in ids})
    # like COCOEvalCap: references and predictions tokenized separately
    return _ptb_tokenize({i: list(refs[i]) for i in ids}), _ptb_tokenize({i: [preds[i]] for i in ids})


def cider_unreliable(references: Mapping[Any, Sequence[str]], min_set: int | None = MIN_CIDER_SET) -> str | None:
    """Why CIDEr would mean nothing on these items, or None. Its IDF is computed over the evaluated set: fewer than
    ``min_set`` items (0 or None: no minimum), or the same references for every item (every IDF 0)."""
    n = len(references)
    if min_set and n < min_set:
        return (f"{n} item(s), fewer than --min-cider-set {min_set}: CIDEr needs a whole evaluation set, its IDF is "
                f"computed over the evaluated items (1 item always scores 0); at least {min_set} are required")
    if len({tuple(sorted(simple_tokenize(r) for r in refs)) for refs in references.values()}) < 2:
        return (f"all {n} items have the same references: every n-gram's IDF over the set is 0 and CIDEr would be 0 "
                "whatever the predictions")
    return None


def score(
    predictions: Mapping[Any, str],
    references: Mapping[Any, Sequence[str]],
    tokenize: str = "simple",
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    min_cider_set: int | None = MIN_CIDER_SET,
) -> dict[str, Any]:
    """Corpus scores (× 100) of ``predictions`` (``{id: text}``) against ``references`` (``{id: [text, …]}``).

    Returns ``{"BLEU-4": …, "ROUGE-L": …, "CIDEr": …, "n": n}`` — one key per requested metric (see `METRICS`:
    bleu1..bleu4, rougeL, cider), in that canonical order, plus ``n``, the number of items. Ids are compared as
    strings. ``tokenize`` is ``"simple"`` (SAM's script) or ``"ptb"`` (pycocoevalcap's PTBTokenizer, needs Java).

    Raises ValueError for: ids in one mapping and not the other (named), duplicate ids after str(), empty
    inputs, non-string texts, empty reference lists or texts, unknown metrics or tokenizer, and — when CIDEr is
    requested and ``min_cider_set`` is not None — sets of fewer than ``min_cider_set`` items or whose reference
    lists are all identical (CIDEr's IDF is computed over the evaluated set; it would not mean anything).
    `JavaNotFoundError` (a FileNotFoundError) for ``"ptb"`` without ``java``; ImportError without pycocoevalcap.
    Empty predictions are scored (0 for their item) with an `EmptyPredictionWarning`.
    """
    names = parse_metrics(metrics)
    if tokenize not in TOKENIZERS:
        raise ValueError(f"unknown tokenization {tokenize!r}; valid: {', '.join(TOKENIZERS)}")
    preds, refs = _check_inputs(predictions, references)
    ids = sorted(preds)
    n = len(ids)
    if "cider" in names and min_cider_set is not None:
        problem = cider_unreliable(refs, min_cider_set)
        if problem:
            raise ValueError(f"{problem} (--min-cider-set to change, or leave cider out of the metrics)")
    empty = [i for i in ids if not preds[i].strip()]
    if empty:
        warnings.warn(
            f"{len(empty)} of {n} prediction(s) are empty and score 0 for their item: ids {_list_ids(empty)}",
            EmptyPredictionWarning,
            stacklevel=2,
        )

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = _tokenized(preds, refs, ids, tokenize)
    out: dict[str, Any] = {}
    if any(m.startswith("bleu") for m in names):
        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    for m in METRICS:
        if m not in names:
            continue
        if m.startswith("bleu"):
            value = bleu[int(m[-1]) - 1]
        elif m == "rougeL":
            value, _ = Rouge().compute_score(gts, res)
        else:
            value, _ = Cider().compute_score(gts, res)
        out[METRICS[m]] = 100.0 * float(value)
    out["n"] = n
    return out


@dataclass
class ItemScores:
    """Per-item pieces of the corpus metrics, in ``ids`` order (pycocoevalcap's own per-item numbers, unscaled).

    * ``rouge_l`` — each item's ROUGE-L F (0-1); the corpus ROUGE-L is their mean;
    * ``cider`` — each item's CIDEr-D (0-10) with the document frequencies (IDF) of the **whole** evaluated set's
      references: the IDF stays fixed whatever subset is later averaged (a bootstrap resample reuses these numbers,
      it does not recompute the IDF), and the corpus CIDEr is exactly their mean;
    * ``bleu`` — each item's BLEU sufficient statistics in `mmlink.eval.bootstrap.BLEU_STATS` order (hypothesis
      length, closest reference length, n-gram counts and clipped matches for n = 1..4): corpus BLEU is computed
      from their sums (`mmlink.eval.bootstrap.corpus_bleu`), never from per-item BLEU.
    """

    ids: list[str]
    rouge_l: list[float]
    cider: list[float]
    bleu: list[list[float]]


def per_item_scores(predictions: Mapping[Any, str], references: Mapping[Any, Sequence[str]],
                    tokenize: str = "simple") -> ItemScores:
    """`ItemScores` of ``predictions`` against ``references`` (same inputs and checks as `score`, ids sorted as
    strings). No minimum set size is enforced: the caller computes the corpus scores with `score` first."""
    if tokenize not in TOKENIZERS:
        raise ValueError(f"unknown tokenization {tokenize!r}; valid: {', '.join(TOKENIZERS)}")
    preds, refs = _check_inputs(predictions, references)
    ids = sorted(preds)
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts, res = _tokenized(preds, refs, ids, tokenize)
    _, rouge = Rouge().compute_score(gts, res)
    _, cider = Cider().compute_score(gts, res)
    # Built the way pycocoevalcap's Bleu wrapper builds it; its per-item "comps" are the sufficient statistics.
    scorer = BleuScorer(n=4)
    for i in ids:
        scorer += (res[i][0], gts[i])
    bleu = []
    for comps in scorer.ctest:
        reflen = scorer._single_reflen(comps["reflen"], "closest", comps["testlen"])  # as Bleu.compute_score asks
        bleu.append([comps["testlen"], reflen, *comps["guess"], *comps["correct"]])
    return ItemScores(ids, [float(x) for x in rouge], [float(x) for x in cider], bleu)


def _read_jsonl(path: str | os.PathLike, field: str, check, task: str | None = None) -> dict[str, Any]:
    """``{id: record[field]}``; with ``task``, only the lines whose ``task`` is it (an `mmlink eval` predictions
    file holds every task of a run)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file")
    records: dict[str, Any] = {}
    first_line: dict[str, int] = {}
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{p} line {lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{p} line {lineno}: expected a JSON object, got {type(rec).__name__}")
            if task is not None and rec.get("task") != task:
                continue
            if field == "text" and field not in rec and "choice" in rec:
                raise ValueError(f"{p} line {lineno}: a closed-ended answer (a choice, no text): mmlink score scores "
                                 "generated text; accuracy is in the run's metrics.json")
            for name in ("id", field):
                if name not in rec:
                    raise ValueError(f"{p} line {lineno}: missing field {name!r}")
            rid = rec["id"]
            if isinstance(rid, bool) or not isinstance(rid, (str, int)):
                raise ValueError(f"{p} line {lineno}: field 'id' must be a string or an integer, "
                                 f"not {type(rid).__name__}")  # fmt: skip
            sid = str(rid)
            if sid in records:
                raise ValueError(f"{p} line {lineno}: duplicate id {sid!r} (first on line {first_line[sid]}; "
                                 f"ids are compared as strings)")  # fmt: skip
            problem = check(rec[field])
            if problem:
                raise ValueError(f"{p} line {lineno}: field {field!r} {problem}")
            records[sid] = rec[field]
            first_line[sid] = lineno
    if not records:
        raise ValueError(f"{p}: no records of task {task!r}" if task is not None else f"{p}: empty file (no records)")
    return records


def _check_text(value: Any) -> str | None:
    return None if isinstance(value, str) else f"must be a string, not {type(value).__name__}"


def _check_refs(value: Any) -> str | None:
    if not isinstance(value, list):
        return f"must be a list of strings, not {type(value).__name__}"
    if not value:
        return "is an empty list (every item needs at least one reference)"
    for k, r in enumerate(value):
        if not isinstance(r, str):
            return f"item {k} must be a string, not {type(r).__name__}"
        if not r.strip():
            return f"item {k} is an empty reference"
    return None


def read_predictions(path: str | os.PathLike, task: str | None = None) -> dict[str, str]:
    """``{id: text}`` from a JSONL file of ``{"id": …, "text": …}`` lines (other fields ignored, blank lines
    skipped; with ``task``, only that task's lines). Errors (ValueError, FileNotFoundError) name the file, the
    line number and the field."""
    return _read_jsonl(path, "text", _check_text, task)


def read_references(path: str | os.PathLike, task: str | None = None) -> dict[str, list[str]]:
    """``{id: [text, …]}`` from a JSONL file of ``{"id": …, "refs": [...]}`` lines (other fields ignored, blank
    lines skipped; with ``task``, only that task's lines). Errors (ValueError, FileNotFoundError) name the file,
    the line number and the field."""
    return _read_jsonl(path, "refs", _check_refs, task)


def score_files(
    pred_path: str | os.PathLike,
    ref_path: str | os.PathLike | None = None,
    tokenize: str = "simple",
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    min_cider_set: int | None = MIN_CIDER_SET,
    task: str | None = None,
) -> dict[str, Any]:
    """`score` of the predictions JSONL at ``pred_path`` against the references JSONL at ``ref_path`` (None: the
    ``refs`` of the prediction lines, as `mmlink eval` writes them). ``task``: only that task's lines of both."""
    names = parse_metrics(metrics)  # a bad --metrics fails before reading anything
    preds = read_predictions(pred_path, task)
    ref_path = pred_path if ref_path is None else ref_path
    refs = read_references(ref_path, task)
    _check_same_ids(preds, refs, str(pred_path), str(ref_path))
    return score(preds, refs, tokenize=tokenize, metrics=names, min_cider_set=min_cider_set)


__all__ = [
    "DEFAULT_METRICS",
    "EmptyPredictionWarning",
    "ItemScores",
    "JavaNotFoundError",
    "METRICS",
    "MIN_CIDER_SET",
    "TOKENIZERS",
    "cider_unreliable",
    "parse_metrics",
    "per_item_scores",
    "read_predictions",
    "read_references",
    "score",
    "score_files",
    "simple_tokenize",
]

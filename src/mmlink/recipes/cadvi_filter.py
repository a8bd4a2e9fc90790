"""CaD-VI Phase 2: the quality filter between annotation and training.

CaD-VI trains on its Phase-1 model's annotations as they come; the paper reports no filter. mmlink adds one because
it can check them: on the world every stated fact is compared with the pair's scene graphs (`mmlink.eval.facts`,
the analogue of CHAIR), so an annotation that hallucinates is not trained on. The rules, in the order a decision
names the first one that fails (`FilterRules`, defaults measured below):

0. ``unusable``, always: no word at all, or an ``<image>`` placeholder in the text (not a valid training target);
1. ``too_short``: fewer than ``min_words`` words;
2. ``repetition``: the share of repeated word 4-grams (1 − distinct / total) is at least ``max_repeat`` —
   a decoding loop ("the ball is red. the ball is red. …");
3. ``truncated``: the annotation hit the token limit without ending (``drop_truncated``): its last axis is cut;
4. ``format``: no "Commonalities" or no "Differences" section (``require_sections``): a refine answer that
   only restates the difference-only annotation is what Phase 2 is meant to go beyond;
5. world pairs only — ``few_facts``: fewer than ``min_facts`` facts the world can check; ``fact_precision``: the
   share of stated facts that hold in at least one of the two scene graphs is below ``min_fact_precision``.

User pairs (no scene graphs) get rules 1–4 only.

How the defaults were chosen (the world's exact CaD summaries of 1,500 ``change_caption`` train pairs, seed 7 —
the text the Phase-1 model was trained to write — against the same summaries with one colour word swapped for a
colour in neither image):

* ``min_fact_precision = 1.0``: the parser reads every exact summary at precision 1.0 (no false alarm in 1,500),
  and every summary with one wrong colour falls below 0.973 (they state 9–36 facts, median 22). Any threshold in
  (0.973, 1.0] separates the two; 1.0 is CHAIR's "no hallucinated fact" rule. It favours short summaries (fewer
  facts, fewer chances to be wrong), which ``min_facts`` and ``min_words`` bound;
* ``min_facts = 3``, ``min_words = 20``: exact summaries state at least 9 facts in at least 69 words; the shortest
  well-formed summary (one axis per section) is about 20 words;
* ``max_repeat = 0.5``: exact summaries repeat at most 0.30 of their 4-grams ("… in the first image and … in the
  second"); a text said twice over reaches 0.5.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from mmlink.data.formats import IMAGE_TOKEN
from mmlink.settings import check_fields, setting

REASONS = ("unusable", "too_short", "repetition", "truncated", "format", "few_facts", "fact_precision")
DECISIONS = "decisions.jsonl"
REPORT = "report.json"
_WORD = re.compile(r"[A-Za-z0-9]+")
_SECTION = {name: re.compile(rf"^\W*{name}\b", re.IGNORECASE | re.MULTILINE)
            for name in ("commonalities", "differences")}


@dataclass
class FilterRules:
    """The ``filter:`` section of the recipe's settings (see the module docstring for the measured defaults)."""

    min_fact_precision: float = setting(1.0, min=0, max=1, help="world: lowest share of a summary's stated "
                                        "facts that hold in one of the pair's scene graphs")
    min_facts: int = setting(3, min=0, help="world: facts a summary must state")
    min_words: int = setting(20, min=0, help="words a summary must have")
    max_repeat: float = setting(0.5, above=0, max=1, help="drop at this share of repeated word 4-grams "
                                  "or more (1: off)")
    drop_truncated: bool = setting(True, help="drop summaries cut off at max_new_tokens")
    require_sections: bool = setting(True, help="a summary must have its commonalities and differences sections")

    def __post_init__(self) -> None:
        check_fields(self, "filter.")


def repeat_share(text: str, n: int = 4) -> float:
    """1 − distinct / total word n-grams (lower case): 0 for a text that never repeats an n-gram."""
    words = [w.lower() for w in _WORD.findall(text)]
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


@dataclass
class Decision:
    """One annotation's verdict. ``reasons``: every rule it fails (``reason``, the first, is what the report counts);
    fact counts are None for user pairs; ``recall``: the share of the exact scene-graph summary's facts it states."""

    keep: bool
    reason: str | None
    reasons: list[str]
    words: int
    repeat: float
    facts: int | None = None
    correct: int | None = None
    precision: float | None = None
    recall_hits: int | None = None
    recall_total: int | None = None


def decide(text: str, ended: bool, scenes: Sequence[Mapping[str, Any]] | None, rules: FilterRules) -> Decision:
    """Apply the rules to one annotation; ``scenes``: the pair's two scene graphs (world), else None."""
    words = len(_WORD.findall(text))
    repeat = repeat_share(text)
    failed = []
    if not words or IMAGE_TOKEN in text:
        failed.append("unusable")
    if words < rules.min_words:
        failed.append("too_short")
    if repeat >= rules.max_repeat:
        failed.append("repetition")
    if rules.drop_truncated and not ended:
        failed.append("truncated")
    if rules.require_sections and not all(rx.search(text) for rx in _SECTION.values()):
        failed.append("format")
    d = Decision(False, None, failed, words, round(repeat, 4))
    if scenes is not None:
        from mmlink.eval.facts import tally_answer

        tallies = tally_answer(text, [exact_summary(scenes)], scenes)
        d.correct = sum(t.correct for t in tallies.values())
        d.facts = sum(t.mentioned for t in tallies.values())
        d.recall_hits = sum(t.recalled for t in tallies.values())
        d.recall_total = sum(t.reference for t in tallies.values())
        d.precision = d.correct / d.facts if d.facts else None
        if d.facts < rules.min_facts:
            failed.append("few_facts")
        # no stated fact: precision is undefined, and the few_facts rule decides (min_facts 0 lets it through)
        if d.precision is not None and d.precision < rules.min_fact_precision:
            failed.append("fact_precision")
    d.keep, d.reason = not failed, (failed[0] if failed else None)
    return d


def exact_summary(scenes: Sequence[Mapping[str, Any]]) -> str:
    """The world's exact CaD summary of the pair (what Phase 1 trains on): the reference the recall is measured on."""
    import numpy as np

    from mmlink.data.tasks.pairs import cad_facts, format_cad
    from mmlink.data.world.scene import scene_from_dict

    s1, s2 = (scene_from_dict(dict(s)) for s in scenes)
    return format_cad(cad_facts(s1, s2, np.random.default_rng(0)))  # the rng picks wordings only, not facts


# ------------------------------------------------------------------------------------------------------- report


def report(rows: Iterable[tuple[str, Decision]], rules: FilterRules, world: bool) -> dict[str, Any]:
    """Counts kept / dropped (by first reason) / failing each rule, overall and per source; on the world also the
    pooled fact precision and recall (× 100) of every annotation and of the kept ones."""
    per: dict[str, list[Decision]] = {}
    for source, d in rows:
        per.setdefault(source, []).append(d)

    def block(ds: list[Decision]) -> dict[str, Any]:
        kept = [d for d in ds if d.keep]
        out = {"annotations": len(ds), "kept": len(kept), "dropped": len(ds) - len(kept),
               "dropped_by_reason": _counts(d.reason for d in ds if not d.keep),
               "failing_rule": _counts(r for d in ds for r in d.reasons),
               "mean_words": round(sum(d.words for d in ds) / len(ds), 1) if ds else None}
        if world:
            out["fact_precision"] = _pooled(ds, "correct", "facts")
            out["fact_recall"] = _pooled(ds, "recall_hits", "recall_total")
            out["kept_fact_recall"] = _pooled(kept, "recall_hits", "recall_total")
        return out

    everything = [d for ds in per.values() for d in ds]
    return {"rules": asdict(rules), "world": world, **block(everything),
            "by_source": {s: block(ds) for s, ds in per.items()}}


def _counts(items: Iterable[str]) -> dict[str, int]:
    counts = Counter(items)
    return {r: counts[r] for r in REASONS if counts[r]}


def _pooled(ds: Sequence[Decision], hits: str, total: str) -> float | None:
    den = sum(getattr(d, total) or 0 for d in ds)
    return round(100.0 * sum(getattr(d, hits) or 0 for d in ds) / den, 2) if den else None


def format_report(rep: Mapping[str, Any]) -> str:
    """A few lines for the terminal: kept / annotations per source and the reasons."""
    lines = [f"filter: kept {rep['kept']} of {rep['annotations']} annotations"]
    for source, b in rep["by_source"].items():
        why = ", ".join(f"{r} {n}" for r, n in b["dropped_by_reason"].items()) or "none dropped"
        facts = (f"; fact precision {b['fact_precision']}, recall {b['fact_recall']}"
                 if rep["world"] and b["fact_precision"] is not None else "")
        lines.append(f"  {source}: kept {b['kept']} of {b['annotations']} ({why}){facts}")
    return "\n".join(lines)


def write_decisions(path: Path, rows: Iterable[tuple[str, str, Decision]]) -> None:
    """``decisions.jsonl``: one line per annotation (source, pair id, verdict, measurements), written atomically."""
    from mmlink.fileio import atomic_write

    lines = [json.dumps({"source": s, "id": i, **asdict(d)}) for s, i, d in rows]
    atomic_write(path, ("\n".join(lines) + "\n" if lines else "").encode())


__all__ = ["DECISIONS", "Decision", "FilterRules", "REASONS", "REPORT", "decide", "exact_summary", "format_report",
           "repeat_share", "report", "write_decisions"]

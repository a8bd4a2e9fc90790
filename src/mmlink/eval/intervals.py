"""Confidence intervals of a task's metrics: per-item statistics from its predictions, bootstrapped.

`task_statistics` turns one task's predictions into a `mmlink.eval.bootstrap.Statistic` per metric — the same
metric, computed the same way, as the harness reports:

* generate — ROUGE-L and CIDEr-D: means of pycocoevalcap's per-item scores (CIDEr's IDF fixed to the whole set's);
  BLEU-4: corpus BLEU from summed per-item sufficient statistics (`mmlink.metrics.per_item_scores`);
  fact precision and recall (when the items carry their scene graphs): Σ correct / Σ mentioned facts and
  Σ recalled / Σ reference facts over the items, as `mmlink.eval.facts.fact_metrics` pools them;
* rank / pair_match — accuracy: the mean of per-sample 0/1 (a pair-match sample is right only when both items are);
  rank scored by retrieval: MRR and R@k as means of per-item reciprocal ranks and 0/1 hits, mean rank; by auc:
  the AUC of the per-item score margins (`mmlink.eval.closed`), and accuracy;
* vqa — VQA accuracy: the mean of per-item accuracies;
* judge — mean rating over the rated items: Σ rating / Σ rated, so failed items stay out of the mean as in the
  report while every item is resampled.

Items are put in a fixed order (ids, or sample ids, sorted as strings), so two systems' statistics over the same
items line up for a paired interval (`paired_intervals`: the blind gap, the ablation's differences).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from mmlink.eval.bootstrap import (
    Statistic,
    auc_statistic,
    bleu_statistic,
    interval,
    mean_statistic,
    paired_interval,
    ratio_statistic,
)

FACT_PRECISION, FACT_RECALL = "fact precision", "fact recall"
# A recomputed point estimate further than this from the reported one means the two disagree on what the metric is
# (another scale, other items): no interval is given rather than one around another number.
_TOLERANCE = 1e-6


def _fact_statistics(items: Sequence[Any], rows: Mapping[str, dict]) -> dict[str, Statistic]:
    """Fact precision and recall as ratios of per-item counts; none when the items have no scene graphs."""
    if not items or not all(getattr(it, "scenes", None) for it in items):
        return {}  # user data without meta.scenes: the harness reports no fact metrics either
    from mmlink.eval.facts import tally_answer

    counts = []
    for it in sorted(items, key=lambda it: str(it.id)):
        tallies = tally_answer(rows[it.id]["text"], it.refs, it.scenes).values()
        counts.append([sum(t.correct for t in tallies), sum(t.mentioned for t in tallies),
                       sum(t.recalled for t in tallies), sum(t.reference for t in tallies)])
    return {FACT_PRECISION: ratio_statistic([c[0] for c in counts], [c[1] for c in counts]),
            FACT_RECALL: ratio_statistic([c[2] for c in counts], [c[3] for c in counts])}


def task_statistics(kind: str, items: Sequence[Any], rows: Mapping[str, dict], tokenize: str = "simple",
                    judgements: Optional[Mapping[str, Optional[float]]] = None, metric: str = "accuracy",
                    scoring: str = "sum") -> dict[str, Statistic]:
    """Per metric, the `Statistic` of one task's predictions.

    kind: the task's kind; items: its `mmlink.eval.tasks.Item`s; rows: ``{item id: prediction row}`` as the
    harness stores them; judgements (judge tasks): ``{item id: rating, or None when the judge failed}``;
    metric, scoring: a rank task's `EvalTask.metric` and its option scoring.
    """
    if kind == "vqa":
        from mmlink.eval.closed import vqa_scores

        ordered = sorted(items, key=lambda it: str(it.id))
        return {"VQA accuracy": mean_statistic(vqa_scores(ordered, rows))}
    if kind == "rank" and metric != "accuracy":
        from mmlink.eval.closed import margins, retrieval_rows

        ordered = sorted(items, key=lambda it: str(it.id))
        if metric == "retrieval":
            return {m: mean_statistic(v, scale=1.0 if m == "mean rank" else 100.0)
                    for m, v in retrieval_rows(ordered, rows, scoring).items()}
        margin, labels = margins(ordered, rows, scoring)
        return {"AUC": auc_statistic(margin, labels),
                "accuracy": mean_statistic([float(bool(rows[it.id]["correct"])) for it in ordered])}
    if kind == "generate":
        from mmlink.metrics import per_item_scores

        scores = per_item_scores({it.id: rows[it.id]["text"] for it in items}, {it.id: it.refs for it in items},
                                 tokenize=tokenize)
        stats = {"ROUGE-L": mean_statistic(scores.rouge_l), "CIDEr": mean_statistic(scores.cider),
                 "BLEU-4": bleu_statistic(scores.bleu)}
        stats.update(_fact_statistics(items, rows))
        return stats
    if kind in ("rank", "pair_match"):
        by_sample: dict[str, bool] = {}
        for it in items:
            by_sample[it.sample] = by_sample.get(it.sample, True) and bool(rows[it.id]["correct"])
        return {"accuracy": mean_statistic([float(by_sample[s]) for s in sorted(by_sample, key=str)])}
    if kind == "judge" and judgements is not None:
        ids = sorted((it.id for it in items), key=str)
        ratings = [judgements.get(i) for i in ids]
        stats = {"rating": ratio_statistic([r or 0.0 for r in ratings], [0.0 if r is None else 1.0 for r in ratings],
                                           scale=1.0)}
        stats.update(_fact_statistics(items, rows))
        return stats
    return {}


def read_judgements(path: Path, task: str) -> dict[str, Optional[float]]:
    """``{item id: rating or None}`` of one task from a run's ``judgements.jsonl`` (empty when there is none)."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            if row["task"] == task:
                out[row["id"]] = None if row.get("failed") else row.get("rating")
    return out


def _agrees(stat: Statistic, reported: Any, metric: str) -> bool:
    value = stat.value()
    if not isinstance(reported, (int, float)) or isinstance(reported, bool) or math.isnan(value):
        return False
    if abs(value - float(reported)) > _TOLERANCE * max(1.0, abs(float(reported))):
        warnings.warn(f"no confidence interval for {metric!r}: its per-item statistics give {value:.6g}, the "
                      f"reported value is {reported!r}", RuntimeWarning, stacklevel=3)
        return False
    return True


def _pair(bounds: Optional[tuple[float, float]]) -> Optional[list[float]]:
    return None if bounds is None else [bounds[0], bounds[1]]


def intervals(reported: Mapping[str, Any], stats: Mapping[str, Statistic]) -> dict[str, Optional[list[float]]]:
    """``{metric: [lo, hi]}``: the 95 % percentile-bootstrap interval of each reported metric that has statistics
    (and whose statistics reproduce the reported value)."""
    return {m: _pair(interval(stats[m])) for m in reported if m in stats and _agrees(stats[m], reported[m], m)}


def paired_intervals(a: Mapping[str, Statistic], b: Mapping[str, Statistic],
                     metrics: Optional[Sequence[str]] = None) -> dict[str, Optional[list[float]]]:
    """``{metric: [lo, hi]}``: the 95 % paired-bootstrap interval of ``a − b`` for each metric both have (in
    ``metrics`` order when given), on the same resamples of the same items."""
    names = [m for m in (metrics if metrics is not None else a) if m in a and m in b]
    return {m: _pair(paired_interval(a[m], b[m])) for m in names}


__all__ = ["FACT_PRECISION", "FACT_RECALL", "intervals", "paired_intervals", "read_judgements", "task_statistics"]

"""Percentile-bootstrap confidence intervals of evaluation metrics, for one system or a paired difference.

A metric is described by a `Statistic`: per-item rows plus the rule that turns a (re)sample of rows into the
metric, so every resample recomputes the *same* metric the report shows, not a per-item proxy of it:

* ``mean``  — the mean of per-item values (accuracy: per-sample 0/1; ROUGE-L and CIDEr-D: per-item scores);
* ``ratio`` — Σ numerator / Σ denominator over the items (fact precision: correct facts / facts mentioned);
* ``auc``   — ROC AUC of per-item (score, 0/1 label) rows (Hateful Memes): P(a positive scores above a negative)
  + ½ P(tie), each drawn item weighted by how often it was drawn;
* ``bleu``  — corpus BLEU-4 recomputed from the summed per-item sufficient statistics (`BLEU_STATS`), exactly as
  pycocoevalcap's ``BleuScorer.compute_score`` combines them, so the interval is of the corpus metric (BLEU is
  not a mean of sentence scores).

Resampling draws items with replacement (``N_RESAMPLES`` = 1000 resamples, a fixed seed, so a re-run gives the same
interval); the interval is the 2.5th and 97.5th percentile of the resampled metric. `paired_interval` applies the
*same* resamples to two systems' rows for the same items and takes the percentiles of the differences — the
per-item correlation between the systems is kept, which makes the interval of a difference much narrower than
two separate intervals would suggest. Items must be in the same order in both statistics.

Only numpy; no torch, no pycocoevalcap (the per-item rows come from `mmlink.metrics.per_item_scores`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

N_RESAMPLES = 1000
SEED = 0
LEVEL = 0.95
BLEU_N = 4
# Column layout of a ``bleu`` statistic's rows: hypothesis length, closest reference length, then per n-gram order
# 1..4 the hypothesis n-gram count ("guess") and the clipped matches ("correct") — pycocoevalcap's per-item comps.
BLEU_STATS = ("testlen", "reflen", *(f"guess{k}" for k in range(1, BLEU_N + 1)),
              *(f"correct{k}" for k in range(1, BLEU_N + 1)))
StatKind = Literal["mean", "ratio", "bleu", "auc"]
_WIDTH = {"ratio": 2, "auc": 2, "bleu": len(BLEU_STATS)}


def corpus_bleu(stats: Sequence[float], n: int = BLEU_N) -> float:
    """Corpus BLEU-n (0-1) from summed `BLEU_STATS`, in pycocoevalcap's arithmetic and order of operations (its
    ``tiny``/``small`` guards included), so that it equals ``Bleu(4).compute_score`` to the last bit."""
    small, tiny = 1e-9, 1e-15
    testlen, reflen = float(stats[0]), float(stats[1])
    guess, correct = stats[2:2 + BLEU_N], stats[2 + BLEU_N:2 + 2 * BLEU_N]
    bleu, score = 1.0, 0.0
    for k in range(n):
        bleu *= float(correct[k] + tiny) / (guess[k] + small)
        score = bleu ** (1.0 / (k + 1))
    ratio = (testlen + tiny) / (reflen + small)
    if ratio < 1:
        score *= math.exp(1 - 1 / ratio)
    return score


@dataclass(frozen=True)
class Statistic:
    """A metric over per-item rows; ``scale`` multiplies the result (100: the papers' percent-style scores).

    ``rows``: ``mean`` — shape (n,); ``ratio`` — (n, 2) numerator, denominator; ``auc`` — (n, 2) score, label;
    ``bleu`` — (n, 10) `BLEU_STATS`.
    """

    kind: StatKind
    rows: np.ndarray
    scale: float = 100.0

    def __post_init__(self) -> None:
        if self.kind not in ("mean", "ratio", "bleu", "auc"):
            raise ValueError(f"Statistic kind must be mean, ratio, bleu or auc, got {self.kind!r}")
        rows = np.asarray(self.rows, dtype=np.float64)
        want = (rows.shape[0],) if self.kind == "mean" else (rows.shape[0] if rows.ndim else 0, _WIDTH[self.kind])
        if rows.ndim == 0 or rows.shape != want:
            shape = "(n,)" if self.kind == "mean" else f"(n, {_WIDTH[self.kind]})"
            raise ValueError(f"a {self.kind} statistic needs rows of shape {shape}, got {rows.shape}")
        if rows.shape[0] == 0:
            raise ValueError("a statistic needs at least one item")
        if not np.isfinite(rows).all():
            raise ValueError(f"a {self.kind} statistic's rows must be finite numbers")
        object.__setattr__(self, "rows", rows)

    @property
    def n(self) -> int:
        return int(self.rows.shape[0])

    def value(self) -> float:
        """The metric over all items (NaN for a ratio whose denominators sum to 0)."""
        if self.kind == "mean":  # np.mean as pycocoevalcap averages: the same number as the corpus score, bit for bit
            return self.scale * float(np.mean(self.rows))
        return float(self.weighted(np.ones((1, self.n), dtype=np.int64))[0])

    def weighted(self, counts: np.ndarray) -> np.ndarray:
        """The metric for each row of ``counts`` (resamples, n): how many times each item was drawn."""
        if self.kind == "mean":
            return self.scale * (counts @ self.rows) / counts.sum(1)
        if self.kind == "auc":
            return self.scale * weighted_auc(self.rows[:, 0], self.rows[:, 1], counts)
        sums = counts @ self.rows  # (B, width); exact for the integer counts BLEU and facts use
        if self.kind == "ratio":
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(sums[:, 1] > 0, self.scale * sums[:, 0] / sums[:, 1], np.nan)
        return self.scale * np.array([corpus_bleu(s) for s in sums])


def weighted_auc(scores: Sequence[float], labels: Sequence[float], weights: Sequence | np.ndarray | None = None):
    """ROC AUC = P(a positive scores above a negative) + ½ P(tie) — the Mann-Whitney U — with item weights (a
    bootstrap resample's draw counts); NaN when either class has no weight. ``weights`` of shape (B, n) (many
    resamples) give an array of B AUCs: the scores are ranked once for all of them."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels, dtype=np.float64) > 0.5
    w = np.ones_like(s) if weights is None else np.asarray(weights, dtype=np.float64)
    batched = w.ndim == 2
    w = np.atleast_2d(w)  # (B, n)
    order = np.argsort(s, kind="stable")
    ranked = s[order]
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # ties share a value
    pos = np.add.reduceat(np.where(y, w, 0.0)[:, order], starts, axis=1)  # (B, distinct values)
    neg = np.add.reduceat(np.where(y, 0.0, w)[:, order], starts, axis=1)
    pos_total, neg_total = pos.sum(1), neg.sum(1)
    below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each value
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where((pos_total > 0) & (neg_total > 0),
                         (pos * (below + 0.5 * neg)).sum(1) / (pos_total * neg_total), np.nan)
    return value if batched else float(value[0])


def auc(positives: Sequence[float], negatives: Sequence[float]) -> float | None:
    """The ROC AUC of positive against negative scores (`weighted_auc`, every item once); None when either side
    is empty."""
    if not len(positives) or not len(negatives):
        return None
    return weighted_auc([*positives, *negatives], [1.0] * len(positives) + [0.0] * len(negatives))


def auc_statistic(scores: Sequence[float], labels: Sequence[float], scale: float = 100.0) -> Statistic:
    return Statistic("auc", np.column_stack([np.asarray(scores, float), np.asarray(labels, float)]), scale)


def mean_statistic(values: Sequence[float], scale: float = 100.0) -> Statistic:
    return Statistic("mean", np.asarray(values, dtype=np.float64), scale)


def ratio_statistic(numerators: Sequence[float], denominators: Sequence[float], scale: float = 100.0) -> Statistic:
    if len(numerators) != len(denominators):
        raise ValueError(f"{len(numerators)} numerators but {len(denominators)} denominators")
    return Statistic("ratio", np.column_stack([np.asarray(numerators, float), np.asarray(denominators, float)]),
                     scale)


def bleu_statistic(stats: Sequence[Sequence[float]], scale: float = 100.0) -> Statistic:
    return Statistic("bleu", np.asarray(stats, dtype=np.float64).reshape(len(stats), len(BLEU_STATS)), scale)


def resample_counts(n: int, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> np.ndarray:
    """(n_resamples, n): how often each of ``n`` items is drawn in each resample of size ``n`` with replacement."""
    if n < 1 or n_resamples < 1:
        raise ValueError(f"need n >= 1 items and n_resamples >= 1, got {n} and {n_resamples}")
    return np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_resamples)


def percentiles(values: np.ndarray, level: float = LEVEL) -> tuple[float, float] | None:
    """The central ``level`` interval of bootstrap ``values`` (non-finite ones left out; None when none is left)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    values = values[np.isfinite(values)]  # a resample can leave a ratio without any denominator
    if values.size == 0:
        return None
    tail = 100.0 * (1 - level) / 2
    lo, hi = np.percentile(values, [tail, 100.0 - tail])
    return float(lo), float(hi)


def interval(stat: Statistic, n_resamples: int = N_RESAMPLES, seed: int = SEED,
             level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``stat`` (None when no resample defines it)."""
    return percentiles(stat.weighted(resample_counts(stat.n, n_resamples, seed)), level)


def paired_interval(a: Statistic, b: Statistic, n_resamples: int = N_RESAMPLES, seed: int = SEED,
                    level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of ``a − b``, both computed on the same resamples of the same items."""
    if a.kind != b.kind or a.n != b.n or a.scale != b.scale:
        raise ValueError(f"a paired interval needs two statistics of the same kind, scale and items; got "
                         f"{a.kind}/{a.scale}/{a.n} items and {b.kind}/{b.scale}/{b.n} items")
    counts = resample_counts(a.n, n_resamples, seed)
    return percentiles(a.weighted(counts) - b.weighted(counts), level)


__all__ = ["BLEU_STATS", "LEVEL", "N_RESAMPLES", "SEED", "Statistic", "auc", "auc_statistic", "bleu_statistic",
           "corpus_bleu", "interval",
           "mean_statistic", "paired_interval", "percentiles", "ratio_statistic", "resample_counts", "weighted_auc"]

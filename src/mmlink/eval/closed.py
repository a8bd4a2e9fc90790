"""Candidate scores (`CandidateScores`, as `mmlink.eval.ranking` computes them) and the per-item scores of
closed-ended and short-answer tasks beyond top-1 accuracy, from the harness's prediction rows.

* ``retrieval`` (VisDial): the rank of the ground-truth answer among all candidates by the model's score (1 = best;
  a candidate with an equal score ranks ahead of it — ties never flatter the model): MRR, R@1/5/10, mean rank;
* ``auc`` (Hateful Memes): the margin ``score(first candidate) − score(second)``, the first candidate being the
  positive class; ROC AUC over the items (`mmlink.eval.bootstrap.weighted_auc`) and accuracy;
* ``vqa``: the standard VQA accuracy of each answer (`mmlink.eval.vqa.vqa_accuracy`).

A score is the summed or per-token log-likelihood the row stores (``--option-scoring sum|mean``); a generated
answer has no score per candidate, so these metrics need ranking (checked before anything runs).
Light: numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Sequence

import numpy as np

RETRIEVAL_METRICS = ("MRR", "R@1", "R@5", "R@10", "mean rank")


@dataclass
class CandidateScores:
    """Per candidate: summed log-likelihood and token count (candidate tokens + EOS)."""

    logprob: list[float]
    tokens: list[int]

    def scores(self, scoring: Literal["sum", "mean"] = "sum") -> list[float]:
        """Per candidate: the summed log-likelihood (``"sum"``) or its mean per token (``"mean"``)."""
        if scoring not in ("sum", "mean"):
            raise ValueError(f"scoring must be sum or mean, got {scoring!r}")
        return [lp / n for lp, n in zip(self.logprob, self.tokens)] if scoring == "mean" else list(self.logprob)

    def best(self, scoring: Literal["sum", "mean"] = "sum") -> int:
        s = self.scores(scoring)
        return max(range(len(s)), key=s.__getitem__)  # the first of equal scores



def candidate_scores(row: Mapping[str, Any], scoring: str) -> np.ndarray:
    """The row's per-candidate scores: summed log-likelihoods, or per token for ``mean``."""
    if "logprob" not in row:
        raise ValueError(f"prediction {row.get('id')!r} has no candidate log-likelihoods (answered by generation?)")
    return np.asarray(CandidateScores(row["logprob"], row["tokens"]).scores(scoring), dtype=np.float64)


def answer_rank(row: Mapping[str, Any], candidates: Sequence[str], answer: str, scoring: str) -> int:
    """1 + the candidates scoring above the answer or equal to it (the answer itself excluded)."""
    scores = candidate_scores(row, scoring)
    mine = scores[list(candidates).index(answer)]
    return int((scores >= mine).sum())


def retrieval_rows(items: Sequence[Any], rows: Mapping[str, Mapping], scoring: str) -> dict[str, list[float]]:
    """Per item (in ``items`` order): reciprocal rank, R@1, R@5, R@10 (0/1) and rank."""
    ranks = [answer_rank(rows[it.id], it.candidates, it.answer, scoring) for it in items]
    return {"MRR": [1.0 / r for r in ranks], "R@1": [float(r <= 1) for r in ranks],
            "R@5": [float(r <= 5) for r in ranks], "R@10": [float(r <= 10) for r in ranks],
            "mean rank": [float(r) for r in ranks]}


def retrieval_metrics(items: Sequence[Any], rows: Mapping[str, Mapping], scoring: str) -> dict[str, float]:
    """MRR and R@k in percent (× 100), mean rank as a rank."""
    per = retrieval_rows(items, rows, scoring)
    return {m: float(np.mean(v)) * (1.0 if m == "mean rank" else 100.0) for m, v in per.items()}


def margins(items: Sequence[Any], rows: Mapping[str, Mapping], scoring: str) -> tuple[list[float], list[float]]:
    """Per item: ``score(first) − score(second)`` and the label (1.0 when the answer is the first candidate)."""
    out, labels = [], []
    for it in items:
        scores = candidate_scores(rows[it.id], scoring)
        out.append(float(scores[0] - scores[1]))
        labels.append(float(it.answer == it.candidates[0]))
    return out, labels


def vqa_scores(items: Sequence[Any], rows: Mapping[str, Mapping]) -> list[float]:
    """Per item, the VQA accuracy (0-1) of its generated answer against its human answers."""
    from mmlink.eval.vqa import vqa_accuracy

    return [vqa_accuracy(rows[it.id]["text"], it.refs) for it in items]


__all__ = ["CandidateScores", "RETRIEVAL_METRICS", "answer_rank", "candidate_scores", "margins", "retrieval_metrics", "retrieval_rows",
           "vqa_scores"]

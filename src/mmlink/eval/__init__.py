"""Evaluation: caption metrics through pycocoevalcap (`mmlink.eval.metrics`). Light: no torch/transformers import."""

from mmlink.eval.metrics import (
    DEFAULT_METRICS,
    METRICS,
    MIN_CIDER_SET,
    EmptyPredictionWarning,
    JavaNotFoundError,
    read_predictions,
    read_references,
    score,
    score_files,
)

__all__ = [
    "DEFAULT_METRICS",
    "EmptyPredictionWarning",
    "JavaNotFoundError",
    "METRICS",
    "MIN_CIDER_SET",
    "read_predictions",
    "read_references",
    "score",
    "score_files",
]

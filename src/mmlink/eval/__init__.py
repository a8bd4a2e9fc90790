"""Evaluation. Importing this package is light (no torch/transformers); the modules that need a model import it lazily.

* `metrics`  — BLEU / ROUGE-L / CIDEr through pycocoevalcap (`mmlink score`);
* `tasks`    — the task registry (generation, candidate ranking, pair matching, LLM-judged);
* `ranking`  — candidate log-likelihoods, one forward pass per batch of questions;
* `judge`    — the LLM judge (OpenAI-compatible or local backends, versioned prompt, disk cache);
* `harness`  — `mmlink eval`: predictions.jsonl, metrics.json, report.md;
* `options`  — closed-ended answers by generation, matched to the options (``--option-scoring generate``);
* `blind`    — the gray-image control (``--blind``);
* `bootstrap`, `intervals` — percentile-bootstrap confidence intervals (one system, or a paired difference);
* `report`, `plots` — `mmlink report` comparison tables and the papers' figures;
* `bench`, `sweep`, `ablation` — `mmlink bench` (SAM Table 4), `mmlink sweep` (Fig. 5/6), `mmlink ablation` (Table 2).
"""

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

"""Evaluation. Importing this package is light (no torch/transformers); the modules that need a model import it lazily.

* `tasks`    — the task registry (generation, candidate ranking, pair matching, LLM-judged, VQA);
* `benchmarks` — readers for the released evaluation sets (``--data-root``);
* `ranking`  — candidate log-likelihoods, one forward pass per batch of questions;
* `judge`    — the LLM judge (OpenAI-compatible or local backends, versioned prompt, disk cache);
* `harness`  — `mmlink eval`: predictions.jsonl, metrics.json, report.md;
* `options`, `closed`, `vqa` — option matching, retrieval/AUC scores, VQA accuracy;
* `blind`    — the gray-image control (``--blind``);
* `bootstrap`, `intervals` — percentile-bootstrap confidence intervals (one system, or a paired difference);
* `report`, `plots` — `mmlink report` comparison tables and the papers' figures;
* `bench`    — `mmlink bench` (SAM Table 4). Caption metrics: `mmlink.metrics`; the experiments that train and then
  evaluate (`mmlink sweep`, `mmlink ablation`): `mmlink.recipes`.
"""

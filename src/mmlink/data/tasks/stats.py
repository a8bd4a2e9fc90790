"""Statistics of generated task samples: label balance and what trivial baselines score.

`task_report` tells whether a task can be solved without looking (closely) at the images:

* closed-ended tasks (samples whose meta has ``answer`` and ``choices``): the label distribution and the accuracy of
  the majority answer, of a random choice (fixed seed) and of "always the first image" (``choices[0]``, which the
  closed tasks keep as the image-1 / identity answer);
* generation tasks: target length statistics and the scores of the baseline "answer = a caption of the first image
  only" — BLEU-4, ROUGE-L and CIDEr(-D) from ``pycocoevalcap`` (SAM's protocol: lowercase, punctuation stripped, no
  PTB tokenizer, × 100), computed over the whole set; skipped with a note when pycocoevalcap is not importable or the
  set is too small for CIDEr's IDF to mean anything.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from mmlink.data.tasks import WorldSample
from mmlink.data.world.text import caption
from mmlink.metrics import simple_tokenize

MIN_SAMPLES_FOR_METRICS = 10
# Categorical meta fields worth a distribution when present.
META_KEYS = ("negative_type", "similarity", "concept_type", "about", "qtype", "variant")
_FIRST_IMAGE_CHOICES = ("1", "1-A, 2-B")


# SAM's scoring normalisation, shared with `mmlink score`.
normalize = simple_tokenize


def caption_scores(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, Any]:
    """Corpus BLEU-4, ROUGE-L and CIDEr (× 100) of ``hypotheses`` against one reference each, via
    `mmlink.metrics.score` (pycocoevalcap, SAM's ``simple`` tokenization).

    Returns ``{"BLEU-4": …, "ROUGE-L": …, "CIDEr": …}``, or ``{"note": why}`` when they cannot be computed."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if len(references) < MIN_SAMPLES_FOR_METRICS:
        return {"note": f"skipped: {len(references)} samples; CIDEr's IDF needs a whole split "
                        f"(at least {MIN_SAMPLES_FOR_METRICS})"}  # fmt: skip
    try:
        import pycocoevalcap  # noqa: F401
    except ImportError:
        return {"note": "skipped: pycocoevalcap is not installed (pip install pycocoevalcap)"}
    from mmlink.metrics import score

    try:
        out = score({i: h for i, h in enumerate(hypotheses)}, {i: [r] for i, r in enumerate(references)},
                    tokenize="simple", min_cider_set=MIN_SAMPLES_FOR_METRICS)  # fmt: skip
    except ValueError as err:  # e.g. every reference identical: CIDEr's IDF is 0
        return {"note": f"skipped: {err}"}
    out.pop("n")
    return out


def _gpt_turns(sample: WorldSample) -> list[str]:
    return [t["value"] for t in sample.conversations if t["from"] == "gpt"]


def _length_stats(texts: Sequence[str]) -> dict[str, float]:
    lens = np.array([len(t.split()) for t in texts], dtype=float)
    if not len(lens):
        return {}
    return {"mean": float(lens.mean()), "std": float(lens.std()), "min": float(lens.min()),
            "median": float(np.median(lens)), "max": float(lens.max())}  # fmt: skip


def _closed_report(answers: list[str], choices: list[str], seed: int) -> dict[str, Any]:
    n = len(answers)
    counts = Counter(answers)
    dist = {c: counts.get(c, 0) for c in choices}
    dist.update({a: c for a, c in counts.items() if a not in dist})
    majority = max(dist, key=lambda c: (dist[c], -list(dist).index(c)))
    rng = np.random.default_rng(seed)
    random_preds = [choices[int(k)] for k in rng.integers(len(choices), size=n)]
    baselines: dict[str, Any] = {
        "majority": {"answer": majority, "accuracy": dist[majority] / n},
        "random": {"seed": seed, "accuracy": sum(p == a for p, a in zip(random_preds, answers)) / n},
    }
    if choices[0] in _FIRST_IMAGE_CHOICES:
        baselines["first_image"] = {"answer": choices[0], "accuracy": dist[choices[0]] / n}
    else:
        baselines["first_image"] = None  # no answer means "image 1" (e.g. True/False statements)
        baselines["first_choice"] = {"answer": choices[0], "accuracy": dist[choices[0]] / n}
    return {
        "label_distribution": dist,
        "label_fractions": {c: v / n for c, v in dist.items()},
        "chance": 1 / len(choices),
        "baselines": baselines,
    }


def task_report(task_name: str, samples: Sequence[WorldSample], seed: int = 0) -> dict[str, Any]:
    """Label balance and trivial-baseline scores of a list of samples of one task (see the module docstring)."""
    samples = list(samples)
    n = len(samples)
    report: dict[str, Any] = {"task": task_name, "n": n}
    if not n:
        report["kind"] = "empty"
        return report
    report["images_per_sample"] = _length_stats(["x " * len(s.scenes) for s in samples])
    meta_dists = {}
    for key in META_KEYS:
        vals = [s.meta[key] for s in samples if key in s.meta and isinstance(s.meta[key], str)]
        if vals:
            meta_dists[key] = dict(sorted(Counter(vals).items()))
    if meta_dists:
        report["meta_distributions"] = meta_dists

    closed = all("answer" in s.meta and "choices" in s.meta for s in samples)
    if closed:
        report["kind"] = "closed"
        choices = [str(c) for c in samples[0].meta["choices"]]
        report.update(_closed_report([str(s.meta["answer"]) for s in samples], choices, seed))
        return report

    report["kind"] = "generation"
    targets = [_gpt_turns(s)[0] for s in samples]
    report["target_words"] = _length_stats(targets)
    rng = np.random.default_rng(seed)
    hyps = [caption(s.scenes[0], rng) for s in samples]
    report["baseline_first_image_caption"] = {"words": _length_stats(hyps), **caption_scores(targets, hyps)}
    if all("retrieval_answer" in s.meta for s in samples):  # CaD's second turn is closed-ended
        report["retrieval"] = _closed_report([str(s.meta["retrieval_answer"]) for s in samples], ["1", "2"], seed)
    return report


def generate(task_name: str, split: str = "train", n: int = 300, seed: int = 0) -> list[WorldSample]:
    """``n`` samples of a registered task, sample ``i`` from ``rng_for(split, seed, i, task_name)``."""
    from mmlink.data.tasks import TASKS
    from mmlink.data.world.scene import rng_for

    fn = TASKS.get(task_name)
    return [fn(rng_for(split, seed, i, task_name), split) for i in range(n)]


__all__ = ["MIN_SAMPLES_FOR_METRICS", "caption_scores", "generate", "normalize", "task_report"]

"""Shared fixtures of the evaluation tests."""

from __future__ import annotations

import random

import pytest

WORDS = "a red ball blue cube sits on the table near green tree small dog runs".split()


def _captions(n=40, seed=0):
    """References and predictions that share many n-grams (BLEU-4 far from 0) but not all."""
    rng = random.Random(seed)
    refs, preds = {}, {}
    for i in range(n):
        base = rng.choices(WORDS, k=rng.randint(5, 10))
        refs[f"s{i}"] = [" ".join(base), " ".join(base[1:] + rng.choices(WORDS, k=2))]
        pred = list(base)
        for _ in range(rng.randint(0, 3)):
            pred[rng.randrange(len(pred))] = rng.choice(WORDS)
        preds[f"s{i}"] = " ".join(pred[: rng.randint(3, len(pred))])
    return preds, refs


@pytest.fixture
def noisy_captions():
    """``(n=40, seed=0) -> (predictions, references)``: captions sharing many n-grams (BLEU-4 far from 0), not all."""
    return _captions

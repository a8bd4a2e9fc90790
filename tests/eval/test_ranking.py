"""Candidate ranking: the batched, left-padded, logits-trimmed score equals a log-likelihood computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmlink.eval.ranking import CandidateScores, score_candidates
from mmlink.models import load


@pytest.fixture(scope="module")
def tiny():
    model, processor = load("tiny")
    return model.eval(), processor


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("img")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def _by_hand(model, processor, turns, images, candidate):
    """Σ log softmax(logits[t-1])[id_t] over the candidate's labelled tokens, one unpadded row, full logits."""
    batch = processor.encode_conversation([[*turns, {"from": "gpt", "value": candidate}]], [images])
    labels = batch.pop("labels")[0]
    with torch.no_grad():
        logits = model(**batch).logits[0].double()
    ids = batch["input_ids"][0]
    total, count = 0.0, 0
    for t in range(1, len(ids)):
        if labels[t] != -100:
            total += torch.log_softmax(logits[t - 1], -1)[ids[t]].item()
            count += 1
    return total, count


def test_batched_scores_equal_hand_computed_log_likelihood(tiny, images):
    model, processor = tiny
    turns = [
        [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nWhich one? Answer 1 or 2."}],
        [{"from": "human", "value": "Image 1: <image>\nIs it true?"}],
    ]
    imgs = [images[:2], images[2:]]
    # Candidates of very different lengths: rows get different amounts of left padding.
    cands = [["1", "two and more"], ["True", "False", "maybe not at all"]]
    result = score_candidates(model, processor, turns, imgs, cands)
    assert len(result) == 2 and [len(r.logprob) for r in result] == [2, 3]
    for t, im, cs, r in zip(turns, imgs, cands, result):
        for c, lp, n in zip(cs, r.logprob, r.tokens):
            want, count = _by_hand(model, processor, t, im, c)
            assert n == count == len(c.encode()) + 1  # tiny's byte tokenizer: one token per byte, plus EOS
            torch.testing.assert_close(lp, want, rtol=1e-5, atol=1e-4)


def test_a_question_scores_the_same_alone_and_in_a_batch(tiny, images):
    model, processor = tiny
    t = [{"from": "human", "value": "Image 1: <image>\nName it."}]
    alone = score_candidates(model, processor, [t], [images[:1]], [["cat", "a dog"]])[0]
    mixed = score_candidates(
        model, processor,
        [[{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nA much longer prompt here."}], t],
        [images[1:], images[:1]], [["x", "yy"], ["cat", "a dog"]],
    )[1]
    torch.testing.assert_close(mixed.logprob, alone.logprob, rtol=1e-5, atol=1e-4)


def test_length_norm_divides_by_the_candidates_own_token_count():
    s = CandidateScores(logprob=[-3.0, -4.0], tokens=[1, 4])
    assert s.scores() == [-3.0, -4.0] and s.best() == 0
    assert s.scores(length_norm=True) == [-3.0, -1.0] and s.best(length_norm=True) == 1


def test_mismatched_inputs_are_errors(tiny, images):
    model, processor = tiny
    t = [{"from": "human", "value": "<image> Name it."}]
    with pytest.raises(ValueError, match="prompts"):
        score_candidates(model, processor, [t, t], [images[:1]], [["a"]])
    with pytest.raises(ValueError, match="no candidates"):
        score_candidates(model, processor, [t], [images[:1]], [[]])

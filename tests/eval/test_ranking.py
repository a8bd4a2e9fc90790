"""Candidate ranking: the batched, left-padded, logits-trimmed score equals a log-likelihood computed by hand, and
each question's images go through the vision tower and the Q-Former once, whatever its number of candidates."""

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


# ------------------------------------------------------------------ image features once per question

# 3 questions x 4 candidates, with 2, 1 and 3 images: rows of one question share its images.
TURNS = [
    [{"from": "human", "value": "Image 1: <image>\nImage 2: <image>\nWhich one? Answer 1 or 2."}],
    [{"from": "human", "value": "<image> Is it true?"}],  # no placeholder: the InstructBLIP layout, images first
    [{"from": "human", "value": "A: <image> B: <image> C: <image>\nWhich is the odd one out?"}],
]
CANDS = [["1", "2", "neither of the two", "both"], ["True", "False", "maybe not at all", "no"], ["A", "B", "C", "none"]]
T5_TEXT = dict(
    model_type="t5", vocab_size=260, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
    decoder_start_token_id=0, pad_token_id=0, eos_token_id=2, feed_forward_proj="gated-gelu",
)


@pytest.fixture(scope="module", params=["decoder-only", "encoder-decoder"])
def tiny_sam(request):
    """Tiny models with random (not zero) SAM layers, so that an image's features depend on which images share its
    question: a row given another question's images would score differently."""
    overrides = {} if request.param == "decoder-only" else {"text_config": T5_TEXT}
    model, processor = load("tiny", **overrides)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.sam.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return model.eval(), processor


def _question_images(images):
    return [images[:2], images[2:], images[:3]]


def _per_row_scores(model, processor, turns, images, candidates):
    """The straightforward way: one row per candidate holding its question's images (pixel values per row, so the
    vision tower and the Q-Former run once per candidate), right-padded, full logits."""
    convs = [[*t, {"from": "gpt", "value": c}] for t, cs in zip(turns, candidates) for c in cs]
    imgs = [im for im, cs in zip(images, candidates) for _ in cs]
    batch = processor.encode_conversation(convs, imgs, padding_side="right")
    labels = batch.pop("labels")
    with torch.no_grad():
        if model.config.use_decoder_only_language_model:
            logits, targets = model(**batch).logits[:, :-1], labels[:, 1:]  # position t predicts token t+1
        else:  # T5 shifts the labels into its decoder input itself
            logits, targets = model(**batch, labels=labels).logits, labels
    keep = targets != -100
    token_logprob = torch.log_softmax(logits.double(), -1).gather(-1, targets.clamp(min=0)[..., None])[..., 0]
    sums, counts = (token_logprob * keep).sum(1).tolist(), keep.sum(1).tolist()
    out, row = [], 0
    for cs in candidates:
        out.append((sums[row : row + len(cs)], counts[row : row + len(cs)]))
        row += len(cs)
    return out


def test_each_questions_images_run_once_through_the_vision_tower_and_the_qformer(tiny_sam, images):
    model, processor = tiny_sam
    seen = {"vision": [], "qformer": []}  # images per call
    hooks = [
        model.vision_model.register_forward_hook(lambda m, a, out: seen["vision"].append(out[0].shape[0])),
        model.qformer.embeddings.register_forward_hook(lambda m, a, out: seen["qformer"].append(out.shape[0])),
    ]
    try:
        result = score_candidates(model, processor, TURNS, _question_images(images), CANDS)
    finally:
        for h in hooks:
            h.remove()
    assert seen == {"vision": [6], "qformer": [6]}  # 2 + 1 + 3 images, one call each, not 4 x 6 rows
    assert [len(r.logprob) for r in result] == [4, 4, 4]


def test_scores_equal_the_per_row_computation(tiny_sam, images):
    model, processor = tiny_sam
    imgs = _question_images(images)
    result = score_candidates(model, processor, TURNS, imgs, CANDS)
    for r, (want, counts) in zip(result, _per_row_scores(model, processor, TURNS, imgs, CANDS)):
        assert r.tokens == counts
        torch.testing.assert_close(r.logprob, want, rtol=1e-5, atol=1e-4)


def test_mean_scoring_divides_by_the_candidates_own_token_count():
    s = CandidateScores(logprob=[-3.0, -4.0], tokens=[1, 4])
    assert s.scores() == [-3.0, -4.0] and s.best() == 0 and s.best("sum") == 0
    assert s.scores("mean") == [-3.0, -1.0] and s.best("mean") == 1
    with pytest.raises(ValueError, match="scoring must be sum or mean"):
        s.best("generate")  # generation is the harness's job, not a way to rank candidates


def test_mismatched_inputs_are_errors(tiny, images):
    model, processor = tiny
    t = [{"from": "human", "value": "<image> Name it."}]
    with pytest.raises(ValueError, match="prompts"):
        score_candidates(model, processor, [t, t], [images[:1]], [["a"]])
    with pytest.raises(ValueError, match="no candidates"):
        score_candidates(model, processor, [t], [images[:1]], [[]])

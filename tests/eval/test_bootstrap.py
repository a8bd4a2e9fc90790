"""mmlink.eval.bootstrap and metrics.per_item_scores: intervals of the corpus metrics the harness reports."""

from __future__ import annotations

import random

import numpy as np
import pytest

from mmlink.eval.bootstrap import (
    BLEU_STATS,
    Statistic,
    bleu_statistic,
    corpus_bleu,
    interval,
    mean_statistic,
    paired_interval,
    ratio_statistic,
    resample_counts,
)
from mmlink.eval.intervals import intervals, paired_intervals, task_statistics
from mmlink.metrics import per_item_scores, score
from mmlink.eval.tasks import Item

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


def test_per_item_statistics_reproduce_pycocoevalcaps_corpus_scores_exactly():
    preds, refs = _captions()
    corpus = score(preds, refs)
    items = per_item_scores(preds, refs)
    assert items.ids == sorted(preds) and len(items.bleu[0]) == len(BLEU_STATS)
    assert corpus["BLEU-4"] > 10  # a BLEU-4 of ~0 would make the equality below trivial
    # BLEU-4 from the summed sufficient statistics is pycocoevalcap's corpus BLEU-4, bit for bit
    assert bleu_statistic(items.bleu).value() == corpus["BLEU-4"]
    assert 100.0 * corpus_bleu(np.sum(items.bleu, axis=0)) == corpus["BLEU-4"]
    # CIDEr-D with the whole set's IDF: the corpus CIDEr is exactly the mean of the per-item scores
    assert mean_statistic(items.cider).value() == corpus["CIDEr"]
    assert mean_statistic(items.rouge_l).value() == corpus["ROUGE-L"]
    # and not the mean of per-item BLEU (corpus BLEU is what is resampled)
    per_item_bleu = np.mean([100 * corpus_bleu(row) for row in items.bleu])
    assert abs(per_item_bleu - corpus["BLEU-4"]) > 0.1


def test_intervals_contain_the_point_estimate_and_narrow_with_more_items():
    preds, refs = _captions(n=60)
    items = per_item_scores(preds, refs)
    for stat in (bleu_statistic(items.bleu), mean_statistic(items.cider), mean_statistic(items.rouge_l)):
        lo, hi = interval(stat)
        assert lo < stat.value() < hi
    coin = np.random.default_rng(1).integers(0, 2, 400).astype(float)
    small, large = interval(mean_statistic(coin[:40])), interval(mean_statistic(coin))
    assert small[0] < 100 * coin[:40].mean() < small[1]
    assert large[1] - large[0] < small[1] - small[0]
    # a fixed seed: the same interval every time
    assert interval(mean_statistic(coin)) == large


def test_paired_interval_of_a_system_with_itself_is_zero_and_a_real_difference_excludes_zero():
    preds, refs = _captions()
    items = per_item_scores(preds, refs)
    for make, rows in ((bleu_statistic, items.bleu), (mean_statistic, items.cider)):
        assert paired_interval(make(rows), make(rows)) == (0.0, 0.0)
    better = np.ones(50)
    worse = np.r_[np.ones(40), np.zeros(10)]
    lo, hi = paired_interval(mean_statistic(better), mean_statistic(worse))
    assert 0 < lo <= 20.0 <= hi
    # the pairing matters: per-item scores that vary a lot, one system 0.05 better on every item — the two
    # separate intervals overlap, the paired interval of the difference is the constant 5 (x 100)
    spread = np.random.default_rng(0).uniform(0.1, 0.9, 40)
    a, b = mean_statistic(spread + 0.05), mean_statistic(spread)
    assert interval(b)[1] > interval(a)[0]
    assert paired_interval(a, b) == pytest.approx((5.0, 5.0))


def test_ratio_statistic_sums_before_dividing():
    stat = ratio_statistic([1, 0, 3], [1, 0, 4])  # an item that mentions nothing weighs nothing
    assert stat.value() == pytest.approx(100 * 4 / 5)
    assert interval(ratio_statistic([0, 0], [0, 0])) is None  # never defined
    lo, hi = interval(stat)
    assert lo <= stat.value() <= hi


def test_resamples_are_draws_with_replacement():
    counts = resample_counts(7, 500, seed=3)
    assert counts.shape == (500, 7) and (counts.sum(1) == 7).all() and (counts >= 0).all()
    assert (counts == 0).any()  # with replacement: some items are left out of some resamples


def test_bad_statistics_are_refused():
    with pytest.raises(ValueError, match="kind must be"):
        Statistic("median", np.ones(3))
    with pytest.raises(ValueError, match=r"shape \(n, 10\)"):
        Statistic("bleu", np.ones((3, 4)))
    with pytest.raises(ValueError, match="at least one item"):
        mean_statistic([])
    with pytest.raises(ValueError, match="finite"):
        mean_statistic([1.0, float("nan")])
    with pytest.raises(ValueError, match="same kind"):
        paired_interval(mean_statistic([1, 0]), mean_statistic([1, 0, 1]))


def test_task_statistics_follow_the_harness_metrics():
    preds, refs = _captions(n=20)
    items = [Item(i, i, ["x.png"], [], refs=refs[i]) for i in preds]
    rows = {i: {"text": preds[i]} for i in preds}
    stats = task_statistics("generate", items, rows)
    corpus = score(preds, refs)
    reported = {k: corpus[k] for k in ("ROUGE-L", "CIDEr", "BLEU-4")}
    ci = intervals(reported, stats)
    assert set(ci) == set(reported) and all(lo <= reported[m] <= hi for m, (lo, hi) in ci.items())
    # a reported number the statistics do not reproduce gets no interval (and a warning), never a wrong one
    with pytest.warns(RuntimeWarning, match="no confidence interval for 'CIDEr'"):
        assert "CIDEr" not in intervals({**reported, "CIDEr": reported["CIDEr"] / 100}, stats)
    # pair_match: a sample counts once, right only when both of its items are
    pm = [Item(f"{s}#{k}", s, [], [], candidates=["A", "B"], answer="A", part=k) for s in "xyz" for k in (1, 2)]
    ok = {"x#1": True, "x#2": True, "y#1": True, "y#2": False, "z#1": False, "z#2": False}
    acc = task_statistics("pair_match", pm, {i: {"correct": c} for i, c in ok.items()})["accuracy"]
    assert acc.n == 3 and acc.value() == pytest.approx(100 / 3)
    judged = task_statistics("judge", items[:3], rows, judgements={items[0].id: 4, items[1].id: None,
                                                                   items[2].id: 2})["rating"]
    assert judged.value() == 3.0  # failures stay out of the mean, as in the report
    assert paired_intervals(stats, stats, ["CIDEr", "accuracy"]) == {"CIDEr": [0.0, 0.0]}

"""mmlink.eval.bootstrap and metrics.per_item_scores: intervals of the corpus metrics the harness reports."""

from __future__ import annotations


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
from mmlink.metrics import per_item_scores, score


def test_per_item_statistics_reproduce_pycocoevalcaps_corpus_scores_exactly(noisy_captions):
    preds, refs = noisy_captions()
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


def test_intervals_contain_the_point_estimate_and_narrow_with_more_items(noisy_captions):
    preds, refs = noisy_captions(n=60)
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


def test_paired_interval_of_a_system_with_itself_is_zero_and_a_real_difference_excludes_zero(noisy_captions):
    preds, refs = noisy_captions()
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

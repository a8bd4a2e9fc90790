"""mmlink.eval.intervals: per-item statistics of each task kind that reproduce the harness's metrics, the intervals
of reported metrics (none for a number the statistics do not reproduce), paired intervals, and judgements files."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from mmlink.data.world.scene import Scene, Thing, scene_to_dict
from mmlink.eval.bootstrap import mean_statistic, ratio_statistic
from mmlink.eval.intervals import (
    FACT_PRECISION,
    FACT_RECALL,
    intervals,
    paired_intervals,
    read_judgements,
    task_statistics,
)
from mmlink.eval.tasks import Item
from mmlink.metrics import score


def test_task_statistics_follow_the_harness_metrics(noisy_captions):
    preds, refs = noisy_captions(n=20)
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


def test_vqa_accuracy_is_the_mean_of_per_item_accuracies():
    humans = ["cat"] * 2 + ["dog"] * 8
    items = [Item(f"q{i}", f"q{i}", ["x.png"], [], refs=humans) for i in range(3)]
    rows = {"q0": {"text": "dog"}, "q1": {"text": "Cat"}, "q2": {"text": "bird"}}
    stat = task_statistics("vqa", items, rows)["VQA accuracy"]
    # dog: 8 humans, min(1, 7 or 8 / 3) = 1; cat: 2 humans, (2 x 1/3 + 8 x 2/3) / 10 = 0.6; bird: 0
    assert stat.rows.tolist() == pytest.approx([1.0, 0.6, 0.0]) and stat.value() == pytest.approx(160 / 3)


def _ranked(scores_by_item, answers):
    items = [Item(i, i, ["x.png"], [], candidates=["A", "B", "C"], answer=answers[i]) for i in scores_by_item]
    rows = {i: {"logprob": s, "tokens": [1, 1, 1], "correct": s.index(max(s)) == "ABC".index(answers[i])}
            for i, s in scores_by_item.items()}
    return items, rows


def test_rank_by_retrieval_gives_reciprocal_ranks_hits_and_mean_rank():
    items, rows = _ranked({"b": [-3.0, -1.0, -2.0], "a": [-1.0, -2.0, -3.0]}, {"a": "A", "b": "C"})
    stats = task_statistics("rank", items, rows, metric="retrieval")
    assert set(stats) == {"MRR", "R@1", "R@5", "R@10", "mean rank"}
    assert stats["MRR"].rows.tolist() == [1.0, 0.5]  # items sorted by id: a (rank 1), b (rank 2)
    assert stats["MRR"].value() == 75.0 and stats["R@1"].value() == 50.0 and stats["R@5"].value() == 100.0
    assert stats["mean rank"].value() == 1.5 and stats["mean rank"].scale == 1.0


def test_rank_by_auc_gives_the_auc_of_the_margins_and_accuracy():
    items, rows = _ranked({"p1": [-1.0, -3.0, 0.0], "p2": [-2.0, -2.5, 0.0], "n1": [-2.2, -2.0, 0.0],
                           "n2": [-1.0, -1.5, 0.0]}, {"p1": "A", "p2": "A", "n1": "B", "n2": "B"})
    for it in items:
        it.candidates = it.candidates[:2]
    rows = {i: {**r, "correct": r["logprob"][0] > r["logprob"][1] if i.startswith("p") else
                r["logprob"][1] > r["logprob"][0]} for i, r in rows.items()}
    stats = task_statistics("rank", items, rows, metric="auc")
    # margins: p1 2.0, p2 0.5 (positives), n1 -0.2, n2 0.5 (negatives): P(pos > neg) + tie / 2 = (2 + 1 + 0.5) / 4
    assert stats["AUC"].value() == pytest.approx(100 * 3.5 / 4)
    assert stats["accuracy"].value() == 75.0  # n2 ranks its wrong first candidate higher


def test_pair_match_and_rank_accuracy_count_samples():
    items = [Item(f"{s}#{k}", s, [], [], candidates=["A", "B"], answer="A", part=k) for s in "ab" for k in (1, 2)]
    rows = {"a#1": {"correct": True}, "a#2": {"correct": True}, "b#1": {"correct": True}, "b#2": {"correct": 0}}
    assert task_statistics("rank", items, rows)["accuracy"].rows.tolist() == [1.0, 0.0]


def test_fact_precision_and_recall_pool_the_counts_of_items_with_scene_graphs():
    scene = scene_to_dict(Scene("beach", (Thing("ball", "red", 0.5, 0.7, 0.1),), 1.0, 0))
    texts = {"i1": "There is a red ball on the beach.", "i2": "There is a blue ball on the beach.", "i3": "Nothing."}
    items = [Item(i, i, ["x.png"], [], refs=["A red ball on the beach."], scenes=[scene]) for i in texts]
    rows = {i: {"text": t} for i, t in texts.items()}
    stats = task_statistics("generate", items, rows)
    # context, object and colour facts: 3 of 3 right, 2 of 3 (a wrong colour), none stated of 3
    assert stats[FACT_PRECISION].value() == pytest.approx(100 * 5 / 6)
    assert stats[FACT_RECALL].value() == pytest.approx(100 * 5 / 9)
    judged = task_statistics("judge", items, rows, judgements={"i1": 5.0, "i2": 1.0, "i3": None})
    assert judged["rating"].value() == 3.0 and judged[FACT_RECALL].value() == pytest.approx(100 * 5 / 9)
    without = [Item(i, i, ["x.png"], [], refs=["A red ball."]) for i in texts]
    assert FACT_PRECISION not in task_statistics("generate", without, rows)  # no scene graphs, no fact metrics


def test_kinds_without_statistics_give_none():
    items = [Item("a", "a", [], [], refs=["x"])]
    assert task_statistics("judge", items, {"a": {"text": "x"}}) == {}  # no judgements
    assert task_statistics("unknown", items, {"a": {"text": "x"}}) == {}


def test_intervals_only_for_reported_numbers_the_statistics_reproduce():
    stats = {"accuracy": mean_statistic([1.0] * 30), "rating": ratio_statistic([4, 2], [1, 1], scale=1.0)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing or non-numeric value is no disagreement: no warning
        got = intervals({"accuracy": 100.0, "rating": "n/a", "CIDEr": 5.0, "BLEU-4": None}, stats)
        assert got == {"accuracy": [100.0, 100.0]}  # every resample of all-correct items is 100
        assert intervals({"accuracy": True}, stats) == {}  # a bool is not a score
        assert intervals({"accuracy": 100.0 + 1e-5}, stats) == {"accuracy": [100.0, 100.0]}  # within tolerance
    assert intervals({"rating": 3.0}, stats) == {"rating": [2.0, 4.0]}  # two items: every resample is 2, 3 or 4
    nan = {"facts": ratio_statistic([0], [0])}  # no denominator: the value is NaN, never an interval
    assert intervals({"facts": 0.0}, nan) == {}


def test_a_coin_flip_interval_matches_the_normal_approximation():
    flips = np.random.default_rng(3).integers(0, 2, 400).astype(float)
    p = flips.mean()
    (lo, hi), = intervals({"accuracy": 100 * p}, {"accuracy": mean_statistic(flips)}).values()
    half = 100 * 1.96 * np.sqrt(p * (1 - p) / len(flips))  # the 95 % normal interval: about ±4.9 points
    assert lo == pytest.approx(100 * p - half, abs=0.8) and hi == pytest.approx(100 * p + half, abs=0.8)


def test_paired_intervals_follow_the_requested_order_and_common_metrics():
    a = {"x": mean_statistic([1.0, 1.0, 0.0]), "y": mean_statistic([0.5] * 3), "z": mean_statistic([1.0] * 3)}
    b = {"y": mean_statistic([0.25] * 3), "x": mean_statistic([0.0, 1.0, 0.0]), "w": mean_statistic([0.0] * 3)}
    assert list(paired_intervals(a, b)) == ["x", "y"]  # a's order, metrics both have
    got = paired_intervals(a, b, ["y", "x", "w"])
    assert list(got) == ["y", "x"] and got["y"] == [25.0, 25.0]
    lo, hi = got["x"]
    assert 0.0 <= lo <= hi <= 100.0 and (lo, hi) != (0.0, 0.0)  # item 1 differs: 0 or 1 of 3 per resample x 100


def test_read_judgements_of_one_task(tmp_path):
    path = tmp_path / "judgements.jsonl"
    assert read_judgements(path, "t") == {}
    rows = [{"task": "t", "id": "a", "rating": 4}, {"task": "t", "id": "b", "rating": 2, "failed": True},
            {"task": "u", "id": "a", "rating": 1}, {"task": "t", "id": "c"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    assert read_judgements(path, "t") == {"a": 4, "b": None, "c": None}
    assert read_judgements(path, "u") == {"a": 1}

"""mmlink.eval.judge_check: the AUC (hand-worked), wrong answers that are certainly wrong, paraphrases that are right,
the flag, the files written, and the AUC in eval reports."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from mmlink.data.tasks import TASKS
from mmlink.data.world.scene import COLORS, rng_for
from mmlink.eval import report
from mmlink.eval.judge import PROMPT_VERSION, Judge, check_path, parse_rating
from mmlink.eval.judge_check import (
    KINDS,
    CheckConfig,
    auc,
    bootstrap_auc,
    change_fact,
    main,
    paraphrase,
    run_check,
    world_items,
)
from mmlink.textllm import TemplateLLM, TextLLM


def brute_force_auc(pos, neg):
    pairs = list(itertools.product(pos, neg))
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


# --------------------------------------------------------------------------- AUC


def test_auc_hand_worked() -> None:
    # right answers rated 5, 4, 3; wrong ones 3, 1. Of the 6 (right, wrong) pairs: 5>3, 5>1, 4>3, 4>1, 3>1 and one
    # tie 3=3 worth a half: (5 + 0.5) / 6.
    assert auc([5, 4, 3], [3, 1]) == pytest.approx(5.5 / 6)
    assert auc([5, 5], [0, 0, 0]) == 1.0
    assert auc([0], [5]) == 0.0
    assert auc([3, 3], [3, 3, 3]) == 0.5  # a judge that gives one rating to everything is at chance
    assert auc([], [1]) is None and auc([1], []) is None


def test_auc_matches_brute_force_with_ties() -> None:
    r = np.random.default_rng(0)
    for _ in range(20):
        pos, neg = r.integers(0, 6, r.integers(1, 30)), r.integers(0, 6, r.integers(1, 30))
        assert auc(pos, neg) == pytest.approx(brute_force_auc(pos, neg))


def test_bootstrap_interval_brackets_the_auc() -> None:
    ratings = {"reference": [5, 4, 5, 3, 5, 4], "other_item": [0, 1, 0, 3, 1, 0], "fact_changed": [4, 2, 5, 1, 3, 2]}
    lo, hi = bootstrap_auc(ratings, ("other_item", "fact_changed"), 500)
    value = auc(ratings["reference"], ratings["other_item"] + ratings["fact_changed"])
    assert 0 <= lo <= value <= hi <= 1
    assert bootstrap_auc(ratings, ("other_item",), 0) is None


# --------------------------------------------------------------------------- answers from the world


@pytest.fixture(scope="module")
def items():
    return world_items(60, "test", 0)


def _sample(i: int):
    return TASKS.get("cad_qa")(rng_for("test", 0, i, stream="cad_qa"), "test")


def test_fact_changed_answers_are_certainly_wrong(items) -> None:
    assert sum(it.changed is not None for it in items) == len(items)  # every item got a wrong variant
    for i, it in enumerate(items):
        sample = _sample(i)
        assert it.reference == sample.meta["answer"] and it.changed != it.reference
        facts, change = sample.meta["facts"], it.change
        if change.startswith("colour") and "absent" in change:
            new = change.split("-> ")[1].split(" ")[0]
            present = {o.color for s in sample.scenes for o in s.things}
            present |= {c for s in sample.scenes for o in s.characters
                        for c in (o.identity.color, o.identity.pattern_color)}
            assert new in COLORS and new not in present and re.search(rf"\b{new}\b", it.changed)
        elif change.startswith("colour"):
            new = change.split("-> ")[1]
            assert new not in (facts.get("colors") or [facts.get("color")])
        elif change.startswith("count"):
            new = int(change.split("-> ")[1].split()[0])
            assert new not in (facts.get("counts") or [facts.get("count")])
        elif change.startswith("action"):
            assert change.split("-> ")[1] not in (facts.get("actions") or [facts.get("action")])
        elif change.startswith("place"):
            assert change.split("-> ")[1] != facts["location"][0]
        elif change.startswith("setting"):
            assert change.split("-> ")[1] not in facts["contexts"]
        else:
            assert change.startswith("object") and "absent" in change
            new = change.split("-> ")[1].split(" ")[0]
            assert new not in {t.kind for s in sample.scenes for t in s.things}


def test_change_fact_examples() -> None:
    """The swaps read as the reference with one fact changed."""
    seen = {}
    for i in range(60):
        sample = _sample(i)
        changed = change_fact(sample, np.random.default_rng(i))
        seen.setdefault(sample.meta["qtype"], (sample.meta["answer"], changed))
    ref, (changed, what) = seen["count_one"]
    if ref.startswith("There is one"):
        assert changed.startswith("There are ")  # the verb follows the new count
    ref, (changed, what) = seen["color_one"]
    assert ref.split()[:-1] == changed.split()[:-1] and what.startswith("colour")


def test_paraphrases_keep_every_fact(items) -> None:
    assert sum(it.paraphrase is not None for it in items) >= 0.9 * len(items)
    for i, it in enumerate(items):
        if it.paraphrase is None:
            continue
        assert it.paraphrase != it.reference
        # the facts the checks above swap are all still there: colours, kinds, and numbers (as words or digits)
        for word in re.findall(r"\b[a-z]+\b", it.reference.lower()):
            if word in COLORS:
                assert re.search(rf"\b{word}\b", it.paraphrase.lower()), (it.reference, it.paraphrase)
    assert paraphrase("There are two trees in each image.", np.random.default_rng(0)) == (
        "There are 2 trees in both images.")
    assert paraphrase("The first image is set at the beach.", np.random.default_rng(0)).startswith("Image 1 is set")
    assert paraphrase("Hello.", np.random.default_rng(0)) is None


def test_other_item_answers_another_question(items) -> None:
    by_id = {it.id: it for it in items}
    for it in items:
        assert it.other.lower() != it.reference.lower()
    assert len(by_id) == len(items)


# --------------------------------------------------------------------------- the check


class OracleJudge(TextLLM):
    """Rates 5 exactly when the prediction is the item's reference or its paraphrase, 0 otherwise: a perfect judge."""

    name, weak = "fake:oracle", False

    def __init__(self, right: set[tuple[str, str]]):
        self.right = right  # (reference, right answer)

    def complete(self, prompt, system=None):
        reference = prompt.split("Reference answer: ", 1)[1].split("\nPredicted answer: ", 1)[0]
        prediction = prompt.split("Predicted answer: ", 1)[1].split("\n\nRate the predicted", 1)[0]
        return "Rating: 5" if (reference, prediction) in self.right else "Rating: 0"


class ConstantJudge(TextLLM):
    name, weak = "fake:constant", False

    def complete(self, prompt, system=None):
        return "Rating: 3"


def test_a_perfect_judge_passes_and_a_constant_one_is_flagged(tmp_path: Path, items) -> None:
    n = 30
    right = {(it.reference, x) for it in items[:n] for x in (it.reference, it.paraphrase) if x}
    good = run_check(CheckConfig(out=str(tmp_path / "good"), n=n, bootstrap=50, progress=False),
                     judge=Judge(OracleJudge(right), tmp_path / "cache"))
    assert good["auc"] == 1.0 and good["auc_worst"] == 1.0 and good["flagged"] is False
    assert good["mean_ratings"] == {"reference": 5.0, "paraphrase": 5.0, "other_item": 0.0, "fact_changed": 0.0}
    assert good["auc_ci"] == [1.0, 1.0]
    flat = run_check(CheckConfig(out=str(tmp_path / "flat"), n=n, bootstrap=50, progress=False),
                     judge=Judge(ConstantJudge(), tmp_path / "cache"))
    assert flat["auc"] == 0.5 and flat["flagged"] is True
    assert check_path(tmp_path / "cache", "fake:constant").exists()  # recorded in the given judge's cache


def test_template_judge_is_flagged_where_it_cannot_see_facts(tmp_path: Path) -> None:
    """Word overlap ranks the verbatim reference first (AUC > 0.8) but a paraphrase below a one-fact change."""
    result = run_check(CheckConfig(out=str(tmp_path / "out"), backend="template", n=40, bootstrap=100,
                                   cache=str(tmp_path / "cache"), progress=False))
    assert result["backend"] == "template" and result["weak"] is True and result["failures"] == 0
    assert result["auc"] > 0.8 and result["auc_table"]["reference"]["other_item"] > 0.95
    assert result["auc_table"]["paraphrase"]["fact_changed"] < 0.8 and result["flagged"] is True
    assert result["mean_ratings"]["reference"] == 5.0
    assert result["mean_ratings"]["fact_changed"] > result["mean_ratings"]["other_item"]
    # files: JSON with every item, markdown with the verdict; the summary recorded beside the judge's cache
    data = json.loads((tmp_path / "out" / "judge_check.json").read_text())
    assert len(data["items"]) == 40 and set(data["items"][0]["ratings"]) == set(KINDS)
    assert all(parse_rating(r) is not None for it in data["items"] for r in it["responses"].values())
    text = (tmp_path / "out" / "judge_check.md").read_text()
    assert "**FLAGGED" in text and "| paraphrase |" in text
    recorded = json.loads(check_path(tmp_path / "cache", "template").read_text())
    assert recorded["auc"] == result["auc"] and recorded["prompt_version"] == PROMPT_VERSION
    assert Judge(TemplateLLM(), tmp_path / "cache").discrimination()["flagged"] is True


def test_command_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "jc"
    assert main(["--backend", "template", "--n", "10", "--out", str(out), "--cache", str(tmp_path / "c"),
                 "--no-progress"]) == 0
    assert "Judge check: `template`" in capsys.readouterr().out and (out / "judge_check.md").exists()
    assert main(["--backend", "gpt4", "--out", str(out)]) == 2
    assert "valid: template, local" in capsys.readouterr().err
    with pytest.raises(ValueError, match="n must be"):
        CheckConfig(out="x", n=1)


# --------------------------------------------------------------------------- eval reports


def _metrics(discrimination):
    judge = {"backend": "openai:m@http://x/v1", "weak": False, "prompt_version": PROMPT_VERSION, "rated": 3,
             "failures": 0}
    if discrimination is not None:
        judge["discrimination"] = discrimination
    return {"format": "mmlink-eval-v1", "model": "mini",
            "tasks": {"cad_qa": {"kind": "judge", "n": 3, "metrics": {"rating": 3.0}, "judge": judge}}}


def test_reports_show_the_judge_auc_or_the_flag() -> None:
    measured = report.run_markdown(_metrics({"measured": True, "auc": 0.93, "auc_worst": 0.85, "flagged": False,
                                             "min_auc": 0.8}))
    assert "Judge AUC" in measured and "| 0.93 |" in measured and "Warning" not in measured
    flagged = report.run_markdown(_metrics({"measured": True, "auc": 0.7, "auc_worst": 0.55, "flagged": True,
                                            "min_auc": 0.8}))
    assert "AUC 0.70 (worst case 0.55), below the bar of 0.8" in flagged
    unmeasured = report.run_markdown(_metrics({"measured": False, "auc": None, "flagged": True}))
    assert "never measured (`mmlink judge-check`)" in unmeasured
    old = report.run_markdown(_metrics(None))  # metrics written before judge checks existed still render
    assert "Judge AUC" in old and "never measured" not in old


def test_harness_entry_carries_the_discrimination(tmp_path: Path) -> None:
    from mmlink.eval.harness import EvalConfig, PredictionStore, score_task
    from mmlink.eval.tasks import EVAL_TASKS, Item

    task = EVAL_TASKS.get("cad_qa")
    items = [Item(id="a", sample="a", images=[], turns=[{"from": "human", "value": "Q?"}], question="Q?", refs=["R."])]
    store = PredictionStore(tmp_path / "predictions.jsonl")
    store.append([{"task": "cad_qa", "id": "a", "text": "R."}])
    entry = score_task(task, items, store, EvalConfig(out=str(tmp_path), progress=False),
                       Judge(TemplateLLM(), tmp_path / "cache"))
    assert entry["metrics"]["rating"] == 5
    assert entry["judge"]["discrimination"]["measured"] is False

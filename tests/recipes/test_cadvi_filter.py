"""mmlink.recipes.cadvi_filter: the quality filter between CaD-VI Phase-2 annotation and training — each rule on
hand-made summaries of a real world pair (their facts checked against its scene graphs), the report, the decisions
file, and the rules' settings checks."""

import json

import numpy as np
import pytest

from mmlink.data.synth import synthesize
from mmlink.data.tasks.pairs import cad_facts, format_cad
from mmlink.data.world.scene import scene_from_dict
from mmlink.recipes.cadvi_filter import (
    REASONS,
    Decision,
    FilterRules,
    decide,
    exact_summary,
    format_report,
    repeat_share,
    report,
    write_decisions,
)

# As in tests/recipes/test_cadvi.py: rules that keep whatever an annotator writes.
KEEP_ALL = {"min_fact_precision": 0.0, "min_facts": 0, "min_words": 0, "max_repeat": 1.0, "drop_truncated": False,
            "require_sections": False}


@pytest.fixture(scope="module")
def world_pair(tmp_path_factory):
    """One world change-caption pair: its scene graphs, exact CaD summary and change caption."""
    out = tmp_path_factory.mktemp("pair")
    synthesize("change_caption", out, 1, "train", 3, image_size=32, progress=False)
    rec = json.loads((out / "data.jsonl").read_text().splitlines()[0])
    scenes = rec["meta"]["scenes"]
    s1, s2 = (scene_from_dict(s) for s in scenes)
    return scenes, format_cad(cad_facts(s1, s2, np.random.default_rng(0))), rec["conversations"][1]["value"], (s1, s2)


def a_colour_in_neither_image(scenes_objs, used: str) -> str:
    from mmlink.data.world.scene import COLORS, Character

    present = {o.identity.color if isinstance(o, Character) else o.color for s in scenes_objs for o in s.objects}
    return next(c for c in COLORS if c not in present and c != used)


def test_the_default_filter_keeps_a_correct_summary_and_drops_a_wrong_colour(world_pair):
    scenes, exact, _, objs = world_pair
    rules = FilterRules()
    kept = decide(exact, True, scenes, rules)
    assert kept.keep and kept.reason is None and kept.precision == 1.0 and kept.facts >= rules.min_facts
    assert kept.recall_hits == kept.recall_total  # the exact summary states every fact of itself

    import re

    from mmlink.data.world.scene import COLORS

    colour = next(w for w in re.findall(r"[a-z]+", exact) if w in COLORS)
    wrong = re.sub(rf"\b{colour}\b", a_colour_in_neither_image(objs, colour), exact, count=1)
    dropped = decide(wrong, True, scenes, rules)
    assert not dropped.keep and dropped.reason == "fact_precision" and dropped.precision < 1.0
    # user data has no scene graphs: the same wrong colour cannot be seen, the other rules still apply
    assert decide(wrong, True, None, rules).keep


def test_the_filter_names_the_rule_a_summary_fails(world_pair):
    scenes, exact, change, _ = world_pair
    rules = FilterRules()
    assert decide(exact, False, scenes, rules).reason == "truncated"  # hit the token limit without ending
    assert decide(exact, False, scenes, FilterRules(drop_truncated=False)).keep
    assert decide("Commonalities: none.\nDifferences: a ball.", True, None, rules).reason == "too_short"
    looping = exact + "\n" + "The ball is red in both images. " * 30
    assert repeat_share(exact) < 0.5 <= repeat_share(looping)
    assert decide(looping, True, scenes, rules).reason == "repetition"
    # a refine answer that only restates the difference-only annotation has no commonalities section
    restated = " ".join([change] * 1 + ["The rest of the two images is the same as described above."] * 1) + (
        " Everything else in the scene stays where it was, with the same colours and the same setting.")
    assert decide(restated, True, None, rules).reason == "format"
    assert decide("", True, None, FilterRules(**KEEP_ALL)).reason == "unusable"
    assert decide("Commonalities: <image>", True, None, FilterRules(**KEEP_ALL)).reason == "unusable"
    few = decide("Commonalities: both show a ball.\nDifferences: none. " + "It is what it is, as described. " * 3,
                 True, scenes, FilterRules(min_facts=3))
    assert "few_facts" in few.reasons


def test_the_filter_report_counts_per_source_and_reason(world_pair):
    from mmlink.recipes.cadvi_filter import report

    scenes, exact, _, _ = world_pair
    rows = [("scratch", decide(exact, True, scenes, FilterRules())),
            ("scratch", decide(exact, False, scenes, FilterRules())),
            ("refine", decide("too short", True, scenes, FilterRules()))]
    rep = report(rows, FilterRules(), world=True)
    assert (rep["annotations"], rep["kept"], rep["dropped"]) == (3, 1, 2)
    assert rep["by_source"]["scratch"]["dropped_by_reason"] == {"truncated": 1}
    assert rep["by_source"]["refine"]["dropped_by_reason"] == {"too_short": 1}
    assert rep["by_source"]["refine"]["failing_rule"]["few_facts"] == 1
    assert rep["by_source"]["scratch"]["fact_precision"] == 100.0


def test_repeat_share_counts_repeated_word_4grams():
    assert repeat_share("one two three four five") == 0.0
    assert repeat_share("a b c d a b c d") == pytest.approx(1 - 4 / 5)  # 5 four-grams, 4 distinct
    assert repeat_share("A b C d. a B c D!") == pytest.approx(1 - 4 / 5)  # case and punctuation do not count
    assert repeat_share("too short") == 0.0 and repeat_share("x y", n=2) == 0.0
    assert repeat_share("x x x x x x", n=1) == pytest.approx(5 / 6)


def test_every_failing_rule_is_listed_and_the_first_is_the_reason():
    d = decide("Commonalities: " + "<image> " * 7, False, None, FilterRules())
    assert d.reasons == ["unusable", "too_short", "repetition", "truncated", "format"] and d.reason == "unusable"
    assert (d.keep, d.words, d.repeat) == (False, 8, 0.6)  # 5 four-grams, 2 distinct
    assert d.facts is d.precision is d.recall_total is None  # no scene graphs: no fact counts
    assert d.reasons == [r for r in REASONS if r in d.reasons]  # in the documented order


def test_exact_summary_is_the_worlds_cad_summary(world_pair):
    scenes, exact, _, (s1, s2) = world_pair
    assert exact_summary(scenes) == exact == format_cad(cad_facts(s1, s2, np.random.default_rng(0)))
    assert exact.startswith("Commonalities:") and "\nDifferences:" in exact


def test_no_stated_fact_leaves_precision_undefined_and_min_facts_decides(world_pair):
    scenes = world_pair[0]
    text = "Commonalities: the two pictures look alike.\nDifferences: one thing changed between them."
    strict = decide(text, True, scenes, FilterRules(min_words=0))
    assert strict.facts == 0 and strict.precision is None and strict.reasons == ["few_facts"]
    assert decide(text, True, scenes, FilterRules(min_words=0, min_facts=0)).keep


def test_report_without_world_and_its_text_form():
    rows = [("scratch", Decision(True, None, [], 30, 0.1)), ("scratch", Decision(False, "too_short", ["too_short",
            "format"], 3, 0.0)), ("refine", Decision(False, "format", ["format"], 25, 0.0))]
    rep = report(rows, FilterRules(), world=False)
    assert (rep["annotations"], rep["kept"], rep["dropped"], rep["mean_words"]) == (3, 1, 2, 19.3)
    assert rep["dropped_by_reason"] == {"too_short": 1, "format": 1}
    assert rep["failing_rule"] == {"too_short": 1, "format": 2}
    assert "fact_precision" not in rep and rep["rules"]["min_words"] == 20 and rep["world"] is False
    assert list(rep["by_source"]) == ["scratch", "refine"]
    assert format_report(rep) == ("filter: kept 1 of 3 annotations\n"
                                  "  scratch: kept 1 of 2 (too_short 1)\n"
                                  "  refine: kept 0 of 1 (format 1)")
    empty = report([], FilterRules(), world=True)
    assert empty["annotations"] == 0 and empty["mean_words"] is None and empty["fact_precision"] is None


def test_report_text_with_fact_scores(world_pair):
    scenes, exact, _, _ = world_pair
    rep = report([("scratch", decide(exact, True, scenes, FilterRules()))], FilterRules(), world=True)
    assert format_report(rep).splitlines()[1] == (
        "  scratch: kept 1 of 1 (none dropped); fact precision 100.0, recall 100.0")


def test_write_decisions_one_line_per_annotation(tmp_path):
    path = tmp_path / "decisions.jsonl"
    d = Decision(False, "truncated", ["truncated"], 40, 0.25, facts=10, correct=9, precision=0.9)
    write_decisions(path, [("refine", "p-1", d)])
    (line,) = path.read_text().splitlines()
    assert json.loads(line) == {"source": "refine", "id": "p-1", "keep": False, "reason": "truncated",
                                "reasons": ["truncated"], "words": 40, "repeat": 0.25, "facts": 10, "correct": 9,
                                "precision": 0.9, "recall_hits": None, "recall_total": None}
    write_decisions(path, [])
    assert path.read_text() == ""


@pytest.mark.parametrize("kw, message", [
    ({"min_fact_precision": 1.5}, r"filter\.min_fact_precision must be in \[0, 1\]"),
    ({"min_words": -1}, r"filter\.min_words"),
    ({"max_repeat": 0}, r"filter\.max_repeat"),
    ({"min_facts": "three"}, "filter.min_facts: expected an integer, got 'three'"),
])
def test_rules_are_checked_and_errors_name_the_field(kw, message):
    with pytest.raises(ValueError, match=message):
        FilterRules(**kw)

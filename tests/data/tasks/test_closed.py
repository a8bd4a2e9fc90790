"""bison, svo, eqben, cola, nlvr2: answers recomputed from the scene graphs; labels balanced."""

import re
from collections import Counter

import pytest
from textcheck import grammar_problems, task_samples

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.scene import COLORS, Character, location, rng_for
from mmlink.data.world.text import ACCESSORY_NOUNS, ACTION_STEMS, CONTEXT_PHRASES, NUMBER_WORDS

SPLITS = ("train", "val", "test")
TASK_NAMES = ("bison", "svo", "eqben", "cola", "nlvr2")
N = 400
TOL = 0.08  # |fraction - 1/k| over 400 samples (3 sigma is 0.075 for two labels)


def samples(task, split, n=N):
    return task_samples(task, split, n)


# --- an evaluator of text facts written independently of mmlink.data.tasks.closed.holds ----------------------


def fact_true(fact, scene) -> bool:
    kind = fact["fact"]
    if kind == "context":
        return scene.context == fact["context"]
    if kind == "thing":
        return any(t.kind == fact["kind"] and t.color == fact.get("color", t.color) for t in scene.things)
    assert kind == "char"
    for c in scene.characters:
        ok = True
        ok &= "color" not in fact or c.identity.color == fact["color"]
        ok &= "body" not in fact or c.identity.body == fact["body"]
        ok &= "accessory" not in fact or c.identity.accessory == fact["accessory"]
        ok &= "action" not in fact or c.pose.action == fact["action"]
        ok &= "side" not in fact or location(c)[0] == fact["side"]
        if ok:
            return True
    return False


def all_true(facts, scene) -> bool:
    return all(fact_true(f, scene) for f in facts)


def text_names_facts(text, facts) -> bool:
    """The text carries the words of each fact."""
    low = text.lower()
    for f in facts:
        if f["fact"] == "context":
            if not any(p in low for p in CONTEXT_PHRASES[f["context"]]):
                return False
        elif f["fact"] == "thing":
            if f["kind"] not in low or ("color" in f and f"{f['color']} {f['kind']}" not in low):
                return False
        else:
            if "color" in f and not re.search(rf"\b{f['color']}\b", low):
                return False
            if "action" in f and not any(s in low for s in ACTION_STEMS[f["action"]]):
                return False
            if f.get("accessory", "none") != "none" and ACCESSORY_NOUNS[f["accessory"]] not in low:
                return False
            if "side" in f and f["side"] not in low:
                return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# shared properties
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("task", TASK_NAMES)
def test_format_split_pool_and_balance(task, split):
    ss = samples(task, split)
    answers = Counter()
    for s in ss:
        assert isinstance(s, WorldSample) and len(s.scenes) == 2
        human, gpt = s.conversations[0]["value"], s.conversations[1]["value"]
        assert [t["from"] for t in s.conversations] == ["human", "gpt"]
        assert human.startswith("Image 1: <image>\nImage 2: <image>\n") and human.count("<image>") == 2
        assert gpt == s.meta["answer"] and gpt in s.meta["choices"]
        assert not grammar_problems(human), (human, grammar_problems(human))
        for scene in s.scenes:
            assert all(c.identity.split == split for c in scene.characters)
        answers[gpt] += 1
    choices = ss[0].meta["choices"]
    assert set(answers) == set(choices)
    for c in choices:
        assert abs(answers[c] / len(ss) - 1 / len(choices)) < TOL, answers


@pytest.mark.parametrize("task", TASK_NAMES)
def test_deterministic(task):
    fn = TASKS.get(task)
    for i in range(30):
        a, b = fn(rng_for("train", 9, i, task), "train"), fn(rng_for("train", 9, i, task), "train")
        assert a.scenes == b.scenes and a.conversations == b.conversations and a.meta == b.meta


def test_first_choice_is_image_one():
    assert samples("bison", "train")[0].meta["choices"] == ["1", "2"]
    assert samples("svo", "train")[0].meta["choices"] == ["1", "2"]
    assert samples("eqben", "train")[0].meta["choices"] == ["1-A, 2-B", "1-B, 2-A"]
    assert samples("cola", "train")[0].meta["choices"] == ["1-A, 2-B", "1-B, 2-A"]
    assert samples("nlvr2", "train")[0].meta["choices"] == ["True", "False"]


# ---------------------------------------------------------------------------------------------------------------
# BISON and SVO
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
def test_bison_answer_is_the_only_matching_image(split):
    for s in samples("bison", split):
        k = int(s.meta["answer"])
        facts = s.meta["facts"]
        assert all_true(facts, s.scenes[k - 1]) and not all_true(facts, s.scenes[2 - k])
        assert s.meta["text"] in s.conversations[0]["value"]
        assert text_names_facts(s.meta["text"], facts), (s.meta["text"], facts)
        assert s.scenes[0].seed == s.scenes[1].seed  # one edit apart


@pytest.mark.parametrize("split", SPLITS)
def test_svo_triplet_and_negative_type(split):
    types = Counter()
    for s in samples("svo", split):
        k = int(s.meta["answer"])
        pos, neg = s.scenes[k - 1], s.scenes[2 - k]
        tri = s.meta["triplet"]
        subj_color = tri["subject"].split()[0]
        assert len(pos.characters) == len(neg.characters) == 1
        pc, nc = pos.characters[0], neg.characters[0]
        # the positive image makes the sentence true
        assert pc.identity.color == subj_color and pc.pose.action == tri["verb"]
        assert any(t.kind == tri["object"] for t in pos.things)
        # the negative differs in exactly one of subject / verb / object
        diffs = {
            "subject": nc.identity.color != subj_color,
            "verb": nc.pose.action != tri["verb"],
            "object": not any(t.kind == tri["object"] for t in neg.things),
        }
        assert [t for t, d in diffs.items() if d] == [s.meta["negative_type"]], (diffs, s.meta)
        types[s.meta["negative_type"]] += 1
        text = s.meta["text"].lower()
        assert re.search(rf"\b{subj_color}\b", text) and tri["object"] in text
        verbs = {"standing": "stand", "jumping": "jump", "waving": "wav", "sitting": "sit"}
        assert [v for v, stem in verbs.items() if re.search(rf"\b{stem}", text)] == [tri["verb"]], text
        assert all_true(s.meta["facts"], pos) and not all_true(s.meta["facts"], neg)
    for t in ("subject", "verb", "object"):
        assert abs(types[t] / N - 1 / 3) < TOL


# ---------------------------------------------------------------------------------------------------------------
# EQBEN and COLA
# ---------------------------------------------------------------------------------------------------------------


def _check_match(s):
    mapping = dict(part.split("-") for part in s.meta["answer"].split(", "))  # {"1": "A", "2": "B"}
    assert sorted(mapping) == ["1", "2"] and sorted(mapping.values()) == ["A", "B"]
    for img, letter in mapping.items():
        facts = s.meta["facts"][letter]
        other = s.scenes[2 - int(img)]
        assert all_true(facts, s.scenes[int(img) - 1]) and not all_true(facts, other)
        text = s.meta["texts"][letter]
        assert f'Text {letter}: "{text}"' in s.conversations[0]["value"]
        assert text_names_facts(text, facts), (text, facts)
    assert s.meta["texts"]["A"] != s.meta["texts"]["B"]


@pytest.mark.parametrize("split", SPLITS)
def test_eqben_matching(split):
    for s in samples("eqben", split):
        _check_match(s)
        assert s.scenes[0].seed == s.scenes[1].seed


@pytest.mark.parametrize("split", SPLITS)
def test_cola_same_objects_attributes_swapped(split):
    variants = Counter()
    for s in samples("cola", split):
        _check_match(s)
        variants[s.meta["variant"]] += 1
        s1, s2 = s.scenes
        assert len(s1.objects) == len(s2.objects) == 2
        kinds1 = ["character" if isinstance(o, Character) else o.kind for o in s1.objects]
        kinds2 = ["character" if isinstance(o, Character) else o.kind for o in s2.objects]
        assert kinds1 == kinds2 and kinds1[0] != kinds1[1]
        col = lambda o: o.identity.color if isinstance(o, Character) else o.color  # noqa: E731
        c1 = [col(o) for o in s1.objects]
        c2 = [col(o) for o in s2.objects]
        assert c1[0] != c1[1] and c2 == c1[::-1]  # colours swapped between the two objects
        assert [(o.x, o.y) for o in s1.objects] == [(o.x, o.y) for o in s2.objects]
    assert set(variants) == {"thing_thing", "char_thing"}


# ---------------------------------------------------------------------------------------------------------------
# NLVR2
# ---------------------------------------------------------------------------------------------------------------


def _n(scene, kind, color=None):
    if kind == "character":
        return sum(color in (None, c.identity.color) for c in scene.characters)
    return sum(t.kind == kind and color in (None, t.color) for t in scene.things)


def statement_truth(spec, s1, s2) -> bool:
    t = spec["type"]
    if t == "total_count":
        return _n(s1, spec["kind"]) + _n(s2, spec["kind"]) == spec["n"]
    if t == "both_have":
        return _n(s1, spec["kind"], spec.get("color")) >= 1 and _n(s2, spec["kind"], spec.get("color")) >= 1
    if t == "exactly_one":
        return (_n(s1, spec["kind"]) >= 1) + (_n(s2, spec["kind"]) >= 1) == 1
    if t == "more":
        return _n(s1, spec["kind"]) > _n(s2, spec["kind"])
    if t == "action_both":
        return {spec["action"]} <= {c.pose.action for c in s1.characters} & {c.pose.action for c in s2.characters}
    if t == "same_context":
        return s1.context == spec["context"] and s2.context == spec["context"]
    raise AssertionError(t)


@pytest.mark.parametrize("split", SPLITS)
def test_nlvr2_statements(split):
    types = Counter()
    for s in samples("nlvr2", split):
        spec, text = s.meta["spec"], s.meta["statement"]
        truth = statement_truth(spec, *s.scenes)
        assert s.meta["answer"] == ("True" if truth else "False"), (text, spec)
        types[(spec["type"], truth)] += 1
        low = text.lower()
        assert text in s.conversations[0]["value"]
        if spec["type"] == "total_count":
            assert re.search(rf"\b{NUMBER_WORDS[spec['n']]}\b", low) and ("in total" in low or "together" in low)
        if spec["type"] in ("total_count", "both_have", "exactly_one", "more"):
            assert spec["kind"] in low
        if spec.get("color"):
            assert re.search(rf"\b{spec['color']}\b", low)
        if spec["type"] == "action_both":
            assert any(st in low for st in ACTION_STEMS[spec["action"]])
        if spec["type"] == "same_context":
            assert any(p in low for p in CONTEXT_PHRASES[spec["context"]])
        assert not any(re.search(rf"\b{c}\b", low) for c in COLORS if c != spec.get("color"))
    # every statement type occurs, each both true and false
    kinds = {t for t, _ in types}
    assert kinds == {"total_count", "both_have", "exactly_one", "more", "action_both", "same_context"}
    for t in kinds - {"same_context"}:
        assert types[(t, True)] > 0 and types[(t, False)] > 0, types

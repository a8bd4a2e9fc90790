"""vqa_options: four labelled options, answers recomputed from the scene graphs, balanced positions, hidden-free."""

import re
from collections import Counter
from dataclasses import replace

import pytest
from textcheck import generate, grammar_problems

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.render import render_with_masks
from mmlink.data.world.scene import COLORS, CONTEXTS, THINGS, rng_for
from mmlink.data.world.text import NUMBER_WORDS

TASK = "vqa_options"
SPLITS = ("train", "val", "test")
SEEDS = (0, 3)
PER_SEED = 100  # 200 samples per split
TYPES = ("context", "color", "count", "which_image")
# What the painted backgrounds already show (forest and snow scenery draws trees, the city skyline buildings).
PAINTED = {"forest": {"tree"}, "snow": {"tree"}, "city": {"house"}}

_CACHE: dict = {}


def samples(split: str) -> list[WorldSample]:
    if split not in _CACHE:
        _CACHE[split] = [s for seed in SEEDS for s in generate(TASK, split, PER_SEED, seed)]
    return _CACHE[split]


def parts(s: WorldSample) -> tuple[str, list[str]]:
    """(question line, options as listed in the prompt) read from the human turn."""
    lines = s.conversations[0]["value"].split("\n")
    opt = [line for line in lines if line.startswith("Options: ")]
    assert len(opt) == 1, lines
    return lines[lines.index(opt[0]) - 1], opt[0][len("Options: ") :].split(", ")


def asked_kind(question: str) -> str:
    """The thing kind a question names, singular or plural (exactly one)."""
    found = [k for k in THINGS if re.search(rf"\b{k}(e?s)?\b", question)]
    assert len(found) == 1, question
    return found[0]


def asked_image(question: str) -> int:
    found = re.findall(r"\bImage (\d)\b", question)
    assert len(found) == 1, question
    return int(found[0])


def expected_answer(s: WorldSample) -> str:
    """The right option recomputed from the scene graphs and the question text alone."""
    question, _ = parts(s)
    qtype = s.meta["question_type"]
    if qtype == "context":
        return s.scenes[asked_image(question) - 1].context
    kind = asked_kind(question)
    if qtype == "which_image":
        having = [i for i, sc in enumerate(s.scenes, start=1) if any(t.kind == kind for t in sc.things)]
        if not having:
            return "None of them"
        if len(having) == len(s.scenes):
            return "All of them"
        assert len(having) == 1, (having, question)  # two of three would have no right option
        return f"Image {having[0]}"
    things = [t for t in s.scenes[asked_image(question) - 1].things if t.kind == kind]
    if qtype == "color":
        assert len(things) == 1, things  # "the <kind>" must pick out one thing
        return things[0].color
    assert qtype == "count"
    return NUMBER_WORDS[len(things)]


# ---------------------------------------------------------------------------------------------------------------


def test_registered_with_a_description():
    assert TASK in TASKS
    from mmlink.data.synth import describe_tasks

    [(name, doc)] = describe_tasks([TASK])
    assert name == TASK and doc != "(no description)" and "multiple-choice" in doc


@pytest.mark.parametrize("split", SPLITS)
def test_format_options_and_split_pool(split):
    for s in samples(split):
        assert isinstance(s, WorldSample) and 1 <= len(s.scenes) <= 3
        assert [t["from"] for t in s.conversations] == ["human", "gpt"]
        human, gpt = s.conversations[0]["value"], s.conversations[1]["value"]
        assert human.count("<image>") == len(s.scenes)
        assert human.startswith("".join(f"Image {i}: <image>\n" for i in range(1, len(s.scenes) + 1)))
        assert "<image>" not in gpt
        _, listed = parts(s)
        choices = s.meta["choices"]
        assert listed == choices and len(choices) == 4 and len(set(choices)) == 4
        assert gpt == s.meta["answer"] and gpt in choices
        assert s.meta["question_type"] in TYPES
        assert not grammar_problems(human), (human, grammar_problems(human))
        for scene in s.scenes:  # held-out identities stay in their split
            assert all(c.identity.split == split for c in scene.characters)


@pytest.mark.parametrize("split", SPLITS)
def test_answer_agrees_with_the_scene_graphs(split):
    for s in samples(split):
        assert s.meta["answer"] == expected_answer(s), (s.conversations[0]["value"], s.meta)


@pytest.mark.parametrize("split", SPLITS)
def test_types_positions_and_answers_are_balanced(split):
    ss = samples(split)
    types = Counter(s.meta["question_type"] for s in ss)
    assert set(types) == set(TYPES), types
    positions = Counter(s.meta["choices"].index(s.meta["answer"]) for s in ss)
    assert all(positions[p] >= 0.1 * len(ss) for p in range(4)), positions
    by_type = {t: Counter(s.meta["answer"] for s in ss if s.meta["question_type"] == t) for t in TYPES}
    assert set(by_type["count"]) == {"one", "two", "three", "four"}, by_type["count"]
    assert {"None of them", "All of them"} <= set(by_type["which_image"]), by_type["which_image"]
    assert any(a.startswith("Image ") for a in by_type["which_image"]), by_type["which_image"]
    assert len(by_type["context"]) >= 5 and len(by_type["color"]) >= 5, by_type


@pytest.mark.parametrize("split", SPLITS)
def test_distractors_come_from_the_right_vocabulary(split):
    for s in samples(split):
        question, choices = parts(s)
        qtype = s.meta["question_type"]
        if qtype == "context":
            assert set(choices) <= set(CONTEXTS)
        elif qtype == "color":
            assert set(choices) <= set(COLORS)
        elif qtype == "count":
            assert sorted(choices, key=NUMBER_WORDS.index) == ["one", "two", "three", "four"]
        else:
            images = [f"Image {i}" for i in range(1, len(s.scenes) + 1)]
            assert len(s.scenes) >= 2 and set(images) <= set(choices)
            assert set(choices) - set(images) <= {"None of them", "All of them"}
        if qtype != "which_image":
            assert s.meta["image_index"] == asked_image(question) <= len(s.scenes)
        else:
            assert "image_index" not in s.meta


def _visible_fraction(scene, index: int, size: int = 128) -> float:
    """Pixels of object ``index`` left after occlusion over its pixels when drawn alone in the same scene."""
    alone = render_with_masks(replace(scene, objects=(scene.objects[index],)), size)[1][0].sum()
    return float(render_with_masks(scene, size)[1][index].sum() / max(alone, 1))


def test_things_asked_about_are_visible_and_not_painted_in_the_background():
    checked = 0
    for s in samples("val"):
        if s.meta["question_type"] == "context":
            continue
        question, _ = parts(s)
        kind = asked_kind(question)
        scenes = s.scenes if s.meta["question_type"] == "which_image" else [s.scenes[asked_image(question) - 1]]
        for scene in scenes:
            assert kind not in PAINTED.get(scene.context, set()), (kind, scene.context)
            for i, obj in enumerate(scene.objects):
                if obj.kind == kind:
                    # a little below the generator's 0.5: this measures at another size
                    assert _visible_fraction(scene, i) >= 0.4, (question, obj)
                    checked += 1
    assert checked > 100


def test_deterministic():
    fn = TASKS.get(TASK)
    for i in range(30):
        a, b = fn(rng_for("test", 5, i, TASK), "test"), fn(rng_for("test", 5, i, TASK), "test")
        assert a.scenes == b.scenes and a.conversations == b.conversations and a.meta == b.meta
    other = [fn(rng_for("test", 6, i, TASK), "test").conversations for i in range(30)]
    assert other != [fn(rng_for("test", 5, i, TASK), "test").conversations for i in range(30)]

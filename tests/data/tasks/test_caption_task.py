"""The single-image `caption` task: its text is read off the one scene graph."""

import pytest
from textcheck import action_in, grammar_problems, has_any, task_samples

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.tasks.captioning import CAPTION_INSTRUCTIONS, SHORT_CAPTION_INSTRUCTIONS
from mmlink.data.world.scene import Character, rng_for
from mmlink.data.world.text import BODY_WORDS, CHARACTER_NOUNS, CONTEXT_NOUNS, CONTEXT_PHRASES, THING_NOUNS

SPLITS = ("train", "val", "test")
N = 200


def target(s: WorldSample) -> str:
    return s.conversations[1]["value"]


def test_registered():
    assert "caption" in TASKS


@pytest.mark.parametrize("split", SPLITS)
def test_one_image_format_and_split_pool(split):
    for s in task_samples("caption", split, N):
        assert isinstance(s, WorldSample) and s.images is None
        assert len(s.scenes) == 1
        assert [t["from"] for t in s.conversations] == ["human", "gpt"]
        human = s.conversations[0]["value"]
        assert human.count("<image>") == 1 and human.startswith("Image 1: <image>\n")
        instruction = human.split("\n", 1)[1]
        assert instruction in CAPTION_INSTRUCTIONS + SHORT_CAPTION_INSTRUCTIONS
        assert "<image>" not in target(s)
        for c in s.scenes[0].characters:
            assert c.identity.split == split, (split, c.identity.key)
        assert not grammar_problems(target(s)), (target(s), grammar_problems(target(s)))


@pytest.mark.parametrize("split", SPLITS)
def test_text_true_to_the_scene(split):
    for s in task_samples("caption", split, N):
        scene, text = s.scenes[0], target(s).lower()
        assert has_any(text, CONTEXT_PHRASES[scene.context] + CONTEXT_NOUNS[scene.context]), (scene.context, text)
        for obj in scene.objects:
            if isinstance(obj, Character):
                ident = obj.identity
                assert has_any(text, CHARACTER_NOUNS), text
                assert ident.color in text, (ident.color, text)
                assert has_any(text, BODY_WORDS[ident.body]), (ident.body, text)
                assert action_in(text, obj.pose.action), (obj.pose.action, text)
            else:
                assert has_any(text, THING_NOUNS[obj.kind]), (obj.kind, text)
                assert f"{obj.color} {THING_NOUNS[obj.kind][0]}" in text, (obj.color, obj.kind, text)
        assert s.meta["context"] == scene.context and len(s.meta["objects"]) == len(scene.objects)
        assert s.meta["style"] in ("full", "short")


def test_instructions_and_styles_vary():
    samples = task_samples("caption", "train", N)
    instructions = {s.conversations[0]["value"] for s in samples}
    assert len(instructions) >= 6
    styles = [s.meta["style"] for s in samples]
    assert 0.1 < styles.count("short") / len(styles) < 0.4
    assert {len(s.scenes[0].characters) for s in samples} == {0, 1, 2}


def test_deterministic():
    fn = TASKS.get("caption")
    for i in range(20):
        a, b = fn(rng_for("val", 7, i, "caption"), "val"), fn(rng_for("val", 7, i, "caption"), "val")
        assert a.scenes == b.scenes and a.conversations == b.conversations and a.meta == b.meta
    assert len({target(fn(rng_for("val", 7, i, "caption"), "val")) for i in range(20)}) == 20

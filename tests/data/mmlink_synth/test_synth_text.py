"""mmlink.data.mmlink_synth.text: template backgrounds, the cleaning of LLM replies, the people filter and the
annotation's phrasing helpers."""

from __future__ import annotations

import numpy as np
import pytest

from mmlink.data.mmlink_synth import ObjectGroup, PastedObject, context_of, template_background
from mmlink.data.mmlink_synth import text
from mmlink.data.world.scene import CONTEXTS, Identity


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_template_backgrounds_name_their_context():
    r = rng(0)
    for context in CONTEXTS:
        descs = {template_background(context, r) for _ in range(30)}
        assert len(descs) >= 5
        assert all(context_of(d) == context for d in descs), descs
        assert not any(" a indoor" in d or "A indoor" in d for d in descs)


def test_template_background_is_determined_by_the_random_stream():
    for context in CONTEXTS:
        assert template_background(context, rng(3)) == template_background(context, rng(3))
    assert len({template_background("beach", rng(s)) for s in range(20)}) > 1
    with pytest.raises(KeyError):
        template_background("moon", rng(0))


def test_template_background_articles_agree_with_the_place():
    texts = {template_background("indoor", rng(s)) for s in range(60)}
    assert any("an indoor" in t or t.startswith("An indoor") for t in texts)
    assert not any(" a indoor" in t or t.startswith("A indoor") for t in texts)
    assert text._an("indoor") == "an" and text._an("Ocean") == "an" and text._an("park") == "a"


@pytest.mark.parametrize("reply, cleaned", [
    ('"A calm beach."', "A calm beach."),
    ("Description: a round red character\nsecond line", "a round red character"),
    ("  sentence: 'A park.'  ", "A park."),
    ("ANSWER: A city street.", "A city street."),
    ("\n\nA forest.\nPeople walk by.", "A forest."),  # the first non-empty line only
])
def test_clean_keeps_the_first_line_without_label_or_quotes(reply, cleaned):
    assert text._clean(reply) == cleaned


@pytest.mark.parametrize("desc, people", [
    ("A city street with people walking.", True),
    ("A park where a Child plays.", True),
    ("Kids on a beach.", True),
    ("A family picnic.", True),
    ("A quiet park with a manhole cover.", False),  # whole words only
    ("A snowy field under a pale sky.", False),
])
def test_people_filter(desc, people):
    assert bool(text._PEOPLE.search(desc)) == people


def test_sentence_capitalises_and_ends_with_one_full_stop():
    assert text._sentence("a round red character.") == "A round red character."
    assert text._sentence("  two dots..  ") == "Two dots."
    assert text._sentence("x") == "X."


@pytest.mark.parametrize("x0, x1, where", [(0, 100, "on the left"), (200, 300, "in the centre"),
                                           (400, 500, "on the right")])
def test_where_follows_the_box_centre(x0, x1, where):
    ident = Identity("round", "red", "plain", "none", "none")
    obj = PastedObject("main", ObjectGroup("Pip", [], ident), None, (x0, 100, x1, 300), np.zeros((4, 4), bool), 1)
    assert text._where(obj, 512) == where


def test_prompts_have_the_fields_the_pipeline_fills():
    assert text.BACKGROUND_PROMPT.fields == {"context", "hint"}
    assert text.REFINE_PROMPT.fields == {"text"}
    rendered = text.BACKGROUND_PROMPT.render(context="beach", hint="calm")
    assert "of the kind 'beach'" in rendered and "calm" in rendered
    assert text.REFINE_PROMPT.render(text="a red ball").endswith("Description: a red ball")

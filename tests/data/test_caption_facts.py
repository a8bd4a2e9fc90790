"""mmlink.data.caption_facts: the facts a caption states, the template CaD summary of two captions, and the checks
on an LLM's summary (its format, and nouns neither caption has)."""

from __future__ import annotations

import pytest

from mmlink.data.caption_facts import (
    CaptionFacts,
    caption_facts,
    compare,
    parse_summary,
    template_summary,
    ungrounded,
)
from mmlink.data.tasks.pairs import format_cad

# Captions shared with tests/data/test_phase1.py (the CaD-VI Phase-1 writer's tests).
CAPTIONS = {
    "a": "A brown dog and a white cat are sleeping on a sofa.",
    "b": "A brown dog and a black cat are sitting on a bed.",
    "c": "Two dogs are running in a park with a red ball.",
    "h": "A dog sits beside a ball under a tree near a bench.",
}


def test_caption_facts() -> None:
    facts = caption_facts("Two brown dogs are running next to a red ball on the beach. A man sits on the left.")
    assert facts.counts == {"dog": 2, "ball": 1, "man": 1}
    assert facts.colors == {"dog": {"brown"}, "ball": {"red"}, "man": set()}
    assert facts.actions == {"dog": ["running"]} and facts.setting == ["on the beach"]
    assert facts.relations == {("dog", "next to", "ball")} and facts.sides == {"man": "on the left"}
    assert caption_facts("A cat wearing a red hat.").actions == {"cat": ["wearing a red hat"]}


def test_template_summary_states_only_what_the_captions_say() -> None:
    assert template_summary(CAPTIONS["a"], CAPTIONS["b"]) == (
        "Commonalities:\n"
        "- Object types: Both images contain a dog and a cat.\n"
        "- Attributes: The dog is brown in both images.\n"
        "- Counts: Both images have one dog and one cat.\n"
        "Differences:\n"
        "- Object types: Only the first image has a sofa; only the second image has a bed.\n"
        "- Attributes: The cat is white in the first image and black in the second.\n"
        "- Actions: The dog is sleeping in the first image and sitting in the second.")
    summary = template_summary(CAPTIONS["c"], CAPTIONS["h"])
    assert "- Counts: The first image has two dogs, the second one dog." in summary
    assert "Relative positions" not in summary and "Locations" not in summary.split("Differences:")[0]


def test_parse_summary_accepts_the_format_and_rejects_others() -> None:
    text = ("**Commonalities:**\n* Object types: both show a dog\n- COUNTS: One dog each.\n\n"
            "Differences:\n1. Location: the first is on a sofa, the second on a bed.")
    facts = parse_summary(text)
    assert facts == {"commonalities": {"object types": ["Both show a dog."], "counts": ["One dog each."]},
                     "differences": {"locations": ["The first is on a sofa, the second on a bed."]}}
    assert format_cad(facts).startswith("Commonalities:\n- Object types: Both show a dog.\n- Counts:")
    assert parse_summary("Commonalities: none.\nDifferences:\n- Colours: red vs blue") is not None
    for bad in ("The two images both show a dog.", "Commonalities:\n- Mood: happy\nDifferences: none.",
                "Differences:\n- Counts: one vs two", "Commonalities: none.\nDifferences: none.",
                "Commonalities:\nBoth have dogs.\nDifferences: none."):
        assert parse_summary(bad) is None, bad
    assert ungrounded({"commonalities": {"object types": ["Both images show a dog and an elephant."]}},
                      CAPTIONS["a"], CAPTIONS["b"]) == ["elephant"]


@pytest.mark.parametrize("caption, counts", [
    ("Balls are on the grass.", {"ball": None, "grass": None}),  # a plural without a number word: count unsaid
    ("A dog and the dog.", {"dog": 1}),  # "the" re-mentions the dog already counted
    ("The cat is sleeping.", {"cat": None}),  # "the" first: how many is unsaid
    ("A dog, then two dogs.", {"dog": 3}),  # counted mentions add up
    ("Dogs and a dog.", {"dog": None}),  # an unknown count stays unknown
])
def test_counts_follow_the_determiners(caption, counts) -> None:
    assert caption_facts(caption).counts == counts


def test_setting_sides_relations_and_action_objects() -> None:
    facts = caption_facts("A cat is on the left of a dog in a city street.")
    assert facts.setting == ["in a city street"]  # consecutive place nouns are one place
    assert facts.relations == {("cat", "to the left of", "dog")}  # the longest relation phrase wins
    assert facts.objects == ["cat", "dog"] and "street" not in facts.counts  # a place is no object
    walking = caption_facts("A man is walking a dog in the park.")
    assert walking.actions == {"man": ["walking a dog"]} and walking.objects == ["man"]  # the action's object
    assert caption_facts("A dog on a snowy field.").setting == ["on a snowy field"]  # as the caption says it
    assert caption_facts("A snowy field.").setting == ["in a field"]  # a bare place noun gets "in a"
    colours = caption_facts("Two red and blue balls on the left.")
    assert colours.colors == {"ball": {"red", "blue"}} and colours.sides == {"ball": "on the left"}
    assert caption_facts("Nothing at all.") == CaptionFacts()  # "-thing" words are neither objects nor actions


def test_compare_locations_relations_and_sides() -> None:
    same_place = compare(caption_facts("A dog is to the left of a cat at the beach."),
                         caption_facts("A dog is to the right of a cat on the beach."))
    assert "locations" not in same_place["differences"]  # "at the beach" and "on the beach" are one place
    assert same_place["differences"]["relative positions"] == [
        "The dog is to the left of the cat in the first image and to the right of it in the second."]
    sides = compare(caption_facts("A red ball on the left in a forest."), caption_facts("A red ball on the right."))
    assert sides["differences"] == {"locations": ["The ball is on the left in the first image and on the right in "
                                                  "the second."]}  # one setting only: no setting difference
    places = compare(caption_facts("A dog in a park."), caption_facts("A dog in a city."))
    assert places["differences"]["locations"] == ["The first image is set in a park, the second in a city."]
    relation = compare(caption_facts("A dog next to a tree."), caption_facts("A dog next to a tree."))
    assert relation["commonalities"]["relative positions"] == ["In both images the dog is next to the tree."]
    assert compare(caption_facts("x"), caption_facts("y")) == {"commonalities": {}, "differences": {}}


def test_parse_summary_orders_axes_as_the_world_does() -> None:
    text = "Commonalities:\n- Counts: one each\n- Object types: a dog\nDifferences:\n- Actions: runs vs sits!"
    facts = parse_summary(text)
    assert list(facts["commonalities"]) == ["object types", "counts"]
    assert facts["differences"] == {"actions": ["Runs vs sits!"]}  # a final ! or ? is kept, no full stop added
    assert parse_summary("Commonalities: the same dog\nDifferences:\n- Counts: x") is None  # text after a header


def test_ungrounded_allows_summary_words_and_position_words() -> None:
    summary = {"commonalities": {"object types": ["Both pictures show a dog in the foreground of the scene."]},
               "differences": {"attributes": ["The cat is white in the first image."],
                               "counts": ["The second photo has two giraffes and a zebra."]}}
    assert ungrounded(summary, CAPTIONS["a"], CAPTIONS["b"]) == ["giraffe", "zebra"]
    assert ungrounded({}, "x", "y") == []

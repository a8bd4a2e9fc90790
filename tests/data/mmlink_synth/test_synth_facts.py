"""mmlink.data.mmlink_synth.facts: how a fact word is recognised, which facts an identity has, whether a rewrite keeps
them, and which context a background description names."""

from __future__ import annotations

import pytest

from mmlink.data.mmlink_synth import context_of, identity_facts, keeps_facts, mentions
from mmlink.data.world.scene import Identity


def test_keeps_facts():
    original = "a round blue character with white stripes wearing a hat"
    facts = ("blue", "round", "striped", "white", "hat")
    assert keeps_facts("A circular blue figure with white stripes and a hat", original, facts)
    assert not keeps_facts("A circular blue figure with white stripes", original, facts)  # hat dropped
    assert not keeps_facts("A round green character with white stripes wearing a hat", original, facts)
    assert not keeps_facts("A round blue character with white stripes wearing a hat and a scarf", original, facts)
    assert not keeps_facts("", original, facts)
    assert mentions("a grey one", "gray") and mentions("a lanky one", "tall") and not mentions("around", "round")


@pytest.mark.parametrize("word, text", [
    ("gray", "a Grey blob"),  # British spelling, any case
    ("triangle", "a pointy one"),  # BODY_WORDS synonyms
    ("triangle", "two triangle-shaped friends"),
    ("dotted", "covered in spots"),  # a pattern stem, plural
    ("dotted", "a spotted coat"),  # PATTERN_ADJECTIVES
    ("checkered", "a chequered shirt"),
    ("glasses", "wearing spectacles"),
    ("backpack", "with a rucksack"),
    ("hat", "two hats"),
])
def test_mentions_recognises_every_written_form(word, text):
    assert mentions(text, word)


@pytest.mark.parametrize("word, text", [
    ("round", "it goes around"),  # whole words only
    ("red", "a bored cat"),
    ("tall", "a small one"),
    ("hat", "that one"),
    ("dotted", "a striped one"),
])
def test_mentions_refuses_other_words(word, text):
    assert not mentions(text, word)


def test_identity_facts_skip_plain_pattern_and_no_accessory():
    assert identity_facts(Identity("tall", "red", "plain", "none", "none")) == ("red", "tall")
    assert identity_facts(Identity("square", "green", "dotted", "white", "scarf")) == (
        "green", "square", "dotted", "white", "scarf")
    assert identity_facts(Identity("round", "blue", "striped", "yellow", "none")) == (
        "blue", "round", "striped", "yellow")


def test_keeps_facts_refuses_a_new_fact_word_only_when_the_original_lacks_it():
    facts = ("red", "tall")
    original = "a tall red character"
    assert keeps_facts("A lanky red figure", original, facts)  # a synonym is the same fact
    assert not keeps_facts("A lanky red figure in a hat", original, facts)  # an accessory it does not have
    assert not keeps_facts("A tall red and blue figure", original, facts)  # a colour it does not have
    assert keeps_facts("A tall red figure next to a blue one", "a tall red character next to a blue one", facts)
    assert not keeps_facts("   ", original, ())


@pytest.mark.parametrize("text, context", [
    ("A sandy beach with soft sand.", "beach"),
    ("A green forest by the beach.", "forest"),  # the earliest context word wins
    ("The scene is a snowy field.", "snow"),  # a prefix is enough: snowy, indoors, nightly
    ("Cosy INDOORS lighting.", "indoor"),
    ("A calm night by a lake, a city far away.", "night"),
    ("A plain grey wall.", None),
    ("", None),
])
def test_context_of_names_the_earliest_context(text, context):
    assert context_of(text) == context

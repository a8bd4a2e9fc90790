"""mmlink.eval.facts: world facts read from free text and checked against scene graphs (precision/recall)."""

from __future__ import annotations

import pytest

from mmlink.data.tasks import TASKS
from mmlink.data.world.edit import fresh_identities
from mmlink.data.world.scene import (
    Character,
    Identity,
    Pose,
    Scene,
    Thing,
    location,
    rng_for,
    sample_scene,
    scene_to_dict,
)
from mmlink.data.world.text import caption
from mmlink.eval.facts import (
    FACT_TYPES,
    PATTERN_NOUNS,
    Fact,
    FactTally,
    fact_metrics,
    fact_true,
    item_fact_counts,
    parse_facts,
    tally_answer,
)

# A triangular blue character with white stripes and a hat (named Elio), jumping on the left; a round red plain one
# (Fifi), sitting on the right; a red ball in the centre, a green tree on the right, two gray rocks in the centre.
ELIO = Identity("triangle", "blue", "striped", "white", "hat")
FIFI = Identity("round", "red", "plain", "none", "none")
BEACH = Scene("beach", (
    Character(ELIO, Pose("jumping"), x=0.2, y=0.6, size=0.3),
    Character(FIFI, Pose("sitting"), x=0.8, y=0.6, size=0.3),
    Thing("ball", "red", 0.5, 0.65, 0.14),
    Thing("tree", "green", 0.85, 0.6, 0.45),
    Thing("rock", "gray", 0.4, 0.8, 0.14),
    Thing("rock", "gray", 0.6, 0.8, 0.14),
))  # fmt: skip


def F(type_: str, subject: str, value) -> Fact:
    return Fact(type_, subject, str(value))


def _counts(tallies: dict[str, FactTally]) -> tuple[int, int]:
    return sum(t.correct for t in tallies.values()), sum(t.mentioned for t in tallies.values())


def test_scene_facts_are_as_built():
    assert (ELIO.name, FIFI.name) == ("Elio", "Fifi")
    assert [location(o)[0] for o in BEACH.objects] == ["left", "right", "centre", "right", "centre", "centre"]


# ------------------------------------------------------------------------------------------------ hand-worked items


def test_a_correct_caption_states_exactly_these_facts_and_all_are_true():
    text = ("At the beach, a triangular blue character with white stripes wearing a hat is jumping on the left. "
            "There is also a red ball in the centre.")
    assert parse_facts(text) == {
        F("context", "", "beach"), F("object", "", "character"), F("color", "character", "blue"),
        F("shape", "character", "triangle"), F("pattern", "character", "striped"), F("color", "stripes", "white"),
        F("accessory", "character", "hat"), F("action", "blue character", "jumping"),
        F("location", "blue character", "left"),
        F("object", "", "ball"), F("color", "ball", "red"), F("location", "red ball", "centre"),
    }  # fmt: skip
    tallies = tally_answer(text, [text], [BEACH])
    assert set(tallies) == set(FACT_TYPES)
    assert _counts(tallies) == (12, 12)
    m = fact_metrics([tallies])
    assert m["fact precision"] == 100.0 and m["fact recall"] == 100.0
    assert m["precision/color"] == 100.0 and m["recall/location"] == 100.0
    assert "precision/count" not in m and "recall/name" not in m  # no such fact: no ratio


def test_one_wrong_colour_costs_exactly_that_fact():
    tallies = tally_answer("There is a green ball at the beach.", [], [BEACH])
    assert (tallies["color"].mentioned, tallies["color"].correct) == (1, 0)
    assert (tallies["object"].mentioned, tallies["object"].correct) == (1, 1)
    assert (tallies["context"].mentioned, tallies["context"].correct) == (1, 1)
    assert item_fact_counts("There is a green ball at the beach.", [], [BEACH]) == (2, 3)
    m = fact_metrics([tallies])
    assert m["fact precision"] == pytest.approx(200 / 3) and m["precision/color"] == 0.0
    assert "fact recall" not in m  # no reference


def test_a_colour_is_bound_to_its_noun_not_to_the_text():
    # both colours and both kinds are in the scene, but swapped: a bag of words would call this caption right
    swapped = tally_answer("A red tree and a green ball.", [], [BEACH])
    assert (swapped["color"].mentioned, swapped["color"].correct) == (2, 0)
    assert (swapped["object"].mentioned, swapped["object"].correct) == (2, 2)
    right = tally_answer("A green tree and a red ball.", [], [BEACH])
    assert (right["color"].mentioned, right["color"].correct) == (2, 2)
    # a character's colour is the body's; the pattern's colour belongs to the stripes
    facts = parse_facts("a blue round creature and a white-and-blue striped figure")
    assert F("color", "character", "blue") in facts and F("shape", "character", "round") in facts
    assert F("color", "character", "white") in facts and F("color", "stripes", "blue") in facts
    assert not fact_true(F("color", "stripes", "blue"), [BEACH])
    assert fact_true(F("color", "stripes", "white"), [BEACH])


def test_an_absent_object_is_a_hallucination():
    tallies = tally_answer("A red ball and a car at the beach.", [], [BEACH])
    assert (tallies["object"].mentioned, tallies["object"].correct) == (2, 1)  # the car is not there
    assert _counts(tallies) == (3, 4)
    assert not fact_true(F("object", "", "car"), [BEACH])


def test_synonyms_of_the_world_vocabulary():
    for noun in ("creature", "figure", "character"):
        assert parse_facts(f"a triangular blue {noun} leaping") == {
            F("object", "", "character"), F("color", "character", "blue"), F("shape", "character", "triangle"),
            F("action", "blue character", "jumping")}  # fmt: skip
    for body in ("triangle-shaped", "pointy", "triangle"):
        assert F("shape", "character", "triangle") in parse_facts(f"a {body} character")
    assert F("shape", "character", "tall") in parse_facts("a tall and thin red figure")
    assert F("color", "rock", "gray") in parse_facts("a grey stone")
    assert F("pattern", "character", "dotted") in parse_facts("a character covered in pink polka dots")
    assert F("accessory", "character", "glasses") in parse_facts("a figure wearing a pair of glasses")
    tallies = tally_answer("A pointy blue creature is leaping. A round red figure sits.", [], [BEACH])
    assert _counts(tallies) == (7, 7)  # 4 + 4 facts, "there is a character" stated twice counts once


def test_counts_are_exact_numbers_of_the_named_objects():
    text = "Two gray rocks, three rocks, two balls and no trees."
    assert {f for f in parse_facts(text) if f.type == "count"} == {
        F("count", "gray rock", 2), F("count", "rock", 3), F("count", "ball", 2), F("count", "tree", 0)}
    tallies = tally_answer(text, [], [BEACH])
    assert (tallies["count"].mentioned, tallies["count"].correct) == (2 + 2, 1)  # only "two gray rocks" holds
    assert F("object", "", "tree") not in parse_facts(text)  # "no trees" does not say there is a tree
    assert fact_true(F("count", "character", 2), [BEACH]) and fact_true(F("count", "car", 0), [BEACH])
    assert parse_facts("Three characters.") == {F("count", "character", 3), F("object", "", "character")}


def test_location_of_a_named_object():
    assert F("location", "red ball", "centre") in parse_facts("The red ball is in the middle.")
    tallies = tally_answer("The red ball is on the right. The green tree is in the bottom right.", [], [BEACH])
    assert (tallies["location"].mentioned, tallies["location"].correct) == (2, 1)
    # a relative position is not a place in the frame
    facts = parse_facts("The ball is to the left of the green tree.")
    assert {f for f in facts if f.type in ("location", "relation")} == {F("relation", "ball", "left of green tree")}
    assert fact_true(F("relation", "ball", "left of green tree"), [BEACH])
    assert not fact_true(F("relation", "ball", "right of green tree"), [BEACH])
    assert F("location", "tree", "right") in parse_facts("a tree on the right of the picture")
    assert F("location", "red character", "right") in parse_facts("On the right, a red character is sitting.")


def test_names_and_actions_of_a_story():
    story = "Once upon a time, Elio, a pointy blue creature, was jumping at the beach while Fifi was waving."
    facts = parse_facts(story)
    assert {F("name", "", "Elio"), F("name", "", "Fifi"), F("action", "Elio", "jumping"),
            F("action", "Fifi", "waving")} <= facts  # fmt: skip
    tallies = tally_answer(story, [], [BEACH])
    assert (tallies["action"].mentioned, tallies["action"].correct) == (2, 1)  # Fifi sits
    assert (tallies["name"].mentioned, tallies["name"].correct) == (2, 2)
    assert not fact_true(F("name", "", "Pip"), [BEACH])


def test_a_change_is_true_of_one_image_each():
    after = Scene("beach", (Thing("ball", "blue", 0.5, 0.65, 0.14),))
    text = "The red ball has turned blue."
    assert parse_facts(text) == {F("object", "", "ball"), F("color", "ball", "red"), F("color", "ball", "blue")}
    assert _counts(tally_answer(text, [], [BEACH, after])) == (3, 3)
    assert _counts(tally_answer(text, [], [after])) == (2, 3)
    assert F("color", "ball", "red") in parse_facts("The ball that was red is now blue.")


def test_negated_facts_are_not_asserted():
    assert parse_facts("A character without a hat is not jumping.") == {F("object", "", "character")}
    assert parse_facts("There is no ball.") == {F("count", "ball", 0)}


def test_recall_counts_reference_facts_the_answer_states():
    ref = "A red ball is in the centre at the beach."
    tallies = tally_answer("A red ball at the beach.", [ref], [BEACH])
    assert (tallies["location"].reference, tallies["location"].recalled) == (1, 0)
    assert (tallies["color"].reference, tallies["color"].recalled) == (1, 1)
    assert fact_metrics([tallies])["fact recall"] == pytest.approx(100 * 3 / 4)
    # references are pooled: a fact of any reference counts once
    two = tally_answer("A red ball.", [ref, "There is a red ball."], [BEACH])
    assert sum(t.reference for t in two.values()) == 4


def test_an_empty_answer_states_nothing_and_recalls_nothing():
    tallies = tally_answer("", ["A red ball is in the centre at the beach."], [BEACH])
    assert _counts(tallies) == (0, 0)
    m = fact_metrics([tallies])
    assert m["fact recall"] == 0.0 and "fact precision" not in m  # precision of nothing is undefined
    assert fact_metrics([]) == {}


def test_metrics_pool_counts_over_items():
    a = {"color": FactTally(mentioned=1, correct=1, reference=2, recalled=1)}
    b = {"color": FactTally(mentioned=3, correct=0, reference=2, recalled=0), "object": FactTally(1, 1, 0, 0)}
    m = fact_metrics([a, b])
    assert m["precision/color"] == 25.0  # (1 + 0) / (1 + 3), not the mean of 100 and 0
    assert m["fact precision"] == 40.0 and m["fact recall"] == 25.0
    assert "recall/object" not in m and m["precision/object"] == 100.0
    with pytest.raises(ValueError, match="unknown fact type 'colour'"):
        fact_metrics([{"colour": FactTally()}])


def test_scenes_may_be_record_dicts():
    d = scene_to_dict(BEACH)
    assert item_fact_counts("A red ball.", [], [d]) == item_fact_counts("A red ball.", [], [BEACH]) == (2, 2)
    with pytest.raises(ValueError, match="objects\\[0\\].kind"):
        item_fact_counts("A red ball.", [], [{**d, "objects": [{"kind": "unicorn"}]}])
    with pytest.raises(TypeError, match="list of reference texts"):
        tally_answer("A red ball.", "A red ball.", [BEACH])


# ------------------------------------------------------------------------------ the generator's grammar, in bulk


def _scene_facts(scene: Scene) -> set[Fact]:
    """What a full caption of ``scene`` must be read as stating: every object with its attributes and place."""
    out = {F("context", "", scene.context)}
    for o in scene.objects:
        if isinstance(o, Character):
            ident, d = o.identity, f"{o.identity.color} character"
            out |= {F("object", "", "character"), F("color", "character", ident.color),
                    F("shape", "character", ident.body), F("action", d, o.pose.action),
                    F("location", d, location(o)[0])}  # fmt: skip
            if ident.pattern != "plain":
                out |= {F("pattern", "character", ident.pattern),
                        F("color", PATTERN_NOUNS[ident.pattern], ident.pattern_color)}
            if ident.accessory != "none":
                out.add(F("accessory", "character", ident.accessory))
        else:
            out |= {F("object", "", o.kind), F("color", o.kind, o.color),
                    F("location", f"{o.color} {o.kind}", location(o)[0])}
    return out


def test_world_captions_score_100_against_themselves_and_are_read_completely():
    tallies = []
    for i in range(200):
        rng = rng_for("test", 0, i, "facts")
        scene = sample_scene(rng, fresh_identities(rng, "test", int(rng.integers(0, 3))))
        text = caption(scene, rng)
        missing = _scene_facts(scene) - parse_facts(text)
        assert not missing, f"{text!r}: not read: {sorted(missing)}"
        tallies.append(tally_answer(text, [text], [scene]))
    m = fact_metrics(tallies)
    assert m["fact precision"] == 100.0 and m["fact recall"] == 100.0
    assert {"precision/relation", "precision/location", "precision/action", "precision/pattern"} <= set(m)


@pytest.mark.parametrize("task", ["caption", "group_caption", "storytelling", "change_caption"])
def test_every_fact_of_a_world_target_is_true_of_its_scenes(task):
    stated = 0
    for i in range(60):
        sample = TASKS.get(task)(rng_for("test", 0, i, task), "test")
        text = sample.conversations[-1]["value"]
        facts = parse_facts(text)
        wrong = [f for f in facts if not fact_true(f, sample.scenes)]
        assert not wrong, f"{text!r}: {wrong}"
        stated += len(facts)
    assert stated >= 60  # the targets state facts, and the parser reads them

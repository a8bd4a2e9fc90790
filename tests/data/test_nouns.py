"""mmlink.data.nouns: tokens, singular forms, nouns by elimination or by lexicon, content words, Jaccard overlap."""

from __future__ import annotations

import pytest

from mmlink.data.nouns import content_words, is_noun, jaccard, nouns, singular, words

# Captions shared with tests/data/test_phase1.py (the CaD-VI Phase-1 writer's tests).
CAPTIONS = {
    "c": "Two dogs are running in a park with a red ball.",
    "h": "A dog sits beside a ball under a tree near a bench.",
}


def test_nouns_by_elimination_and_by_lexicon() -> None:
    assert nouns("Two men are riding bicycles past a red bus next to some trees.") == {"man", "bicycle", "bus",
                                                                                       "tree"}
    assert nouns(CAPTIONS["h"]) == {"dog", "ball", "tree", "bench"}
    assert nouns("A striped character wearing glasses is jumping on the left.") == {"character", "glasses"}
    assert nouns("Two dogs and a cat", lexicon={"dog"}) == {"dog"}
    assert [singular(w) for w in ("boxes", "puppies", "glasses", "bus", "children")] == [
        "box", "puppy", "glasses", "bus", "child"]
    assert jaccard(nouns(CAPTIONS["c"]), nouns(CAPTIONS["h"])) == pytest.approx(2 / 5)


def test_words_lower_case_and_split_compounds() -> None:
    assert words("A purple-and-brown Dog's toy, 3 times!") == ["a", "purple", "and", "brown", "dog's", "toy", "times"]
    assert words("") == []


@pytest.mark.parametrize("plural, single", [
    ("churches", "church"), ("dishes", "dish"), ("glasses", "glasses"), ("classes", "class"), ("foxes", "fox"),
    ("waltzes", "waltz"), ("cities", "city"), ("cats", "cat"), ("people", "person"), ("leaves", "leaf"),
    ("bus", "bus"), ("grass", "grass"), ("famous", "famous"), ("tennis", "tennis"), ("its", "its"), ("ies", "ies"),
])
def test_singular_follows_the_regular_rules_and_the_irregulars(plural, single) -> None:
    assert singular(plural) == single


@pytest.mark.parametrize("word, noun", [
    ("dog", True), ("dogs", True), ("building", True), ("sled", True), ("buildings", True),  # -ing/-ed nouns kept
    ("running", False), ("painted", False), ("quickly", False),  # participles and adverbs
    ("red", False), ("grey", False), ("two", False), ("left", False), ("big", False), ("stripes", False),
    ("the", False), ("on", False), ("ox", False), ("dog's", False),  # stop words, short and possessive words
])
def test_is_noun_by_elimination(word, noun) -> None:
    assert is_noun(word) is noun


def test_nouns_with_a_lexicon_match_singular_or_as_written() -> None:
    assert nouns("Three boxes and two glasses near a bus", lexicon={"box", "glasses", "car"}) == {"box", "glasses"}
    assert nouns("The cars", lexicon=set()) == frozenset()


def test_content_words_drop_stop_words_but_keep_no_and_one() -> None:
    assert content_words("There is no red ball and one of the dogs is running.") == [
        "no", "red", "ball", "one", "dog", "running"]


def test_jaccard_of_sets() -> None:
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard(["a", "a"], ["a"]) == 1.0  # sets, not multisets
    assert jaccard([], []) == 0.0 and jaccard({"a"}, set()) == 0.0

"""mmlink.eval.options: a generated answer matched to a closed-ended question's options."""

from __future__ import annotations

import pytest

from mmlink.eval.options import answer_label, match_option, option_labels

VQA_PROMPT = "Image 1: <image>\nWhat is the setting of image 1?\nOptions: forest, beach, city street, dark forest\n" \
             "Answer with one of the options."
LETTERED = "Image 1: <image>\nWhat color is the ball?\nA. red\nB. blue\nC. green\nAnswer with the letter."
PAIR = 'Image 1: <image>\nImage 2: <image>\nText A: "a red ball"\nText B: "a blue ball"\n' \
       "Which text goes with Image 1? Answer A or B."


@pytest.mark.parametrize("answer, options, prompt, index, rule", [
    # 1. exact, after lowercasing and dropping punctuation
    ("Beach.", ["forest", "beach", "city street", "dark forest"], VQA_PROMPT, 1, "exact"),
    ("TRUE", ["True", "False"], "", 0, "exact"),
    ("B", ["A", "B"], PAIR, 1, "exact"),
    # 2. the letter of a labelled option
    ("B", ["red", "blue", "green"], LETTERED, 1, "letter"),
    ("C) green", ["red", "blue", "green"], LETTERED, 2, "letter"),
    ("(A)", ["red", "blue", "green"], LETTERED, 0, "letter"),
    ("The answer is B.", ["red", "blue", "green"], LETTERED, 1, "letter"),
    ("Text B goes with it", ["A", "B"], PAIR, 1, "letter"),
    # 3. the one option the answer contains (whole words; a longer option wins over its own part)
    ("It is image 2", ["1", "2"], "", 1, "contained"),
    ("the city street at night", ["forest", "beach", "city street", "dark forest"], VQA_PROMPT, 2, "contained"),
    ("a dark forest", ["forest", "beach", "city street", "dark forest"], VQA_PROMPT, 3, "contained"),
    ("It is blue", ["red", "blue", "green"], LETTERED, 1, "contained"),
    # 4. nothing, or several: no match
    ("1 or 2", ["1", "2"], "", None, "ambiguous"),
    ("forest or beach", ["forest", "beach", "city street", "dark forest"], VQA_PROMPT, None, "ambiguous"),
    ("I cannot tell", ["red", "blue", "green"], LETTERED, None, "unmatched"),
    ("B", ["red", "blue", "green"], "What color? Options: red, blue, green", None, "unmatched"),  # no labels
    ("a ball", ["A", "B"], PAIR, None, "unmatched"),  # "a" is an article, not option A
    ("12", ["1", "2"], "", None, "unmatched"),  # whole words only
])
def test_match_rules_in_order(answer, options, prompt, index, rule):
    m = match_option(answer, options, prompt)
    assert (m.index, m.rule) == (index, rule)


def test_labels_are_read_only_when_every_option_has_its_own():
    assert option_labels(LETTERED, ["red", "blue", "green"]) == {"A": 0, "B": 1, "C": 2}
    assert option_labels("(A) red (B) blue", ["red", "blue"]) == {"A": 0, "B": 1}
    assert option_labels(PAIR, ["A", "B"]) == {"A": 0, "B": 1}  # single-letter options label themselves
    assert option_labels(PAIR, ["a red ball", "a blue ball"]) == {"A": 0, "B": 1}
    assert option_labels("A. red\nWhich: red or blue?", ["red", "blue"]) == {}  # blue unlabelled
    assert option_labels("Options: red, blue", ["red", "blue"]) == {}


def test_answer_labels():
    assert [answer_label(a) for a in ("b", "B.", "(C)", "D: blue", "Option C", "answer: a")] == \
           ["B", "B", "C", "D", "C", None]
    assert answer_label("A red ball") is None and answer_label("a.") == "A"


def test_no_options_is_an_error():
    with pytest.raises(ValueError, match="no options"):
        match_option("x", [])

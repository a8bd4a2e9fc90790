"""The VQA accuracy and its answer normalization (mmlink.eval.vqa) on known cases of the official rules
(https://github.com/GT-Vision-Lab/VQA/blob/master/PythonEvaluationTools/vqaEvaluation/vqaEval.py)."""

import pytest

from mmlink.eval.vqa import normalize_answer, vqa_accuracy


@pytest.mark.parametrize("raw, normal", [
    ("Two", "2"),                      # number words become digits
    ("none", "0"),
    ("ten dogs", "10 dogs"),
    ("eleven", "eleven"),              # only zero to ten are mapped
    ("The dog.", "dog"),               # articles dropped, a final period too
    ("a cat and an owl", "cat and owl"),
    ("dont", "don't"),                 # the contraction gets its apostrophe back
    ("don't", "don't"),                # and the apostrophe is not punctuation
    ("Isnt it", "isn't it"),
    ("1,000", "1000"),                 # a comma between digits: every mark is deleted, not spaced
    ("3.5", "3.5"),                    # a period before a digit stays
    ("U.S.A.", "usa"),
    ("black/white", "black white"),    # a mark touching no space becomes a space
    ("black / white", "black white"),  # a mark touching a space is deleted
    ("yes!", "yes"),
    ("what?", "what"),
    ("man's hat", "man 's hat"),       # the EvalAI processor splits off 's
    ("  Red\tand\nblue ", "red and blue"),
    ("", ""),
])
def test_normalize_answer_follows_the_official_rules(raw, normal):
    assert normalize_answer(raw) == normal


def test_normalize_answer_rejects_non_strings():
    with pytest.raises(TypeError, match="string"):
        normalize_answer(3)


@pytest.mark.parametrize("matches, expected", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_accuracy_averages_min_matches_over_3_over_the_leave_one_out_subsets(matches, expected):
    # with m humans agreeing among 10: (10 - m) subsets keep all m matches, m subsets keep m - 1
    answers = ["red"] * matches + ["blue"] * (10 - matches)
    assert vqa_accuracy("red", answers) == pytest.approx(expected)


def test_prediction_and_human_answers_are_normalized_alike():
    assert vqa_accuracy("two", ["2"] * 10) == 1.0
    assert vqa_accuracy("2", ["Two"] * 10) == 1.0       # the official script would leave unanimous "Two" as is
    assert vqa_accuracy("The dog.", ["dog"] * 10) == 1.0
    assert vqa_accuracy("dont know", ["don't know"] * 3 + ["no"] * 7) == pytest.approx(0.9)
    assert vqa_accuracy("1,000", ["1000"] * 4 + ["many"] * 6) == 1.0
    assert vqa_accuracy("cat", ["dog"] * 10) == 0.0


def test_one_answer_is_exact_match_after_normalization():
    assert vqa_accuracy("The table.", ["table"]) == 1.0
    assert vqa_accuracy("Yes", ["yes"]) == 1.0
    assert vqa_accuracy("tables", ["table"]) == 0.0


def test_two_answers_use_the_leave_one_out_average():
    assert vqa_accuracy("red", ["red", "red"]) == pytest.approx(1 / 3)
    assert vqa_accuracy("red", ["red", "blue"]) == pytest.approx(1 / 6)  # (0 + 1/3) / 2


@pytest.mark.parametrize("answers", [[], "red"])
def test_accuracy_needs_a_list_of_answers(answers):
    with pytest.raises(ValueError, match="non-empty list"):
        vqa_accuracy("red", answers)


def test_accuracy_is_a_fraction():
    for answers in (["a"], ["x", "y", "x"], ["q"] * 7 + ["r"] * 3):
        for prediction in ("a", "x", "q", "r", "zz"):
            assert 0.0 <= vqa_accuracy(prediction, answers) <= 1.0

"""The standard VQA accuracy and its answer normalization (VQAv2, VizWiz, TextVQA; GQA with one answer).

**Normalization** (`normalize_answer`) follows the VQA challenge's evaluation script
(https://github.com/GT-Vision-Lab/VQA/blob/master/PythonEvaluationTools/vqaEvaluation/vqaEval.py) in the form the
EvalAI answer processor gives it (facebookresearch/mmf, ``pythia/tasks/processors.py`` ``EvalAIAnswerProcessor``,
which lmms-eval applies to predictions): lowercase; ``,`` and ``?`` dropped and ``'s`` split off (``man's`` →
``man 's``); newlines and tabs to spaces; then the official punctuation rules — each mark of ``; / [ ] " { } ( ) = +
\\ _ - > < @ ` , ? !`` is deleted when it touches a space in the text (or when the text holds a comma between two
digits), else replaced by a space (``black/white`` → ``black white``); a period not followed by a digit is deleted
(``dog.`` → ``dog``, ``2.5`` kept); then word by word: number words ``none``/``zero`` … ``ten`` become digits,
the articles ``a``/``an``/``the`` are dropped, and apostrophe-less contractions get their apostrophe back
(``dont`` → ``don't``). The apostrophe itself is not punctuation here, so ``don't`` and ``dont`` meet at ``don't``.

**Accuracy** (`vqa_accuracy`): with n ≥ 2 human answers, each one left out in turn, the prediction scores
min(1, #other humans who gave it / 3), averaged over the n subsets — 10 answers of which 2 match → 0.6, 3 → 0.9,
4 or more → 1.0. With one answer (GQA's protocol) it is exact match after normalization.

**How this differs from the official script.** vqaEval.py normalizes the prediction (punctuation, digits, articles,
contractions) but the human answers only when they disagree, and then only their punctuation — so when all ten
humans wrote ``Two`` a prediction ``two`` (→ ``2``) scores 0. Here the prediction and every human answer go through
the same normalization, as the TextVQA/M4C evaluator (mmf ``TextVQAAccuracyEvaluator``) and lmms-eval's TextVQA and
VizWiz scoring do; answers the official script scores as matching still match, and a few it misses because of
case, number words or articles in unanimous human answers now match too. Two quirks of the official regular
expressions are kept: its period rule's ``(?!<=\\d)`` is a malformed look-behind that constrains nothing (a period
is dropped whenever no digit follows), and it passes ``re.UNICODE`` (= 32) where ``count`` goes, so at most 32
periods are removed.

Light: standard library only.
"""

from __future__ import annotations

import re
from typing import Sequence

# Apostrophe-less spellings -> the contraction (the official table; keys already holding an apostrophe map forms
# with a misplaced one). Lookups are on lowercased words, so the capitalised keys (Im, Ive, Id've) never fire —
# as in the official script.
_CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've",
    "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's",
    "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've",
    "mightve": "might've", "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've", "twas": "'twas",
    "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
            "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = frozenset({"a", "an", "the"})
_PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
                "?", "!")
_COMMA_BETWEEN_DIGITS = re.compile(r"(?<=\d),+(?=\d)")
_PERIOD = re.compile(r"\.(?!\d)")  # the official (?!<=\d)(\.)(?!\d): its "look-behind" constrains nothing
_PERIOD_LIMIT = 32  # the official scripts pass re.UNICODE (= 32) in sub()'s count position


def _punctuation(text: str) -> str:
    """The official punctuation rule: a mark is deleted where it touches a space (or anywhere, when the text
    holds a comma between digits — ``1,000``), else replaced by a space; then periods without a digit after."""
    out = text
    digits_comma = _COMMA_BETWEEN_DIGITS.search(text) is not None
    for mark in _PUNCTUATION:
        # the tests read the original text, the replacements accumulate (as in the official code)
        if digits_comma or f"{mark} " in text or f" {mark}" in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD.sub("", out, count=_PERIOD_LIMIT)


def _digits_articles(text: str) -> str:
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


def normalize_answer(text: str) -> str:
    """An answer in the VQA evaluation's normal form (see the module doc): ``"The dog."`` → ``"dog"``,
    ``"Two"`` → ``"2"``, ``"1,000"`` → ``"1000"``, ``"dont"`` → ``"don't"``."""
    if not isinstance(text, str):
        raise TypeError(f"an answer must be a string, got {type(text).__name__}")
    # the EvalAI processor's word_tokenize step, then its whitespace cleanup
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return _digits_articles(_punctuation(text))


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """The VQA accuracy (0-1) of ``prediction`` against the human ``answers`` (all of them, raw): with two or
    more, min(1, #other humans giving the normalized prediction / 3) averaged over the leave-one-out subsets;
    with one, exact match after normalization."""
    if isinstance(answers, str) or not answers:
        raise ValueError("vqa_accuracy needs a non-empty list of human answers")
    mine = normalize_answer(prediction)
    humans = [normalize_answer(a) for a in answers]
    if len(humans) == 1:
        return float(mine == humans[0])
    same = sum(h == mine for h in humans)
    # leaving out a human who gave the answer removes one match; leaving out another removes none
    total = sum(min(1.0, (same - (h == mine)) / 3.0) for h in humans)
    return total / len(humans)


__all__ = ["normalize_answer", "vqa_accuracy"]

"""Closed-ended answers by generation: match a short free answer to one of a question's options.

``--option-scoring generate`` asks the model for a short greedy answer instead of ranking the candidates by
likelihood: a summed likelihood favours short candidates, a per-token one long ones, and both favour strings the
LLM finds common, whatever the image shows; a generated answer is judged only by which option it names (it has
priors of its own — which options the model tends to say — that the blind control measures). The answer is then
matched to the options, first rule that applies:

1. **exact** — the answer equals one option after normalisation (lowercase, ASCII punctuation removed, whitespace
   collapsed: SAM's caption normalisation, `mmlink.metrics.simple_tokenize`);
2. **letter** — the prompt labels the options with letters (``A. red``, ``(B) blue``, ``C) green``,
   ``Text A: "…"``; or the options *are* single letters, as in the pair-matching tasks) and the answer names one
   label: the whole answer is the letter, or it starts with ``B.``/``B)``/``(B)``/``B:``, or says
   ``answer/option/choice/text B`` (capital letter: a lowercase ``a`` is an article);
3. **contained** — exactly one option occurs in the answer as whole words (``"image 2"`` → ``2``). An option
   found only as part of a longer option that also occurs (``red`` inside ``dark red``) does not count separately.
   Single-letter options never match this way: ``a`` is an article in every sentence;
4. otherwise no match (``unmatched``, or ``ambiguous`` when several options occur): the item counts as wrong, and
   the harness reports how many items were unmatched.

The built-in prompts: ``vqa_options`` lists its options unlabelled (``Options: red, blue, …``), so only rules 1
and 3 apply; BISON/SVO answer ``1``/``2``, NLVR2 ``True``/``False``; EQBEN/COLA ask "Answer A or B." over texts
labelled ``Text A``/``Text B``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Optional, Sequence

from mmlink.metrics import simple_tokenize

OptionScoring = Literal["sum", "mean", "generate"]
OPTION_SCORINGS: tuple[str, ...] = ("sum", "mean", "generate")
OPTION_ANSWER_TOKENS = 16  # a generated option answer: long enough for "Image 2" or "Text B", short to stay cheap
OPTION_SCORING_HELP = (
    "how a closed-ended task picks its answer: sum (default) = the candidate with the highest log-likelihood of its "
    "tokens + EOS; mean = that log-likelihood per token (a sum favours short candidates); generate "
    f"= a greedy answer of at most {OPTION_ANSWER_TOKENS} tokens (--max-new-tokens overrides) matched to the "
    "options: exact text, else the option's letter when the prompt labels them, else the one option the answer "
    "contains; an answer matching none counts wrong and is reported as 'unmatched'")
Rule = Literal["exact", "letter", "contained", "unmatched", "ambiguous"]
# The answer is a label: "B.", "B)", "(B)", "B:" at its start, or "answer/option/choice/text (is) B" anywhere.
_LEADING_LABEL = re.compile(r"^\(?([A-Z])(?:[).:\]](?=\s|$)|\)?$)")
_NAMED_LABEL = re.compile(r"\b(?:answer|option|choice|text)(?:\s+is)?\s*:?\s*\(?([A-Z])\b(?![-'’])", re.IGNORECASE)


@dataclass(frozen=True)
class OptionMatch:
    """Which option an answer names (``index`` None when none) and the rule that decided it."""

    index: Optional[int]
    rule: Rule


def option_labels(prompt: str, options: Sequence[str]) -> dict[str, int]:
    """Letter → option index, when every option carries its own capital-letter label in ``prompt`` (``A. x``,
    ``(A) x``, ``A) x``, ``A: x``, ``Text A: "x"``), or the options are themselves distinct single letters;
    else ``{}`` (labels only for some options would be guesswork)."""
    if all(len(o) == 1 and o.isalpha() for o in options) and len({o.upper() for o in options}) == len(options):
        return {o.upper(): i for i, o in enumerate(options)}
    labels: dict[str, int] = {}
    for i, option in enumerate(options):
        pattern = (r"(?<![A-Za-z0-9])\(?([A-Z])[).:\]]\s*[\"“']?(?i:" + re.escape(option.strip())
                   + r")(?=[\"”']?(?:$|[\s,.;:!?)]))")
        found = {m.group(1) for m in re.finditer(pattern, prompt)}
        if len(found) != 1:
            return {}
        labels[found.pop()] = i
    return labels if len(labels) == len(options) else {}


def answer_label(answer: str) -> Optional[str]:
    """The capital letter an answer names as a label (see the module doc), or None."""
    text = answer.strip()
    if len(simple_tokenize(text)) == 1 and simple_tokenize(text).isalpha():
        return simple_tokenize(text).upper()
    m = _LEADING_LABEL.match(text) or _NAMED_LABEL.search(text)
    if m and m.group(1).isupper():
        return m.group(1)
    return None


def match_option(answer: str, options: Sequence[str], prompt: str = "") -> OptionMatch:
    """Match a generated ``answer`` to one of ``options`` (the rules of the module doc); ``prompt`` is the
    question's text, read for letter labels."""
    if not options:
        raise ValueError("match_option: no options given")
    norm = [simple_tokenize(o) for o in options]
    said = simple_tokenize(answer)
    exact = [i for i, o in enumerate(norm) if o and o == said]
    if len(exact) == 1:
        return OptionMatch(exact[0], "exact")
    labels = option_labels(prompt, options)
    if labels:
        letter = answer_label(answer)
        if letter is not None and letter in labels:
            return OptionMatch(labels[letter], "letter")
    padded = f" {said} "
    found = [i for i, o in enumerate(norm) if o and not (len(o) == 1 and o.isalpha()) and f" {o} " in padded]
    # "red" inside "dark red" is not a second option named: keep only options not part of another one found
    found = [i for i in found if not any(j != i and f" {norm[i]} " in f" {norm[j]} " and norm[j] != norm[i]
                                         for j in found)]
    if len(found) == 1:
        return OptionMatch(found[0], "contained")
    return OptionMatch(None, "ambiguous" if found else "unmatched")


__all__ = ["OPTION_ANSWER_TOKENS", "OPTION_SCORINGS", "OPTION_SCORING_HELP", "OptionMatch", "OptionScoring",
           "answer_label", "match_option", "option_labels"]

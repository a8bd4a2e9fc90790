"""Facts, shared by annotation and quality control: how the world's text writes a fact word (colour, body, pattern,
accessory), which facts a description of an identity must keep, whether a rewrite keeps them, and which world
context a background description names."""

from __future__ import annotations

import re
from collections.abc import Sequence

from mmlink.data.world.scene import COLORS, CONTEXTS, Identity
from mmlink.data.world.text import ACCESSORY_NOUNS, BODY_WORDS, PATTERN_ADJECTIVES, PATTERN_STEMS


def _fact_forms() -> dict[str, tuple[str, ...]]:
    """Every way the world's text writes a fact word (synonyms from `mmlink.data.world.text`), plus a few more."""
    forms: dict[str, set[str]] = {c: {c} for c in COLORS}
    forms["gray"] |= {"grey"}
    for body, words in BODY_WORDS.items():
        forms[body] = {body} | {w.split()[0].split("-")[0] for w in words}
    for pattern, stems in PATTERN_STEMS.items():
        if pattern != "plain":
            forms[pattern] = {pattern, PATTERN_ADJECTIVES.get(pattern, pattern)} | set(stems)
    forms["checkered"] |= {"checked", "chequered"}
    for acc, noun in ACCESSORY_NOUNS.items():
        forms[acc] = {acc, noun}
    forms["glasses"] |= {"spectacles"}
    forms["backpack"] |= {"rucksack"}
    return {k: tuple(sorted(v, key=len, reverse=True)) for k, v in forms.items()}


_FACT_FORMS = _fact_forms()
_ALL_FACT_WORDS = tuple(_FACT_FORMS)


def fact_regex(word: str) -> re.Pattern:
    """How a fact word is recognised in text: any of its forms as a whole word, case-insensitive, plural allowed
    (``round``: round, roundish, circular; ``striped``: stripe(s), striped; ``gray``: grey …)."""
    forms = _FACT_FORMS.get(word, (word,))
    return re.compile(r"\b(?:" + "|".join(re.escape(f) for f in forms) + r")(?:s|es)?\b", re.IGNORECASE)


def mentions(text: str, word: str) -> bool:
    return bool(fact_regex(word).search(text))


def identity_facts(identity: Identity) -> tuple[str, ...]:
    """The words a description of ``identity`` must contain: colour, body, pattern (+ its colour), accessory."""
    facts = [identity.color, identity.body]
    if identity.pattern != "plain":
        facts += [identity.pattern, identity.pattern_color]
    if identity.accessory != "none":
        facts.append(identity.accessory)
    return tuple(facts)


def keeps_facts(rewrite: str, original: str, facts: Sequence[str]) -> bool:
    """True if ``rewrite`` mentions every fact and no fact word (colour, body, …) that ``original`` does not."""
    if not rewrite.strip() or any(not mentions(rewrite, f) for f in facts):
        return False
    return not any(mentions(rewrite, w) and not mentions(original, w) for w in _ALL_FACT_WORDS)


def context_of(description: str) -> str | None:
    """The world context a background description names (the earliest context word), or None."""
    best, best_pos = None, len(description) + 1
    for ctx in CONTEXTS:
        m = re.search(r"\b" + ctx, description, re.IGNORECASE)
        if m and m.start() < best_pos:
            best, best_pos = ctx, m.start()
    return best

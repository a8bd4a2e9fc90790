"""Shared checks for generated text (imported by the data tests; `tests/` is on pytest's pythonpath)."""

from __future__ import annotations

import re

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.scene import rng_for
from mmlink.data.world.text import ACTION_STEMS


def grammar_problems(text: str) -> list[str]:
    """Grammar slips a generated text must never have."""
    problems = []
    if re.search(r"\b[Aa] [aeiouAEIOU]\w", text) and not re.search(r"\b[Aa] (one|uni|use|eu)", text):
        problems.append("'a' before a vowel")
    if re.search(r"\b[Aa]n [b-df-hj-np-tv-zB-DF-HJ-NP-TV-Z]", text):
        problems.append("'an' before a consonant")
    if re.search(r"\b(were both|characters are|characters|all) waving its arm", text):
        problems.append("plural subject with 'its arm'")
    if "  " in text:
        problems.append("double space")
    if re.search(r" [,.;:?!]", text):
        problems.append("space before punctuation")
    for line in text.split("\n"):
        line = re.sub(r"^- [A-Za-z ]+: ", "", line.strip())  # CaD bullets: "- Object types: ..."
        for s in re.split(r"(?<=[.!?])\s+", line):
            s = s.lstrip('"-* ')
            if s and s[0].isalpha() and not s[0].isupper():
                problems.append(f"sentence starts lowercase: {s[:40]!r}")
    for quoted in re.findall(r'"([^"]+)"', text):
        if quoted[0].isalpha() and not quoted[0].isupper():
            problems.append(f"quote starts lowercase: {quoted[:40]!r}")
    if re.search(r"\b(\w+) \1\b", text):
        problems.append("repeated word")
    return problems


def has_any(text: str, phrases) -> bool:
    low = text.lower()
    return any(p.lower() in low for p in phrases)


def action_in(text: str, action: str) -> bool:
    return has_any(text, ACTION_STEMS[action])


def generate(task: str, split: str, n: int, seed: int = 0) -> list[WorldSample]:
    fn = TASKS.get(task)
    return [fn(rng_for(split, seed, i, task), split) for i in range(n)]


_CACHE: dict = {}


def task_samples(task: str, split: str, n: int) -> list[WorldSample]:
    """`generate` with seed 0, cached across test modules (the same samples serve many checks)."""
    key = (task, split, n)
    if key not in _CACHE:
        _CACHE[key] = generate(task, split, n)
    return _CACHE[key]

"""CaD summaries from two captions: what each caption states, the template summary, and checks on an LLM's summary.

CaD-VI Phase 1 has an LLM read two captions and write the commonalities and differences of the two images over six
axes (`mmlink.data.tasks.pairs.AXES`), only the axes that apply. This module holds what that needs besides the LLM:

* `caption_facts` — the facts a caption states, read with the small lexicon of `mmlink.data.nouns`: objects (noun →
  colours, count), actions (an ``-ing`` word and its subject), the setting ("at the beach"), sides ("on the left"),
  and relative positions ("the dog is next to the bench");
* `template_summary` — the template backend's summary: those facts compared, in the world's CaD format
  (`mmlink.data.tasks.pairs.format_cad`). Deterministic and conservative: it says only what the captions state;
* `parse_summary` / `grounded` — an LLM's summary is kept only when it has the format (``Commonalities:`` and
  ``Differences:`` sections of ``- Axis: text`` lines over the six axes) and names no object absent from both
  captions; otherwise the template summary replaces it, and the writer counts why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmlink.data.nouns import COLOR_WORDS, NUMBER_WORDS, POSITION_WORDS, is_noun, nouns, singular, words
from mmlink.data.tasks.pairs import AXES, format_cad
from mmlink.data.world.text import count_phrase, join_list, with_article

# Nouns that name where a picture is taken (the `locations` axis), not an object in it.
PLACE_NOUNS = frozenset("""beach forest woods park city street road room kitchen bedroom bathroom office field meadow
desert snow garden yard lake river sea ocean shore mountain hill valley landscape market station airport playground
stadium farm countryside village town square courtyard classroom restaurant cafe store shop indoors outdoors night
""".split())
SETTING_PREPOSITIONS = ("in", "at", "on", "by", "inside")
SIDES = {"left": "on the left", "right": "on the right", "centre": "in the centre", "center": "in the centre",
         "middle": "in the centre"}
# Relation phrases (as token tuples) → the words the summary uses; longest first when matching.
RELATIONS = {("to", "the", "left", "of"): "to the left of", ("on", "the", "left", "of"): "to the left of",
             ("left", "of"): "to the left of", ("to", "the", "right", "of"): "to the right of",
             ("on", "the", "right", "of"): "to the right of", ("right", "of"): "to the right of",
             ("in", "front", "of"): "in front of", ("on", "top", "of"): "on top of", ("next", "to"): "next to",
             ("behind",): "behind", ("above",): "above", ("below",): "below", ("under",): "under",
             ("beside",): "next to", ("near",): "near"}
_RELATION_KEYS = sorted(RELATIONS, key=len, reverse=True)
# Words an LLM's summary may use that are no objects of either caption.
SUMMARY_WORDS = frozenset("""image images picture pictures photo caption captions scene scenes commonality
commonalities difference differences similarity similarities object objects type types attribute attributes count
counts number numbers action actions location locations position positions relative colour colours color colors size
shape setting settings place places element elements item items thing things subject subjects none""".split())


@dataclass
class CaptionFacts:
    """What one caption states: per object noun its colours and count (None when unstated), per subject noun its
    actions ("jumping", "wearing a hat"), the setting phrase ("on the beach"), sides and relations."""

    colors: dict[str, set[str]] = field(default_factory=dict)
    counts: dict[str, int | None] = field(default_factory=dict)
    actions: dict[str, list[str]] = field(default_factory=dict)
    setting: list[str] = field(default_factory=list)
    sides: dict[str, str] = field(default_factory=dict)
    relations: set[tuple[str, str, str]] = field(default_factory=set)

    @property
    def objects(self) -> list[str]:
        return list(self.counts)


def _sentences(text: str) -> list[list[str]]:
    return [words(s) for s in re.split(r"[.;!?]+", text) if s.strip()]


def _object_phrase(toks: list[str], k: int) -> tuple[str, int]:
    """An action's object right after it ("a red hat" after "wearing"): the phrase (or "") and the tokens it takes."""
    for j in range(k, min(k + 4, len(toks))):
        if is_noun(toks[j]):
            return " ".join(toks[k:j + 1]), j + 1 - k
        if not (toks[j] in ("a", "an", "the", "his", "her", "its", "their") or toks[j] in COLOR_WORDS
                or toks[j] in NUMBER_WORDS):
            break
    return "", 0


def caption_facts(caption: str) -> CaptionFacts:
    """Read the facts of a caption (see the module docstring); a word the lexicon cannot place is ignored.

    Simple captions are assumed: a sentence's first object noun is the subject of its actions; the nearest
    determiner before a noun says how many ("a", "two"; "the" re-mentions one already counted)."""
    facts = CaptionFacts()
    for toks in _sentences(caption):
        subject, last_noun, boundary = "", "", 0
        k = 0
        while k < len(toks):
            rel = next((key for key in _RELATION_KEYS if tuple(toks[k:k + len(key)]) == key), None)
            if rel is not None:  # "<object> ... next to <object>"
                obj = next((singular(t) for t in toks[k + len(rel):] if is_noun(t) and singular(t) not in PLACE_NOUNS),
                           None)
                if last_noun and obj and obj != last_noun:
                    facts.relations.add((last_noun, RELATIONS[rel], obj))
                k += len(rel)
                boundary = k
                continue
            tok = toks[k]
            if tok in SIDES and last_noun:
                facts.sides.setdefault(last_noun, SIDES[tok])
            elif tok.endswith("ing") and not is_noun(tok) and not tok.endswith("thing") and len(tok) > 4:
                obj, taken = _object_phrase(toks, k + 1)
                facts.actions.setdefault(subject, []).append(f"{tok} {obj}".strip())
                k += 1 + taken
                boundary = k
                continue
            elif is_noun(tok):
                noun = singular(tok)
                before = toks[max(boundary, k - 6):k]
                if noun in PLACE_NOUNS:
                    first = k
                    while k + 1 < len(toks) and singular(toks[k + 1]) in PLACE_NOUNS:  # "a city street"
                        k += 1
                    place = " ".join(toks[first:k + 1])
                    preps = [j for j, t in enumerate(before) if t in SETTING_PREPOSITIONS]
                    # "on a snowy field" as the caption says it; a bare place noun gets "in a"
                    phrase = " ".join([*before[preps[-1]:], place]) if preps else f"in {with_article(place)}"
                    if phrase not in facts.setting:
                        facts.setting.append(phrase)
                else:
                    facts.colors.setdefault(noun, set()).update(t for t in before if t in COLOR_WORDS)
                    det = next((t for t in reversed(before) if t in NUMBER_WORDS or t == "the"), None)
                    if det != "the" or noun not in facts.counts:
                        # a plural without a number word states no count ("balls": how many is unsaid)
                        number = NUMBER_WORDS.get(det) if det else None
                        old = facts.counts.get(noun, 0)
                        facts.counts[noun] = (None if number is None or old is None else old + number)
                    subject = subject or noun
                    last_noun = noun
                boundary = k + 1
            k += 1
    return facts


def _colours(cs: set[str]) -> str:
    return join_list(sorted(cs))


def _counted(n: int, noun: str) -> str:
    return count_phrase(n, noun)


def compare(a: CaptionFacts, b: CaptionFacts) -> dict[str, dict[str, list[str]]]:
    """The commonalities and differences of two captions' facts, per axis (axes with nothing to say left out)."""
    com: dict[str, list[str]] = {axis: [] for axis in AXES}
    dif: dict[str, list[str]] = {axis: [] for axis in AXES}
    both = [o for o in a.objects if o in b.counts]
    only1, only2 = [o for o in a.objects if o not in b.counts], [o for o in b.objects if o not in a.counts]
    if both:
        com["object types"].append(f"Both images contain {join_list([with_article(o) for o in both])}.")
    if only1 or only2:
        parts = [f"only the {nth} image has {join_list([with_article(o) for o in only])}"
                 for nth, only in (("first", only1), ("second", only2)) if only]
        dif["object types"].append("; ".join(parts)[:1].upper() + "; ".join(parts)[1:] + ".")
    same_counts = []
    for o in both:
        c1, c2 = a.colors.get(o, set()), b.colors.get(o, set())
        if c1 and c2:
            if c1 == c2:
                com["attributes"].append(f"The {o} is {_colours(c1)} in both images.")
            else:
                dif["attributes"].append(f"The {o} is {_colours(c1)} in the first image and {_colours(c2)} in the "
                                         "second.")
        n1, n2 = a.counts[o], b.counts[o]
        if n1 is not None and n2 is not None:
            if n1 == n2:
                same_counts.append(_counted(n1, o))
            else:
                dif["counts"].append(f"The first image has {_counted(n1, o)}, the second {_counted(n2, o)}.")
        s1, s2 = a.sides.get(o), b.sides.get(o)
        if s1 and s2:
            com_or_dif = com if s1 == s2 else dif
            com_or_dif["locations"].append(f"The {o} is {s1} in both images." if s1 == s2 else
                                           f"The {o} is {s1} in the first image and {s2} in the second.")
    if same_counts:
        com["counts"].insert(0, f"Both images have {join_list(same_counts)}.")
    _compare_actions(a, b, com, dif)
    if a.setting and b.setting:
        p1, p2 = a.setting[0], b.setting[0]
        if p1 == p2:
            com["locations"].insert(0, f"Both images are set {p1}.")
        elif p1.split()[-1] != p2.split()[-1]:  # "on the beach" vs "at the beach" is no difference
            dif["locations"].insert(0, f"The first image is set {p1}, the second {p2}.")
    for s, r, o in sorted(a.relations & b.relations):
        com["relative positions"].append(f"In both images the {s} is {r} the {o}.")
    pairs1 = {(s, o): r for s, r, o in a.relations}
    for s, r2, o in sorted(b.relations):
        r1 = pairs1.get((s, o))
        if r1 is not None and r1 != r2:
            dif["relative positions"].append(f"The {s} is {r1} the {o} in the first image and {r2} it in the "
                                             "second.")
    return {"commonalities": {k: v for k, v in com.items() if v}, "differences": {k: v for k, v in dif.items() if v}}


def _compare_actions(a: CaptionFacts, b: CaptionFacts, com: dict, dif: dict) -> None:
    for subject in [s for s in a.actions if s in b.actions]:
        x, y = join_list(a.actions[subject]), join_list(b.actions[subject])
        who = f"The {subject}" if subject else "Something"
        if x == y:
            com["actions"].append(f"{who} is {x} in both images.")
        else:
            dif["actions"].append(f"{who} is {x} in the first image and {y} in the second.")


def template_summary(caption1: str, caption2: str) -> str:
    """The template backend's CaD summary of two captions, in the world's format."""
    return format_cad(compare(caption_facts(caption1), caption_facts(caption2)))


# --------------------------------------------------------------------------- checks on an LLM's summary

_AXIS_NAMES = {**{a: a for a in AXES}, **{a[:-1]: a for a in AXES}, "object type": "object types",
               "relative position": "relative positions", "colours": "attributes", "colors": "attributes"}
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s*\**([A-Za-z ]+?)\**\s*:\s*(.+?)\s*$")
_HEADER = re.compile(r"^\s*\**\s*(commonalities|similarities|differences)\s*\**\s*:?\s*\**\s*(.*?)\s*$",
                     re.IGNORECASE)


def parse_summary(text: str) -> dict[str, dict[str, list[str]]] | None:
    """The sections of a summary in the CaD format (``Commonalities:`` / ``Differences:``, then ``- Axis: text``
    lines), or None when it does not have it: both sections, at least one axis line, axis names among the six."""
    facts: dict[str, dict[str, list[str]]] = {}
    section = None
    for line in text.splitlines():
        if not line.strip():
            continue
        header = _HEADER.match(line)
        if header:
            section = "differences" if header.group(1).lower() == "differences" else "commonalities"
            facts.setdefault(section, {})
            rest = header.group(2).strip().rstrip(".").lower()
            if rest and rest != "none":
                return None
            continue
        bullet = _BULLET.match(line)
        if section is None or bullet is None:
            return None
        axis = _AXIS_NAMES.get(bullet.group(1).strip().lower())
        if axis is None:
            return None
        statement = bullet.group(2).strip()
        statement = statement[:1].upper() + statement[1:] + ("" if statement.endswith((".", "!", "?")) else ".")
        facts[section].setdefault(axis, []).append(statement)
    if set(facts) != {"commonalities", "differences"} or not any(facts.values()):
        return None
    # the world's order of axes, so an LLM's summary reads like every other one
    return {s: {a: facts[s][a] for a in AXES if a in facts[s]} for s in ("commonalities", "differences")}


def ungrounded(summary: dict[str, dict[str, list[str]]], caption1: str, caption2: str) -> list[str]:
    """Nouns the summary names that neither caption has (an LLM's invention), sorted; [] when it is grounded."""
    allowed = nouns(caption1) | nouns(caption2) | SUMMARY_WORDS | POSITION_WORDS
    said = {n for axes in summary.values() for lines in axes.values() for line in lines for n in nouns(line)}
    return sorted(said - allowed)


__all__ = ["PLACE_NOUNS", "CaptionFacts", "caption_facts", "compare", "parse_summary", "template_summary",
           "ungrounded"]

"""Words of captions without an NLP library: tokens, singular forms, nouns, content words.

CaD-VI pairs images whose captions share nouns. A tagger (spaCy, NLTK) would need models that cannot be downloaded
here, so nouns are found by elimination: a word is a noun unless a small lexicon knows it as something else — a
function word, a colour, a number, a common adjective or verb, a position word — or its ending marks a participle or
adverb (``-ing``, ``-ed``, ``-ly``; a short list of ``-ing``/``-ed`` nouns is kept). On captions of everyday scenes this
keeps the object words and drops most others; a caller with a known vocabulary passes ``lexicon`` (the nouns it
accepts, singular) and gets exactly those.
"""

from __future__ import annotations

import re
from typing import Collection, Iterable

from mmlink.data.world.scene import COLORS

STOP_WORDS = frozenset("""
a an the this that these those there here it its it's they them their he him his she her we us our you your i me my
and or but nor so yet if then than as of in on at to from by with without into onto over under above below up down out
off about across along around behind beside besides between beyond near next past through toward towards upon within
is are was were be been being am has have had do does did can could will would shall should may might must also too
very just only not no each every all both either neither some any many much more most few several other another such
same own one ones who whom whose which what where when why how while still again almost
""".split())

# Words captions use around nouns that are not objects: colours, numbers, shapes, sizes and patterns, common
# adjectives and verbs, and position words (where an object is: the `locations`/`relative positions` axes).
COLOR_WORDS = frozenset(COLORS) | frozenset(("grey", "gold", "golden", "silver", "beige", "tan", "violet", "dark",
                                             "light", "bright", "pale"))
NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "no": 0}
POSITION_WORDS = frozenset("""left right centre center middle top bottom front back side upper lower corner
foreground background distance edge""".split())
NON_NOUNS = COLOR_WORDS | frozenset(NUMBER_WORDS) | POSITION_WORDS | frozenset("""
big small large little tiny huge tall short long wide narrow old young new round roundish circular square boxy
triangular pointy lanky thin thick fat flat plain striped spotted dotted checkered patterned shaped colourful colorful
sandy snowy sunny cloudy grassy rocky busy empty happy pretty dirty clean fluffy furry shiny wooden metal open closed
calm quiet cheerful simple detailed beautiful nice good bad hot cold warm wet dry full half whole single double
first second third last different similar together alone outside inside outdoors indoors upright still
stripe stripes dot dots spot spots check checks pattern polka
shows show showing appears appear stands stand sits sit lies lie holds hold wears wear looks look plays play walks
walk runs run rides ride carries carry waves wave jumps jump contains contain depicts depict seen see features
feature picture image photo photograph scene view shot
""".split())
ING_ED_NOUNS = frozenset("""building ceiling clothing painting evening morning ring string wing swing king thing
bed shed sled seed weed""".split())
_IRREGULAR = {"men": "man", "women": "woman", "children": "child", "people": "person", "feet": "foot",
              "teeth": "tooth", "mice": "mouse", "geese": "goose", "glasses": "glasses", "leaves": "leaf",
              "knives": "knife", "wolves": "wolf", "shelves": "shelf", "boxes": "box", "buses": "bus"}
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")


def words(text: str) -> list[str]:
    """Lower-case word tokens; hyphenated compounds split ("purple-and-brown" → purple, and, brown)."""
    return _TOKEN.findall(text.lower())


def singular(word: str) -> str:
    """A plural noun's singular by English's regular rules and a few irregulars; other words unchanged."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is", "ous")):
        return word[:-1]
    return word


def is_noun(word: str) -> bool:
    """Whether ``word`` (a token of `words`) counts as a noun by elimination (see the module docstring)."""
    if len(word) < 3 or word in STOP_WORDS or "'" in word:
        return False
    base = singular(word)
    if word in NON_NOUNS or base in NON_NOUNS:
        return False
    if base in ING_ED_NOUNS:
        return True
    return not word.endswith(("ing", "ed", "ly"))


def nouns(text: str, lexicon: Collection[str] | None = None) -> frozenset[str]:
    """The singular nouns of ``text``: by elimination, or exactly the words of ``lexicon`` when one is given."""
    if lexicon is not None:
        return frozenset(singular(w) for w in words(text) if singular(w) in lexicon or w in lexicon)
    return frozenset(singular(w) for w in words(text) if is_noun(w))


def content_words(text: str) -> list[str]:
    """The words of ``text`` that carry content (all but `STOP_WORDS`), singular; colours, numbers and verbs stay:
    they are the facts an answer states."""
    return [singular(w) for w in words(text) if w not in STOP_WORDS or w in ("no", "one")]


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """|a ∩ b| / |a ∪ b| of two word sets (0 when both are empty)."""
    a, b = set(a), set(b)
    union = len(a | b)
    return len(a & b) / union if union else 0.0


__all__ = ["COLOR_WORDS", "NON_NOUNS", "NUMBER_WORDS", "POSITION_WORDS", "STOP_WORDS", "content_words", "is_noun",
           "jaccard", "nouns", "singular", "words"]

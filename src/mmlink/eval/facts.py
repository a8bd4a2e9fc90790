"""Exact world-fact scoring of free-text answers: the embedded world's analogue of CHAIR.

Every world image is drawn from a scene graph (`mmlink.data.world.scene`) and world records carry those graphs in
``meta.scenes``, so each fact an answer states can be checked exactly instead of by n-gram overlap:

* `parse_facts` reads a text for the facts it asserts, with the world's own vocabularies and synonyms
  (`mmlink.data.world.text`): the place (``context``), a colour bound to the noun it modifies (``color``: "a red
  ball", "a blue round creature", "white stripes"), a character's body (``shape``), ``pattern``, ``accessory``,
  ``action``, the kinds of thing present (``object``), numbers (``count``: "two balls", "no trees"), where a named
  object is in the frame (``location``: left/centre/right), where it is relative to another (``relation``) and the
  characters' names (``name``, storytelling).
* `fact_true` checks one fact against a record's scene graphs: it is correct when it holds in at least one image
  (a change caption's "was red … is now blue" speaks of both images).
* `tally_answer` counts, per fact type, the answer's facts and how many are correct (precision = 1 − the
  hallucination rate), and the reference texts' facts and how many of them the answer states too (recall);
  `fact_metrics` pools those counts over items.

The parser is a small chunker, not a bag of words: modifiers are collected until the noun they modify ("a red ball",
"a tall blue-and-white striped character"), post-modifiers attach to the noun before them ("a character with white
stripes who is jumping on the left"), a copula's complement goes to its subject ("the ball that was red is now
blue"), "Pip, a tall red character, …" names the character, and negated facts ("not", "without", "no balls") are
not asserted (but "no balls" asserts a count of zero). Facts are deduplicated per text: repeating a fact does not
weigh it more. No torch import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

from mmlink.data.world.scene import (
    ACCESSORIES,
    ACTIONS,
    BODIES,
    COLORS,
    NAMES,
    PATTERNS,
    Character,
    Scene,
    SceneObject,
    Thing,
    location,
    relative_position,
    scene_from_dict,
)
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    ACTION_STEMS,
    BODY_ADJECTIVE,
    BODY_WORDS,
    CHARACTER_NOUNS,
    CONTEXT_NOUNS,
    CONTEXT_PHRASES,
    NUMBER_WORDS,
    PATTERN_ADJECTIVES,
    PATTERN_STEMS,
    RELATION_PHRASES,
    THING_NOUNS,
    plural,
)

FACT_TYPES: tuple[str, ...] = ("context", "object", "color", "shape", "pattern", "accessory", "action", "count",
                               "location", "relation", "name")  # fmt: skip
CHARACTER = "character"
# The noun a pattern colour is bound to ("white stripes" → color of "stripes" is white).
PATTERN_NOUNS = {"striped": "stripes", "dotted": "dots", "checkered": "checks"}
RELATIONS: tuple[str, ...] = tuple(RELATION_PHRASES)  # "left of", "right of", "above", "below"


class Fact(NamedTuple):
    """One asserted fact. ``subject``: what it is about — a thing kind or "character", optionally after one colour
    ("red ball"), or a character's name; a pattern noun for a pattern's colour; "" for context/object/name facts.
    ``value``: the asserted value (a colour, body, action, kind, count as digits, "left", "left of blue ball", …)."""

    type: str
    subject: str
    value: str


# ---------------------- Vocabulary: built from the world's phrase tables, so a new synonym there is understood here

_TOKEN_RE = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?|\d+|[.,;:!?]")


def _words(phrase: str) -> tuple[str, ...]:
    # Hyphens split words ("triangle-shaped", "blue-and-white"): the same on both sides of the lexicon.
    return tuple(w.lower() for w in _TOKEN_RE.findall(phrase))


_LEXICON: dict[tuple[str, ...], tuple[str, Any]] = {}


def _add(phrase: str, cat: str, value: Any = None) -> None:
    key = _words(phrase)
    old = _LEXICON.get(key)
    if old is not None and old != (cat, value):
        raise RuntimeError(f"fact lexicon: {phrase!r} is both {old} and {(cat, value)}")  # a vocabulary clash
    _LEXICON[key] = (cat, value)


for _c in COLORS:
    _add(_c, "color", _c)
_add("grey", "color", "gray")
for _b in BODIES:
    for _p in (_b, BODY_ADJECTIVE[_b], *BODY_WORDS[_b]):
        _add(_p, "body", _b)
for _n in CHARACTER_NOUNS:
    _add(_n, "char", False)
    _add(plural(_n), "char", True)
_EXTRA_THINGS = {"stone": "rock", "lamppost": "lamp", "streetlamp": "lamp"}  # common wordings of world things
for _k, _nouns in THING_NOUNS.items():
    for _n in _nouns:
        _add(_n, "thing", (_k, False))
        _add(plural(_n), "thing", (_k, True))
for _n, _k in _EXTRA_THINGS.items():
    _add(_n, "thing", (_k, False))
    _add(plural(_n), "thing", (_k, True))
for _a in ACCESSORIES:
    if _a != "none":
        _add(ACCESSORY_NOUNS[_a], "acc", _a)
        _add(plural(ACCESSORY_NOUNS[_a]), "acc", _a)
_add("scarves", "acc", "scarf")
_add("sunglasses", "acc", "glasses")
# Inflections beyond the generator's participles, for answers worded as verbs ("Pip jumps", "Luna sat").
# "waves" is left out on purpose: at the beach it is a noun more often than a verb.
_ACTION_INFLECTIONS = {"jumping": ("jumps", "jumped"), "leaping": ("leaps", "leaped", "leapt"),
                       "waving": ("waved",), "sitting": ("sits", "sat", "seated"),
                       "standing": ("stands", "stood")}  # fmt: skip
for _a, _stems in ACTION_STEMS.items():
    for _s in _stems:
        _add(_s, "action", _a)
        for _form in _ACTION_INFLECTIONS.get(_s, ()):
            _add(_form, "action", _a)
for _p, _adj in PATTERN_ADJECTIVES.items():
    _add(_adj, "pattern", _p)
_add("plain", "pattern", "plain")
_add("chequered", "pattern", "checkered")
for _i, _w in enumerate(NUMBER_WORDS):
    _add(_w, "number", _i)
_add("no longer", "other")  # "no longer has a scarf": not a count of zero
_add("no one", "nobody")
_add("nobody", "nobody")
# Relative positions: the generator's phrases, plus plain comparatives.
for _r, _phrases in RELATION_PHRASES.items():
    for _p in _phrases:
        _add(_p, "rel", _r)
for _p, _r in (("higher than", "above"), ("lower than", "below"), ("beneath", "below"), ("left of", "left of"),
               ("right of", "right of"), ("on the left side of", "left of"), ("on the right side of", "right of")):
    _add(_p, "rel", _r)
# Places in the frame: "the [top|bottom|upper|lower] left|centre|right [side]"; vertical words are read past (only
# the horizontal third is scored), "middle" is the horizontal centre as in the generator's "in the middle".
_HORIZONTAL = {"left": "left", "right": "right", "centre": "centre", "center": "centre", "middle": "centre"}
for _h, _hv in _HORIZONTAL.items():
    for _v in ("", "top ", "bottom ", "upper ", "lower "):
        for _side in ("", " side", " hand side"):
            _add(f"the {_v}{_h}{_side}", "loc", _hv)


def _context_keywords() -> dict[str, str]:
    """Content word → context, from the context phrases; words shared by contexts or too generic to place a scene
    ("scene", "field", "sky", "outdoors") are left out."""
    generic = {"at", "the", "on", "a", "by", "in", "under", "inside", "outdoors", "scene", "field", "landscape", "sky"}
    owners: dict[str, set[str]] = {}
    for ctx in CONTEXT_PHRASES:
        for phrase in (*CONTEXT_PHRASES[ctx], *CONTEXT_NOUNS.get(ctx, ())):
            for w in _words(phrase):
                if w not in generic:
                    owners.setdefault(w, set()).add(ctx)
    return {w: next(iter(c)) for w, c in owners.items() if len(c) == 1}


CONTEXT_KEYWORDS = _context_keywords()
for _w, _ctx in CONTEXT_KEYWORDS.items():
    if _words(_w) not in _LEXICON:
        _add(_w, "context", _ctx)
_add("indoor", "context", "indoor")

_MAX_PHRASE = max(len(k) for k in _LEXICON)
_PATTERN_STEM_LIST = [(s, p) for p, stems in PATTERN_STEMS.items() for s in stems]

_WORD_CLASSES: dict[str, set[str]] = {
    "article": {"a", "an", "the", "its", "their", "his", "her", "this", "these", "those", "any"},
    "quant": {"each", "every", "all", "some", "different", "same", "other", "another", "several", "many", "both",
              "various", "few", "more"},
    # adjectives that can sit inside a noun phrase without saying anything the world scores ("a small red ball")
    "filler": {"small", "big", "large", "little", "tiny", "huge", "bright", "dark", "light", "pale", "cute", "happy",
               "young", "old", "new", "single", "lone", "only", "polka", "shaped", "colored", "coloured", "very",
               "patterned", "pattern", "patterns", "cartoon", "cheerful", "friendly"},
    "and": {"and", "&"},
    "comma": {","},
    "break": {".", "!", "?", ";", ":"},
    "clause": {"while", "but", "whereas", "although", "though", "when"},
    "copula": {"is", "are", "was", "were", "be", "been", "being", "appears", "appear", "seems", "seem", "remains",
               "remain", "stays", "stay"},
    "neg": {"not", "never", "without"},
    "rel_pron": {"who", "which"},
    "pronoun": {"it", "they", "he", "she", "them", "him"},
    "frame": {"image", "images", "picture", "pictures", "photo", "photos", "photograph", "scene", "scenes", "frame",
              "setting", "background"},
    "named": {"named", "called"},
}
_CLASS_OF = {w: c for c, ws in _WORD_CLASSES.items() for w in ws}
# Words after which a colour/body/pattern not followed by its noun is predicated of the subject ("is now blue",
# "has turned red", "changed from red to blue", "that was red").
_PREDICATIVE_AFTER = _WORD_CLASSES["copula"] | {"now", "turned", "turns", "become", "becomes", "became", "from", "to",
                                                "still", "all", "both", "painted", "entirely", "completely"}
# Words of attribute post-modifiers: they keep a noun open for coordination ("Pip, … wearing a hat, and Luna").
_ATTRIBUTE_GLUE = {"with", "wearing", "carrying", "covered", "in", "pair", "of", "has", "having", "and", "who"}
_NP_CONTINUE = {"color", "body", "pattern", "number", "article", "quant", "filler"}
_MODIFIERS = {"color", "body", "pattern", "filler"}


class _Token(NamedTuple):
    cat: str
    value: Any
    word: str  # lower case (names keep their capital)


def _tokens(text: str) -> list[_Token]:
    raw: list[str] = []
    for w in _TOKEN_RE.findall(text.replace("\u2019", "'")):
        if w.lower().endswith("'s") and len(w) > 2:  # "Pip's hat": the name, then the possessive
            raw += [w[:-2], "'s"]
        else:
            raw.append(w)
    out: list[_Token] = []
    i = 0
    while i < len(raw):
        word = raw[i]
        if word in NAMES:  # case-sensitive: "Dot" is a name, "dots" a pattern
            out.append(_Token("name", word, word))
            i += 1
            continue
        for n in range(min(_MAX_PHRASE, len(raw) - i), 0, -1):
            key = tuple(w.lower() for w in raw[i : i + n])
            if key in _LEXICON:
                cat, value = _LEXICON[key]
                out.append(_Token(cat, value, " ".join(key)))
                i += n
                break
        else:
            low = word.lower()
            if low.isdigit():
                out.append(_Token("number", int(low), low))
            elif low.endswith("n't"):
                out.append(_Token("neg", None, low))
            elif (pat := _pattern_word(low)) is not None:
                out.append(_Token("pattern", pat, low))
            else:
                out.append(_Token(_CLASS_OF.get(low, "other"), None, low))
            i += 1
    return out


def _pattern_word(word: str) -> str | None:
    """'stripes', 'striped', 'dots', 'spots', 'checks', 'checkered' … → the pattern (short affixes only, so that
    'spotlight' is not a pattern)."""
    for stem, pattern in _PATTERN_STEM_LIST:
        if word.startswith(stem) and len(word) <= len(stem) + 4:
            return pattern
    return None


# ---------------------------------------------------------------------------------------------------------- Parsing


@dataclass(eq=False)
class _Mention:
    """A noun phrase naming an object (or several): what later predicates bind to."""

    head: str  # CHARACTER or a thing kind
    name: str | None = None
    colors: list[str] = field(default_factory=list)  # body colour(s) / thing colour(s)
    negated: bool = False
    predicated: bool = False  # took an action/location/relation: a later noun starts a new group

    def desc(self) -> str:
        if self.name:
            return self.name
        return f"{self.colors[0]} {self.head}" if len(set(self.colors)) == 1 else self.head


@dataclass
class _Pending:
    """Modifiers read before their noun (or before the end of a predicative phrase)."""

    colors: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    patterns: list[str] = field(default_factory=list)
    count: int | None = None
    predicative: bool = False

    def empty(self) -> bool:
        return not (self.colors or self.bodies or self.patterns or self.count is not None)


class _Parser:
    def __init__(self, tokens: list[_Token]):
        self.toks = tokens
        self.facts: set[Fact] = set()
        self.previous_group: list[_Mention] = []  # for pronouns in the next sentence
        self._new_clause()

    # ------------------------------------------------------------------ state

    def _new_clause(self) -> None:
        self.groups: list[list[_Mention]] = []
        self.last: _Mention | None = None
        self.pending = _Pending()
        self.since: list[str] = []  # word classes read since the last noun (apposition, "named")
        self.conj = False  # "and" or "," since the last noun
        self.joinable = False
        self.subject: list[_Mention] | None = None  # first group since the last predicate: a copula's subject
        self.target: list[_Mention] | None = None  # what the current predicate is about (copula, "who is")
        self.target_used = False
        self.neg = False
        self.relation: tuple[list[_Mention], str] | None = None  # waiting for its second object
        self.fronted_location: str | None = None  # "On the left, there is …"

    def _end_clause(self) -> None:
        self._flush()
        if self.groups:
            self.previous_group = self.groups[-1]
        self._new_clause()

    def _emit(self, type_: str, subject: str, value: Any) -> None:
        self.facts.add(Fact(type_, subject, str(value)))

    # ------------------------------------------------------------------ main loop

    def run(self) -> set[Fact]:
        prev: _Token | None = None
        for i, tok in enumerate(self.toks):
            nxt = self.toks[i + 1] if i + 1 < len(self.toks) else None
            cat = tok.cat
            if cat == "number" and prev is not None and prev.cat == "frame":
                cat = "other"  # "image 2", not a count
            if tok.word == "that":  # a relative pronoun before a verb, else a determiner ("that ball")
                cat = "rel_pron" if nxt is not None and (nxt.cat in ("copula", "action") or nxt.word in (
                    "has", "had", "have")) else "article"
            if cat in _NP_CONTINUE:
                self._modifier(cat, tok, prev)
            elif cat in ("and", "comma") and not self.pending.empty() and nxt is not None and nxt.cat in _MODIFIERS:
                pass  # "blue and white striped", "a blue, round creature": still the same noun phrase
            elif cat in ("char", "thing", "name"):
                self._noun(cat, tok)
            else:
                self._other(cat, tok, i)
            prev = tok
        self._end_clause()
        return self.facts

    def _modifier(self, cat: str, tok: _Token, prev: _Token | None) -> None:
        p = self.pending
        if p.empty() and cat in ("color", "body", "pattern"):
            p.predicative = prev is not None and prev.word in _PREDICATIVE_AFTER
        if cat == "color":
            p.colors.append(tok.value)
        elif cat == "body":
            p.bodies.append(tok.value)
        elif cat == "pattern":
            p.patterns.append(tok.value)
        elif cat == "number":
            p.count = tok.value
        elif cat == "article":
            p.count = None  # "in image 2 the ball": a number never precedes an article in one noun phrase
            p.predicative = False

    # ------------------------------------------------------------------ nouns

    def _noun(self, cat: str, tok: _Token) -> None:
        p, self.pending = self.pending, _Pending()
        negated = self.neg or p.count == 0
        explicit_neg = self.neg
        self.neg = False
        if cat == "thing":
            kind, is_plural = tok.value
            m = _Mention(kind, colors=list(p.colors))
        else:
            is_plural = cat == "char" and tok.value
            m = _Mention(CHARACTER, name=tok.value if cat == "name" else None)
        body_colors, pattern_colors = list(p.colors), []
        if m.head == CHARACTER and p.patterns and len(p.colors) >= 2:  # "blue-and-white striped": body, then pattern
            body_colors, pattern_colors = p.colors[:1], p.colors[1:]
        m.colors = body_colors
        m.negated = negated

        last, since = self.last, [c for c in self.since if c != "comma"]
        appositive = (cat == "char" and not is_plural and p.count is None and last is not None and last.name
                      and not since and "comma" in self.since)  # "Pip, a tall red character, …"
        naming = (cat == "name" and last is not None and last.head == CHARACTER and last.name is None
                  and (self.since == ["named"] or self.since == ["comma"]))  # "a red character named Pip"
        if not negated:
            if m.head == CHARACTER:
                self._character_facts(body_colors, p.bodies, p.patterns, pattern_colors)
            else:
                for c in m.colors:
                    self._emit("color", m.head, c)
            self._emit("object", "", m.head)
            if m.name:
                self._emit("name", "", m.name)
        if p.count is not None and not explicit_neg:
            self._emit("count", m.desc(), p.count)

        if appositive or naming:
            if naming:
                last.name = m.name
            m = last
        elif self.conj and self.joinable and self.groups and not any(x.predicated for x in self.groups[-1]):
            self.groups[-1].append(m)
        else:
            self.groups.append([m])
            if self.target is not None and self.target_used:
                self.target = None  # "… who is waving on the left and a blue box in the centre": a new subject
        group = self.groups[-1] if self.groups else [m]
        if self.subject is None:
            self.subject = group
        self.last, self.since, self.conj, self.joinable = m, [], False, True
        if self.relation is not None:
            subjects, rel = self.relation
            self.relation = None
            if not m.negated:
                for a in subjects:
                    if not a.negated and a is not m:
                        self._emit("relation", a.desc(), f"{rel} {m.desc()}")
        if self.fronted_location is not None:
            self._locate([m], self.fronted_location)
            self.fronted_location = None

    def _character_facts(self, colors: Iterable[str], bodies: Iterable[str], patterns: Sequence[str],
                         pattern_colors: Iterable[str]) -> None:
        for c in colors:
            self._emit("color", CHARACTER, c)
        for b in bodies:
            self._emit("shape", CHARACTER, b)
        self._pattern_facts(patterns, pattern_colors)

    def _pattern_facts(self, patterns: Sequence[str], colors: Iterable[str]) -> None:
        for pat in patterns:
            self._emit("pattern", CHARACTER, pat)
        if len(set(patterns)) == 1 and patterns[0] in PATTERN_NOUNS:
            for c in colors:
                self._emit("color", PATTERN_NOUNS[patterns[0]], c)

    # ------------------------------------------------------------------ predicates

    def _current(self) -> list[_Mention]:
        """What a predicate binds to: the copula's subject or the noun before "who is", else the last group."""
        if self.target is not None:
            return self.target
        return self.groups[-1] if self.groups else []

    def _predicated(self, target: list[_Mention]) -> None:
        for m in target:
            m.predicated = True
        if target is self.target:
            self.target_used = True
        self.subject = None

    def _flush(self) -> None:
        """Modifiers that found no noun: predicated of the subject ("is now blue"), a pattern phrase after its noun
        ("with white stripes"), or nothing the world scores ("a red wall")."""
        p, self.pending = self.pending, _Pending()
        if not (p.colors or p.bodies or p.patterns):
            return
        if self.neg or p.count == 0:
            self.neg = False
            return
        if p.predicative:
            target = [m for m in self._current() if not m.negated]
            for m in target:
                if m.head == CHARACTER:
                    if p.patterns:
                        self._pattern_facts(p.patterns, p.colors)
                    else:
                        self._character_facts(p.colors, p.bodies, (), ())
                else:
                    for c in p.colors:
                        self._emit("color", m.head, c)
            if not target and (p.patterns or p.bodies):  # only characters have these
                self._character_facts((), p.bodies, p.patterns, p.colors)
            self._predicated(self._current())
        elif p.patterns:
            self._pattern_facts(p.patterns, p.colors)

    def _locate(self, target: list[_Mention], h: str) -> None:
        for m in target:
            if not m.negated:
                self._emit("location", m.desc(), h)
        self._predicated(target)

    def _frame_follows(self, i: int) -> bool:
        """Whether the noun phrase from token ``i`` on is the picture itself ("of the image")."""
        while i < len(self.toks) and self.toks[i].cat in ("article", "quant", "filler"):
            i += 1
        return i < len(self.toks) and self.toks[i].cat == "frame"

    def _other(self, cat: str, tok: _Token, i: int) -> None:
        neg_pending = self.pending.count == 0  # "has no hat"
        self._flush()
        if cat == "break" or cat == "clause":
            self._end_clause()
            return
        if cat in ("and", "comma"):
            self.conj = True
            self.since.append(cat)
            return
        self.since.append(cat)
        negated = self.neg or neg_pending
        if cat in ("action", "acc", "loc", "rel", "context", "nobody"):
            self.neg = False
        if cat == "action":
            target = self._current()
            chars = [m for m in target if m.head == CHARACTER and not m.negated]
            if not negated:
                for m in chars:
                    self._emit("action", m.desc(), tok.value)
                if not self.groups and self.target is None:  # "everyone is jumping": some character is
                    self._emit("action", CHARACTER, tok.value)
            self._predicated(target)
        elif cat == "acc":
            if not negated:
                self._emit("accessory", CHARACTER, tok.value)
        elif cat == "loc":
            nxt = self.toks[i + 1] if i + 1 < len(self.toks) else None
            if nxt is not None and nxt.word == "of" and not self._frame_follows(i + 2):
                if tok.value in ("left", "right"):  # "at the left of the ball"
                    self._relate(f"{tok.value} of", negated)
                return
            if negated:
                return
            target = self._current()
            if target:
                self._locate(target, tok.value)
            elif not self.groups:
                self.fronted_location = tok.value
        elif cat == "rel":
            if self._frame_follows(i + 1):  # "to the left of the picture" is a place in the frame
                if tok.value in ("left of", "right of") and not negated and self._current():
                    self._locate(self._current(), tok.value.split()[0])
                return
            self._relate(tok.value, negated)
        elif cat == "context":
            self.joinable = False
            if not negated:
                self._emit("context", "", tok.value)
        elif cat == "nobody":
            if not negated:
                self._emit("count", CHARACTER, 0)
        elif cat == "neg":
            self.neg = True
        elif cat == "copula":
            if self.target is None or self.target_used:
                if self.subject is not None:
                    self.target, self.target_used = self.subject, False
            self.conj, self.joinable = False, False
        elif cat == "rel_pron":
            if self.last is not None:
                self.target, self.target_used = [self.last], False
        elif cat == "pronoun":
            if not self.groups and self.previous_group:
                self.groups.append(self.previous_group)
                self.subject = self.previous_group
            self.joinable = False
        elif tok.word not in _ATTRIBUTE_GLUE:
            self.joinable = False

    def _relate(self, relation: str, negated: bool) -> None:
        target = self._current()
        if target and not negated:
            self.relation = (list(target), relation)
        self._predicated(target)


def parse_facts(text: str) -> set[Fact]:
    """The world facts ``text`` asserts (see the module docstring for what is read)."""
    if not isinstance(text, str):
        raise TypeError(f"parse_facts needs a str, got {type(text).__name__}")
    return _Parser(_tokens(text)).run()


# --------------------------------------------------------------------------------------- Truth against scene graphs


def _matches(obj: SceneObject, desc: str) -> bool:
    """Whether ``obj`` is what a fact's subject names: "ball", "red ball", "character", "blue character", "Pip"."""
    words = desc.split()
    head, color = words[-1], (words[0] if len(words) == 2 else None)
    if head in NAMES:
        return isinstance(obj, Character) and obj.identity.name == head
    if head == CHARACTER:
        return isinstance(obj, Character) and (color is None or obj.identity.color == color)
    return isinstance(obj, Thing) and obj.kind == head and (color is None or obj.color == color)


def _true_in(fact: Fact, scene: Scene) -> bool:
    kind, subject, value = fact
    chars = scene.characters
    if kind == "context":
        return scene.context == value
    if kind == "object":
        return any(_matches(o, value) for o in scene.objects)
    if kind == "name":
        return any(c.identity.name == value for c in chars)
    if kind == "color":
        pattern = next((p for p, noun in PATTERN_NOUNS.items() if noun == subject), None)
        if pattern is not None:
            return any(c.identity.pattern == pattern and c.identity.pattern_color == value for c in chars)
        return any(_matches(o, f"{value} {subject}") for o in scene.objects)
    if kind == "shape":
        return any(c.identity.body == value for c in chars)
    if kind == "pattern":
        return any(c.identity.pattern == value for c in chars)
    if kind == "accessory":
        return any(c.identity.accessory == value for c in chars)
    if kind == "action":
        return any(_matches(c, subject) and c.pose.action == value for c in chars)
    if kind == "count":
        return sum(_matches(o, subject) for o in scene.objects) == int(value)
    if kind == "location":
        return any(_matches(o, subject) and location(o)[0] == value for o in scene.objects)
    if kind == "relation":
        rel = next(r for r in RELATIONS if value.startswith(r + " "))
        other = value[len(rel) + 1 :]
        return any(a is not b and _matches(a, subject) and _matches(b, other) and relative_position(a, b) == rel
                   for a in scene.objects for b in scene.objects)  # fmt: skip
    raise ValueError(f"unknown fact type {kind!r} (expected one of {', '.join(FACT_TYPES)})")


def _scenes(scenes: Sequence[Scene | Mapping[str, Any]]) -> list[Scene]:
    """Scenes as objects: the harness holds ``meta.scenes`` dicts, tests hold `Scene`s."""
    return [s if isinstance(s, Scene) else scene_from_dict(dict(s)) for s in scenes]


def fact_true(fact: Fact, scenes: Sequence[Scene | Mapping[str, Any]]) -> bool:
    """Whether ``fact`` holds in at least one of ``scenes`` (`Scene`s or ``meta.scenes`` dicts)."""
    return any(_true_in(fact, s) for s in _scenes(scenes))


# ---------------------------------------------------------------------------------------------- Tallies and metrics


@dataclass
class FactTally:
    """Counts for one fact type of one answer: the answer's facts (``mentioned``) and how many hold in the scenes
    (``correct``); the references' facts (``reference``) and how many the answer states too (``recalled``)."""

    mentioned: int = 0
    correct: int = 0
    reference: int = 0
    recalled: int = 0


def tally_answer(answer: str, references: Sequence[str], scenes: Sequence[Scene | Mapping[str, Any]]
                 ) -> dict[str, FactTally]:
    """Per fact type (every type of `FACT_TYPES`), the counts of one answer against its references and scenes."""
    if isinstance(references, str):
        raise TypeError("references must be a list of reference texts, not one str")
    scene_objs = _scenes(scenes)
    said = parse_facts(answer)
    ref_facts: set[Fact] = set()
    for ref in references:
        ref_facts |= parse_facts(ref)
    tallies = {t: FactTally() for t in FACT_TYPES}
    for f in said:
        tallies[f.type].mentioned += 1
        tallies[f.type].correct += any(_true_in(f, s) for s in scene_objs)
    for f in ref_facts:
        tallies[f.type].reference += 1
        tallies[f.type].recalled += f in said
    return tallies


def item_fact_counts(answer: str, references: Sequence[str], scenes: Sequence[Scene | Mapping[str, Any]]
                     ) -> tuple[int, int]:
    """(correct, mentioned) facts of one answer, pooled over fact types (what a bootstrap of precision resamples)."""
    tallies = tally_answer(answer, references, scenes)
    return sum(t.correct for t in tallies.values()), sum(t.mentioned for t in tallies.values())


def pooled_counts(tallies: Sequence[Mapping[str, FactTally]]) -> dict[str, FactTally]:
    """Per fact type, the counts summed over items."""
    total = {t: FactTally() for t in FACT_TYPES}
    for item in tallies:
        for t, tally in item.items():
            if t not in total:
                raise ValueError(f"unknown fact type {t!r} in a tally (expected one of {', '.join(FACT_TYPES)})")
            for f in fields(FactTally):
                setattr(total[t], f.name, getattr(total[t], f.name) + getattr(tally, f.name))
    return total


def fact_metrics(tallies: Sequence[Mapping[str, FactTally]]) -> dict[str, float]:
    """Pooled over items (a ratio of sums, × 100): ``"fact precision"``, ``"fact recall"``, then
    ``"precision/<type>"`` and ``"recall/<type>"`` per fact type. A ratio whose denominator is zero is left out
    (no fact stated: precision is undefined, not 0 or 100)."""
    total = pooled_counts(tallies)
    out: dict[str, float] = {}
    mentioned = sum(t.mentioned for t in total.values())
    reference = sum(t.reference for t in total.values())
    if mentioned:
        out["fact precision"] = 100.0 * sum(t.correct for t in total.values()) / mentioned
    if reference:
        out["fact recall"] = 100.0 * sum(t.recalled for t in total.values()) / reference
    for t, s in total.items():
        if s.mentioned:
            out[f"precision/{t}"] = 100.0 * s.correct / s.mentioned
        if s.reference:
            out[f"recall/{t}"] = 100.0 * s.recalled / s.reference
    return out


__all__ = ["CHARACTER", "CONTEXT_KEYWORDS", "FACT_TYPES", "Fact", "FactTally", "PATTERN_NOUNS", "fact_metrics",
           "fact_true", "item_fact_counts", "parse_facts", "pooled_counts", "tally_answer"]

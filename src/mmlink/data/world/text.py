"""Natural language from scene graphs: varied wording, true by construction.

Every phrase here is chosen (with the caller's random generator) among synonyms that all say the same thing about
the scene graph, so two calls can word a scene differently but never wrongly. The phrase tables are public so
that tests and other modules can check a text against a scene (e.g. "does this text name the object's colour?").

Grammar rules kept everywhere: ``a``/``an`` by the next word's sound (`article`), plurals (`plural`), number words
(`count_phrase`), lists joined as "a, b and c" (`join_list`), sentences capitalised and ended (`sentence`), no
double spaces.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Sequence

import numpy as np

from mmlink.data.world.scene import Character, Identity, Scene, SceneObject, Thing, location, relative_position

# ---------------------------------------------------------------------------------------------------------------
# Phrase tables (synonyms that all state the same fact)
# ---------------------------------------------------------------------------------------------------------------

BODY_WORDS: dict[str, tuple[str, ...]] = {
    "round": ("round", "roundish", "circular"),
    "tall": ("tall", "lanky", "tall and thin"),
    "square": ("square", "boxy", "square-shaped"),
    "triangle": ("triangular", "triangle-shaped", "pointy"),
}
# One word per body shape, for short references ("the tall character").
BODY_ADJECTIVE = {"round": "round", "tall": "tall", "square": "square", "triangle": "triangular"}

CHARACTER_NOUNS = ("character", "creature", "figure")

# Pattern phrases with the pattern colour ``{pc}``; each contains a stem from PATTERN_STEMS.
PATTERN_PHRASES: dict[str, tuple[str, ...]] = {
    "striped": ("with {pc} stripes", "covered in {pc} stripes", "with a {pc} striped pattern"),
    "dotted": ("with {pc} dots", "with {pc} spots", "covered in {pc} polka dots", "with a {pc} dotted pattern"),
    "checkered": ("with a {pc} checkered pattern", "with {pc} checks", "with a {pc} check pattern"),
}
# Adjective forms ("a tall blue-and-white striped character"), for the patterns that read well that way.
PATTERN_ADJECTIVES: dict[str, str] = {"striped": "striped", "checkered": "checkered", "dotted": "spotted"}
PATTERN_STEMS: dict[str, tuple[str, ...]] = {
    "plain": (),
    "striped": ("stripe", "striped"),
    "dotted": ("dot", "spot"),
    "checkered": ("check",),
}

ACCESSORY_PHRASES: dict[str, tuple[str, ...]] = {
    "hat": ("wearing a hat", "with a hat", "in a hat"),
    "scarf": ("wearing a scarf", "with a scarf"),
    "glasses": ("wearing glasses", "with glasses", "wearing a pair of glasses"),
    "bow": ("wearing a bow", "with a bow"),
    "backpack": ("carrying a backpack", "wearing a backpack", "with a backpack"),
}
# The noun each accessory phrase contains.
ACCESSORY_NOUNS = {"hat": "hat", "scarf": "scarf", "glasses": "glasses", "bow": "bow", "backpack": "backpack"}

# Participle phrases: "is {phrase}", "was {phrase}", "who is {phrase}".
ACTION_PHRASES: dict[str, tuple[str, ...]] = {
    "standing": ("standing", "standing still", "standing upright"),
    "jumping": ("jumping", "leaping", "jumping up"),
    "waving": ("waving", "waving hello", "waving its arm"),
    "sitting": ("sitting", "sitting down"),
}
# Stems any action phrase of an action contains (for checks).
ACTION_STEMS = {"standing": ("standing",), "jumping": ("jumping", "leaping"), "waving": ("waving",),
                "sitting": ("sitting",)}  # fmt: skip

THING_NOUNS: dict[str, tuple[str, ...]] = {
    "tree": ("tree",),
    "house": ("house",),
    "car": ("car",),
    "ball": ("ball",),
    "flower": ("flower",),
    "rock": ("rock",),
    "lamp": ("lamp",),
    "box": ("box",),
}

# Prepositional phrases for a context ("... at the beach"); usable after "set": "both are set in a forest".
CONTEXT_PHRASES: dict[str, tuple[str, ...]] = {
    "beach": ("at the beach", "on a beach", "on the beach", "by the sea"),
    "forest": ("in a forest", "in the forest", "in the woods"),
    "city": ("in a city", "in the city", "on a city street"),
    "snow": ("in the snow", "in a snowy field", "in a snowy landscape"),
    "night": ("at night", "outdoors at night", "under the night sky"),
    "indoor": ("indoors", "in a room", "inside a room"),
    "desert": ("in a desert", "in the desert"),
    "park": ("in a park", "in the park"),
}
# Noun phrases for a context ("a beach scene").
CONTEXT_NOUNS: dict[str, tuple[str, ...]] = {
    "beach": ("beach scene", "beach"),
    "forest": ("forest scene", "forest"),
    "city": ("city scene", "city street"),
    "snow": ("snowy scene", "snowy landscape"),
    "night": ("night scene",),
    "indoor": ("indoor scene", "room"),
    "desert": ("desert scene", "desert"),
    "park": ("park scene", "park"),
}

# Where an object is in the frame, for each (horizontal, vertical) of `location`.
_H = {"left": ("on the left", "on the left side"), "right": ("on the right", "on the right side"),
      "centre": ("in the centre", "in the middle")}  # fmt: skip
LOCATION_PHRASES: dict[tuple[str, str], tuple[str, ...]] = {}
for _h in ("left", "centre", "right"):
    for _v in ("top", "middle", "bottom"):
        if _v == "middle":
            LOCATION_PHRASES[(_h, _v)] = _H[_h]
        elif _h == "centre":
            _vv = "upper" if _v == "top" else "lower"
            LOCATION_PHRASES[(_h, _v)] = (f"at the {_v} centre", f"in the {_v} centre", f"in the {_vv} centre")
        else:
            _vv = "upper" if _v == "top" else "lower"
            LOCATION_PHRASES[(_h, _v)] = (f"in the {_v} left" if _h == "left" else f"in the {_v} right",
                                          f"in the {_vv} {_h}", f"at the {_v} {_h}")  # fmt: skip
# Horizontal-only phrases (for "moved from the left to the right").
HORIZONTAL_NOUNS = {"left": "the left", "right": "the right", "centre": "the centre"}

RELATION_PHRASES: dict[str, tuple[str, ...]] = {
    "left of": ("to the left of", "on the left of"),
    "right of": ("to the right of", "on the right of"),
    "above": ("above", "higher up than"),
    "below": ("below", "lower down than"),
}

NUMBER_WORDS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
                "twenty")  # fmt: skip
_IRREGULAR_PLURALS = {"box": "boxes", "glasses": "glasses", "person": "people", "child": "children"}
_AN_EXCEPTIONS = ("one", "uni", "use", "eu", "ukulele")  # vowel letter, consonant sound
_AN_SILENT_H = ("hour", "honest", "honour", "heir")


# ---------------------------------------------------------------------------------------------------------------
# Grammar helpers
# ---------------------------------------------------------------------------------------------------------------


def choose(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """One element of ``options`` (a sequence of any objects; numpy's choice would turn tuples into arrays)."""
    if not options:
        raise ValueError("nothing to choose from")
    return options[int(rng.integers(len(options)))]


def article(word: str) -> str:
    """'a' or 'an' for the word that follows it (by sound, for the words mmlink uses)."""
    w = word.strip().lower()
    if not w:
        raise ValueError("article() needs a word")
    if w.startswith(_AN_SILENT_H):
        return "an"
    if w[0] in "aeiou" and not w.startswith(_AN_EXCEPTIONS):
        return "an"
    return "a"


def with_article(phrase: str) -> str:
    """'an orange ball', 'a red ball'."""
    return f"{article(phrase)} {phrase}"


def plural(noun: str) -> str:
    """Plural of a (possibly multi-word) noun phrase: the last word is pluralised."""
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR_PLURALS:
        p = _IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        p = last + "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        p = last[:-1] + "ies"
    else:
        p = last + "s"
    return f"{head} {p}" if head else p


def number_word(n: int) -> str:
    """0 → 'no', 1 → 'one', … 20 → 'twenty', larger numbers as digits."""
    if n < 0:
        raise ValueError(f"a count cannot be negative, got {n}")
    return NUMBER_WORDS[n] if n < len(NUMBER_WORDS) else str(n)


def count_phrase(n: int, noun: str, rng: np.random.Generator | None = None, use_article: bool = False) -> str:
    """'no trees', 'one tree' (or 'a tree' with ``use_article``), 'two trees'."""
    if n == 1:
        return with_article(noun) if use_article else f"one {noun}"
    return f"{number_word(n)} {plural(noun)}"


def join_list(items: Sequence[str], conj: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    items = [i for i in items if i]
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {conj} {items[-1]}"


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def sentence(text: str) -> str:
    """Capitalised, single-spaced, ending in '.', '?' or '!'."""
    text = clean(text)
    if not text:
        return text
    if text[-1] not in ".?!":
        text += "."
    return capitalize(text)


_ARTICLE_RE = re.compile(r"\b(a|an|A|An) ([A-Za-z][\w-]*)")


def fix_articles(text: str) -> str:
    """Make every 'a'/'an' agree with the word after it ('a orange' → 'an orange')."""

    def sub(m: re.Match) -> str:
        art = article(m.group(2))
        return f"{art.capitalize() if m.group(1)[0].isupper() else art} {m.group(2)}"

    return _ARTICLE_RE.sub(sub, text)


def clean(text: str) -> str:
    """Collapse runs of spaces, drop spaces before punctuation and fix 'a'/'an'."""
    text = re.sub(r"[ \t]+", " ", text).strip()
    return fix_articles(re.sub(r" +([,.;:?!])", r"\1", text))


# ---------------------------------------------------------------------------------------------------------------
# Phrases for single facts
# ---------------------------------------------------------------------------------------------------------------


def context_phrase(context: str, rng: np.random.Generator) -> str:
    """'at the beach', 'in a forest', 'indoors' …"""
    return choose(rng, CONTEXT_PHRASES[context])


def context_noun(context: str, rng: np.random.Generator) -> str:
    return choose(rng, CONTEXT_NOUNS[context])


def location_phrase(obj: SceneObject, rng: np.random.Generator) -> str:
    """'on the left', 'in the bottom right', 'in the centre' … from `location`."""
    return choose(rng, LOCATION_PHRASES[location(obj)])


def relation_phrase(relation: str, rng: np.random.Generator) -> str:
    """'to the left of', 'above' … for a `relative_position` result."""
    return choose(rng, RELATION_PHRASES[relation])


def action_phrase(action: str, rng: np.random.Generator, plural_subject: bool = False) -> str:
    """'jumping', 'leaping', 'waving hello' … (a participle phrase; 'waving their arms' for a plural subject)."""
    phrase = choose(rng, ACTION_PHRASES[action])
    return phrase.replace("its arm", "their arms") if plural_subject else phrase


def thing_noun(kind: str, rng: np.random.Generator) -> str:
    return choose(rng, THING_NOUNS[kind])


def accessory_phrase(accessory: str, rng: np.random.Generator, allow_in: bool = True) -> str:
    options = ACCESSORY_PHRASES[accessory]
    if not allow_in:
        options = tuple(o for o in options if not o.startswith("in ")) or options
    return choose(rng, options)


def pattern_phrase(identity: Identity, rng: np.random.Generator) -> str:
    """'with white stripes' … ('' for plain)."""
    if identity.pattern == "plain":
        return ""
    return choose(rng, PATTERN_PHRASES[identity.pattern]).format(pc=identity.pattern_color)


def describe_identity(identity: Identity, rng: np.random.Generator, article_form: bool = True) -> str:
    """A noun phrase naming every visible trait: 'a tall blue character with white stripes wearing a hat'.

    Body shape, body colour, pattern with its colour (if not plain) and accessory (if not none) are always named;
    the wording (synonyms, adjective or 'with' forms, the head noun) varies with ``rng``. With
    ``article_form=False`` the phrase has no leading article ('tall blue character …').
    """
    body = choose(rng, BODY_WORDS[identity.body])
    noun = choose(rng, CHARACTER_NOUNS)
    acc = "" if identity.accessory == "none" else None
    use_adjective = identity.pattern in ("striped", "checkered") and rng.random() < 0.3
    if use_adjective:
        colour = f"{identity.color}-and-{identity.pattern_color} {PATTERN_ADJECTIVES[identity.pattern]}"
        pattern = ""
    else:
        colour = identity.color
        pattern = pattern_phrase(identity, rng)
    if acc is None:
        acc = accessory_phrase(identity.accessory, rng, allow_in=not pattern)
        if pattern and pattern.startswith("with ") and acc.startswith("with "):
            acc = "and " + acc[len("with ") :]
    phrase = clean(f"{body} {colour} {noun} {pattern} {acc}")
    return with_article(phrase) if article_form else phrase


def describe_thing(thing: Thing, rng: np.random.Generator, article_form: bool = True) -> str:
    """'a blue ball', 'an orange box' …"""
    phrase = f"{thing.color} {thing_noun(thing.kind, rng)}"
    return with_article(phrase) if article_form else phrase


def describe_object(obj: SceneObject, rng: np.random.Generator) -> str:
    """Characters: identity + action ('a round red character with a hat who is waving'); things: colour + kind."""
    if isinstance(obj, Character):
        rel = choose(rng, ("who is", "that is"))
        return f"{describe_identity(obj.identity, rng)} {rel} {action_phrase(obj.pose.action, rng)}"
    return describe_thing(obj, rng)


# ---------------------------------------------------------------------------------------------------------------
# Referring expressions ("the red ball") — unique within a scene by construction
# ---------------------------------------------------------------------------------------------------------------


def _ref_candidates(obj: SceneObject) -> list[tuple[str, Any]]:
    """(phrase without 'the', predicate) from shortest to longest; the first unique one is used."""
    if isinstance(obj, Character):
        ident = obj.identity
        body = BODY_ADJECTIVE[ident.body]
        cands: list[tuple[str, Any]] = [
            ("character", lambda o: isinstance(o, Character)),
            (f"{ident.color} character", lambda o: isinstance(o, Character) and o.identity.color == ident.color),
            (f"{body} character", lambda o: isinstance(o, Character) and o.identity.body == ident.body),
            (
                f"{body} {ident.color} character",
                lambda o: isinstance(o, Character) and (o.identity.body, o.identity.color) == (ident.body, ident.color),
            ),
        ]
        if ident.accessory != "none":
            noun = ACCESSORY_NOUNS[ident.accessory]
            with_acc = f"with the {noun}" if noun != "glasses" else "with the glasses"
            cands.append(
                (f"character {with_acc}",
                 lambda o: isinstance(o, Character) and o.identity.accessory == ident.accessory)  # fmt: skip
            )
            cands.append(
                (
                    f"{ident.color} character {with_acc}",
                    lambda o: isinstance(o, Character)
                    and (o.identity.color, o.identity.accessory) == (ident.color, ident.accessory),
                )
            )
        return cands
    return [
        (obj.kind, lambda o: isinstance(o, Thing) and o.kind == obj.kind),
        (f"{obj.color} {obj.kind}", lambda o: isinstance(o, Thing) and (o.kind, o.color) == (obj.kind, obj.color)),
    ]


def refer(obj: SceneObject, scene: Scene, use_location: bool = True) -> str | None:
    """The shortest 'the …' expression that picks out ``obj`` alone in ``scene`` ('the ball', 'the red character',
    'the blue ball on the left'), or None when no expression here is unique (e.g. two identical balls side by side).
    """
    others = [o for o in scene.objects if o is not obj]
    if len(others) == len(scene.objects):  # obj not in scene by identity: compare by value
        others = [o for o in scene.objects if o != obj]
    for phrase, pred in _ref_candidates(obj):
        if not any(pred(o) for o in others):
            return f"the {phrase}"
    if use_location:
        loc = location(obj)
        h_word = {"left": "on the left", "right": "on the right", "centre": "in the centre"}[loc[0]]
        for phrase, pred in _ref_candidates(obj):
            if not any(pred(o) and location(o)[0] == loc[0] for o in others):
                return f"the {phrase} {h_word}"
    return None


# ---------------------------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------------------------


def _present_phrase(obj: SceneObject, rng: np.random.Generator, loc: str) -> str:
    """'a tall red character who is waving on the left' / 'a blue ball on the left' (indefinite, in a list)."""
    if isinstance(obj, Character):
        rel = choose(rng, ("who is", "that is"))
        return f"{describe_identity(obj.identity, rng)} {rel} {action_phrase(obj.pose.action, rng)} {loc}"
    return f"{describe_thing(obj, rng)} {loc}"


def relation_sentence(a: SceneObject, b: SceneObject, scene: Scene, rng: np.random.Generator) -> str | None:
    """'The ball is to the left of the red character.' or None if either cannot be referred to uniquely."""
    ra, rb = refer(a, scene), refer(b, scene)
    if ra is None or rb is None:
        return None
    return sentence(f"{ra} is {relation_phrase(relative_position(a, b), rng)} {rb}")


def caption_with_facts(scene: Scene, rng: np.random.Generator) -> tuple[str, list[dict[str, Any]]]:
    """A one-to-three-sentence caption and the facts it states.

    Facts: ``{"fact": "context", "context": c, "phrase": p}``, ``{"fact": "object", "index": i, "phrase": p,
    "location": (h, v)}`` (one per object, in scene order; the phrase holds the object's description, action and
    location words), ``{"fact": "relation", "a": i, "b": j, "relation": r, "phrase": p}`` (at least one when the
    scene has two objects that can be referred to uniquely). Every phrase occurs verbatim in the caption, up to the
    capital letter at a sentence start.
    """
    facts: list[dict[str, Any]] = []
    ctx = context_phrase(scene.context, rng)
    facts.append({"fact": "context", "context": scene.context, "phrase": ctx})
    objs = list(scene.objects)
    if not objs:
        return sentence(f"an empty scene {ctx}" if rng.random() < 0.5 else f"there is nobody {ctx}"), facts

    sentences: list[str] = []
    main = objs[0]
    loc0 = location_phrase(main, rng)
    if isinstance(main, Character):
        desc = describe_identity(main.identity, rng)
        act = action_phrase(main.pose.action, rng)
        style = int(rng.integers(3))
        if style == 0:
            sentences.append(sentence(f"{desc} is {act} {loc0} {ctx}"))
        elif style == 1:
            sentences.append(sentence(f"{ctx}, {desc} is {act} {loc0}"))
        else:
            sentences.append(sentence(f"this picture shows {desc} {act} {loc0} {ctx}"))
        phrase0 = f"{desc} is {act} {loc0}" if style < 2 else f"{desc} {act} {loc0}"
    else:
        desc = describe_thing(main, rng)
        if rng.random() < 0.5:
            sentences.append(sentence(f"{desc} is {loc0} {ctx}"))
        else:
            sentences.append(sentence(f"{ctx}, there is {desc} {loc0}"))
        phrase0 = f"{desc} is {loc0}" if sentences[-1].lower().startswith(desc.lower()) else f"{desc} {loc0}"
    facts.append({"fact": "object", "index": 0, "phrase": phrase0, "location": location(main)})

    rest = objs[1:]
    if rest:
        phrases = []
        for i, obj in enumerate(rest, start=1):
            loc = location_phrase(obj, rng)
            p = _present_phrase(obj, rng, loc)
            phrases.append(p)
            facts.append({"fact": "object", "index": i, "phrase": p, "location": location(obj)})
        listed = join_list(phrases)
        lead = choose(rng, ("there {be} also", "the picture also shows", "it also shows", "we can also see"))
        lead = lead.format(be="is" if len(rest) == 1 else "are")
        sentences.append(sentence(f"{lead} {listed}"))

    # One relative position between two objects that can be named uniquely (the main object first if possible).
    n = len(objs)
    pairs = [(0, j) for j in range(1, n)] + [(i, j) for i in range(1, n) for j in range(i + 1, n)]
    if pairs:
        order = list(rng.permutation(len(pairs)))
        if rng.random() < 0.5:  # often about the main object
            order.sort(key=lambda k: pairs[k][0] != 0)
        for k in order:
            i, j = pairs[k]
            if rng.random() < 0.5:
                i, j = j, i
            rs = relation_sentence(objs[i], objs[j], scene, rng)
            if rs is not None:
                sentences.append(rs)
                facts.append(
                    {"fact": "relation", "a": i, "b": j, "relation": relative_position(objs[i], objs[j]),
                     "phrase": rs[:-1]}  # fmt: skip
                )
                break
    return " ".join(sentences), facts


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A one-to-three-sentence caption: context, every object with its attributes, action and location words, and
    (when two objects can be named uniquely) one relative position — all read off the scene graph."""
    return caption_with_facts(scene, rng)[0]


def short_caption(scene: Scene, rng: np.random.Generator) -> str:
    """One sentence: the context and every object, without locations ('A red ball and a tall blue character …')."""
    parts = [describe_object(o, rng) for o in scene.objects]
    ctx = context_phrase(scene.context, rng)
    if not parts:
        return sentence(f"an empty {context_noun(scene.context, rng)}")
    return sentence(f"{join_list(parts)} {ctx}")


def image_prompt(n_images: int, instruction: str) -> str:
    """The human turn: 'Image 1: <image>\\nImage 2: <image>\\n…\\n<instruction>'."""
    lines = [f"Image {i}: <image>" for i in range(1, n_images + 1)]
    return "\n".join(lines + [instruction])


def conversation(human: str, gpt: str, *more: str) -> list[dict[str, str]]:
    """LLaVA turns from alternating texts: human, gpt, human, gpt, …"""
    texts = [human, gpt, *more]
    if len(texts) % 2:
        raise ValueError("turns must alternate human/gpt and end with gpt")
    return [{"from": "human" if k % 2 == 0 else "gpt", "value": t} for k, t in enumerate(texts)]


def things_phrase(things: Sequence[Thing], rng: np.random.Generator) -> str:
    """'two gray rocks and a blue ball' — identical (colour, kind) things grouped with a number word."""
    counts = Counter((t.color, t.kind) for t in things)
    parts = []
    for (color, kind), n in counts.items():
        noun = f"{color} {thing_noun(kind, rng)}"
        parts.append(with_article(noun) if n == 1 else count_phrase(n, noun))
    return join_list(parts)


def ordinal(i: int) -> str:
    """1 → 'first' … 5 → 'fifth'."""
    words = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth")
    return words[i - 1] if 1 <= i <= len(words) else f"{i}th"


__all__ = [
    "ACCESSORY_NOUNS", "ACCESSORY_PHRASES", "ACTION_PHRASES", "ACTION_STEMS", "BODY_ADJECTIVE", "BODY_WORDS",
    "CHARACTER_NOUNS", "CONTEXT_NOUNS", "CONTEXT_PHRASES", "LOCATION_PHRASES", "NUMBER_WORDS", "PATTERN_PHRASES",
    "PATTERN_STEMS", "RELATION_PHRASES", "THING_NOUNS", "action_phrase", "article", "capitalize", "caption",
    "caption_with_facts", "choose", "clean", "context_noun", "context_phrase", "conversation", "count_phrase",
    "describe_identity", "describe_object", "describe_thing", "fix_articles", "image_prompt", "join_list",
    "location_phrase",
    "number_word", "ordinal", "plural", "refer", "relation_phrase", "relation_sentence", "sentence",
    "short_caption", "things_phrase", "with_article",
]  # fmt: skip

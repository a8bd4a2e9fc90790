"""Closed-ended pair tasks in the formats of the CaD-VI evaluation benchmarks: BISON, SVO-Probes, EQBEN, COLA, NLVR2.

Every text is a conjunction of *facts* (`holds` evaluates one on a scene graph) and every answer is checked against
the scene graphs before a sample is returned; labels are drawn uniformly (each answer equally likely).
Recorded in ``meta``: ``answer``, ``choices`` (``choices[0]`` is always the "image 1" / identity answer), the facts.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.edit import apply_random_change, fresh_identities, thing_size
from mmlink.data.world.scene import (
    ACTIONS,
    COLORS,
    CONTEXT_THINGS,
    CONTEXTS,
    THINGS,
    Character,
    Scene,
    Thing,
    location,
    sample_identity,
    sample_pose,
    sample_scene,
)
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    BODY_ADJECTIVE,
    action_phrase,
    choose,
    context_phrase,
    conversation,
    count_phrase,
    image_prompt,
    join_list,
    plural,
    sentence,
    with_article,
)

Fact = dict[str, Any]
_SIDE = {"left": "on the left", "centre": "in the centre", "right": "on the right"}
_CHAR_KEYS = ("body", "color", "accessory", "action", "side")


# ---------------------------------------------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------------------------------------------


def holds(fact: Fact, scene: Scene) -> bool:
    """Whether a fact is true of a scene graph.

    ``{"fact": "thing", "kind": k, "color": c?}``: some thing of that kind (and colour);
    ``{"fact": "char", "body"?, "color"?, "accessory"?, "action"?, "side"?}``: some character with all those;
    ``{"fact": "context", "context": c}``.
    """
    if fact["fact"] == "context":
        return scene.context == fact["context"]
    if fact["fact"] == "thing":
        return any(t.kind == fact["kind"] and fact.get("color", t.color) == t.color for t in scene.things)
    if fact["fact"] == "char":
        def ok(c: Character) -> bool:
            vals = {"body": c.identity.body, "color": c.identity.color, "accessory": c.identity.accessory,
                    "action": c.pose.action, "side": location(c)[0]}  # fmt: skip
            return all(fact[k] == vals[k] for k in _CHAR_KEYS if k in fact)

        return any(ok(c) for c in scene.characters)
    raise ValueError(f"unknown fact {fact!r}")


def holds_all(facts: list[Fact], scene: Scene) -> bool:
    return all(holds(f, scene) for f in facts)


def object_phrase(fact: Fact, rng: np.random.Generator) -> str:
    """'a red ball', 'a tall red character who is jumping on the left', 'a character wearing a hat' …"""
    if fact["fact"] == "thing":
        return with_article(f"{fact['color']} {fact['kind']}" if "color" in fact else fact["kind"])
    words = []
    if "body" in fact:
        words.append(BODY_ADJECTIVE[fact["body"]])
    if "color" in fact:
        words.append(fact["color"])
    words.append("character")
    np_ = with_article(" ".join(words))
    tail = []
    if "accessory" in fact:
        acc = fact["accessory"]
        if acc == "none":
            tail.append("with no accessory")
        else:
            noun = ACCESSORY_NOUNS[acc]
            tail.append(f"wearing {noun if noun == 'glasses' else with_article(noun)}")
    if "action" in fact:
        tail.append(f"{choose(rng, ('who is', 'that is'))} {action_phrase(fact['action'], rng)}")
    if "side" in fact:
        tail.append(_SIDE[fact["side"]])
    return " ".join([np_, *tail])


def facts_text(facts: list[Fact], rng: np.random.Generator) -> str:
    """One sentence stating a conjunction of facts: 'A red ball and a tall blue character at the beach.'"""
    objs = [object_phrase(f, rng) for f in facts if f["fact"] != "context"]
    ctx = [context_phrase(f["context"], rng) for f in facts if f["fact"] == "context"]
    return sentence(" ".join([join_list(objs), *ctx]))


def char_fact(c: Character, *keys: str) -> Fact:
    vals = {"body": c.identity.body, "color": c.identity.color, "accessory": c.identity.accessory,
            "action": c.pose.action, "side": location(c)[0]}  # fmt: skip
    return {"fact": "char", **{k: vals[k] for k in keys}}


def thing_fact(t: Thing, with_color: bool = True) -> Fact:
    return {"fact": "thing", "kind": t.kind, **({"color": t.color} if with_color else {})}


def _change_facts(change: dict, s_before: Scene, s_after: Scene, which: str) -> list[Fact] | None:
    """Facts true of the ``which`` ('before'/'after') side of one change, chosen to be false of the other side."""
    scene = s_before if which == "before" else s_after
    t = change["type"]
    if t == "context":
        return [{"fact": "context", "context": change[which]}]
    if t in ("color", "remove", "add"):
        val = change[which]
        if val is None:
            return None
        color = val if t == "color" else val.split(" ")[0]
        return [{"fact": "thing", "kind": change["object"], "color": color}]
    # character changes: find the character in this scene by its identity key (before) or its new state (after)
    for c in scene.characters:
        key_before = change["object"]
        if t == "accessory":
            body, color, pattern, pcolor, _ = key_before.split("/")
            match = (c.identity.body, c.identity.color, c.identity.pattern, c.identity.pattern_color) == (
                body, color, pattern, pcolor) and c.identity.accessory == change[which]  # fmt: skip
        else:
            match = c.identity.key == key_before
        if match:
            extra = {"action": "action", "move": "side", "accessory": "accessory"}[t]
            return [char_fact(c, "body", "color", extra)]
    return None


def _support_fact(rng, s1: Scene, s2: Scene, exclude_kinds: set[str]) -> Fact | None:
    """A fact about another object, true of both scenes (makes texts read like captions)."""
    cands: list[Fact] = []
    for o in s1.objects:
        f = char_fact(o, "body", "color") if isinstance(o, Character) else thing_fact(o)
        if f["fact"] == "thing" and f["kind"] in exclude_kinds:
            continue
        if holds(f, s1) and holds(f, s2):
            cands.append(f)
    return choose(rng, cands) if cands and rng.random() < 0.6 else None


def _pair_prompt(instruction: str) -> str:
    return image_prompt(2, instruction)


# ---------------------------------------------------------------------------------------------------------------
# BISON: which of two images matches the caption
# ---------------------------------------------------------------------------------------------------------------

BISON_TYPES = ("color", "remove", "action", "move", "accessory", "context")
BISON_TEMPLATES = (
    'Which image matches the text "{t}"? Answer 1 or 2.',
    'Which of the two images is described by "{t}"? Answer with 1 or 2.',
    'Text: "{t}" Which image does the text describe? Answer 1 or 2.',
)


def _minimal_pair(rng, split, types, both_sides: bool):
    """(scene, edited scene, change, facts before, facts after); the facts of each side are false of the other."""
    while True:
        chars = fresh_identities(rng, split, int(rng.integers(1, 3)))
        s = sample_scene(rng, chars, n_things=int(rng.integers(1, 4)))
        s2, changes, _ = apply_random_change(rng, s, split, 1, types)
        if not changes:
            continue
        ch = changes[0]
        fb = _change_facts(ch, s, s2, "before")
        fa = _change_facts(ch, s, s2, "after") if both_sides else []
        if fb is None or fa is None:
            continue
        if not (holds_all(fb, s) and not holds_all(fb, s2)):
            continue
        if both_sides and not (holds_all(fa, s2) and not holds_all(fa, s)):
            continue
        return s, s2, ch, fb, fa


def _with_context_and_support(rng, facts, s1, s2, ch):
    facts = list(facts)
    kinds = {ch["object"]} if ch["type"] in ("color", "remove", "add") else set()
    sup = _support_fact(rng, s1, s2, kinds)
    if sup is not None and ch["type"] != "context":
        facts.append(sup)
    if ch["type"] == "context":
        if sup is None:  # a context alone is a poor caption; name an object too
            o = s1.objects[0]
            sup = char_fact(o, "body", "color") if isinstance(o, Character) else thing_fact(o)
        facts = [sup, *facts]
    elif rng.random() < 0.7:
        facts.append({"fact": "context", "context": s1.context})
    return facts


@TASKS.register("bison")
def bison(rng: np.random.Generator, split: str) -> WorldSample:
    """BISON: a caption and two near-identical images (one edit apart); answer which image it describes."""
    s, s2, ch, fb, _ = _minimal_pair(rng, split, BISON_TYPES, both_sides=False)
    facts = _with_context_and_support(rng, fb, s, s2, ch)
    assert holds_all(facts, s) and not holds_all(facts, s2)
    text = facts_text(facts, rng)
    answer = int(rng.integers(1, 3))
    scenes = [s, s2] if answer == 1 else [s2, s]
    human = _pair_prompt(str(choose(rng, BISON_TEMPLATES)).format(t=text))
    meta = {"answer": str(answer), "choices": ["1", "2"], "text": text, "facts": facts, "edit": ch}
    return WorldSample(scenes, conversation(human, str(answer)), meta)


# ---------------------------------------------------------------------------------------------------------------
# SVO-Probes: a subject-verb-object sentence; the negative differs in exactly one of subject / verb / object
# ---------------------------------------------------------------------------------------------------------------

SVO_VERBS = {
    "standing": ("stands next to", "is standing beside"),
    "jumping": ("jumps next to", "is jumping beside"),
    "waving": ("waves at", "is waving at"),
    "sitting": ("sits next to", "is sitting by"),
}
NEGATIVE_TYPES = ("subject", "verb", "object")
SVO_TEMPLATES = (
    'Which image shows "{t}"? Answer 1 or 2.',
    'Which image matches the sentence "{t}"? Answer with 1 or 2.',
)


@TASKS.register("svo")
def svo(rng: np.random.Generator, split: str) -> WorldSample:
    """SVO-Probes: 'A red character waves at a ball.'; the negative image differs in exactly one of subject (the
    character's colour), verb (its action) or object (the thing kind); meta["negative_type"] says which."""
    neg_type = str(choose(rng, NEGATIVE_TYPES))
    ctx = str(choose(rng, CONTEXTS))
    kinds = list(CONTEXT_THINGS[ctx])
    obj_kind = str(choose(rng, kinds))
    neg_kind = str(choose(rng, [k for k in kinds if k != obj_kind]))
    subject = sample_identity(rng, split)
    verb = str(choose(rng, ACTIONS))
    pose = replace(sample_pose(rng), action=verb)
    x = float(rng.uniform(0.2, 0.8))
    y = float(rng.uniform(0.6, 0.75))
    char = Character(subject, pose, x, y, float(rng.uniform(0.28, 0.4)))
    tx = x + (0.22 if x < 0.5 else -0.22)
    thing = Thing(obj_kind, str(choose(rng, list(COLORS))), tx, y + float(rng.uniform(-0.05, 0.08)),
                  thing_size(rng, obj_kind))  # fmt: skip
    objects = [char, thing]
    if rng.random() < 0.5:  # a distractor thing of a third kind, far away
        third = [k for k in kinds if k not in (obj_kind, neg_kind)]
        dk = str(choose(rng, third))
        dx = float(rng.uniform(0.05, 0.15)) if tx > 0.5 and x > 0.5 else float(rng.uniform(0.85, 0.95))
        if abs(dx - x) < 0.25 or abs(dx - tx) < 0.2:
            dx = 1.0 - dx
        objects.append(Thing(dk, str(choose(rng, list(COLORS))), dx, float(rng.uniform(0.55, 0.85)),
                             thing_size(rng, dk)))  # fmt: skip
    lighting = 0.55 if ctx == "night" else float(rng.uniform(0.85, 1.1))
    pos = Scene(ctx, tuple(objects), lighting, int(rng.integers(2**31)))
    neg_objects = list(objects)
    if neg_type == "subject":
        other = sample_identity(rng, split, exclude={subject.key})
        while other.color == subject.color:
            other = sample_identity(rng, split, exclude={subject.key})
        neg_objects[0] = replace(char, identity=other)
    elif neg_type == "verb":
        neg_objects[0] = replace(char, pose=replace(pose, action=str(choose(rng, [a for a in ACTIONS if a != verb]))))
    else:
        neg_objects[1] = replace(thing, kind=neg_kind, size=thing_size(rng, neg_kind))
    neg = replace(pos, objects=tuple(neg_objects))
    facts = [{"fact": "char", "color": subject.color, "action": verb}, {"fact": "thing", "kind": obj_kind}]
    assert holds_all(facts, pos) and not holds_all(facts, neg)
    subj = with_article(f"{subject.color} character")
    text = sentence(f"{subj} {choose(rng, SVO_VERBS[verb])} {with_article(obj_kind)}")
    answer = int(rng.integers(1, 3))
    scenes = [pos, neg] if answer == 1 else [neg, pos]
    human = _pair_prompt(str(choose(rng, SVO_TEMPLATES)).format(t=text))
    meta = {
        "answer": str(answer), "choices": ["1", "2"], "text": text, "facts": facts, "negative_type": neg_type,
        "triplet": {"subject": f"{subject.color} character", "verb": verb, "object": obj_kind},
    }  # fmt: skip
    return WorldSample(scenes, conversation(human, str(answer)), meta)


# ---------------------------------------------------------------------------------------------------------------
# EQBEN and COLA: two images, two texts; match them
# ---------------------------------------------------------------------------------------------------------------

MATCH_CHOICES = ["1-A, 2-B", "1-B, 2-A"]
MATCH_TEMPLATES = (
    'Text A: "{a}"\nText B: "{b}"\nMatch each image to its text. Answer like "1-A, 2-B".',
    'Text A: "{a}"\nText B: "{b}"\nWhich text goes with which image? Answer in the form "1-A, 2-B".',
)


def _match_sample(rng, s1, s2, facts1, facts2, extra_meta) -> WorldSample:
    """Images (s1, s2) with texts true of one and false of the other; the text order is drawn at random."""
    t1, t2 = facts_text(facts1, rng), facts_text(facts2, rng)
    k = int(rng.integers(2))  # 0: image 1 ↔ text A
    a, b = (t1, t2) if k == 0 else (t2, t1)
    answer = MATCH_CHOICES[k]
    human = _pair_prompt(str(choose(rng, MATCH_TEMPLATES)).format(a=a, b=b))
    meta = {"answer": answer, "choices": list(MATCH_CHOICES), "texts": {"A": a, "B": b},
            "facts": {"A": facts1 if k == 0 else facts2, "B": facts2 if k == 0 else facts1}, **extra_meta}  # fmt: skip
    return WorldSample([s1, s2], conversation(human, answer), meta)


EQBEN_TYPES = ("color", "action", "move", "accessory", "context")


@TASKS.register("eqben")
def eqben(rng: np.random.Generator, split: str) -> WorldSample:
    """EQBEN: two images one small edit apart (colour, action, position, accessory, setting) and two texts that
    differ only in that detail; match images to texts."""
    s1, s2, ch, fb, fa = _minimal_pair(rng, split, EQBEN_TYPES, both_sides=True)
    if ch["type"] == "context":
        o = s1.objects[0]
        shared = char_fact(o, "body", "color") if isinstance(o, Character) else thing_fact(o)
        fb, fa = [shared, *fb], [shared, *fa]
    elif rng.random() < 0.6:
        fb, fa = [*fb, {"fact": "context", "context": s1.context}], [*fa, {"fact": "context", "context": s1.context}]
    assert holds_all(fb, s1) and not holds_all(fb, s2) and holds_all(fa, s2) and not holds_all(fa, s1)
    return _match_sample(rng, s1, s2, fb, fa, {"edit": ch})


COLA_VARIANTS = ("thing_thing", "char_thing")


@TASKS.register("cola")
def cola(rng: np.random.Generator, split: str) -> WorldSample:
    """COLA: both images hold the same objects with their colours swapped ('a red ball and a blue box' vs 'a blue
    ball and a red box'); match images to texts."""
    while True:
        variant = str(choose(rng, COLA_VARIANTS))
        ctx = str(choose(rng, CONTEXTS))
        kinds = [str(k) for k in rng.permutation(list(CONTEXT_THINGS[ctx]))]
        c1, c2 = (str(c) for c in rng.choice(list(COLORS), 2, replace=False))
        base = sample_scene(rng, [], ctx, n_things=0)
        x1 = float(rng.uniform(0.15, 0.4))
        x2 = float(rng.uniform(0.6, 0.85))
        if variant == "thing_thing":
            ka, kb = kinds[0], kinds[1]
            a1 = Thing(ka, c1, x1, float(rng.uniform(0.6, 0.8)), thing_size(rng, ka))
            b1 = Thing(kb, c2, x2, float(rng.uniform(0.6, 0.8)), thing_size(rng, kb))
            a2, b2 = replace(a1, color=c2), replace(b1, color=c1)
            f1 = [thing_fact(a1), thing_fact(b1)]
            f2 = [thing_fact(a2), thing_fact(b2)]
        else:
            ident = sample_identity(rng, split)
            if ident.color in (c1, c2) or ident.pattern_color in (c1, c2):
                continue
            i1, i2 = replace(ident, color=c1), replace(ident, color=c2)
            if i1.split != split or i2.split != split:
                continue
            kb = kinds[0]
            pose = sample_pose(rng)
            a1 = Character(i1, pose, x1, float(rng.uniform(0.6, 0.75)), float(rng.uniform(0.28, 0.4)))
            b1 = Thing(kb, c2, x2, float(rng.uniform(0.6, 0.8)), thing_size(rng, kb))
            a2, b2 = replace(a1, identity=i2), replace(b1, color=c1)
            f1 = [char_fact(a1, "color"), thing_fact(b1)]
            f2 = [char_fact(a2, "color"), thing_fact(b2)]
        if rng.random() < 0.5:
            a1, b1, a2, b2 = (replace(o, x=1.0 - o.x) for o in (a1, b1, a2, b2))
        s1 = replace(base, objects=(a1, b1))
        s2 = replace(base, objects=(a2, b2))
        if rng.random() < 0.5:
            f1, f2 = [*f1, {"fact": "context", "context": ctx}], [*f2, {"fact": "context", "context": ctx}]
        if holds_all(f1, s1) and not holds_all(f1, s2) and holds_all(f2, s2) and not holds_all(f2, s1):
            return _match_sample(rng, s1, s2, f1, f2, {"variant": variant, "colors": [c1, c2]})


# ---------------------------------------------------------------------------------------------------------------
# NLVR2: a statement about the pair, true or false
# ---------------------------------------------------------------------------------------------------------------

NLVR2_TYPES = ("total_count", "both_have", "exactly_one", "more", "action_both", "same_context")
NLVR2_CHOICES = ["True", "False"]
NLVR2_TEMPLATES = (
    'Is this statement true or false? "{t}"',
    'Statement: "{t}" Answer True or False.',
    'Look at both images. True or false: "{t}"',
)


def _count(scene: Scene, kind: str, color: str | None = None) -> int:
    if kind == "character":
        return sum(1 for c in scene.characters if color is None or c.identity.color == color)
    return sum(1 for t in scene.things if t.kind == kind and (color is None or t.color == color))


def evaluate_statement(spec: dict, s1: Scene, s2: Scene) -> bool:
    """Truth of an NLVR2 statement spec on the two scene graphs."""
    t = spec["type"]
    if t == "total_count":
        return _count(s1, spec["kind"]) + _count(s2, spec["kind"]) == spec["n"]
    if t == "both_have":
        return _count(s1, spec["kind"], spec.get("color")) > 0 and _count(s2, spec["kind"], spec.get("color")) > 0
    if t == "exactly_one":
        return (_count(s1, spec["kind"]) > 0) != (_count(s2, spec["kind"]) > 0)
    if t == "more":
        return _count(s1, spec["kind"]) > _count(s2, spec["kind"])
    if t == "action_both":
        return all(any(c.pose.action == spec["action"] for c in s.characters) for s in (s1, s2))
    if t == "same_context":
        return s1.context == s2.context == spec["context"]
    raise ValueError(f"unknown statement type {t!r}")


def _noun(kind: str, color: str | None = None) -> str:
    return f"{color} {kind}" if color else kind


def _statement(rng, stype: str, s1: Scene, s2: Scene, label: bool) -> tuple[dict, str] | None:
    kinds = ["character", *THINGS]
    if stype == "total_count":
        kind = str(choose(rng, kinds if not label else [k for k in kinds if _count(s1, k) + _count(s2, k)]))
        total = _count(s1, kind) + _count(s2, kind)
        n = total if label else int(choose(rng, [m for m in (total - 1, total + 1, total + 2) if m >= 1]))
        verb = "is" if n == 1 else "are"
        text = choose(rng, (f"there {verb} {count_phrase(n, kind)} in total", f"the two images contain "
                            f"{count_phrase(n, kind)} in total",
                            f"together the images show {count_phrase(n, kind)}"))  # fmt: skip
        return {"type": stype, "kind": kind, "n": n}, sentence(text)
    if stype == "both_have":
        options = []
        for o in s1.objects + s2.objects:
            kind = "character" if isinstance(o, Character) else o.kind
            color = o.identity.color if isinstance(o, Character) else o.color
            for spec in ({"type": stype, "kind": kind, "color": color}, {"type": stype, "kind": kind}):
                if evaluate_statement(spec, s1, s2) == label and spec not in options:
                    options.append(spec)
        if not options:
            return None
        spec = choose(rng, options)
        what = with_article(_noun(spec["kind"], spec.get("color")))
        text = choose(rng, (f"both images contain {what}", f"each image has {what}", f"there is {what} in both images"))
        return spec, sentence(text)
    # The other types name one value (a kind, an action, a context): one drawn among those that make it ``label``.
    if stype == "exactly_one":
        key, values = "kind", kinds
    elif stype == "more":
        key, values = "kind", [k for k in kinds if _count(s1, k) or _count(s2, k)]
    elif stype == "action_both":
        key, values = "action", ACTIONS
    elif stype == "same_context":
        key, values = "context", CONTEXTS
    else:
        raise ValueError(stype)
    options = [v for v in values if evaluate_statement({"type": stype, key: v}, s1, s2) == label]
    if not options:
        return None
    value = str(choose(rng, options))
    spec = {"type": stype, key: value}
    if stype == "same_context":
        return spec, sentence(f"both images are set {context_phrase(value, rng)}")
    if stype == "exactly_one":
        texts = (f"exactly one of the images contains {with_article(value)}",
                 f"only one image has {with_article(value)}")  # fmt: skip
    elif stype == "more":
        texts = (f"the first image has more {plural(value)} than the second",
                 f"there are more {plural(value)} in the first image than in the second")  # fmt: skip
    else:
        texts = (f"in both images a character is {action_phrase(value, rng)}",
                 f"each image shows a character {action_phrase(value, rng)}")  # fmt: skip
    return spec, sentence(choose(rng, texts))


@TASKS.register("nlvr2")
def nlvr2(rng: np.random.Generator, split: str) -> WorldSample:
    """NLVR2: a statement about the two images (counts across both, 'both contain …', 'exactly one …', …);
    answer True or False (each equally likely)."""
    label = bool(rng.integers(2))
    exclude: set[str] = set()
    s1 = sample_scene(rng, fresh_identities(rng, split, int(rng.integers(1, 3)), exclude),
                      n_things=int(rng.integers(1, 4)))  # fmt: skip
    ctx = s1.context if rng.random() < 0.35 else None
    s2 = sample_scene(rng, fresh_identities(rng, split, int(rng.integers(1, 3)), exclude), ctx,
                      n_things=int(rng.integers(1, 4)))  # fmt: skip
    while True:
        stype = str(choose(rng, NLVR2_TYPES))
        res = _statement(rng, stype, s1, s2, label)
        if res is not None:
            break
    spec, text = res
    assert evaluate_statement(spec, s1, s2) == label
    answer = "True" if label else "False"
    human = _pair_prompt(str(choose(rng, NLVR2_TEMPLATES)).format(t=text))
    meta = {"answer": answer, "choices": list(NLVR2_CHOICES), "statement": text, "spec": spec}
    return WorldSample([s1, s2], conversation(human, answer), meta)


__all__ = [
    "MATCH_CHOICES", "NEGATIVE_TYPES", "bison", "cola", "eqben", "evaluate_statement", "facts_text", "holds",
    "holds_all", "nlvr2", "object_phrase", "svo",
]  # fmt: skip

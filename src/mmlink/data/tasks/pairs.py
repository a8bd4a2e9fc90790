"""Image-pair tasks: MmLINK pairs (SAM §3), CaD-VI Phase-1 summaries with retrieval, CaD-QA.

The commonalities-and-differences (CaD) summary is computed from the two scene graphs over CaD-VI's six axes —
object types, attributes, counts, actions, locations, relative positions — and an axis is written only when there is
something to say on it. The rules (`cad_facts`):

* entities seen in both images ("paired"): a character with the same identity in both; the one character of each
  image left over after that matching, when exactly one is left in each; a thing kind that occurs exactly once in
  each image;
* object types: kinds (``character`` or the thing kind) present in both (commonality) / in one only (difference);
* attributes: a paired thing's colour; a same-identity character (all traits shared); the left-over characters'
  colour, body, pattern and accessory, trait by trait (a plain pattern or no accessory shared is not worth saying);
  for a kind in both images but not once in each, the colours of its things as a multiset;
* counts: the number of each kind present in both images, equal or not;
* actions: a paired character's action; otherwise the set of actions of the characters not paired, when both
  images have some;
* locations: the setting (context), and each paired entity's horizontal place (left/centre/right);
* relative positions: `relative_position` between two paired entities, in each image.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
import numpy as np

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.edit import apply_random_change, fresh_identities
from mmlink.data.world.scene import (
    CONTEXTS,
    Character,
    Identity,
    Scene,
    SceneObject,
    location,
    relative_position,
    sample_pose,
    sample_scene,
)
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    BODY_ADJECTIVE,
    action_phrase,
    caption,
    choose,
    context_phrase,
    conversation,
    count_phrase,
    describe_identity,
    image_prompt,
    join_list,
    location_phrase,
    ordinal,
    plural,
    refer,
    relation_phrase,
    sentence,
    with_article,
)

AXES = ("object types", "attributes", "counts", "actions", "locations", "relative positions")
_H_PHRASE = {"left": "on the left", "centre": "in the centre", "right": "on the right"}


# ---------------------------------------------------------------------------------------------------------------
# MmLINK pairs
# ---------------------------------------------------------------------------------------------------------------

MMLINK_QUESTIONS = {
    "describe": ("Which character appears in both images? Describe it.",
                 "Find the character that is in both images and describe it.",
                 "One character is in both pictures. Who is it, and where is it in each picture?"),
    "where": ("Where is the character that appears in both images, in each of them?",
              "Locate the character shared by the two images in each image."),
    "action": ("What is the character that appears in both images doing in each of them?",
               "The same character is in both images. What is it doing in each?"),
    "context": ("Describe the character shared by the two images and where each picture was taken.",),
}  # fmt: skip


@TASKS.register("mmlink_pair")
def mmlink_pair(rng: np.random.Generator, split: str) -> WorldSample:
    """Two images with the same main character in different contexts and poses, each with one or two distractor
    characters (never shared); the answer names the shared character and says where it is in each image."""
    main = fresh_identities(rng, split, 1)[0]
    exclude = {main.key}
    contexts = [str(c) for c in rng.choice(CONTEXTS, 2, replace=False)]
    scenes, mains = [], []
    for ctx in contexts:
        chars = [main, *fresh_identities(rng, split, int(rng.integers(1, 3)), exclude)]
        order = [chars[k] for k in rng.permutation(len(chars))]
        s = sample_scene(rng, order, ctx)
        scenes.append(s)
        mains.append(next(c for c in s.characters if c.identity == main))
    if mains[0].pose.action == mains[1].pose.action and rng.random() < 0.7:  # mostly different poses
        s1 = scenes[1]
        i = s1.objects.index(mains[1])
        new_pose = replace(sample_pose(rng), action=choose(rng, [a for a in ("standing", "jumping", "waving", "sitting")
                                                                   if a != mains[0].pose.action]))  # fmt: skip
        mains[1] = replace(mains[1], pose=new_pose)
        objs = list(s1.objects)
        objs[i] = mains[1]
        scenes[1] = replace(s1, objects=tuple(objs))
    qtype = str(choose(rng, list(MMLINK_QUESTIONS)))
    question = str(choose(rng, MMLINK_QUESTIONS[qtype]))
    desc = describe_identity(main, rng)
    acts = [action_phrase(m.pose.action, rng) for m in mains]
    locs = [location_phrase(m, rng) for m in mains]
    ctxs = [context_phrase(s.context, rng) for s in scenes]
    if qtype == "describe":
        answer = [sentence(f"{desc} appears in both images"),
                  sentence(f"in the first image it is {acts[0]} {locs[0]}, and in the second it is {acts[1]} "
                           f"{locs[1]}")]  # fmt: skip
    elif qtype == "where":
        answer = [sentence(f"it is {desc}"),
                  sentence(f"it is {locs[0]} in the first image and {locs[1]} in the second")]  # fmt: skip
    elif qtype == "action":
        if mains[0].pose.action == mains[1].pose.action:
            answer = [sentence(f"{desc} is {acts[0]} in both images")]
        else:
            answer = [sentence(f"{desc} is {acts[0]} in the first image and {acts[1]} in the second")]
    else:
        answer = [sentence(f"it is {desc}"),
                  sentence(f"the first picture was taken {ctxs[0]} and the second {ctxs[1]}")]  # fmt: skip
    human = image_prompt(2, question)
    meta = {
        "main": main.key,
        "locations": [list(location(m)) for m in mains],
        "actions": [m.pose.action for m in mains],
        "contexts": [s.context for s in scenes],
        "qtype": qtype,
    }
    return WorldSample(scenes, conversation(human, " ".join(answer)), meta)


# ---------------------------------------------------------------------------------------------------------------
# CaD facts over the six axes
# ---------------------------------------------------------------------------------------------------------------


def kind_of(obj: SceneObject) -> str:
    return "character" if isinstance(obj, Character) else obj.kind


def kind_counts(scene: Scene) -> Counter:
    """Kind → number of objects (insertion order follows the scene)."""
    return Counter(kind_of(o) for o in scene.objects)


def paired_entities(s1: Scene, s2: Scene) -> list[tuple[str, SceneObject, SceneObject]]:
    """Entities seen in both images: ("same_char" | "char" | "thing", object in image 1, object in image 2)."""
    pairs: list[tuple[str, SceneObject, SceneObject]] = []
    by_key2 = {c.identity.key: c for c in s2.characters}
    for c in s1.characters:
        if c.identity.key in by_key2:
            pairs.append(("same_char", c, by_key2[c.identity.key]))
    matched = {c.identity.key for _, c, _ in pairs}
    c1 = [c for c in s1.characters if c.identity.key not in matched]
    c2 = [c for c in s2.characters if c.identity.key not in matched]
    if len(c1) == 1 and len(c2) == 1:  # the one remaining character of each image
        pairs.append(("char", c1[0], c2[0]))
    n1, n2 = kind_counts(s1), kind_counts(s2)
    for t in s1.things:
        if n1[t.kind] == 1 and n2[t.kind] == 1:
            pairs.append(("thing", t, next(u for u in s2.things if u.kind == t.kind)))
    return pairs


def _char_name(ident: Identity, all_idents: list[Identity]) -> str:
    """Shortest 'the … character' naming ``ident`` uniquely among the characters of both images."""
    others = [i for i in all_idents if i.key != ident.key]
    body = BODY_ADJECTIVE[ident.body]
    options = [
        (f"the {ident.color} character", lambda i: i.color == ident.color),
        (f"the {body} character", lambda i: i.body == ident.body),
        (f"the {body} {ident.color} character", lambda i: (i.body, i.color) == (ident.body, ident.color)),
    ]
    if ident.accessory != "none":
        options.append(
            (f"the {ident.color} character with the {ACCESSORY_NOUNS[ident.accessory]}",
             lambda i: (i.color, i.accessory) == (ident.color, ident.accessory))  # fmt: skip
        )
    for phrase, pred in options:
        if not any(pred(o) for o in others):
            return phrase
    return "the " + describe_identity(ident, np.random.default_rng(0), article_form=False)


def _entity_names(pairs, s1: Scene, s2: Scene) -> list[str]:
    idents = [c.identity for c in s1.characters] + [c.identity for c in s2.characters]
    names = []
    for kind, a, _ in pairs:
        if kind == "same_char":
            names.append(_char_name(a.identity, idents))
        elif kind == "char":
            names.append("the other character" if any(k == "same_char" for k, _, _ in pairs) else "the character")
        else:
            names.append(f"the {a.kind}")
    return names


def _noun(kind: str) -> str:
    return kind


def _pattern_text(ident: Identity) -> str:
    if ident.pattern == "plain":
        return "is plain"
    word = {"striped": "stripes", "dotted": "dots", "checkered": "a checkered pattern"}[ident.pattern]
    if ident.pattern == "checkered":
        return f"has a {ident.pattern_color} checkered pattern"
    return f"has {ident.pattern_color} {word}"


def _grouped(kind: str, colors: list[str]) -> str:
    """'two pink cars and a purple car' (colours in sorted order)."""
    counts = Counter(sorted(colors))
    return join_list(
        [with_article(f"{c} {kind}") if n == 1 else count_phrase(n, f"{c} {kind}") for c, n in counts.items()]
    )


def _acc_text(acc: str) -> str:
    if acc == "none":
        return "has no accessory"
    return "wears glasses" if acc == "glasses" else f"wears {with_article(ACCESSORY_NOUNS[acc])}"


def cad_facts(s1: Scene, s2: Scene, rng: np.random.Generator) -> dict[str, dict[str, list[str]]]:
    """``{"commonalities": {axis: [sentences]}, "differences": {axis: [sentences]}}`` with only non-empty axes."""
    com: dict[str, list[str]] = {a: [] for a in AXES}
    dif: dict[str, list[str]] = {a: [] for a in AXES}
    n1, n2 = kind_counts(s1), kind_counts(s2)
    pairs = paired_entities(s1, s2)
    names = _entity_names(pairs, s1, s2)

    # object types
    shared = [k for k in n1 if k in n2]
    only1 = [k for k in n1 if k not in n2]
    only2 = [k for k in n2 if k not in n1]
    if shared:
        com["object types"].append(
            sentence(f"both images contain {join_list([with_article(_noun(k)) for k in shared])}"))
    if only1 or only2:
        parts = []
        if only1:
            parts.append(f"only the first image has {join_list([with_article(_noun(k)) for k in only1])}")
        if only2:
            parts.append(f"only the second image has {join_list([with_article(_noun(k)) for k in only2])}")
        dif["object types"].append(sentence("; ".join(parts)))

    # attributes
    for (kind, a, b), name in zip(pairs, names):
        if kind == "thing":
            if a.color == b.color:
                com["attributes"].append(sentence(f"{name} is {a.color} in both images"))
            else:
                dif["attributes"].append(
                    sentence(f"{name} is {a.color} in the first image and {b.color} in the second"))
        elif kind == "same_char":
            bare = describe_identity(a.identity, rng, article_form=False)
            com["attributes"].append(sentence(f"the same {bare} appears in both images"))
        else:
            ia, ib = a.identity, b.identity
            traits = (
                (ia.color, ib.color, f"is {ia.color}", f"is {ib.color}", True),
                (ia.body, ib.body, f"is {BODY_ADJECTIVE[ia.body]}", f"is {BODY_ADJECTIVE[ib.body]}", True),
                ((ia.pattern, ia.pattern_color), (ib.pattern, ib.pattern_color), _pattern_text(ia), _pattern_text(ib),
                 ia.pattern != "plain"),
                (ia.accessory, ib.accessory, _acc_text(ia.accessory), _acc_text(ib.accessory), ia.accessory != "none"),
            )  # fmt: skip
            for va, vb, ta, tb, worth_saying in traits:
                if va == vb:
                    if worth_saying:
                        com["attributes"].append(sentence(f"{name} {ta} in both images"))
                elif ta.startswith("is ") and tb.startswith("is "):
                    dif["attributes"].append(sentence(f"{name} {ta} in the first image and {tb[3:]} in the second"))
                else:
                    dif["attributes"].append(sentence(f"{name} {ta} in the first image, while in the second it {tb}"))
    # things of kinds that occur more than once: their colours, as a multiset
    for k in shared:
        if k == "character" or (n1[k] == 1 and n2[k] == 1):
            continue
        cols1 = sorted(t.color for t in s1.things if t.kind == k)
        cols2 = sorted(t.color for t in s2.things if t.kind == k)
        if cols1 == cols2:
            com["attributes"].append(sentence(f"both images have {_grouped(k, cols1)}"))
        else:
            dif["attributes"].append(sentence(f"the first image has {_grouped(k, cols1)}, while the second has "
                                              f"{_grouped(k, cols2)}"))  # fmt: skip

    # counts
    same = [count_phrase(n1[k], _noun(k)) for k in shared if n1[k] == n2[k]]
    if same:
        com["counts"].append(sentence(f"both images have {join_list(same)}"))
    for k in shared:
        a, b = n1[k], n2[k]
        if a != b:
            dif["counts"].append(sentence(f"the first image has {count_phrase(a, _noun(k))}, the second "
                                          f"{count_phrase(b, _noun(k))}"))  # fmt: skip

    # actions
    matched1 = {id(a) for kind, a, _ in pairs if kind in ("same_char", "char")}
    matched2 = {id(b) for kind, _, b in pairs if kind in ("same_char", "char")}
    for (kind, a, b), name in zip(pairs, names):
        if kind in ("same_char", "char"):
            if a.pose.action == b.pose.action:
                com["actions"].append(sentence(f"{name} is {action_phrase(a.pose.action, rng)} in both images"))
            else:
                dif["actions"].append(sentence(f"{name} is {action_phrase(a.pose.action, rng)} in the first image "
                                               f"and {action_phrase(b.pose.action, rng)} in the second"))  # fmt: skip
    u1 = [c for c in s1.characters if id(c) not in matched1]
    u2 = [c for c in s2.characters if id(c) not in matched2]
    if u1 and u2:
        a1 = list(dict.fromkeys(c.pose.action for c in u1))
        a2 = list(dict.fromkeys(c.pose.action for c in u2))
        for act in a1:
            if act in a2:
                com["actions"].append(sentence(f"in both images a character is {action_phrase(act, rng)}"))
        if set(a1) != set(a2):
            w1 = "a character is" if len(u1) == 1 else "characters are"
            w2 = "a character is" if len(u2) == 1 else "characters are"
            p1 = join_list([action_phrase(a, rng, plural_subject=len(u1) > 1) for a in a1])
            p2 = join_list([action_phrase(a, rng, plural_subject=len(u2) > 1) for a in a2])
            dif["actions"].append(sentence(f"in the first image {w1} {p1}, while in the second {w2} {p2}"))

    # locations
    if s1.context == s2.context:
        com["locations"].append(sentence(f"both images are set {context_phrase(s1.context, rng)}"))
    else:
        dif["locations"].append(sentence(f"the first image is set {context_phrase(s1.context, rng)}, while the second "
                                         f"is set {context_phrase(s2.context, rng)}"))  # fmt: skip
    for (kind, a, b), name in zip(pairs, names):
        ha, hb = location(a)[0], location(b)[0]
        if ha == hb:
            com["locations"].append(sentence(f"{name} is {_H_PHRASE[ha]} in both images"))
        else:
            dif["locations"].append(sentence(f"{name} is {_H_PHRASE[ha]} in the first image and {_H_PHRASE[hb]} "
                                             f"in the second"))  # fmt: skip

    # relative positions (at most three statements each way)
    for i in range(len(pairs)):
        for j in range(i + 1, len(pairs)):
            (_, a1_, a2_), (_, b1_, b2_) = pairs[i], pairs[j]
            r1, r2 = relative_position(a1_, b1_), relative_position(a2_, b2_)
            if r1 == r2:
                if len(com["relative positions"]) < 3:
                    com["relative positions"].append(
                        sentence(f"in both images {names[i]} is {relation_phrase(r1, rng)} {names[j]}"))
            elif len(dif["relative positions"]) < 3:
                dif["relative positions"].append(
                    sentence(f"{names[i]} is {relation_phrase(r1, rng)} {names[j]} in the first image, but "
                             f"{relation_phrase(r2, rng)} it in the second")  # fmt: skip
                )
    return {
        "commonalities": {a: v for a, v in com.items() if v},
        "differences": {a: v for a, v in dif.items() if v},
    }


def format_cad(facts: dict[str, dict[str, list[str]]]) -> str:
    """'Commonalities:\\n- Object types: …\\nDifferences:\\n- Attributes: …' (an empty section says 'none')."""
    lines = []
    for section, title in (("commonalities", "Commonalities"), ("differences", "Differences")):
        axes = facts[section]
        if not axes:
            lines.append(f"{title}: none.")
            continue
        lines.append(f"{title}:")
        for axis in AXES:
            if axis in axes:
                lines.append(f"- {axis.capitalize()}: {' '.join(axes[axis])}")
    return "\n".join(lines)


def caption_signature(scene: Scene) -> tuple:
    """What a `caption` can tell apart: the context and each object's visible traits and place."""
    objs = []
    for o in scene.objects:
        if isinstance(o, Character):
            objs.append(("character", o.identity.key, o.pose.action, location(o)))
        else:
            objs.append((o.kind, o.color, location(o)))
    return scene.context, tuple(sorted(objs, key=repr))


# ---------------------------------------------------------------------------------------------------------------
# CaD pairs
# ---------------------------------------------------------------------------------------------------------------

SIMILARITIES = ("high", "medium", "low")
CAD_INSTRUCTIONS = (
    "Summarize the commonalities and differences between the two images.",
    "What do these two images have in common, and how do they differ? Summarize by aspect.",
    "Compare the two images: list their commonalities and their differences.",
    "Describe the similarities and differences of Image 1 and Image 2.",
)
RETRIEVAL_TEMPLATES = (
    'Which image does this caption describe: "{c}"?',
    'Which of the two images matches this caption: "{c}"?',
    'Here is a caption: "{c}" Which image is it about?',
)


def cad_pair(
    rng: np.random.Generator, split: str, similarity: str, n_chars: tuple[int, int] = (1, 3),
    n_things: tuple[int, int] = (1, 4),
) -> tuple[Scene, Scene]:  # fmt: skip
    """Two scenes at a similarity level: high = same scene with one or two object edits; medium = same context,
    some characters kept (new poses and places), things drawn afresh from the same context; low = different
    context and characters. The two never read the same in a caption (`caption_signature`)."""
    for _ in range(50):
        exclude: set[str] = set()
        chars = fresh_identities(rng, split, int(rng.integers(*n_chars)), exclude)
        s1 = sample_scene(rng, chars, n_things=int(rng.integers(*n_things)))
        if similarity == "high":
            types = ("color", "add", "remove", "action", "move", "accessory")
            s2, _, _ = apply_random_change(rng, s1, split, int(rng.integers(1, 3)), types)
        elif similarity == "medium":
            kept = [c for c in chars if rng.random() < 0.6]
            new = fresh_identities(rng, split, int(rng.integers(0 if kept else 1, 2)), exclude)
            s2 = sample_scene(rng, kept + new, s1.context, n_things=int(rng.integers(*n_things)))
        elif similarity == "low":
            ctx = str(choose(rng, [c for c in CONTEXTS if c != s1.context]))
            s2 = sample_scene(rng, fresh_identities(rng, split, int(rng.integers(*n_chars)), exclude), ctx,
                              n_things=int(rng.integers(*n_things)))  # fmt: skip
        else:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        if caption_signature(s1) != caption_signature(s2):
            return s1, s2
    raise RuntimeError("could not make two distinguishable scenes")  # pragma: no cover


@TASKS.register("cad")
def cad(rng: np.random.Generator, split: str) -> WorldSample:
    """CaD-VI Phase 1: a structured commonalities-and-differences summary, then text-to-image retrieval."""
    similarity = str(choose(rng, SIMILARITIES))
    s1, s2 = cad_pair(rng, split, similarity)
    facts = cad_facts(s1, s2, rng)
    summary = format_cad(facts)
    j = int(rng.integers(1, 3))
    cap = caption((s1, s2)[j - 1], rng)
    turns = conversation(
        image_prompt(2, str(choose(rng, CAD_INSTRUCTIONS))),
        summary,
        str(choose(rng, RETRIEVAL_TEMPLATES)).format(c=cap),
        f"Image {j}",
    )
    meta = {
        "similarity": similarity,
        "axes": {"commonalities": list(facts["commonalities"]), "differences": list(facts["differences"])},
        "summary": facts,
        "retrieval_answer": j,
        "retrieval_caption": cap,
    }
    return WorldSample([s1, s2], turns, meta)


# ---------------------------------------------------------------------------------------------------------------
# CaD-QA
# ---------------------------------------------------------------------------------------------------------------

BOTH_QTYPES = ("common", "differ", "thing_color", "count", "char_action", "context")
ONE_QTYPES = ("action_one", "color_one", "count_one", "where_one")
# "common" and "differ" answer with the first fact of up to two axes of one side of the CaD summary.
_AXES_QUESTIONS = {
    "common": ("commonalities", ("What do the two images have in common?", "What is similar in the two images?")),
    "differ": ("differences", ("What is different between the two images?", "How do the two images differ?")),
}


def _qa_both(rng, s1, s2, qtype):
    facts = cad_facts(s1, s2, rng)
    pairs = paired_entities(s1, s2)
    names = _entity_names(pairs, s1, s2)
    if qtype in _AXES_QUESTIONS:
        side, questions = _AXES_QUESTIONS[qtype]
        found = facts[side]
        if not found:
            return None
        axes = list(found)[:2]
        q = choose(rng, questions)
        return q, " ".join(found[a][0] for a in axes), {"axes": axes}
    if qtype == "thing_color":
        things = [(p, n) for p, n in zip(pairs, names) if p[0] == "thing"]
        if not things:
            return None
        (_, a, b), name = choose(rng, things)
        q = choose(rng, (f"What colour is {name} in each image?", f"Is {name} the same colour in both images?"))
        if a.color == b.color:
            ans = f"{'Yes, it' if q.startswith('Is') else 'It'} is {a.color} in both images."
        else:
            lead = "No, it" if q.startswith("Is") else "It"
            ans = f"{lead} is {a.color} in the first image and {b.color} in the second."
        return q, ans, {"kind": a.kind, "colors": [a.color, b.color]}
    if qtype == "count":
        n1, n2 = kind_counts(s1), kind_counts(s2)
        kinds = list(dict.fromkeys([*n1, *n2]))
        k = str(choose(rng, kinds))
        q = f"How many {plural(k)} are there in each image?"
        a, b = n1[k], n2[k]
        if a == b:
            ans = f"There {'is' if a == 1 else 'are'} {count_phrase(a, k)} in each image."
        else:
            ans = sentence(f"the first image has {count_phrase(a, k)} and the second has {count_phrase(b, k)}")
        return q, ans, {"kind": k, "counts": [a, b]}
    if qtype == "char_action":
        chars = [(p, n) for p, n in zip(pairs, names) if p[0] in ("same_char", "char")]
        if not chars:
            return None
        (_, a, b), name = choose(rng, chars)
        q = f"What is {name} doing in each image?"
        if a.pose.action == b.pose.action:
            ans = sentence(f"it is {action_phrase(a.pose.action, rng)} in both images")
        else:
            ans = sentence(f"it is {action_phrase(a.pose.action, rng)} in the first image and "
                           f"{action_phrase(b.pose.action, rng)} in the second")  # fmt: skip
        return q, ans, {"actions": [a.pose.action, b.pose.action], "identities": [a.identity.key, b.identity.key]}
    if qtype == "context":
        q = choose(rng, ("Were the two pictures taken in the same place?", "Are both images set in the same place?"))
        if s1.context == s2.context:
            ans = sentence(f"yes, both are set {context_phrase(s1.context, rng)}")
        else:
            ans = sentence(f"no, the first is set {context_phrase(s1.context, rng)} and the second "
                           f"{context_phrase(s2.context, rng)}")  # fmt: skip
        return q, ans, {"contexts": [s1.context, s2.context]}
    raise ValueError(qtype)


def _relational_char_ref(rng, scene: Scene, char: Character) -> str | None:
    """'the character to the left of the tree' when that picks ``char`` alone (the thing named uniquely)."""
    options = []
    for t in scene.things:
        tref = refer(t, scene, use_location=False)
        if tref is None:
            continue
        rel = relative_position(char, t)
        if all(relative_position(c, t) != rel for c in scene.characters if c is not char):
            options.append(f"the character {relation_phrase(rel, rng)} {tref}")
    return choose(rng, options) if options else None


def _qa_one(rng, scene: Scene, k: int, qtype: str):
    img = f"in the {ordinal(k)} image"
    if qtype == "action_one":
        if not scene.characters:
            return None
        c = choose(rng, scene.characters)
        ref = _relational_char_ref(rng, scene, c) if rng.random() < 0.6 else None
        ref = ref or refer(c, scene)
        if ref is None:
            return None
        q = sentence(f"{img}, what is {ref} doing?")
        ans = sentence(f"it is {action_phrase(c.pose.action, rng)} {location_phrase(c, rng)}")
        return q, ans, {"object_index": scene.objects.index(c), "action": c.pose.action, "reference": ref}
    if qtype == "color_one":
        n = kind_counts(scene)
        things = [t for t in scene.things if n[t.kind] == 1]
        if not things:
            return None
        t = choose(rng, things)
        q = sentence(f"{img}, what colour is the {t.kind}?")
        return q, sentence(f"the {t.kind} is {t.color}"), {"object_index": scene.objects.index(t), "color": t.color}
    if qtype == "count_one":
        kinds = list(kind_counts(scene)) + [k_ for k_ in ("character",) if k_ not in kind_counts(scene)]
        kind = str(choose(rng, kinds))
        n = kind_counts(scene)[kind]
        q = sentence(f"{img}, how many {plural(kind)} are there?")
        ans = sentence(f"there {'is' if n == 1 else 'are'} {count_phrase(n, kind)}")
        return q, ans, {"kind": kind, "count": n}
    if qtype == "where_one":
        cands = [o for o in scene.objects if refer(o, scene, use_location=False) is not None]
        if not cands:
            return None
        o = choose(rng, cands)
        ref = refer(o, scene, use_location=False)
        others = [p for p in scene.objects if p is not o and refer(p, scene) is not None]
        ans = f"it is {location_phrase(o, rng)}"
        rel_index = None
        if others:
            p = choose(rng, others)
            ans += f", {relation_phrase(relative_position(o, p), rng)} {refer(p, scene)}"
            rel_index = scene.objects.index(p)
        q = sentence(f"{img}, where is {ref}?")
        return q, sentence(ans), {"object_index": scene.objects.index(o), "location": list(location(o)),
                                  "relative_to": rel_index}  # fmt: skip
    raise ValueError(qtype)


@TASKS.register("cad_qa")
def cad_qa(rng: np.random.Generator, split: str) -> WorldSample:
    """CaD-QA: a high-overlap pair and ONE open question about its commonalities/differences — about a third of them
    about one image only ("In the second image, what is the character to the left of the tree doing?")."""
    similarity = "high" if rng.random() < 0.7 else "medium"
    s1, s2 = cad_pair(rng, split, similarity, n_chars=(1, 3), n_things=(2, 4))
    r = rng.random()
    about = "both" if r < 2 / 3 else "image1" if r < 5 / 6 else "image2"
    while True:
        if about == "both":
            qtype = str(choose(rng, BOTH_QTYPES))
            res = _qa_both(rng, s1, s2, qtype)
        else:
            qtype = str(choose(rng, ONE_QTYPES))
            k = 1 if about == "image1" else 2
            res = _qa_one(rng, (s1, s2)[k - 1], k, qtype)
        if res is not None:
            break
    q, ans, facts = res
    meta = {"about": about, "answer": ans, "question": q, "qtype": qtype, "similarity": similarity, "facts": facts}
    return WorldSample([s1, s2], conversation(image_prompt(2, q), ans), meta)


__all__ = [
    "AXES", "SIMILARITIES", "cad", "cad_facts", "cad_pair", "cad_qa", "caption_signature", "format_cad",
    "kind_counts", "mmlink_pair", "paired_entities",
]  # fmt: skip

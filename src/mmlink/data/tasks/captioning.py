"""Captioning tasks: multi-image (SAM's evaluation formats: group captioning, storytelling, change captioning) and
the single-image `caption` (Stage-1 alignment data).

Also the scene-editing machinery the pair tasks reuse: `apply_random_change` edits one object or one scene-level
attribute of a scene graph and says, in words that are true by construction, what changed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.scene import (
    ACCESSORIES,
    ACTIONS,
    COLORS,
    CONTEXT_THINGS,
    CONTEXTS,
    THINGS,
    Character,
    Identity,
    Scene,
    SceneObject,
    Thing,
    location,
    place,
    sample_identity,
    sample_pose,
    sample_scene,
)
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    HORIZONTAL_NOUNS,
    action_phrase,
    caption,
    choose,
    context_noun,
    context_phrase,
    conversation,
    describe_identity,
    describe_thing,
    image_prompt,
    join_list,
    location_phrase,
    plural,
    refer,
    sentence,
    short_caption,
    thing_noun,
    things_phrase,
    with_article,
)

# ---------------------------------------------------------------------------------------------------------------
# Scene helpers
# ---------------------------------------------------------------------------------------------------------------

_THING_SIZE = {"tree": 0.45, "house": 0.42, "car": 0.2, "lamp": 0.4}


def thing_size(rng: np.random.Generator, kind: str) -> float:
    """Same size law as `sample_scene` (so edited scenes look like sampled ones)."""
    return _THING_SIZE.get(kind, 0.14) * float(rng.uniform(0.85, 1.15))


def fresh_identities(rng: np.random.Generator, split: str, n: int, exclude: set[str] | None = None) -> list[Identity]:
    """``n`` identities of ``split`` with distinct keys and names, none in ``exclude`` (updated in place)."""
    exclude = set() if exclude is None else exclude
    out = []
    for _ in range(n):
        ident = sample_identity(rng, split, exclude=exclude)
        exclude.add(ident.key)
        out.append(ident)
    return out


def replace_object(scene: Scene, index: int, obj: SceneObject | None) -> Scene:
    """A copy of ``scene`` with object ``index`` replaced (or removed when ``obj`` is None)."""
    objs = list(scene.objects)
    if obj is None:
        del objs[index]
    else:
        objs[index] = obj
    return replace(scene, objects=tuple(objs))


def add_object(scene: Scene, obj: SceneObject) -> Scene:
    return replace(scene, objects=(*scene.objects, obj))


def new_thing(rng: np.random.Generator, scene: Scene, kind: str, color: str | None = None) -> Thing:
    """A thing placed away from the scene's objects."""
    taken = [(o.x, o.y) for o in scene.objects]
    x, y = place(rng, taken, y_range=(0.5, 0.85))
    color = color or str(choose(rng, list(COLORS)))
    return Thing(kind, color, x, y, thing_size(rng, kind))


def other_value(rng: np.random.Generator, options, current):
    return choose(rng, [o for o in options if o != current])


def identity_in_split(identity: Identity, split: str) -> bool:
    return identity.split == split


def accessory_text(accessory: str) -> str:
    """'a hat', 'glasses'."""
    noun = ACCESSORY_NOUNS[accessory]
    return noun if noun == "glasses" else with_article(noun)


# ---------------------------------------------------------------------------------------------------------------
# Changes (one object or one scene attribute), each with a true sentence
# ---------------------------------------------------------------------------------------------------------------

CHANGE_TYPES = ("color", "add", "remove", "action", "move", "accessory", "lighting", "context")


def _thing_ref_with_color(thing: Thing, scene: Scene) -> str | None:
    ref = refer(thing, scene)
    if ref is None:
        return None
    if ref == f"the {thing.kind}" or ref.startswith(f"the {thing.kind} "):  # name the colour: it is what changes
        ref = f"the {thing.color} {ref[len('the ') :]}"
    return ref


def _unchanged(scene: Scene, before: Scene, touched: set[int], cls) -> list[int]:
    """Indices of objects of type ``cls`` still as they were in ``before`` (same index) and not yet edited."""
    return [
        i for i, o in enumerate(scene.objects)
        if isinstance(o, cls) and i not in touched and i < len(before.objects) and before.objects[i] == o
    ]  # fmt: skip


def _change_color(rng, scene, before, split, touched):
    added = {o.kind for o in scene.objects[len(before.objects) :] if isinstance(o, Thing)}
    idx = [
        i for i in _unchanged(scene, before, touched, Thing)
        if scene.objects[i].kind not in added and _thing_ref_with_color(scene.objects[i], before) is not None
    ]  # fmt: skip
    if not idx:
        return None
    i = int(choose(rng, idx))
    t = scene.objects[i]
    ref = _thing_ref_with_color(t, before)
    new = other_value(rng, list(COLORS), t.color)
    options = [f"{ref} has turned {new}", f"{ref} is now {new}", f"{ref} has changed from {t.color} to {new}"]
    if ref == f"the {t.color} {t.kind}":
        options.append(f"the {t.kind} that was {t.color} is now {new}")
    change = {"type": "color", "object": t.kind, "before": t.color, "after": new}
    return replace_object(scene, i, replace(t, color=new)), change, sentence(choose(rng, options)), {i}


def _change_add(rng, scene, before, split, touched):
    kind = str(choose(rng, CONTEXT_THINGS[scene.context]))
    t = new_thing(rng, scene, kind)
    desc = describe_thing(t, rng)
    loc = location_phrase(t, rng)
    text = choose(rng, (f"{desc} has appeared {loc}", f"there is now {desc} {loc}", f"{desc} has been added {loc}"))
    change = {"type": "add", "object": kind, "before": None, "after": f"{t.color} {kind}"}
    return add_object(scene, t), change, sentence(text), {len(scene.objects)}


def _change_remove(rng, scene, before, split, touched):
    idx = [i for i in _unchanged(scene, before, touched, Thing) if _thing_ref_with_color(scene.objects[i], before)]
    if not idx or len(scene.objects) < 2:
        return None
    i = int(choose(rng, idx))
    t = scene.objects[i]
    ref = _thing_ref_with_color(t, before)
    text = choose(rng, (f"{ref} has disappeared", f"{ref} is gone", f"{ref} has been removed"))
    change = {"type": "remove", "object": t.kind, "before": f"{t.color} {t.kind}", "after": None}
    # Indices after i shift down, so a removal is always the last object edit (see `apply_random_change`).
    return replace_object(scene, i, None), change, sentence(text), {i}


def _char_candidates(scene, before, touched):
    return [i for i in _unchanged(scene, before, touched, Character) if refer(scene.objects[i], before) is not None]


def _change_action(rng, scene, before, split, touched):
    idx = _char_candidates(scene, before, touched)
    if not idx:
        return None
    i = int(choose(rng, idx))
    c = scene.objects[i]
    ref = refer(c, before)
    new = other_value(rng, ACTIONS, c.pose.action)
    a, b = action_phrase(c.pose.action, rng), action_phrase(new, rng)
    text = choose(rng, (f"{ref} is now {b} instead of {a}", f"{ref} was {a} and is now {b}",
                        f"{ref} has stopped {a} and is now {b}"))  # fmt: skip
    change = {"type": "action", "object": c.identity.key, "before": c.pose.action, "after": new}
    return replace_object(scene, i, replace(c, pose=replace(c.pose, action=new))), change, sentence(text), {i}


def _change_move(rng, scene, before, split, touched):
    idx = _char_candidates(scene, before, touched)
    if not idx:
        return None
    i = int(choose(rng, idx))
    c = scene.objects[i]
    h = location(c)[0]
    if h == "left":
        x = 1.0 - c.x
    elif h == "right":
        x = 1.0 - c.x
    else:
        x = float(rng.uniform(0.12, 0.28)) if rng.random() < 0.5 else float(rng.uniform(0.72, 0.88))
    moved = replace(c, x=x, pose=replace(c.pose, facing="left" if x < c.x else "right"))
    h2 = location(moved)[0]
    assert h2 != h
    ref = refer(c, before)
    text = choose(rng, (f"{ref} has moved from {HORIZONTAL_NOUNS[h]} to {HORIZONTAL_NOUNS[h2]}",
                        f"{ref} is now {location_phrase(moved, rng)} instead of {location_phrase(c, rng)}"
                        if location(moved)[1] == location(c)[1]
                        else f"{ref} has moved from {HORIZONTAL_NOUNS[h]} to {HORIZONTAL_NOUNS[h2]}"))  # fmt: skip
    change = {"type": "move", "object": c.identity.key, "before": h, "after": h2}
    return replace_object(scene, i, moved), change, sentence(text), {i}


def _change_accessory(rng, scene, before, split, touched):
    idx = _char_candidates(scene, before, touched)
    order = [idx[k] for k in rng.permutation(len(idx))]
    for i in order:
        c = scene.objects[i]
        keys = {o.identity.key for o in scene.characters}
        options = [
            a for a in ACCESSORIES
            if a != c.identity.accessory and identity_in_split(replace(c.identity, accessory=a), split)
            and replace(c.identity, accessory=a).key not in keys
        ]  # fmt: skip
        if not options:
            continue
        new = str(choose(rng, options))
        old = c.identity.accessory
        ref = refer(c, before)
        if old == "none":
            new_t = accessory_text(new)
            text = choose(rng, (f"{ref} is now wearing {new_t}", f"{ref} has put on {new_t}"))
        elif new == "none":
            its = ACCESSORY_NOUNS[old]
            text = choose(rng, (f"{ref} has taken off its {its}", f"{ref} no longer has {accessory_text(old)}"))
        else:
            text = choose(
                rng,
                (f"{ref} is now wearing {accessory_text(new)} instead of {accessory_text(old)}",
                 f"{ref} has swapped {accessory_text(old)} for {accessory_text(new)}"),
            )  # fmt: skip
        change = {"type": "accessory", "object": c.identity.key, "before": old, "after": new}
        ident = replace(c.identity, accessory=new)
        return replace_object(scene, i, replace(c, identity=ident)), change, sentence(text), {i}
    return None


def _change_lighting(rng, scene, before, split, touched):
    if scene.lighting != before.lighting or scene.context != before.context:
        return None
    darker = scene.lighting > 0.8 and rng.random() < 0.6
    new = round(scene.lighting * (0.6 if darker else 1.45), 3)
    if darker:
        text = choose(rng, ("the scene has become darker", "the picture is darker now", "the light has dimmed"))
    else:
        text = choose(rng, ("the scene has become brighter", "the picture is brighter now", "the light is brighter"))
    change = {"type": "lighting", "object": "scene", "before": scene.lighting, "after": new}
    return replace(scene, lighting=new), change, sentence(text), set()


def _change_context(rng, scene, before, split, touched):
    if scene.context != before.context or scene.lighting != before.lighting or scene.context == "night":
        return None
    kinds = {t.kind for t in scene.things}
    options = [c for c in CONTEXTS if c not in (scene.context, "night") and kinds <= set(CONTEXT_THINGS[c])]
    if not options:
        return None
    new = str(choose(rng, options))
    a, b = context_phrase(scene.context, rng), context_phrase(new, rng)
    na, nb = with_article(context_noun(scene.context, rng)), with_article(context_noun(new, rng))
    text = choose(rng, (f"the scene is now {b} instead of {a}", f"the setting has changed: it was {a} and is now {b}",
                        f"the background has changed from {na} to {nb}"))  # fmt: skip
    change = {"type": "context", "object": "scene", "before": scene.context, "after": new}
    return replace(scene, context=new), change, sentence(text), set()


_CHANGERS = {
    "color": _change_color, "add": _change_add, "remove": _change_remove, "action": _change_action,
    "move": _change_move, "accessory": _change_accessory, "lighting": _change_lighting, "context": _change_context,
}  # fmt: skip


def apply_random_change(
    rng: np.random.Generator,
    scene: Scene,
    split: str,
    n_changes: int = 1,
    types: tuple[str, ...] = CHANGE_TYPES,
) -> tuple[Scene, list[dict[str, Any]], list[str]]:
    """Apply ``n_changes`` changes, each to a different object (or the scene), to ``scene``.

    Returns the changed scene, the change records (``{"type", "object", "before", "after"}``) and one true sentence
    per change (referring to objects as they are in the original scene). Removing and adding never combine, nor do
    two scene-level changes, so the changes can always be read back from the two graphs.
    """
    before, after = scene, scene
    changes: list[dict[str, Any]] = []
    texts: list[str] = []
    touched: set[int] = set()
    used: set[str] = set()
    for _ in range(n_changes):
        order = [types[k] for k in rng.permutation(len(types))]
        for t in order:
            if t in used or ({t, *used} >= {"add", "remove"}) or ({t, *used} >= {"lighting", "context"}):
                continue
            if "remove" in used and t != "lighting" and t != "context":
                continue  # indices shift after a removal; keep removal last
            res = _CHANGERS[t](rng, after, before, split, touched)
            if res is None:
                continue
            after, change, text, idx = res
            changes.append(change)
            texts.append(text)
            touched |= idx
            used.add(t)
            break
    return after, changes, texts


# ---------------------------------------------------------------------------------------------------------------
# group_caption
# ---------------------------------------------------------------------------------------------------------------

GROUP_INSTRUCTIONS = (
    "What do these images have in common?",
    "Write a caption shared by all the images.",
    "Describe what all of these images share in one sentence.",
    "Give one caption that fits every image.",
    "What is common to all the pictures?",
    "Summarize this group of images in a single sentence.",
)
CONCEPT_TYPES = ("character", "context", "thing", "action")


def _group_character(rng, split, n):
    ident = sample_identity(rng, split)
    exclude = {ident.key}
    contexts = [str(c) for c in rng.choice(CONTEXTS, n, replace=False)]
    scenes = []
    for ctx in contexts:
        distractors = fresh_identities(rng, split, int(rng.integers(0, 2)), exclude)
        scenes.append(sample_scene(rng, [ident, *distractors], ctx))
    actions = [s.objects[0].pose.action for s in scenes]
    desc = describe_identity(ident, rng)
    bare = describe_identity(ident, rng, article_form=False)
    if len(set(actions)) == 1:
        act = action_phrase(actions[0], rng)
        text = choose(rng, (f"{desc} {act} in different places", f"every image shows {desc} {act}, each time in a "
                            f"different setting", f"the same {bare} is {act} in every picture"))  # fmt: skip
    else:
        text = choose(rng, (f"{desc} in different places", f"the same {bare} appears in every image",
                            f"every image shows {desc}, each time in a different setting",
                            f"{desc} doing different things in different places"))  # fmt: skip
    meta = {"concept": ident.key, "concept_type": "character", "shared_action": actions[0] if len(set(actions)) == 1
            else None}  # fmt: skip
    return scenes, sentence(text), meta


def _group_context(rng, split, n):
    ctx = str(choose(rng, CONTEXTS))
    exclude: set[str] = set()
    scenes = [sample_scene(rng, fresh_identities(rng, split, int(rng.integers(1, 3)), exclude), ctx) for _ in range(n)]
    p = context_phrase(ctx, rng)
    text = choose(rng, (f"different characters {p}", f"all the images are taken {p}",
                        f"every picture is set {p}, each with different characters", f"scenes {p}"))  # fmt: skip
    return scenes, sentence(text), {"concept": ctx, "concept_type": "context"}


def _group_thing(rng, split, n):
    kind = str(choose(rng, THINGS))
    fitting = [c for c in CONTEXTS if kind in CONTEXT_THINGS[c]]
    contexts = [str(c) for c in rng.choice(fitting, n, replace=len(fitting) < n)]
    color = str(choose(rng, list(COLORS))) if rng.random() < 0.5 else None
    exclude: set[str] = set()
    scenes = []
    for ctx in contexts:
        chars = fresh_identities(rng, split, int(rng.integers(0, 2)), exclude)
        s = sample_scene(rng, chars, ctx, n_things=int(rng.integers(1, 3)))
        i = len(s.characters)  # first thing
        t = s.objects[i]
        tcolor = color or t.color
        s = replace_object(s, i, Thing(kind, tcolor, t.x, t.y, thing_size(rng, kind)))
        scenes.append(s)
    noun = f"{color} {thing_noun(kind, rng)}" if color else thing_noun(kind, rng)
    a = with_article(noun)
    options = [f"{a} appears in every image", f"each picture contains {a}", f"there is {a} in every picture",
               f"{plural(noun)} in different scenes"]  # fmt: skip
    if len(set(contexts)) == len(contexts):
        options.append(f"{plural(noun)} in different places")
    text = choose(rng, options)
    return scenes, sentence(text), {"concept": f"{color} {kind}" if color else kind, "concept_type": "thing"}


def _group_action(rng, split, n):
    action = str(choose(rng, ACTIONS))
    exclude: set[str] = set()
    scenes = []
    for ident in fresh_identities(rng, split, n, exclude):
        pose = replace(sample_pose(rng), action=action)
        scenes.append(sample_scene(rng, [ident], poses=[pose]))
    act = action_phrase(action, rng)
    acts = action_phrase(action, rng, plural_subject=True)
    text = choose(rng, (f"characters {acts}", f"in every image a character is {act}",
                        f"each picture shows a different character {act}",
                        f"different characters all {acts}"))  # fmt: skip
    return scenes, sentence(text), {"concept": action, "concept_type": "action"}


_GROUP_BUILDERS = {"character": _group_character, "context": _group_context, "thing": _group_thing,
                   "action": _group_action}  # fmt: skip


@TASKS.register("group_caption")
def group_caption(rng: np.random.Generator, split: str) -> WorldSample:
    """3–5 images sharing one concept (a character, a context, a thing or an action); target = one sentence naming
    what they have in common."""
    n = int(rng.integers(3, 6))
    ctype = str(choose(rng, CONCEPT_TYPES))
    scenes, text, meta = _GROUP_BUILDERS[ctype](rng, split, n)
    human = image_prompt(len(scenes), str(choose(rng, GROUP_INSTRUCTIONS)))
    return WorldSample(scenes, conversation(human, text), meta)


# ---------------------------------------------------------------------------------------------------------------
# storytelling
# ---------------------------------------------------------------------------------------------------------------

STORY_INSTRUCTIONS = (
    "Tell a story about {names} from these images.",
    "Write a short story about {names} based on the images, in order.",
    "These pictures show {names}. Tell their story.",
    "Use the images to tell a story featuring {names}.",
)
_FIRST = ("once upon a time,", "one day,", "it all began when")
_MIDDLE = ("then", "later,", "after that,", "next,", "soon", "the next day,")
_LAST = ("finally,", "in the end,", "at last,")


def _subject_sentence(connector, present, actions, phrases, ctx, descs):
    """'One day, Pip, a tall red character, was jumping at the beach while Luna was sitting.'"""

    def who(name):
        return f"{name}, {descs[name]}," if name in descs else name

    if len(present) == 1:
        n = present[0]
        core = f"{who(n)} was {phrases[n]} {ctx}"
    else:
        a, b = present
        if actions[a] == actions[b]:
            core = f"{who(a)} and {who(b)} were both {phrases[a].replace('its arm', 'their arms')} {ctx}"
        else:
            core = f"{who(a)} was {phrases[a]} {ctx} while {who(b)} was {phrases[b]}"
    return sentence(f"{connector} {core}")


@TASKS.register("storytelling")
def storytelling(rng: np.random.Generator, split: str) -> WorldSample:
    """3–5 images of 1–2 named characters in different contexts; target = one or two sentences per image, in
    order."""
    n = int(rng.integers(3, 6))
    n_chars = int(rng.integers(1, 3))
    idents = fresh_identities(rng, split, n_chars)
    names = [i.name for i in idents]
    contexts = [str(c) for c in rng.choice(CONTEXTS, n, replace=False)]
    # Connectors: "once upon a time" … distinct "then"/"later" … "finally" (never the same one twice in a story).
    first_c, last_c = choose(rng, _FIRST), choose(rng, _LAST)
    middles = [_MIDDLE[k] for k in rng.permutation(len(_MIDDLE))]
    last_action: dict[str, str] = {}
    introduced: set[str] = set()
    scenes, per_image, texts = [], [], []
    for k, ctx in enumerate(contexts):
        if n_chars == 2 and k > 0 and rng.random() < 0.25:
            present_idx = [int(rng.integers(2))]
        else:
            present_idx = list(range(n_chars))
        poses = []
        for j in present_idx:
            nm = names[j]
            action = other_value(rng, ACTIONS, last_action[nm]) if nm in last_action else str(choose(rng, ACTIONS))
            last_action[nm] = action
            poses.append(replace(sample_pose(rng), action=action))
        scene = sample_scene(rng, [idents[j] for j in present_idx], ctx, poses=poses)
        scenes.append(scene)
        present = [names[j] for j in present_idx]
        actions = {names[j]: p.action for j, p in zip(present_idx, poses)}
        phrases = {nm: action_phrase(a, rng) for nm, a in actions.items()}
        descs = {names[j]: describe_identity(idents[j], rng) for j in present_idx if names[j] not in introduced}
        introduced |= set(present)
        connector = first_c if k == 0 else last_c if k == n - 1 else middles[k - 1]
        sents = [_subject_sentence(connector, present, actions, phrases, context_phrase(ctx, rng), descs)]
        things = scene.things
        if things:
            tp = things_phrase(things, rng)
            subj = present[0] if len(present) == 1 else choose(rng, (join_list(present), "they"))
            many = len(things) > 1
            sents.append(
                sentence(
                    choose(
                        rng,
                        (f"{subj} {choose(rng, ('saw', 'noticed', 'found'))} {tp} nearby",
                         f"there {'were' if many else 'was'} {tp} {choose(rng, ('nearby', 'close by', 'around'))}"),
                    )  # fmt: skip
                )
            )
        text = " ".join(sents)
        texts.append(text)
        per_image.append(
            {"context": ctx, "characters": present, "actions": actions,
             "things": [t.kind for t in things], "text": text}  # fmt: skip
        )
    instruction = choose(rng, STORY_INSTRUCTIONS).format(names=join_list(names))
    human = image_prompt(n, instruction)
    return WorldSample(scenes, conversation(human, " ".join(texts)), {"characters": names, "per_image": per_image})


# ---------------------------------------------------------------------------------------------------------------
# change_caption
# ---------------------------------------------------------------------------------------------------------------

CHANGE_INSTRUCTIONS = (
    "What has changed between the two images?",
    "Describe the difference between Image 1 and Image 2.",
    "What is different in the second image?",
    "Spot the difference between these two pictures.",
    "Describe what changed from the first image to the second.",
)
NO_CHANGE_TEXTS = ("There is no difference.", "Nothing has changed.", "The two images are the same.")
NO_CHANGE_RATE = 0.08


@TASKS.register("change_caption")
def change_caption(rng: np.random.Generator, split: str) -> WorldSample:
    """Two nearly identical scenes with one or two changes (or, at a small rate, none); target = the change(s)."""
    chars = fresh_identities(rng, split, int(rng.integers(1, 3)))
    before = sample_scene(rng, chars, n_things=int(rng.integers(1, 4)))
    if rng.random() < NO_CHANGE_RATE:
        after, changes, texts = before, [], [str(choose(rng, NO_CHANGE_TEXTS))]
    else:
        n_changes = 1 if rng.random() < 0.7 else 2
        after, changes, texts = apply_random_change(rng, before, split, n_changes)
        if not changes:  # cannot happen in practice (add always applies); keep the sample valid anyway
            texts = [str(choose(rng, NO_CHANGE_TEXTS))]
    human = image_prompt(2, str(choose(rng, CHANGE_INSTRUCTIONS)))
    target = " ".join(texts)
    return WorldSample([before, after], conversation(human, target), {"changes": changes, "answer_parts": texts})


# ---------------------------------------------------------------------------------------------------------------
# caption (single image; alignment data for Stage 1, like InstructBLIP's captioning instructions)
# ---------------------------------------------------------------------------------------------------------------

CAPTION_INSTRUCTIONS = (
    "Describe the image.",
    "What is in this picture?",
    "Write a caption for the image.",
    "Describe this picture in detail.",
    "What does the image show?",
    "Tell me what you see in this image.",
    "Give a description of the scene.",
)
SHORT_CAPTION_INSTRUCTIONS = (
    "Describe the image briefly.",
    "Write a short caption for the image.",
    "Describe this picture in one sentence.",
)
SHORT_CAPTION_RATE = 0.25


@TASKS.register("caption")
def caption_task(rng: np.random.Generator, split: str) -> WorldSample:
    """One image of 0–2 characters and 1–3 things; target = its caption (context, every object with its attributes,
    action and location), or at a quarter of the rate a one-sentence short caption."""
    n_chars = int(rng.integers(0, 3))
    scene = sample_scene(rng, fresh_identities(rng, split, n_chars))
    short = rng.random() < SHORT_CAPTION_RATE
    if short:
        instruction = str(choose(rng, SHORT_CAPTION_INSTRUCTIONS))
        text = short_caption(scene, rng)
    else:
        instruction = str(choose(rng, CAPTION_INSTRUCTIONS))
        text = caption(scene, rng)
    meta = {"style": "short" if short else "full", "context": scene.context,
            "objects": [o.identity.key if isinstance(o, Character) else f"{o.color} {o.kind}" for o in scene.objects]}
    return WorldSample([scene], conversation(image_prompt(1, instruction), text), meta)


__all__ = [
    "CHANGE_TYPES", "apply_random_change", "caption_task", "change_caption", "fresh_identities", "group_caption",
    "new_thing", "replace_object", "storytelling", "thing_size",
]  # fmt: skip

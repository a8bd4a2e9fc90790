"""Scene-graph editing, shared by the task generators (`mmlink.data.tasks`: captioning, closed, pairs, vqa): copies
of a scene with an object replaced, added or removed, fresh identities, things sized like sampled ones, and
`apply_random_change`, which edits one object or one scene-level attribute of a scene graph and says, in words that
are true by construction, what changed."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mmlink.data.world.scene import (
    ACCESSORIES,
    ACTIONS,
    COLORS,
    CONTEXT_THINGS,
    CONTEXTS,
    Character,
    Identity,
    Scene,
    SceneObject,
    Thing,
    location,
    place,
    sample_identity,
)
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    HORIZONTAL_NOUNS,
    action_phrase,
    choose,
    context_noun,
    context_phrase,
    describe_thing,
    location_phrase,
    refer,
    sentence,
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


def _pick_character(rng, scene, before, touched) -> tuple[int, Character, str] | None:
    """One of `_char_candidates` at random: (its index, the character, how ``before`` refers to it); None if none."""
    idx = _char_candidates(scene, before, touched)
    if not idx:
        return None
    i = int(choose(rng, idx))
    return i, scene.objects[i], refer(scene.objects[i], before)


def _change_action(rng, scene, before, split, touched):
    picked = _pick_character(rng, scene, before, touched)
    if picked is None:
        return None
    i, c, ref = picked
    new = other_value(rng, ACTIONS, c.pose.action)
    a, b = action_phrase(c.pose.action, rng), action_phrase(new, rng)
    text = choose(rng, (f"{ref} is now {b} instead of {a}", f"{ref} was {a} and is now {b}",
                        f"{ref} has stopped {a} and is now {b}"))  # fmt: skip
    change = {"type": "action", "object": c.identity.key, "before": c.pose.action, "after": new}
    return replace_object(scene, i, replace(c, pose=replace(c.pose, action=new))), change, sentence(text), {i}


def _change_move(rng, scene, before, split, touched):
    picked = _pick_character(rng, scene, before, touched)
    if picked is None:
        return None
    i, c, ref = picked
    h = location(c)[0]
    if h in ("left", "right"):
        x = 1.0 - c.x
    else:
        x = float(rng.uniform(0.12, 0.28)) if rng.random() < 0.5 else float(rng.uniform(0.72, 0.88))
    moved = replace(c, x=x, pose=replace(c.pose, facing="left" if x < c.x else "right"))
    h2 = location(moved)[0]
    assert h2 != h
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


__all__ = [
    "CHANGE_TYPES", "accessory_text", "add_object", "apply_random_change", "fresh_identities", "identity_in_split",
    "new_thing", "other_value", "replace_object", "thing_size",
]  # fmt: skip

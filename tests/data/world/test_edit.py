"""mmlink.data.world.edit: scene copies with an object replaced, added or removed, fresh identities, and each random
change of `apply_random_change` changing exactly what its record and sentence say — nothing else."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mmlink.data.world import edit
from mmlink.data.world.edit import CHANGE_TYPES, apply_random_change, fresh_identities
from mmlink.data.world.scene import CONTEXT_THINGS, Character, Pose, Scene, Thing, location
from mmlink.data.world.text import ACCESSORY_NOUNS


def _scene(context="park", lighting=1.0) -> Scene:
    a, b = fresh_identities(np.random.default_rng(0), "train", 2)
    return Scene(context, (Character(a, Pose("standing"), 0.2, 0.6, 0.3),
                           Character(b, Pose("waving", facing="left"), 0.8, 0.65, 0.32),
                           Thing("tree", "green", 0.5, 0.55, 0.45), Thing("ball", "red", 0.4, 0.8, 0.14)),
                 lighting, 5)


def _changed(before: Scene, after: Scene) -> list[int]:
    """Indices of the objects that differ (same length scenes)."""
    return [i for i, (a, b) in enumerate(zip(before.objects, after.objects)) if a != b]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", CHANGE_TYPES)
def test_each_change_changes_exactly_what_it_says(kind, seed):
    scene = _scene()
    after, changes, texts = apply_random_change(np.random.default_rng(seed), scene, "train", 1, (kind,))
    (change,), (text,) = changes, texts
    assert change["type"] == kind and text[:1].isupper() and text.endswith(".")
    low = text.lower()
    same_scene = (after.context, after.lighting, after.seed) == (scene.context, scene.lighting, scene.seed)
    if kind == "add":
        assert after.objects[:-1] == scene.objects and same_scene
        new = after.objects[-1]
        assert isinstance(new, Thing) and new.kind in CONTEXT_THINGS["park"]
        assert change["after"] == f"{new.color} {new.kind}" and f"{new.color} {new.kind}" in low
        assert 0.5 <= new.y <= 0.85
    elif kind == "remove":
        assert len(after.objects) == 3 and same_scene
        (gone,) = [o for o in scene.objects if o not in after.objects]
        assert isinstance(gone, Thing) and change["before"] == f"{gone.color} {gone.kind}" and gone.kind in low
        assert [o for o in scene.objects if o != gone] == list(after.objects)  # the order of the rest is kept
    elif kind in ("lighting", "context"):
        assert after.objects == scene.objects and after.seed == scene.seed
        if kind == "lighting":
            assert after.context == scene.context and change["after"] == after.lighting != scene.lighting
            assert ("darker" in low or "dimmed" in low) if after.lighting < scene.lighting else "brighter" in low
        else:
            assert after.lighting == scene.lighting and change["after"] == after.context != "night"
            assert {"tree", "ball"} <= set(CONTEXT_THINGS[after.context])  # the things still fit the setting
    else:
        assert same_scene
        (i,) = _changed(scene, after)
        old, new = scene.objects[i], after.objects[i]
        if kind == "color":
            assert replace(old, color=new.color) == new and (change["before"], change["after"]) == (old.color,
                                                                                                       new.color)
            assert new.color in low and old.kind in low
        else:
            assert isinstance(new, Character) and change["object"] == old.identity.key
        if kind == "action":
            assert replace(old, pose=replace(old.pose, action=new.pose.action)) == new
            assert (change["before"], change["after"]) == (old.pose.action, new.pose.action)
        if kind == "move":
            assert (new.identity, new.y, new.size, new.pose.action) == (old.identity, old.y, old.size, old.pose.action)
            assert (change["before"], change["after"]) == (location(old)[0], location(new)[0])
            assert change["before"] != change["after"] and new.pose.facing == ("left" if new.x < old.x else "right")
        if kind == "accessory":
            assert replace(old, identity=replace(old.identity, accessory=new.identity.accessory)) == new
            assert new.identity.split == "train" and new.identity.key not in {c.identity.key for c in
                                                                              scene.characters}
            for acc in (change["before"], change["after"]):
                assert acc == "none" or ACCESSORY_NOUNS[acc] in low


def test_two_changes_never_mix_add_and_remove_or_the_two_scene_changes():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        _, changes, texts = apply_random_change(rng, _scene(), "train", 2, ("add", "remove"))
        assert len(changes) == len(texts) == 1
        _, changes, _ = apply_random_change(rng, _scene(), "train", 2, ("lighting", "context"))
        assert len(changes) == 1
        after, changes, _ = apply_random_change(rng, _scene(), "train", 2, ("color", "action"))
        assert sorted(c["type"] for c in changes) == ["action", "color"] and len(_changed(_scene(), after)) == 2


def test_a_change_that_cannot_apply_is_skipped():
    night = _scene("night", 0.55)
    after, changes, texts = apply_random_change(np.random.default_rng(0), night, "train", 1, ("context",))
    assert after == night and changes == texts == []  # a night scene keeps its context
    things_only = Scene("park", (Thing("ball", "red", 0.5, 0.7, 0.1),))
    assert apply_random_change(np.random.default_rng(0), things_only, "train", 1, ("action", "remove"))[1] == []


def test_scene_copies_leave_the_original_alone():
    scene = _scene()
    ball = Thing("ball", "blue", 0.1, 0.9, 0.1)
    swapped = edit.replace_object(scene, 3, ball)
    assert swapped.objects[3] == ball and swapped.objects[:3] == scene.objects[:3]
    assert edit.replace_object(scene, 0, None).objects == scene.objects[1:]
    assert edit.add_object(scene, ball).objects == (*scene.objects, ball)
    assert scene == _scene() and scene.objects[3].color == "red"


def test_fresh_identities_are_distinct_in_split_and_update_exclude():
    exclude = {"round/red/plain/none/none"}
    idents = fresh_identities(np.random.default_rng(1), "val", 5, exclude)
    assert len({i.key for i in idents}) == len({i.name for i in idents}) == 5
    assert all(i.split == "val" for i in idents) and "round/red/plain/none/none" not in {i.key for i in idents}
    assert exclude == {"round/red/plain/none/none", *(i.key for i in idents)}
    assert edit.identity_in_split(idents[0], "val") and not edit.identity_in_split(idents[0], "train")


def test_thing_sizes_new_things_and_other_values():
    sizes = [edit.thing_size(np.random.default_rng(s), "tree") for s in range(50)]
    assert 0.45 * 0.85 <= min(sizes) and max(sizes) <= 0.45 * 1.15
    assert 0.14 * 0.85 <= edit.thing_size(np.random.default_rng(0), "ball") <= 0.14 * 1.15  # the default size
    thing = edit.new_thing(np.random.default_rng(2), _scene(), "rock", color="gray")
    assert (thing.kind, thing.color) == ("rock", "gray") and 0.5 <= thing.y <= 0.85 and 0.12 <= thing.x <= 0.88
    assert all(edit.other_value(np.random.default_rng(s), ("a", "b", "c"), "b") != "b" for s in range(20))
    with pytest.raises(ValueError, match="nothing to choose from"):
        edit.other_value(np.random.default_rng(0), ("a",), "a")


def test_accessory_text():
    assert [edit.accessory_text(a) for a in ("hat", "glasses", "backpack")] == ["a hat", "glasses", "a backpack"]
    with pytest.raises(KeyError):
        edit.accessory_text("none")

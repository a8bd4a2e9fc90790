"""Tests for mmlink.data.world.render: sizes, determinism, masks, identity/pose visibility, contexts, things."""

import hashlib
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from mmlink.data.world import backgrounds
from mmlink.data.world import render as render_module
from mmlink.data.world.render import render, render_background, render_object, render_with_masks
from mmlink.data.world.scene import (
    ACCESSORIES,
    ACTIONS,
    BODIES,
    COLORS,
    CONTEXTS,
    PATTERNS,
    THINGS,
    Character,
    Identity,
    Pose,
    Scene,
    Thing,
    rng_for,
    sample_identity,
    sample_scene,
)  # fmt: skip

BASE = Identity("round", "blue", "striped", "yellow", "hat")


def _char(identity=BASE, action="standing", rotation=0.0, facing="right", x=0.5, y=0.6, size=0.4):
    return Character(identity, Pose(action, rotation, facing), x, y, size)


def _sampled_scene(index, context=None):
    rng = rng_for("train", 0, index)
    idents = []
    for _ in range(int(rng.integers(2, 4))):
        idents.append(sample_identity(rng, "train", {i.key for i in idents}))
    return sample_scene(rng, idents, context=context)


def _scene(*objects, context="park", lighting=1.0, seed=3):
    return Scene(context, tuple(objects), lighting, seed)


def _px(img):
    return np.asarray(img).astype(np.int16)


# ------------------------------------------------------------------------------------------------ shapes, modes


@pytest.mark.parametrize("size", [64, 224, 333])
def test_output_modes_and_sizes(size):
    scene = _sampled_scene(0)
    img = render(scene, size)
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (size, size)
    img2, masks = render_with_masks(scene, size)
    assert img2.mode == "RGB" and img2.size == (size, size)
    assert len(masks) == len(scene.objects)
    for mask in masks:
        assert mask.dtype == bool and mask.shape == (size, size)
    bg = render_background(scene.context, size, seed=1)
    assert bg.mode == "RGB" and bg.size == (size, size)
    sprite = render_object(scene.objects[0], size)
    assert sprite.mode == "RGBA" and sprite.size == (size, size)


def test_default_size_is_224():
    assert render(_sampled_scene(1)).size == (224, 224)


def test_render_and_render_with_masks_draw_the_same_image():
    scene = _sampled_scene(2)
    assert render(scene).tobytes() == render_with_masks(scene)[0].tobytes()


# ------------------------------------------------------------------------------------------------ determinism


def test_deterministic_including_a_cold_cache():
    scenes = [_sampled_scene(i) for i in range(4)]
    first = [render(s, 160).tobytes() for s in scenes]
    # Cached sprites and a fresh drawing must give the same bytes.
    for fn in (render_module._character_sprite, render_module._thing_sprite, backgrounds._scenery,
               render_module._pattern_field, backgrounds._cloud):  # fmt: skip
        fn.cache_clear()
    assert [render(s, 160).tobytes() for s in scenes] == first
    assert render_background("night", 96, seed=5).tobytes() == render_background("night", 96, seed=5).tobytes()


def test_deterministic_across_processes():
    """No salted hash or process state leaks into the pixels: another interpreter draws the same bytes."""
    code = (
        "import hashlib, sys; sys.path.insert(0, sys.argv[1]); from test_render import _sampled_scene; "
        "from mmlink.data.world.render import render; "
        "print(hashlib.sha256(b''.join(render(_sampled_scene(i), 96).tobytes() for i in range(3))).hexdigest())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", code, here], env=env, capture_output=True, text=True, check=True)
    expected = hashlib.sha256(b"".join(render(_sampled_scene(i), 96).tobytes() for i in range(3))).hexdigest()
    assert out.stdout.strip() == expected


def test_seed_moves_only_texture():
    a, b = _px(render_background("night", 128, seed=1)), _px(render_background("night", 128, seed=2))
    assert not np.array_equal(a, b)
    # The scenery (sky, moon, ground) is the same: most pixels agree.
    assert (np.abs(a - b).max(axis=2) == 0).mean() > 0.9


# ------------------------------------------------------------------------------------------------ masks


def test_masks_are_disjoint_and_nonempty_for_visible_objects():
    left = _char(Identity("tall", "red", "plain", "none", "none"), x=0.2, y=0.65)
    right = _char(Identity("square", "green", "dotted", "white", "scarf"), "waving", 8, "left", x=0.78, y=0.6)
    ball = Thing("ball", "orange", 0.5, 0.8, 0.12)
    middle = _char(Identity("triangle", "purple", "checkered", "yellow", "bow"), "jumping", x=0.45, y=0.62)
    for scene in [_scene(left, right, ball, middle), *(_sampled_scene(i) for i in range(6))]:
        _, masks = render_with_masks(scene, 224)
        stacked = np.stack(masks).astype(np.int32)
        assert stacked.sum(axis=0).max() <= 1, "a pixel belongs to at most one object"
    _, masks = render_with_masks(_scene(left, right, ball, middle), 224)
    assert all(m.sum() > 50 for m in masks)


def test_fully_covered_object_has_empty_mask():
    ball = Thing("ball", "red", 0.5, 0.65, 0.08)
    box = Thing("box", "brown", 0.5, 0.7, 0.5)  # nearer (larger y), drawn later, covers the ball
    _, masks = render_with_masks(_scene(ball, box), 224)
    assert masks[0].sum() == 0
    assert masks[1].sum() > 1000
    # Same result whatever the order of the objects in the scene: depth decides, not list order.
    _, masks = render_with_masks(_scene(box, ball), 224)
    assert masks[1].sum() == 0 and masks[0].sum() > 1000


def test_partly_covered_object_loses_the_covered_part():
    back = _char(x=0.45, y=0.55)
    front = _char(Identity("square", "red", "plain", "none", "none"), x=0.6, y=0.7)
    _, masks = render_with_masks(_scene(back, front), 224)
    alone = np.asarray(render_object(back, 224))[:, :, 3] > 0
    assert 0 < masks[0].sum() < alone.sum()
    assert not (masks[0] & masks[1]).any()
    assert np.array_equal(masks[0] | (alone & masks[1]), alone)


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("color", ["red", "blue", "yellow", "white", "black"])
def test_body_colour_dominates_its_mask(body, color):
    char = _char(Identity(body, color, "plain", "none", "none"), size=0.4)
    img, (mask,) = render_with_masks(_scene(char, context="city"), 224)
    pixels = _px(img)[mask]
    near = np.abs(pixels - np.array(COLORS[color])).max(axis=1) <= 12
    assert near.mean() > 0.5, f"only {near.mean():.2f} of the mask is {color}"
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert np.abs(colours[counts.argmax()] - np.array(COLORS[color])).max() <= 12, "the body colour is dominant"
    # With a pattern and an accessory, the body colour is still clearly present.
    char = _char(Identity(body, color, "dotted", "green" if color != "green" else "red", "hat"), size=0.4)
    img, (mask,) = render_with_masks(_scene(char, context="city"), 224)
    near = np.abs(_px(img)[mask] - np.array(COLORS[color])).max(axis=1) <= 12
    assert near.mean() > 0.25


# ------------------------------------------------------------------------------------------------ render_object


@pytest.mark.parametrize(
    "obj",
    [
        _char(),
        _char(Identity("triangle", "pink", "checkered", "black", "backpack"), "sitting", -12, "left", 0.3, 0.7, 0.3),
        _char(Identity("tall", "gray", "plain", "none", "glasses"), "jumping", 14, x=0.97, y=0.9),  # partly outside
        Thing("car", "blue", 0.4, 0.75, 0.2),
        Thing("tree", "green", 0.7, 0.55, 0.45),
    ],
)
def test_render_object_alpha_matches_single_object_mask(obj):
    sprite = render_object(obj, 224)
    assert sprite.mode == "RGBA"
    alpha = np.asarray(sprite)[:, :, 3]
    _, (mask,) = render_with_masks(_scene(obj), 224)
    assert mask.any()
    assert np.array_equal(alpha > 0, mask)


def test_render_object_colours_match_the_scene_where_opaque():
    obj = _char(Identity("square", "orange", "striped", "blue", "scarf"), "waving", 0, "left")
    sprite = np.asarray(render_object(obj, 224)).astype(np.int16)
    img = _px(render(_scene(obj, lighting=1.0), 224))
    opaque = sprite[:, :, 3] == 255
    assert opaque.sum() > 1000
    assert np.abs(sprite[:, :, :3][opaque] - img[opaque]).max() <= 1


# ------------------------------------------------------------------------------------------------ identity & pose


def _sprite_array(obj, size=224):
    return np.asarray(render_object(obj, size))


@pytest.mark.parametrize("size", [224, 80])
def test_different_identities_give_different_sprites(size):
    base = _sprite_array(_char(BASE), size)
    # One attribute changed at a time.
    variants = [replace(BASE, body=b) for b in BODIES if b != BASE.body]
    variants += [replace(BASE, color="green"), replace(BASE, pattern_color="white")]
    variants += [replace(BASE, pattern=p) for p in PATTERNS if p != BASE.pattern]
    variants += [replace(BASE, accessory=a) for a in ACCESSORIES if a != BASE.accessory]
    sprites = [base] + [_sprite_array(_char(v), size) for v in variants]
    for i in range(len(sprites)):
        for j in range(i + 1, len(sprites)):
            diff = np.abs(sprites[i].astype(np.int16) - sprites[j].astype(np.int16)).max(axis=2)
            assert (diff > 40).sum() > 10, f"identities {i} and {j} look the same"


def test_different_poses_differ():
    sprites = {a: _sprite_array(_char(action=a)) for a in ACTIONS}
    sprites["left"] = _sprite_array(_char(facing="left"))
    sprites["rotated"] = _sprite_array(_char(rotation=12.0))
    keys = list(sprites)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            diff = np.abs(sprites[a].astype(np.int16) - sprites[b].astype(np.int16)).max(axis=2)
            assert (diff > 40).sum() > 50, f"{a} and {b} look the same"
    # Jumping lifts the character: its lowest pixel is higher than when standing; sitting lowers its top.
    rows = {a: np.nonzero((sprites[a][:, :, 3] > 0).any(axis=1))[0] for a in ACTIONS}
    assert rows["jumping"].max() < rows["standing"].max() - 5
    assert rows["sitting"].min() > rows["standing"].min() + 5
    # Waving raises a hand above the standing outline on the facing side.
    assert rows["waving"].min() <= rows["standing"].min()


def test_facing_mirrors_the_sprite():
    right = _sprite_array(_char(x=0.5))
    left = _sprite_array(_char(facing="left", x=0.5))
    a_r, a_l = right[:, :, 3] > 0, left[:, :, 3] > 0
    # Mirrored about the character's centre, up to a pixel of rounding.
    overlap = (a_r & a_l[:, ::-1]).sum() / a_r.sum()
    shifted = max((a_r & np.roll(a_l[:, ::-1], s, axis=1)).sum() / a_r.sum() for s in (-1, 0, 1))
    assert max(overlap, shifted) > 0.95


def test_size_scales_the_character():
    small = (_sprite_array(_char(size=0.2))[:, :, 3] > 0).sum()
    large = (_sprite_array(_char(size=0.4))[:, :, 3] > 0).sum()
    assert 3.0 < large / small < 5.0


# ------------------------------------------------------------------------------------------------ contexts, things


@pytest.mark.parametrize("context", CONTEXTS)
def test_every_context_renders(context):
    bg = _px(render_background(context, 128, seed=4))
    assert bg.std() > 5, "a background has some structure"
    scene = _sampled_scene(7, context=context)
    img, masks = render_with_masks(scene, 128)
    assert img.size == (128, 128) and len(masks) == len(scene.objects)


def test_contexts_look_different():
    means = {c: _px(render_background(c, 64)).reshape(-1, 3).mean(axis=0) for c in CONTEXTS}
    for i, a in enumerate(CONTEXTS):
        for b in CONTEXTS[i + 1 :]:
            assert np.abs(means[a] - means[b]).max() > 10, f"{a} and {b} have the same average colour"


def test_night_is_darker_than_beach():
    assert _px(render_background("night", 128)).mean() < 0.5 * _px(render_background("beach", 128)).mean()
    chars = (_char(x=0.3), _char(Identity("square", "white", "plain", "none", "none"), x=0.7))
    night = _px(render(Scene("night", chars, 0.55, 1), 128)).mean()
    beach = _px(render(Scene("beach", chars, 1.0, 1), 128)).mean()
    assert night < beach


def test_lighting_scales_brightness():
    full = _px(render_background("park", 96, lighting=1.0)).mean()
    half = _px(render_background("park", 96, lighting=0.5)).mean()
    assert half == pytest.approx(full / 2, rel=0.03)


@pytest.mark.parametrize("kind", THINGS)
def test_every_thing_kind_renders(kind):
    size = 0.2 if kind == "car" else 0.4
    sprite = np.asarray(render_object(Thing(kind, "purple", 0.5, 0.6, size), 128))
    opaque = sprite[:, :, 3] > 0
    assert opaque.sum() > 100
    rows = np.nonzero(opaque.any(axis=1))[0]
    assert rows.max() - rows.min() + 1 == pytest.approx(size * 128, abs=0.12 * size * 128 + 2)
    # The thing's colour shows (a purple car, tree, ...).
    near = np.abs(sprite[:, :, :3][opaque].astype(np.int16) - np.array(COLORS["purple"])).max(axis=1) <= 12
    assert near.mean() > 0.15


def test_thing_kinds_look_different():
    sprites = {k: np.asarray(render_object(Thing(k, "red", 0.5, 0.6, 0.35), 96))[:, :, 3] > 0 for k in THINGS}
    for i, a in enumerate(THINGS):
        for b in THINGS[i + 1 :]:
            assert (sprites[a] ^ sprites[b]).sum() > 100, f"{a} and {b} have the same silhouette"


def test_invalid_inputs_raise():
    with pytest.raises(ValueError):
        render_background("moon", 64)
    with pytest.raises(ValueError):
        render_object(Thing("spaceship", "red", 0.5, 0.5, 0.2), 64)
    with pytest.raises(ValueError):
        render_object(_char(Identity("round", "teal", "plain", "none", "none")), 64)
    with pytest.raises(ValueError):
        render(_scene(), 0)

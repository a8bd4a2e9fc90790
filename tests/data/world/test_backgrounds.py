"""mmlink.data.world.backgrounds: per context a sky and ground gradient with scenery (drawn once per size and cached)
and a seed's texture on top — deterministic per seed, confined to the rows each texture belongs to."""

from __future__ import annotations

import numpy as np
import pytest

from mmlink.data.world import backgrounds as bg
from mmlink.data.world.scene import CONTEXTS


def _arr(img) -> np.ndarray:
    return np.asarray(img).astype(np.int16)


@pytest.mark.parametrize("context", CONTEXTS)
def test_same_seed_same_pixels_other_seed_other_texture(context):
    a = bg._background(context, 64, seed=3)
    assert a.mode == "RGB" and a.size == (64, 64)
    assert a.tobytes() == bg._background(context, 64, seed=3).tobytes()
    assert a.tobytes() != bg._background(context, 64, seed=4).tobytes()


def test_unknown_context_names_it_and_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown context 'moon'; expected one of \('beach', 'forest'"):
        bg._background("moon", 32, 0)


def test_the_cached_scenery_is_never_changed():
    before = bg._scenery("beach", 48).tobytes()
    for seed in range(3):
        bg._background("beach", 48, seed)
    assert bg._scenery("beach", 48).tobytes() == before
    assert bg._scenery("beach", 48) is bg._scenery("beach", 48)  # cached per (context, size)


def test_sky_and_ground_colours_of_the_scenery():
    size = 96
    indoor = _arr(bg._scenery("indoor", size))
    sky_top, _, _, ground_bottom, _ = bg._SKY_GROUND["indoor"]
    assert np.abs(indoor[0, 2] - sky_top).max() <= 2  # left of the window: the wall's top colour
    assert np.abs(indoor[-1, 2] - ground_bottom).max() <= 8  # the floor's bottom colour (boards are darker lines)
    park = _arr(bg._scenery("park", size))
    sky_top, _, _, ground_bottom, _ = bg._SKY_GROUND["park"]
    assert np.abs(park[0, size // 2] - sky_top).max() <= 2 and np.abs(park[-1, 2] - ground_bottom).max() <= 2
    assert {bg._scenery(c, size).size for c in CONTEXTS} == {(size, size)}


@pytest.mark.parametrize("context, textured_sky", [("forest", False), ("indoor", False), ("night", True),
                                                   ("beach", True)])
def test_texture_stays_in_its_rows(context, textured_sky):
    size = 160
    hz = round(bg._SKY_GROUND[context][4] * size)
    textured = _arr(bg._background(context, size, 11)) != _arr(bg._scenery(context, size))
    changed = np.nonzero(textured.any(axis=(1, 2)))[0]  # the rows the seed's texture touched
    assert changed.size and changed.max() < size
    assert (changed.min() < hz) == textured_sky  # stars, falling snow and clouds texture the sky; others do not
    if context == "night":  # stars end above the hills: rows just above the horizon stay as drawn
        assert not np.isin(np.arange(hz - size // 20, hz), changed).any()


def test_specks_blend_dots_into_the_given_rows_only():
    arr = np.full((40, 30, 3), 100, np.uint8)
    bg._specks(arr, np.random.default_rng(0), 50, 10, 20, (200, 0, 0), 0.5, 1)
    rows = np.nonzero((arr != 100).any(axis=(1, 2)))[0]
    assert rows.min() >= 10 and rows.max() < 20
    hit = arr[(arr != 100).any(axis=2)]
    assert (hit == (150, 50, 50)).all()  # 100 * (1 - 0.5) + 200 * 0.5, 100 * 0.5 + 0
    big = np.zeros((40, 30, 3), np.uint8)
    bg._specks(big, np.random.default_rng(0), 1, 5, 6, (255, 255, 255), 1.0, 3)
    ys, xs = np.nonzero(big.any(axis=2))
    assert ys.min() == 5 and ys.max() == 7 and xs.max() - xs.min() <= 2 and len(ys) <= 9  # one 3 x 3 dot
    untouched = np.zeros((4, 4, 3), np.uint8)
    bg._specks(untouched, np.random.default_rng(0), 10, 3, 3, (255, 255, 255), 1.0, 1)  # an empty row range
    bg._specks(untouched, np.random.default_rng(0), 0, 0, 4, (255, 255, 255), 1.0, 1)  # no specks
    assert not untouched.any()


def test_vertical_gradient_runs_from_top_to_bottom_colour():
    grad = bg._vgradient(5, 11, (0, 100, 200), (100, 100, 0))
    assert grad.shape == (11, 5, 3) and grad.dtype == np.uint8
    assert (grad[0] == (0, 100, 200)).all() and (grad[-1] == (100, 100, 0)).all()
    assert (grad[5] == (50, 100, 100)).all() and (grad[:, 0] == grad[:, 4]).all()
    assert bg._vgradient(3, 1, (1, 2, 3), (9, 9, 9)).tolist() == [[[1, 2, 3]] * 3]


def test_cloud_sprite_size_and_transparency():
    cloud = bg._cloud(200)
    assert cloud.mode == "RGBA" and cloud.size == (56, 20)
    alpha = np.asarray(cloud)[..., 3]
    assert alpha.max() >= 200 and alpha[0, 0] == 0  # opaque puffs, transparent corners
    assert bg._cloud(10).size == (4, 2)  # never smaller than 4 x 2

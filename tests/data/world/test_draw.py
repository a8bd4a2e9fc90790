"""mmlink.data.world.draw: colour helpers (shade, mix, outline, contrast, names), the pen in sprite units, and the
supersampled canvas cropped and downsampled to a sprite."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmlink.data.world import draw
from mmlink.data.world.scene import COLORS


def test_shade_and_mix_clip_and_round():
    assert draw._shade((100, 200, 10), 0.5) == (50, 100, 5)
    assert draw._shade((100, 200, 10), 2.0) == (200, 255, 20)  # clipped to 255
    assert draw._shade((1, 2, 3), -1.0) == (0, 0, 0)
    assert draw._mix((0, 100, 200), (100, 100, 0), 0.25) == (25, 100, 150)
    assert draw._mix((0, 0, 0), (255, 255, 255), 0.0) == (0, 0, 0)
    assert draw._rgba((1, 2, 3)) == (1, 2, 3, 255)


def test_outline_colour_darkens_or_greys_out():
    assert draw._luma((255, 255, 255)) == pytest.approx(255.0)
    assert draw._edge(COLORS["yellow"]) == draw._shade(COLORS["yellow"], 0.55)
    assert draw._edge(COLORS["black"]) == (110, 110, 118)  # too dark to darken visibly: a mid grey


def test_contrasting_swaps_a_colour_too_close_to_the_body():
    red, pink, white = COLORS["red"], COLORS["pink"], COLORS["white"]
    assert draw._contrasting(red, white, (200, 50, 50)) == white  # |Δ| = 30 < 150: the accessory would vanish
    assert draw._contrasting(red, white, COLORS["blue"]) == red
    assert draw._contrasting(pink, white, red) == pink  # |Δ| = 30 + 80 + 130 >= 150


def test_colour_names():
    assert draw._color("blue") == COLORS["blue"]
    with pytest.raises(ValueError, match="unknown colour 'teal'; expected one of"):
        draw._color("teal")


def test_pen_maps_sprite_units_to_pixels():
    img = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    pen = draw._Pen(img, 50, 40, 20)
    assert pen.pt(0, 0) == (50, 40) and pen.pt(1, -0.5) == (70, 30)
    assert pen.box(-1, -1, 1, 1) == [30, 20, 70, 60]
    assert pen.w(0.01) == 1 and pen.w(0.26) == 5  # at least one pixel
    pen.rect(-1, -1, 1, 1, fill=(255, 0, 0, 255))
    alpha = np.asarray(img)[..., 3] > 0
    ys, xs = np.nonzero(alpha)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (30, 70, 20, 60)
    pen.circle(-2, 1.5, 0.25, fill=(0, 255, 0, 255))  # centre (10, 70), radius 5
    assert img.getpixel((10, 70)) == (0, 255, 0, 255) and img.getpixel((10, 77))[3] == 0


def test_supersampling_factor_and_canvas_grid():
    assert draw._supersampled(200) == draw.SUPERSAMPLE
    assert draw._supersampled(10) == 7  # small sprites are drawn at least 64 px tall
    canvas = draw._new_canvas(33.2, 10, 4)
    assert canvas.mode == "RGBa" and canvas.size == (36, 12) and canvas.getbbox() is None


def test_finish_sprite_crops_to_the_ink_and_downsamples_exactly():
    ss = 2
    canvas = draw._new_canvas(80, 80, ss)
    pen = draw._Pen(canvas, 0, 0, 1)
    pen.rect(9, 13, 60, 67, fill=(10, 20, 200, 255))  # ink from x 9 to 60, y 13 to 67 (inclusive)
    sprite, (cx, cy) = draw._finish_sprite(canvas, ss, (20.0, 20.0))
    assert sprite.size == ((62 - 8) // ss, (68 - 12) // ss)  # the crop snapped out to the 2-pixel grid
    assert (cx, cy) == ((20 - 8) / ss, (20 - 12) / ss)  # the centre moves with the crop
    rgba = np.asarray(sprite.convert("RGBA"))
    assert (rgba[5:-5, 5:-5] == (10, 20, 200, 255)).all()  # solid inside; only the edges are antialiased
    assert 0 < rgba[0, 0, 3] < 255  # the half-covered corner pixel
    empty, centre = draw._finish_sprite(draw._new_canvas(8, 8, ss), ss, (4.0, 4.0))
    assert empty.size == (1, 1) and centre == (2.0, 2.0)

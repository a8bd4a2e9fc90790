"""Fixtures shared by the tests of mmlink.data.mmlink_synth. Each hands a test a plain helper function (nothing
mutable is shared between tests)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from mmlink.data.mmlink_synth import AlphaSegmenter, compose, cut_out
from mmlink.data.world.scene import COLORS


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _color_fraction(img: Image.Image, box, color: str, tol: float = 40.0) -> float:
    x0, y0, x1, y1 = box
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)[y0:y1, x0:x1].reshape(-1, 3)
    return float((np.linalg.norm(arr - np.array(COLORS[color], np.float32), axis=1) < tol).mean())


def _hidden_plan(synth, seed=7, how="occluded"):
    """A plan whose second image has the main object mostly hidden (or cropped by the canvas edge)."""
    plan = synth.plan(rng(seed), "train")
    main_view = plan.main.views[1]
    seg = AlphaSegmenter()
    main_cut = cut_out(plan.main, main_view, seg.segment(main_view.image), "main")
    other = plan.distractors[1][0]
    other_cut = cut_out(other, other.views[0], seg.segment(other.views[0].image), "distractor")
    if how == "occluded":
        boxes = [(180, 240, 300, 450), (120, 200, 360, 500)]  # the distractor, pasted last, covers the main object
    elif how == "cropped":
        boxes = [(-130, 260, 20, 460), (260, 240, 400, 470)]  # most of the main object lies left of the canvas
    else:  # clean: side by side
        boxes = [(40, 240, 200, 460), (300, 250, 440, 470)]
    plan.compositions[1] = compose([main_cut, other_cut], boxes, synth.canvas)
    return plan


def _photo(seed=0, size=(240, 200), axes=None, color=(200, 40, 40)):
    """A photo-like image and its true object mask: a blob-shaped, shaded, noisy object near the centre of a
    background of smooth colour patches and stripes, everything slightly blurred (soft edges)."""
    r = rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    patches = Image.fromarray(r.integers(60, 200, (5, 6, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
    bg = np.asarray(patches, np.float64) + 18 * np.sin(xx / 4.0 + r.uniform(0, 6))[..., None]
    bg = bg + r.normal(0, 12, (h, w, 3))
    cx, cy = w / 2 + r.uniform(-12, 12), h / 2 + r.uniform(-10, 10)
    ax, ay = axes or (w * r.uniform(0.18, 0.28), h * r.uniform(0.25, 0.35))
    angle = r.uniform(0, np.pi)
    u = ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)) / ax
    v = (-(xx - cx) * np.sin(angle) + (yy - cy) * np.cos(angle)) / ay
    truth = u**2 + v**2 <= (1 + 0.12 * np.sin(3 * np.arctan2(v, u) + r.uniform(0, 6))) ** 2
    shade = np.clip(0.65 + 0.45 * (xx - cx + ax) / (2 * ax), 0.5, 1.15)  # lit from the right
    obj = np.array(color, np.float64) * shade[..., None] + r.normal(0, 10, (h, w, 3))
    img = Image.fromarray(np.clip(np.where(truth[..., None], obj, bg), 0, 255).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(1.5)), truth


@pytest.fixture(scope="session")
def color_fraction():
    """``color_fraction(img, box, color, tol=40)``: the fraction of the pixels in ``box`` within ``tol`` of a world
    colour."""
    return _color_fraction


@pytest.fixture(scope="session")
def hidden_plan():
    """``hidden_plan(synth, seed=7, how=...)``: a plan whose second image hides the main object behind a distractor
    (``occluded``), mostly outside the canvas (``cropped``) or shows it whole (``clean``)."""
    return _hidden_plan


@pytest.fixture(scope="session")
def photo():
    """``photo(seed, size, axes, color) -> (image, true mask)``: a photo-like image of one blob-shaped object."""
    return _photo

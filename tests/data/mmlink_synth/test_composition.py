"""mmlink.data.mmlink_synth.composition: cut-outs cropped to their mask, pasted in order onto a transparent canvas
(later ones cover earlier ones, the canvas edge crops), and the layout of the boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmlink.data.mmlink_synth import Cutout, ObjectGroup, View, compose, cut_out, layout
from mmlink.data.mmlink_synth.composition import _overlap
from mmlink.data.world.scene import Pose


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _cut(color, size=(10, 10), role="distractor", label="x", pose=None) -> Cutout:
    """A solid square cut-out of ``size`` (w, h)."""
    w, h = size
    view = View(Image.new("RGB", (w, h), color), pose, f"/{label}.png")
    return Cutout(ObjectGroup(label, [view]), view, np.full((h, w, 3), color, np.uint8), np.ones((h, w), bool), role)


def test_cut_out_crops_to_the_mask_bounding_box():
    img = Image.new("RGBA", (20, 12), (0, 0, 0, 0))
    arr = np.asarray(img).copy()
    arr[3:7, 5:11] = (200, 10, 10, 255)
    view = View(Image.fromarray(arr, "RGBA"), Pose("waving"))
    mask = arr[..., 3] > 0
    mask[3, 5] = False  # a hole in the corner stays a hole
    group = ObjectGroup("g", [view])
    cut = cut_out(group, view, mask, "main")
    assert cut.rgb.shape == (4, 6, 3) and cut.mask.shape == (4, 6)
    assert (cut.rgb == (200, 10, 10)).all() and cut.mask.sum() == 23 and not cut.mask[0, 0]
    assert cut.role == "main" and cut.group is group and cut.view is view
    mask[4, 6] = False
    assert cut.mask[1, 1], "the cut-out owns a copy of the mask"


def test_compose_pastes_in_order_and_records_boxes_masks_and_areas():
    red, blue = _cut((200, 0, 0), role="main", label="red", pose=Pose("jumping")), _cut((0, 0, 200), label="blue")
    comp = compose([red, blue], [(10, 10, 30, 30), (20, 20, 40, 40)], canvas=64)
    assert comp.rgba.shape == (64, 64, 4) and comp.size == 64
    assert (comp.rgba[25, 25] == (0, 0, 200, 255)).all()  # the later one covers the overlap
    assert (comp.rgba[12, 12] == (200, 0, 0, 255)).all() and (comp.rgba[0, 0] == 0).all()
    main, other = comp.objects
    assert comp.main is main and main.role == "main" and main.pose == Pose("jumping") and main.source == "/red.png"
    assert main.box == (10, 10, 30, 30) and other.box == (20, 20, 40, 40)
    assert main.full_area == other.full_area == 400
    assert main.mask.sum() == 400 - 100 and other.mask.sum() == 400  # a quarter of the main square is hidden
    assert main.visible_fraction == pytest.approx(0.75) and other.visible_fraction == 1.0
    assert (comp.mask == (main.mask | other.mask)).all() and not (main.mask & other.mask).any()
    img = comp.image()
    assert img.mode == "RGBA" and img.size == (64, 64) and img.getpixel((12, 12)) == (200, 0, 0, 255)


def test_compose_scales_to_the_box_and_crops_at_the_canvas_edge():
    comp = compose([_cut((0, 200, 0), size=(4, 8), role="main")], [(-10, 50, 10, 90)], canvas=64)
    (obj,) = comp.objects
    assert obj.full_area == 20 * 40  # scaled to its box
    assert obj.box == (0, 50, 10, 64)  # clipped to the canvas
    assert obj.mask.sum() == 10 * 14 and obj.visible_fraction == pytest.approx(140 / 800)
    gone = compose([_cut((1, 2, 3), role="main")], [(70, 70, 90, 90)], canvas=64).objects[0]
    assert gone.mask.sum() == 0 and gone.visible_fraction == 0.0 and gone.box[0] == gone.box[2]
    with pytest.raises(ValueError, match="2 cut-outs but 1 boxes"):
        compose([_cut((1, 1, 1)), _cut((2, 2, 2))], [(0, 0, 5, 5)])


def test_overlap_is_intersection_over_the_smaller_box():
    assert _overlap((0, 0, 10, 10), (5, 5, 15, 15)) == pytest.approx(25 / 100)
    assert _overlap((0, 0, 10, 10), (2, 2, 4, 4)) == 1.0  # contained
    assert _overlap((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching edges
    assert _overlap((0, 0, 10, 10), (0, 0, 20, 2)) == pytest.approx(20 / 40)


def test_layout_sizes_positions_and_determinism():
    cuts = [_cut((1, 1, 1), size=(40, 80), role="main"), _cut((2, 2, 2), size=(80, 40)), _cut((3, 3, 3))]
    boxes = layout(rng(0), cuts, canvas=512)
    assert boxes == layout(rng(0), cuts, canvas=512) and boxes != layout(rng(1), cuts, canvas=512)
    for cut, (x0, y0, x1, y1) in zip(cuts, boxes):
        w, h = x1 - x0, y1 - y0
        assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512
        assert y1 >= 0.55 * 512  # standing on the ground
        assert w <= round(0.42 * 512)  # never wider than max_width
        assert w / h == pytest.approx(cut.mask.shape[1] / cut.mask.shape[0], rel=0.05)  # the aspect is kept
    assert 0.42 * 512 - 1 <= boxes[0][3] - boxes[0][1] <= 0.62 * 512 + 1  # the main object is the larger
    wide_h = boxes[1][3] - boxes[1][1]
    assert wide_h <= 0.48 * 512 + 1 and boxes[1][2] - boxes[1][0] <= round(0.42 * 512)
    many = layout(rng(2), [_cut((1, 1, 1), size=(20, 20)) for _ in range(3)], canvas=512, other_height=(0.1, 0.1))
    assert max(_overlap(a, b) for i, a in enumerate(many) for b in many[i + 1 :]) == 0.0  # room enough: no overlap

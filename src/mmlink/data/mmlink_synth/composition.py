"""Step 1 of the MmLINK synthesis, composition: cut-outs pasted onto a transparent canvas (`compose`) at varied
positions and sizes (`layout`), recording each pasted object's box, visible mask and full area (`Composition`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mmlink.data.mmlink_synth.base import Box
from mmlink.data.mmlink_synth.groups import ObjectGroup, View
from mmlink.data.world.scene import Pose


@dataclass
class Cutout:
    """A segmented object cropped to its mask's bounding box."""

    group: ObjectGroup
    view: View
    rgb: np.ndarray  # (h, w, 3) uint8
    mask: np.ndarray  # (h, w) bool
    role: str = "distractor"  # "main" or "distractor"


def cut_out(group: ObjectGroup, view: View, mask: np.ndarray, role: str) -> Cutout:
    ys, xs = np.nonzero(mask)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    rgb = np.asarray(view.image.convert("RGB"))[y0:y1, x0:x1]
    return Cutout(group, view, rgb.copy(), mask[y0:y1, x0:x1].copy(), role)


@dataclass
class PastedObject:
    """One object on a canvas. ``box`` is where its sprite was put (clipped to the canvas); ``mask`` its pixels
    still visible on the final canvas; ``full_area`` its pixel count had nothing hidden or cropped it."""

    role: str
    group: ObjectGroup
    pose: Pose | None
    box: Box
    mask: np.ndarray
    full_area: int
    source: str | None = None  # the image file, for user folders

    @property
    def visible_fraction(self) -> float:
        return float(self.mask.sum()) / max(1, self.full_area)


@dataclass
class Composition:
    """A transparent canvas with pasted objects (RGBA, alpha 255 on objects, 0 on the empty area)."""

    rgba: np.ndarray
    objects: list[PastedObject]

    @property
    def size(self) -> int:
        return self.rgba.shape[0]

    @property
    def mask(self) -> np.ndarray:
        return self.rgba[..., 3] > 0

    @property
    def main(self) -> PastedObject:
        return next(o for o in self.objects if o.role == "main")

    def image(self) -> Image.Image:
        return Image.fromarray(self.rgba, "RGBA")


def compose(cutouts: Sequence[Cutout], boxes: Sequence[Box], canvas: int = 512) -> Composition:
    """Paste each cut-out, scaled to its box, in order (later ones cover earlier ones). Boxes may reach past the
    canvas edge; the part outside is cropped (and counts against the object's visible fraction)."""
    if len(cutouts) != len(boxes):
        raise ValueError(f"{len(cutouts)} cut-outs but {len(boxes)} boxes")
    rgba = np.zeros((canvas, canvas, 4), np.uint8)
    owner = np.full((canvas, canvas), -1, np.int16)
    placed: list[tuple[Cutout, Box, int]] = []
    for i, (cut, (x0, y0, x1, y1)) in enumerate(zip(cutouts, boxes)):
        w, h = max(1, x1 - x0), max(1, y1 - y0)
        rgb = np.asarray(Image.fromarray(cut.rgb).resize((w, h), Image.LANCZOS))
        m = np.asarray(Image.fromarray(cut.mask.astype(np.uint8) * 255).resize((w, h), Image.BILINEAR)) >= 128
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(canvas, x1), min(canvas, y1)
        if cx1 > cx0 and cy1 > cy0:
            sub_m = m[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
            region = rgba[cy0:cy1, cx0:cx1]
            region[sub_m, :3] = rgb[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0][sub_m]
            region[sub_m, 3] = 255
            owner[cy0:cy1, cx0:cx1][sub_m] = i
        placed.append((cut, (cx0, cy0, max(cx0, cx1), max(cy0, cy1)), int(m.sum())))
    objects = [
        PastedObject(cut.role, cut.group, cut.view.pose, box, owner == i, full, cut.view.source)
        for i, (cut, box, full) in enumerate(placed)
    ]
    return Composition(rgba, objects)


def _overlap(a: Box, b: Box) -> float:
    """Intersection over the smaller box's area."""
    iw, ih = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return iw * ih / max(1, smaller)


def layout(
    rng: np.random.Generator,
    cutouts: Sequence[Cutout],
    canvas: int = 512,
    main_height: tuple[float, float] = (0.42, 0.62),
    other_height: tuple[float, float] = (0.3, 0.48),
    max_width: float = 0.42,
    ground: float = 0.55,
    tries: int = 40,
) -> list[Box]:
    """Varied sizes and positions inside the canvas, each box placed where it overlaps the others least.

    Every box's bottom edge lies below ``ground`` (a fraction of the canvas height, about the horizon of the
    world's backgrounds), so objects stand on the ground rather than float in the sky."""
    boxes: list[Box] = []
    for cut in cutouts:
        lo, hi = main_height if cut.role == "main" else other_height
        h = rng.uniform(lo, hi) * canvas
        w = h * cut.mask.shape[1] / cut.mask.shape[0]
        if w > max_width * canvas:
            h, w = h * max_width * canvas / w, max_width * canvas
        w, h = max(8, round(w)), max(8, round(h))
        best, best_ov = None, 2.0
        for _ in range(tries):
            x0 = int(rng.integers(0, canvas - w + 1))
            y_lo = min(canvas - h, max(0, int(ground * canvas) - h))
            y0 = int(rng.integers(y_lo, canvas - h + 1))
            box = (x0, y0, x0 + w, y0 + h)
            ov = max((_overlap(box, b) for b in boxes), default=0.0)
            if ov < best_ov:
                best, best_ov = box, ov
            if ov == 0.0:
                break
        boxes.append(best)
    return boxes

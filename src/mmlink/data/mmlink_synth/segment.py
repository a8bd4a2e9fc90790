"""Step 1 of the MmLINK synthesis, segmentation: a `Segmenter` cuts the object out of each image — exact alpha masks
(default), OpenCV GrabCut, or Segment Anything."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmlink.data.mmlink_synth.base import SEGMENTERS, Box, _has_module, _require_cv2


class Segmenter(ABC):
    """``segment(image) -> bool mask`` (H, W), True on the object."""

    @abstractmethod
    def segment(self, image: Image.Image) -> np.ndarray: ...


def _centre_box(w: int, h: int, margin: float) -> Box:
    return round(w * margin), round(h * margin), round(w * (1 - margin)), round(h * (1 - margin))


@SEGMENTERS.register("alpha")
class AlphaSegmenter(Segmenter):
    """Exact masks from transparency: rendered sprites and cut-out PNGs (alpha ≥ ``threshold``)."""

    def __init__(self, threshold: int = 128):
        self.threshold = threshold

    def segment(self, image):
        if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
            raise ValueError(
                f"the alpha segmenter needs an image with transparency, got mode {image.mode}; "
                "use segmenter='grabcut' (OpenCV) or 'segment_anything' for photos"
            )
        return np.asarray(image.convert("RGBA"))[..., 3] >= self.threshold


@SEGMENTERS.register("grabcut")
class GrabCutSegmenter(Segmenter):
    """OpenCV GrabCut, initialised with a centred rectangle (``margin`` of each side is background).

    For photos where the object is roughly centred and does not touch the borders. Works on a copy scaled to at
    most ``max_side`` pixels (GrabCut is slow on large photos) and keeps the largest connected component.
    Needs ``opencv-python-headless``.
    """

    def __init__(self, margin: float = 0.06, iterations: int = 5, max_side: int = 320, largest_component: bool = True):
        self.cv2 = _require_cv2("GrabCutSegmenter")
        self.margin, self.iterations, self.max_side = margin, iterations, max_side
        self.largest_component = largest_component

    def segment(self, image):
        cv2 = self.cv2
        rgb = image.convert("RGB")
        w, h = rgb.size
        scale = min(1.0, self.max_side / max(w, h))
        small = rgb.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR) if scale < 1 else rgb
        bgr = np.ascontiguousarray(np.asarray(small)[..., ::-1])
        sw, sh = small.size
        x0, y0, x1, y1 = _centre_box(sw, sh, self.margin)
        mask = np.zeros((sh, sw), np.uint8)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(bgr, mask, (x0, y0, x1 - x0, y1 - y0), bgd, fgd, self.iterations, cv2.GC_INIT_WITH_RECT)
        fg = ((mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)).astype(np.uint8)
        if self.largest_component and fg.any():
            n, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
            if n > 2:
                fg = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
        if scale < 1:
            fg = np.asarray(Image.fromarray(fg * 255).resize((w, h), Image.BILINEAR)) >= 128
        return fg.astype(bool)


@SEGMENTERS.register("segment_anything")
class SegmentAnythingSegmenter(Segmenter):
    """Segment Anything (``segment-anything`` package + a SAM checkpoint file), prompted with a centred box.

    NOT tested with real weights here (no checkpoint can be obtained in this environment): the tests inject a fake
    ``predictor`` (an object with SamPredictor's ``set_image(rgb)`` and ``predict(box=…, multimask_output=True)``)
    and check only the interface. The highest-scoring of SAM's masks is returned.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike | None = None,
        model_type: str = "vit_b",
        device: str = "cpu",
        margin: float = 0.04,
        predictor: Any = None,
    ):
        self.margin = margin
        if predictor is None:
            if not _has_module("segment_anything"):
                raise ImportError(
                    "SegmentAnythingSegmenter needs the segment-anything package (pip install segment-anything) "
                    "and a SAM checkpoint file, e.g. sam_vit_b_01ec64.pth"
                )
            if checkpoint is None or not Path(checkpoint).is_file():
                raise FileNotFoundError(f"SAM checkpoint file not found: {checkpoint}")
            from segment_anything import SamPredictor, sam_model_registry

            predictor = SamPredictor(sam_model_registry[model_type](checkpoint=str(checkpoint)).to(device))
        self.predictor = predictor

    def segment(self, image):
        rgb = np.asarray(image.convert("RGB"))
        h, w = rgb.shape[:2]
        self.predictor.set_image(rgb)
        masks, scores, _ = self.predictor.predict(box=np.array(_centre_box(w, h, self.margin)), multimask_output=True)
        return np.asarray(masks[int(np.argmax(scores))]).astype(bool)

"""mmlink.data.mmlink_synth.segment: the alpha segmenter, GrabCut on photo-like images (needs OpenCV) and Segment
Anything through its interface (a fake SamPredictor: no checkpoint can be obtained here)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

import mmlink.data.mmlink_synth as ms
from mmlink.data.mmlink_synth import AlphaSegmenter, MmlinkSynthesizer, SegmentAnythingSegmenter, make_until_kept

needs_cv2 = pytest.mark.skipif(not ms.base._has_cv2(), reason="opencv-python-headless is not installed")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def iou(a, b):
    return float((a & b).sum() / max(1, (a | b).sum()))


@needs_cv2
def test_grabcut_on_photo_like_image(photo):
    seg = ms.GrabCutSegmenter()
    for seed, color in enumerate([(200, 40, 40), (40, 90, 210), (240, 210, 40), (130, 128, 128)]):
        img, truth = photo(seed, color=color)
        mask = seg.segment(img)
        assert mask.shape == truth.shape and mask.dtype == bool
        assert iou(mask, truth) > 0.7, f"seed {seed}: IoU {iou(mask, truth):.3f}"
        x0, y0, x1, y1 = ms.segment._centre_box(img.width, img.height, seg.margin)
        init = np.zeros_like(truth)
        init[y0:y1, x0:x1] = True
        assert iou(init, truth) < 0.4  # the initial rectangle alone is far from the object: GrabCut did the work
    big, truth = photo(5, size=(800, 600))  # scaled down for GrabCut, mask scaled back up
    assert iou(seg.segment(big), truth) > 0.7


def test_alpha_segmenter():
    img = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle((5, 2, 9, 6), fill=(255, 0, 0, 255))
    mask = AlphaSegmenter().segment(img)
    assert mask.sum() == 25 and mask[2, 5] and not mask[0, 0]
    with pytest.raises(ValueError, match="grabcut"):
        AlphaSegmenter().segment(img.convert("RGB"))


class FakeSamPredictor:
    """SamPredictor's interface: set_image(rgb), predict(box=..., multimask_output=True) -> masks, scores, logits."""

    def __init__(self):
        self.boxes = []

    def set_image(self, rgb):
        assert rgb.dtype == np.uint8 and rgb.shape[2] == 3
        self.rgb = rgb

    def predict(self, box=None, multimask_output=True):
        self.boxes.append(box)
        good = self.rgb.sum(-1) > 0  # sprites are drawn on transparent black
        noise = np.zeros_like(good)
        noise[: good.shape[0] // 2] = True
        return np.stack([noise, good, ~good]), np.array([0.3, 0.9, 0.1]), None


def test_segment_anything_through_the_interface():
    fake = FakeSamPredictor()
    seg = SegmentAnythingSegmenter(predictor=fake)
    s = make_until_kept(MmlinkSynthesizer(segmenter=seg), rng(0), "train")
    assert len(s.images) == 2 and s.meta["components"]["segmenter"] == "SegmentAnythingSegmenter"
    x0, y0, x1, y1 = fake.boxes[0]
    assert 0 < x0 < x1 and 0 < y0 < y1 and x0 + x1 == pytest.approx(fake.rgb.shape[1], abs=2)  # centred box
    if not ms.base._has_module("segment_anything"):
        with pytest.raises(ImportError, match="segment-anything"):
            SegmentAnythingSegmenter(checkpoint="sam.pth")

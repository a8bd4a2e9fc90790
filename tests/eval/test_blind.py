"""`mmlink.eval.blind`: the gray image is the processor's normalisation mean at its input size (zero after
normalisation), every image of an item is replaced, and the gap is real − blind where both are numbers."""

from pathlib import Path

import numpy as np
import pytest

from mmlink.eval.blind import gap, gray_image, item_images
from mmlink.models import load


@pytest.mark.parametrize("preset", ["tiny", "tiny-llava"])
def test_gray_normalises_to_zero(preset):
    _, processor = load(preset)
    gray = gray_image(processor)
    pixels = processor.image_processor(gray, return_tensors="np")["pixel_values"]
    assert np.abs(pixels).max() < 0.02  # one 8-bit step of rounding


def test_item_images_keep_paths_or_replace_every_image():
    images = [["a.png", "b.png"], ["c.png"]]
    assert item_images(images, None) == [[Path("a.png"), Path("b.png")], [Path("c.png")]]
    marker = object()
    assert item_images(images, marker) == [[marker, marker], [marker]]


def test_gap_only_where_both_have_numbers():
    assert gap({"accuracy": 60.0, "CIDEr": None, "note": "x"}, {"accuracy": 52.5, "CIDEr": 3.0}) == {"accuracy": 7.5}

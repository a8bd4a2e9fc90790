"""The blind control of `mmlink eval --blind`: the same items answered with every image replaced by flat gray.

A score that survives without the images measures what the model gets from the text alone (the question's
wording, the options' priors, the references' boilerplate); the gap ``real − blind`` is what the images add.

The gray is the vision tower's **normalisation mean** (each RGB channel at ``round(255 · mean)``), at the size of
the processor's input, so after the processor's rescale-and-normalise the pixel values are 0 up to 8-bit rounding
(|x| < 0.5 / 255 / std): the input that carries no signal the tower was trained to read, not a black or white frame
that is itself an unusual image. The gray images are PIL images handed to the processor like the items' paths, so
they take exactly the real images' path through resizing, normalisation, the vision tower and the Q-Former, with
nothing written to disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

if TYPE_CHECKING:  # PIL only when a gray image is made: the harness imports this module for `gap`
    from PIL import Image


def gray_image(processor) -> "Image.Image":
    """A flat RGB image in ``processor``'s normalisation mean, of its input size."""
    from PIL import Image

    ip = processor.image_processor
    size = ip.size  # a dict, transformers' SizeDict (attributes) or one int
    if isinstance(size, Mapping):
        height, width = size["height"], size["width"]
    else:
        height, width = getattr(size, "height", size), getattr(size, "width", size)
    mean = ip.image_mean if isinstance(ip.image_mean, Sequence) else [ip.image_mean] * 3
    color = tuple(int(round(255 * float(m))) for m in mean)
    return Image.new("RGB", (int(width), int(height)), color)


def item_images(images: Sequence[Sequence[str]], gray: "Image.Image | None") -> list[list[Any]]:
    """Per item, its image paths, or as many ``gray`` images when ``gray`` is given (the blind pass)."""
    if gray is None:
        return [[Path(p) for p in ims] for ims in images]
    return [[gray] * len(ims) for ims in images]


def gap(real: Mapping[str, Any], blind: Mapping[str, Any]) -> dict[str, float]:
    """``real − blind`` for every metric both have a number for."""
    out = {}
    for key, value in real.items():
        other = blind.get(key)
        if isinstance(value, (int, float)) and isinstance(other, (int, float)) and not isinstance(value, bool):
            out[key] = float(value) - float(other)
    return out


__all__ = ["gap", "gray_image", "item_images"]

"""mmlink.data.mmlink_synth.fill: the procedural filler follows the description, cv2.inpaint paints the empty area
(needs OpenCV), Stable-Diffusion inpainting through its interface (a fake pipeline: no weights here); every filler
gives the object pixels back unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mmlink.data.mmlink_synth as ms
from mmlink.data.mmlink_synth import DiffusersInpaintFiller, MmlinkSynthesizer, make_until_kept

needs_cv2 = pytest.mark.skipif(not ms.base._has_cv2(), reason="opencv-python-headless is not installed")


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


class FakeInpaintPipeline:
    """StableDiffusionInpaintPipeline's call interface, painting a flat colour."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompt, image, mask_image, height, width, **kwargs):
        self.calls.append(dict(prompt=prompt, image=image, mask_image=mask_image, height=height, width=width, **kwargs))

        out = type("Out", (), {})()
        out.images = [Image.new("RGB", (width // 2, height // 2), (10, 200, 230))]  # a different size on purpose
        return out


def test_diffusers_filler_through_the_interface(color_fraction):
    pipe = FakeInpaintPipeline()
    synth = MmlinkSynthesizer(filler=DiffusersInpaintFiller(pipeline=pipe, steps=3))
    s = make_until_kept(synth, rng(0), "train")
    assert [c["prompt"] for c in pipe.calls] == s.meta["backgrounds"]
    call = pipe.calls[0]
    assert call["num_inference_steps"] == 3 and call["height"] == call["width"] == 512
    assert call["mask_image"].mode == "L" and call["image"].size == (512, 512)
    paint = np.asarray(call["mask_image"]) > 0
    assert 0.3 < paint.mean() < 0.97  # white = the empty area to paint, black = the objects
    ident = next(c.identity for c in s.scenes[0].characters if c.identity.key == s.meta["main"])
    assert color_fraction(s.images[0], s.meta["main_boxes"][0], ident.color) > 0.1  # objects pasted back
    comp = synth.plan(rng(1), "train").compositions[0]
    out = synth.filler.fill(comp.rgba, comp.mask, "A sandy beach.")
    assert out.shape == (512, 512, 3)
    assert (out[~comp.mask] == (10, 200, 230)).all()  # the pipeline's paint, resized to the canvas
    assert (out[comp.mask] == comp.rgba[..., :3][comp.mask]).all()  # objects exact
    if not ms.base._has_module("diffusers"):
        with pytest.raises(ImportError, match="diffusers"):
            DiffusersInpaintFiller(model_path="/nonexistent")


def test_procedural_filler_follows_the_description():
    synth = MmlinkSynthesizer()
    comp = synth.plan(rng(0), "train").compositions[0]
    filler = ms.ProceduralFiller()
    night = filler.fill(comp.rgba, comp.mask, "A starry night over rooftops.")
    snow = filler.fill(comp.rgba, comp.mask, "A snowy field with frosty pines.")
    empty = ~comp.mask
    assert night[empty].mean() < snow[empty].mean() - 60  # dark vs bright background
    assert (night[comp.mask] == comp.rgba[..., :3][comp.mask]).all()
    again = filler.fill(comp.rgba, comp.mask, "A starry night over rooftops.")
    assert (again == night).all()


@needs_cv2
def test_cv2_inpaint_filler():
    synth = MmlinkSynthesizer(filler="cv2_inpaint")
    comp = synth.plan(rng(0), "train").compositions[0]
    out = synth.filler.fill(comp.rgba, comp.mask, "ignored")
    assert out.shape == (512, 512, 3) and out.dtype == np.uint8
    assert (out[comp.mask] == comp.rgba[..., :3][comp.mask]).all()
    assert (out[~comp.mask].sum(-1) > 0).mean() > 0.95  # the empty (black) area got painted
    assert make_until_kept(synth, rng(1), "train") is not None

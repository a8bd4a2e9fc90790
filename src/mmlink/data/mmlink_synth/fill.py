"""Step 2 of the MmLINK synthesis, background filling: a `BackgroundFiller` paints the canvas's empty area from a
background description — the world's procedural backgrounds (default), OpenCV inpainting, or Stable-Diffusion
inpainting (diffusers)."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmlink.data.mmlink_synth.base import FILLERS, _has_module, _require_cv2, _stable_seed
from mmlink.data.mmlink_synth.facts import context_of


class BackgroundFiller(ABC):
    """``fill(canvas_rgba, mask, description) -> RGB`` (H, W, 3) uint8: paint the area where ``mask`` (the pasted
    objects) is False, following ``description``; object pixels come back unchanged."""

    @abstractmethod
    def fill(self, canvas_rgba: np.ndarray, mask: np.ndarray, description: str) -> np.ndarray: ...


def _paste_back(background: np.ndarray, canvas_rgba: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = background.copy()
    out[mask] = canvas_rgba[..., :3][mask]
    return out


@FILLERS.register("procedural")
class ProceduralFiller(BackgroundFiller):
    """Offline default: the world's background for the context the description names (``park`` if none),
    with seed and lighting derived from the description and the mask, so the result is deterministic."""

    def __init__(self, default_context: str = "park"):
        self.default_context = default_context

    def params(self, description: str, mask: np.ndarray) -> tuple[str, int, float]:
        context = context_of(description) or self.default_context
        seed = _stable_seed(description, np.packbits(mask).tobytes())
        lighting = 0.55 if context == "night" else 0.85 + 0.25 * (seed % 1000) / 1000
        return context, seed, lighting

    def fill(self, canvas_rgba, mask, description):
        from mmlink.data.world.render import render_background

        context, seed, lighting = self.params(description, mask)
        bg = render_background(context, canvas_rgba.shape[0], seed, lighting)
        bg = np.asarray(bg.convert("RGB") if isinstance(bg, Image.Image) else bg, dtype=np.uint8)
        return _paste_back(bg, canvas_rgba, mask)


@FILLERS.register("cv2_inpaint")
class Cv2InpaintFiller(BackgroundFiller):
    """OpenCV inpainting (Telea or Navier-Stokes) of the empty area from the objects' borders. It ignores the
    description (classical inpainting takes no text) and, on a mostly empty canvas, smears the objects' colours;
    it is meant for canvases whose background is mostly there already. Needs ``opencv-python-headless``.
    Works at ``work_size`` pixels (inpainting a large empty area is slow) and pastes the objects back sharp."""

    def __init__(self, radius: int = 5, method: str = "telea", work_size: int = 128):
        self.cv2 = _require_cv2("Cv2InpaintFiller")
        if method not in ("telea", "ns"):
            raise ValueError(f"method must be 'telea' or 'ns', got {method!r}")
        self.radius, self.method, self.work_size = radius, method, work_size

    def fill(self, canvas_rgba, mask, description):
        cv2 = self.cv2
        size = canvas_rgba.shape[0]
        small = (self.work_size, self.work_size)
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(canvas_rgba[..., :3])).resize(small, Image.BILINEAR))
        empty = np.asarray(Image.fromarray((~mask).astype(np.uint8) * 255).resize(small, Image.BILINEAR))
        # Object-edge pixels mixed with the empty canvas's black are inpainted too (no dark halo).
        empty = cv2.dilate((empty > 0).astype(np.uint8) * 255, np.ones((3, 3), np.uint8))
        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        filled = cv2.inpaint(np.ascontiguousarray(rgb), np.ascontiguousarray(empty), self.radius, flag)
        bg = np.asarray(Image.fromarray(filled).resize((size, size), Image.BICUBIC))
        return _paste_back(bg, canvas_rgba, mask)


@FILLERS.register("diffusers")
class DiffusersInpaintFiller(BackgroundFiller):
    """Stable-Diffusion inpainting (as in the paper) from a LOCAL ``model_path`` with ``diffusers``'s
    ``StableDiffusionInpaintPipeline``; the objects are pasted back over the result so they stay exact.

    NOT tested with real weights here (none can be obtained in this environment): the tests inject a fake
    ``pipeline`` (a callable taking ``prompt``, ``image``, ``mask_image`` (white = paint), … and returning an object
    with ``.images``) and check only the interface.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        pipeline: Any = None,
        steps: int = 30,
        guidance_scale: float = 7.5,
        negative_prompt: str = "people, person, animal, character, text, watermark",
        device: str = "cpu",
        seed: int = 0,
    ):
        if pipeline is None:
            if not _has_module("diffusers"):
                raise ImportError("DiffusersInpaintFiller needs diffusers (pip install diffusers) and a local model")
            if model_path is None or not Path(model_path).is_dir():
                raise FileNotFoundError(f"Stable-Diffusion-Inpainting directory not found: {model_path}")
            from diffusers import StableDiffusionInpaintPipeline

            pipeline = StableDiffusionInpaintPipeline.from_pretrained(model_path, local_files_only=True).to(device)
        self.pipeline = pipeline
        self.steps, self.guidance_scale, self.negative_prompt, self.seed = steps, guidance_scale, negative_prompt, seed

    def fill(self, canvas_rgba, mask, description):
        import torch

        size = canvas_rgba.shape[0]
        image = Image.fromarray(np.ascontiguousarray(canvas_rgba[..., :3]))
        mask_image = Image.fromarray((~mask).astype(np.uint8) * 255, "L")
        result = self.pipeline(
            prompt=description,
            negative_prompt=self.negative_prompt,
            image=image,
            mask_image=mask_image,
            height=size,
            width=size,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance_scale,
            generator=torch.Generator().manual_seed(self.seed + _stable_seed(description)),
        )
        out = result.images[0].convert("RGB")
        if out.size != (size, size):
            out = out.resize((size, size), Image.BICUBIC)
        return _paste_back(np.asarray(out), canvas_rgba, mask)

"""Quality control of the MmLINK synthesis: a `SimilarityScorer` scores each image against the object description
and against its background description — the scene-graph scorer (default: facts checked against the composition
record) or CLIP similarity."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mmlink.data.mmlink_synth.base import SCORERS
from mmlink.data.mmlink_synth.composition import Composition, PastedObject
from mmlink.data.mmlink_synth.facts import context_of, mentions
from mmlink.data.world.scene import COLORS


@dataclass
class QCRecord:
    """What a scorer may know beyond (image, text): which check this is and the composition behind the image."""

    kind: str  # "object": text describes the main object; "background": text describes the background
    composition: Composition
    context: str | None = None  # the context the background was asked for
    facts: tuple[str, ...] = ()  # the words the text must contain (colour, body, pattern, accessory)
    color: str | None = None  # the main object's body colour, checked in the pixels


class SimilarityScorer(ABC):
    """``score(image, text) -> float in [0, 1]``; samples scoring below the threshold are dropped."""

    @abstractmethod
    def score(self, image: Image.Image, text: str, record: QCRecord | None = None) -> float: ...


@SCORERS.register("scene_graph")
class SceneGraphScorer(SimilarityScorer):
    """Agreement of the text with the composition record (needs ``record``).

    Object check: the fraction of the main object's facts (colour, body, pattern, accessory) that the text
    mentions AND that are visible — the object is visible when at least ``min_visible`` of its pasted sprite's
    area shows (not hidden by other objects, not cropped by the canvas edge); its colour additionally must cover
    at least ``min_color`` of its visible pixels in ``image``. A user folder's facts are the words of its name (no
    colour check); an object without facts (a folder with a description.txt) scores 1 if visible, else its visible
    fraction. Background check: 1 if the earliest context word of the description is the context it was asked
    for, else 0.
    """

    def __init__(self, min_visible: float = 0.75, min_color: float = 0.15, color_tolerance: float = 60.0):
        self.min_visible, self.min_color, self.color_tolerance = min_visible, min_color, color_tolerance

    def color_fraction(self, image: Image.Image, obj: PastedObject, color: str) -> float:
        arr = np.asarray(image.convert("RGB"), dtype=np.float32)
        m = obj.mask
        if arr.shape[:2] != m.shape:
            m = np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(image.size, Image.NEAREST)) > 0
        if not m.any():
            return 0.0
        d = np.linalg.norm(arr[m] - np.array(COLORS[color], np.float32), axis=1)
        return float((d < self.color_tolerance).mean())

    def score(self, image, text, record=None):
        if record is None:
            raise ValueError("SceneGraphScorer needs the composition record (record=QCRecord(...))")
        if record.kind == "background":
            return 1.0 if record.context is not None and context_of(text) == record.context else 0.0
        main = record.composition.main
        visible = main.visible_fraction >= self.min_visible
        facts = record.facts
        if not facts:
            return 1.0 if visible else main.visible_fraction
        color_seen = record.color is None or (
            visible and self.color_fraction(image, main, record.color) >= self.min_color
        )
        ok = sum(mentions(text, f) and visible and (f != record.color or color_seen) for f in facts)
        return ok / len(facts)


@SCORERS.register("clip")
class ClipScorer(SimilarityScorer):
    """CLIP similarity (transformers ``CLIPModel`` from a LOCAL directory), mapped to [0, 1] linearly from
    cosine ``low`` → 0 to ``high`` → 1. For the object check the image is cropped to the main object's box.

    NOT tested with real weights here (none can be obtained in this environment): the tests run it on a tiny
    random CLIP saved to a temp directory and on a fake model, which checks the plumbing, not the scores.
    Calibrate ``low``/``high`` on your own samples: raw CLIP cosines of matching pairs are around 0.25–0.35.
    """

    def __init__(
        self,
        model_path: str | os.PathLike | None = None,
        model: Any = None,
        tokenizer: Any = None,
        image_processor: Any = None,
        low: float = 0.15,
        high: float = 0.32,
        device: str = "cpu",
    ):
        if model is None:
            if model_path is None or not Path(model_path).is_dir():
                raise FileNotFoundError(f"CLIP model directory not found: {model_path}")
            from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

            model = CLIPModel.from_pretrained(model_path, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
            image_processor = CLIPImageProcessor.from_pretrained(model_path, local_files_only=True)
        if tokenizer is None or image_processor is None:
            raise ValueError("ClipScorer with a model object also needs its tokenizer and image_processor")
        self.model, self.tokenizer, self.image_processor = model.to(device).eval(), tokenizer, image_processor
        self.low, self.high, self.device = low, high, device

    def similarity(self, image: Image.Image, text: str) -> float:
        import torch

        pixels = self.image_processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"]
        max_len = getattr(getattr(self.model.config, "text_config", None), "max_position_embeddings", 77)
        enc = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=max_len)
        with torch.no_grad():
            img = self.model.get_image_features(pixel_values=pixels.to(self.device))
            txt = self.model.get_text_features(
                input_ids=enc["input_ids"].to(self.device), attention_mask=enc["attention_mask"].to(self.device)
            )
        img = img if torch.is_tensor(img) else img.pooler_output  # transformers 5 returns model outputs
        txt = txt if torch.is_tensor(txt) else txt.pooler_output
        return float(torch.nn.functional.cosine_similarity(img, txt).item())

    def score(self, image, text, record=None):
        if record is not None and record.kind == "object":
            x0, y0, x1, y1 = record.composition.main.box
            s = image.size[0] / record.composition.size
            image = image.crop(
                (int(x0 * s), int(y0 * s), max(int(x0 * s) + 1, int(x1 * s)), max(int(y0 * s) + 1, int(y1 * s)))
            )
        cos = self.similarity(image, text)
        return float(np.clip((cos - self.low) / (self.high - self.low), 0.0, 1.0))

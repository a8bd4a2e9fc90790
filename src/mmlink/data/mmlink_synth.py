"""MmLINK sample synthesis (SAM paper §3): the same object in two images, in different poses and contexts.

The 2-step pipeline, every stage an interface with an offline default:

**Step 1 — image groups, segmentation, composition.** A `GroupSource` gives groups of images of one object in
different poses: `WorldGroups` (default; a character of the embedded world drawn in two sampled poses) or
`ImageFolderGroups(root)` (a user's folders, one sub-folder per object, at least two images each). A `Segmenter`
cuts the object out of each image. `compose` pastes the main object plus one or two distractors (other objects)
onto a transparent 512×512 canvas at varied positions and sizes, recording every pasted object's box, its visible
mask and its full (unoccluded, uncropped) area. Two such canvases, one per pose of the main object, make a sample.

**Step 2 — background filling and annotation.** A text LLM (`mmlink.textllm`: ``template``, ``local``, or
``openai:MODEL@URL``) writes a background description for each canvas; a `BackgroundFiller` fills the empty area from
it. The answer describes the shared object from the scene graph (`describe_identity`), optionally rewritten by the
text LLM; a rewrite that drops or changes a fact (colour, body, pattern, accessory) is discarded and the template
answer kept.

**Quality control.** A `SimilarityScorer` scores each image against the object description (object check) and
against its background description (background check); a sample with any score below ``threshold`` (0.8, as in
the paper) is dropped, and `MmlinkSynthesizer.report` counts the drops by reason: ``segmentation`` (an empty or
full mask), ``object_score``, ``background_score``; it also counts ``fallbacks`` (LLM text that was replaced by
the template because it lost a fact, named no or the wrong context, or mentioned people).

Where this differs from the paper: the object description comes from the scene graph (exact) instead of
InstructBLIP; each image holds the main object plus one or two distractors (the paper: one each, B and C); the
default scorer checks facts against the composition record instead of CLIP similarity.

Components (registry name → class), chosen by name or passed as instances:

=====================  =======================================================================================
``GROUP_SOURCES``      ``world`` `WorldGroups` (default) · ``folders`` `ImageFolderGroups`
``SEGMENTERS``         ``alpha`` `AlphaSegmenter` (default, exact: the sprite's alpha) · ``grabcut``
                       `GrabCutSegmenter` (OpenCV) · ``segment_anything`` `SegmentAnythingSegmenter`
``FILLERS``            ``procedural`` `ProceduralFiller` (default: a world background of the description's
                       context) · ``cv2_inpaint`` `Cv2InpaintFiller` · ``diffusers`` `DiffusersInpaintFiller`
``llm``                a `mmlink.textllm.make_backend` spec or backend: ``template`` (default: the world's own
                       varied sentences) · ``local`` (a local causal LM, default the ``mini`` preset's
                       SmolLM2-135M-Instruct) · ``openai:MODEL@URL`` (vLLM, TGI, llama.cpp, Ollama, …)
``SCORERS``            ``scene_graph`` `SceneGraphScorer` (default) · ``clip`` `ClipScorer`
=====================  =======================================================================================

**What is real here and what is tested with fakes only.** Everything offline is real and tested on real data:
world groups, folder groups, alpha segmentation, GrabCut and ``cv2.inpaint`` (need ``opencv-python-headless``;
their tests are skipped without it), the procedural filler, the template text, the ``local`` backend (tested on a
tiny random Llama; with the ``mini`` preset's SmolLM2 in a ``slow`` test when its package is installed), the
``openai`` backend (tested against a local HTTP server on 127.0.0.1) and the scene-graph scorer. Three options need
weights that cannot be obtained in this environment, so their tests exercise only the interface with a fake model
object injected: `SegmentAnythingSegmenter` (``segment-anything`` + a SAM checkpoint), `DiffusersInpaintFiller` (``diffusers`` + a
local Stable-Diffusion-Inpainting directory) and `ClipScorer` (a local CLIP directory in transformers format; its
loading and scoring code also runs on a tiny *random* CLIP in the tests, which proves the plumbing, not the
scores). With real weights their scores and pictures have not been checked by us: calibrate `ClipScorer`'s
``low``/``high`` on a few samples before trusting the 0.8 threshold.

Usage::

    synth = MmlinkSynthesizer()                       # offline defaults
    sample = synth.make(np.random.default_rng(0), "train")   # WorldSample, or None when QC dropped it
    synth.report()                                    # {"attempted": …, "kept": …, "dropped": {reason: n}, …}
    MmlinkSynthesizer.from_folders("my_objects/")     # user photos, GrabCut segmentation

The task ``mmlink_synth`` (in `mmlink.data.tasks.TASKS`) runs the offline defaults and retries with the same
random stream until a sample passes QC.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.scene import (
    COLORS,
    CONTEXTS,
    Character,
    Identity,
    Pose,
    Scene,
    location,
    sample_identity,
    sample_pose,
)
from mmlink.data.world.text import (
    ACCESSORY_NOUNS,
    BODY_WORDS,
    PATTERN_ADJECTIVES,
    PATTERN_STEMS,
    describe_identity,
)
from mmlink.registry import Registry
from mmlink.textllm import TemplateLLM, TextLLM, load_prompt, make_backend

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive)

GROUP_SOURCES: Registry[type] = Registry("group source")
SEGMENTERS: Registry[type] = Registry("segmenter")
FILLERS: Registry[type] = Registry("background filler")
SCORERS: Registry[type] = Registry("similarity scorer")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def build(registry: Registry, spec: Any, **kwargs) -> Any:
    """An instance from a registry name (``kwargs`` go to its constructor) or ``spec`` itself if it is one."""
    if isinstance(spec, str):
        return registry.get(spec)(**kwargs)
    if kwargs:
        raise TypeError(f"options {sorted(kwargs)} given for a ready-made {registry.kind}")
    return spec


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _has_cv2() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def _require_cv2(what: str):
    if not _has_cv2():
        raise ImportError(f"{what} needs OpenCV: pip install opencv-python-headless")
    import cv2

    return cv2


def _stable_seed(*parts: bytes | str) -> int:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
    return int.from_bytes(h.digest(), "big") % 2**31


# ============================================================================ facts (shared by annotation and QC)


def _fact_forms() -> dict[str, tuple[str, ...]]:
    """Every way the world's text writes a fact word (synonyms from `mmlink.data.world.text`), plus a few more."""
    forms: dict[str, set[str]] = {c: {c} for c in COLORS}
    forms["gray"] |= {"grey"}
    for body, words in BODY_WORDS.items():
        forms[body] = {body} | {w.split()[0].split("-")[0] for w in words}
    for pattern, stems in PATTERN_STEMS.items():
        if pattern != "plain":
            forms[pattern] = {pattern, PATTERN_ADJECTIVES.get(pattern, pattern)} | set(stems)
    forms["checkered"] |= {"checked", "chequered"}
    for acc, noun in ACCESSORY_NOUNS.items():
        forms[acc] = {acc, noun}
    forms["glasses"] |= {"spectacles"}
    forms["backpack"] |= {"rucksack"}
    return {k: tuple(sorted(v, key=len, reverse=True)) for k, v in forms.items()}


_FACT_FORMS = _fact_forms()
_ALL_FACT_WORDS = tuple(_FACT_FORMS)


def fact_regex(word: str) -> re.Pattern:
    """How a fact word is recognised in text: any of its forms as a whole word, case-insensitive, plural allowed
    (``round``: round, roundish, circular; ``striped``: stripe(s), striped; ``gray``: grey …)."""
    forms = _FACT_FORMS.get(word, (word,))
    return re.compile(r"\b(?:" + "|".join(re.escape(f) for f in forms) + r")(?:s|es)?\b", re.IGNORECASE)


def mentions(text: str, word: str) -> bool:
    return bool(fact_regex(word).search(text))


def identity_facts(identity: Identity) -> tuple[str, ...]:
    """The words a description of ``identity`` must contain: colour, body, pattern (+ its colour), accessory."""
    facts = [identity.color, identity.body]
    if identity.pattern != "plain":
        facts += [identity.pattern, identity.pattern_color]
    if identity.accessory != "none":
        facts.append(identity.accessory)
    return tuple(facts)


def keeps_facts(rewrite: str, original: str, facts: Sequence[str]) -> bool:
    """True if ``rewrite`` mentions every fact and no fact word (colour, body, …) that ``original`` does not."""
    if not rewrite.strip() or any(not mentions(rewrite, f) for f in facts):
        return False
    return not any(mentions(rewrite, w) and not mentions(original, w) for w in _ALL_FACT_WORDS)


def context_of(description: str) -> str | None:
    """The world context a background description names (the earliest context word), or None."""
    best, best_pos = None, len(description) + 1
    for ctx in CONTEXTS:
        m = re.search(r"\b" + ctx, description, re.IGNORECASE)
        if m and m.start() < best_pos:
            best, best_pos = ctx, m.start()
    return best


# ============================================================================ step 1: groups


@dataclass
class View:
    """One image of an object: RGBA (a cut-out sprite) or RGB (a photo), the pose if known, the source path."""

    image: Image.Image
    pose: Pose | None = None
    source: str | None = None


@dataclass
class ObjectGroup:
    """Images of one object in different poses. ``identity`` is set for world characters, None for user folders."""

    label: str
    views: list[View]
    identity: Identity | None = None
    description: str | None = None  # a user folder's description.txt

    @property
    def key(self) -> str:
        return self.identity.key if self.identity is not None else self.label

    @property
    def facts(self) -> tuple[str, ...]:
        """Words any description must keep: the identity's traits; for a folder without a description.txt, the
        words of its name (``red_mug`` → red, mug)."""
        if self.identity is not None:
            return identity_facts(self.identity)
        if self.description:
            return ()
        return tuple(w for w in re.split(r"[\W_]+", self.label.lower()) if len(w) > 2)


class NoMoreGroups(ValueError):
    """A group source has no object left that differs from all the excluded ones."""


class GroupSource(ABC):
    """Where image groups come from. ``sample`` draws one object with ``n_views`` images, unlike every ``exclude``."""

    @abstractmethod
    def sample(
        self, rng: np.random.Generator, split: str, n_views: int = 1, exclude: Sequence[ObjectGroup] = ()
    ) -> ObjectGroup: ...


@GROUP_SOURCES.register("world")
class WorldGroups(GroupSource):
    """Characters of the embedded world, each view a transparent sprite in its own sampled pose.

    The views of one group differ in action (and usually facing and rotation). Distractors differ from every
    excluded group in identity, name and body colour, so "the red character" names one object in the picture.
    """

    def __init__(self, sprite_size: int = 448):
        self.sprite_size = sprite_size

    def sample(self, rng, split, n_views=1, exclude=()):
        from mmlink.data.world.render import render_object

        keys = {g.key for g in exclude}
        colors = {g.identity.color for g in exclude if g.identity is not None}
        for _ in range(1000):
            ident = sample_identity(rng, split, exclude=keys)
            if ident.color not in colors:
                break
        else:  # pragma: no cover - every split has identities of every colour
            raise RuntimeError(f"no {split} identity unlike {sorted(keys)}")
        poses: list[Pose] = []
        while len(poses) < n_views:
            pose = sample_pose(rng)
            if all(pose.action != p.action for p in poses):
                poses.append(pose)
        views = []
        for pose in poses:
            for height in (0.55, 0.4):  # the nominal height leaves room for lifts, hats and turns; else shrink
                sprite = render_object(Character(ident, pose, x=0.5, y=0.5, size=height), self.sprite_size)
                alpha = np.asarray(sprite)[..., 3]
                if not (alpha[0].any() or alpha[-1].any() or alpha[:, 0].any() or alpha[:, -1].any()):
                    break
            views.append(View(sprite, pose))
        return ObjectGroup(label=ident.name, views=views, identity=ident)


@GROUP_SOURCES.register("folders")
class ImageFolderGroups(GroupSource):
    """A user's images: ``root/<object>/*.{png,jpg,…}``, one sub-folder per object with at least two images.

    An optional ``root/<object>/description.txt`` describes the object (used for the answer); otherwise the folder
    name is (``red_mug`` → "red mug"). Images with transparency keep their alpha channel (then the ``alpha``
    segmenter applies); photos are RGB and need ``grabcut`` or ``segment_anything``. Every folder serves every
    split: keep separate roots for train and test.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder root not found: {self.root}")
        self.groups: dict[str, list[Path]] = {}
        for sub in sorted(p for p in self.root.iterdir() if p.is_dir()):
            files = sorted(f for f in sub.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS)
            if len(files) < 2:
                raise ValueError(f"{sub} holds {len(files)} image(s); every object folder needs at least 2")
            self.groups[sub.name] = files
        if len(self.groups) < 2:
            raise ValueError(
                f"{self.root} has {len(self.groups)} object folder(s); need at least 2 (a main object and a distractor)"
            )

    def sample(self, rng, split, n_views=1, exclude=()):
        names = [n for n in self.groups if n not in {g.label for g in exclude}]
        if not names:
            raise NoMoreGroups(f"{self.root}: no object folder left for a distractor; add more object folders")
        name = names[int(rng.integers(len(names)))]
        files = self.groups[name]
        if n_views > len(files):
            raise ValueError(f"{self.root / name} has {len(files)} images, {n_views} needed")
        picked = [files[int(i)] for i in rng.choice(len(files), size=n_views, replace=False)]
        desc_file = self.root / name / "description.txt"
        desc = desc_file.read_text(encoding="utf-8").strip() if desc_file.exists() else None
        return ObjectGroup(
            label=name, views=[View(_open_keep_alpha(p), None, str(p)) for p in picked], description=desc
        )


def _open_keep_alpha(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
            return im.convert("RGBA" if alpha else "RGB")
    except Exception as e:  # PIL raises many kinds of errors for bad files
        raise ValueError(f"{path}: cannot read image ({e})") from e


# ============================================================================ step 1: segmentation


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


# ============================================================================ step 1: composition


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


# ============================================================================ step 2: text LLMs


# The prompts are versioned files (mmlink/data/prompts/); any backend of `mmlink.textllm` answers them. The template
# backend has no free text: the pipeline writes its own varied sentences instead (`template_background`), and keeps
# the description as it is.
BACKGROUND_PROMPT = load_prompt("mmlink.data", "synth_background_v1")
REFINE_PROMPT = load_prompt("mmlink.data", "synth_refine_v1")
BACKGROUND_HINTS = ("calm", "bright", "colourful", "quiet", "cheerful", "simple", "wide", "detailed")
# A background description naming people would make an inpainting model paint them: such text is not used.
_PEOPLE = re.compile(
    r"\b(people|persons?|man|men|woman|women|friends?|child(ren)?|kids?|crowds?|boys?|girls?|family|famil(y|ies))\b",
    re.IGNORECASE,
)


def _clean(text: str) -> str:
    text = text.strip().split("\n")[0].strip()
    for prefix in ("Description:", "Sentence:", "Answer:"):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix) :].strip()
    return text.strip("\"' ")


# Per context: place nouns (each names the context, and no other) and details. The frames below combine them.
_BG_PLACES: dict[str, tuple[str, ...]] = {
    "beach": ("sandy beach", "beach by the sea", "quiet beach"),
    "forest": ("green forest", "forest clearing", "deep forest"),
    "city": ("city street", "busy city square", "city pavement"),
    "snow": ("snowy field", "snow-covered valley", "snowy hillside"),
    "night": ("night sky over quiet rooftops", "starry night", "calm night by a lake"),
    "indoor": ("cosy indoor room", "bright indoor living room", "indoor playroom"),
    "desert": ("dry desert", "desert plain", "sandy desert"),
    "park": ("green park", "sunny park", "quiet park"),
}
_BG_DETAILS: dict[str, tuple[str, ...]] = {
    "beach": ("soft sand and gentle waves", "a bright blue sea and a few shells", "warm sand under a clear sky"),
    "forest": ("tall pine trees and mossy ground", "sunlight falling through green leaves", "ferns along a path"),
    "city": ("tall buildings and shop windows", "brick walls and street signs", "grey pavement and lamp posts"),
    "snow": ("white hills under a pale sky", "frosty pine trees and falling flakes", "fresh powder and icicles"),
    "night": ("a glowing moon and many stars", "deep blue shadows and starlight", "a dark sky full of stars"),
    "indoor": ("a wooden floor and a soft rug", "warm lamps and a big window", "plain walls and a tidy shelf"),
    "desert": ("sand dunes under a hot sun", "cacti and dry red rocks", "rippled sand and a cloudless sky"),
    "park": ("green lawns and a winding path", "benches and flower beds", "a small pond and shady trees"),
}
_BG_FRAMES = (
    "{A} {place} with {detail}.",
    "A background of {a} {place}: {detail}.",
    "{A} {place}, with {detail} in the distance.",
    "The scene is {a} {place} with {detail}.",
    "Background: {a} {place} showing {detail}.",
)


def _an(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def template_background(context: str, rng: np.random.Generator) -> str:
    """A background sentence without a model: varied frames over the world's place nouns and details."""
    place = _BG_PLACES[context][int(rng.integers(len(_BG_PLACES[context])))]
    detail = _BG_DETAILS[context][int(rng.integers(len(_BG_DETAILS[context])))]
    frame = _BG_FRAMES[int(rng.integers(len(_BG_FRAMES)))]
    return frame.format(A=_an(place).capitalize(), a=_an(place), place=place, detail=detail)


# ============================================================================ step 2: background filling


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


# ============================================================================ quality control


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


# ============================================================================ annotation

INSTRUCTIONS = (
    "Which character appears in both images? Describe it and say what it is doing in each image.",
    "The two images share one character. Describe that character and where it is in each image.",
    "Find the character that is in both pictures and describe it.",
    "One character is in both images. What does it look like, and what is it doing in each?",
    "Identify the character the two images have in common and describe it.",
)
OBJECT_INSTRUCTIONS = (
    "Which object appears in both images? Describe it and say where it is in each image.",
    "The two images share one object. What is it, and where is it in each image?",
    "Find the object that is in both pictures and describe it.",
)
_WHERE = {"left": "on the left", "centre": "in the centre", "right": "on the right"}


def _where(obj: PastedObject, canvas: int) -> str:
    x0, y0, x1, y1 = obj.box
    probe = Character(obj.group.identity, obj.pose or Pose(), (x0 + x1) / 2 / canvas, (y0 + y1) / 2 / canvas, 0)
    return _WHERE[location(probe)[0]]


def _sentence(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:] + "."


# ============================================================================ the synthesizer


class Dropped(Exception):
    """A sample rejected by quality control (``reason`` is the report key)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass
class Plan:
    """Step 1's result: the main group (two views) and one composition per image."""

    main: ObjectGroup
    compositions: list[Composition]
    distractors: list[list[ObjectGroup]] = field(default_factory=list)


class MmlinkSynthesizer:
    """The MmLINK 2-step pipeline with quality control (see the module docstring).

    Components are registry names or instances. ``n_distractors`` is the (min, max) number of distractors per
    image. ``make(rng, split)`` returns a `WorldSample` (two RGB images at ``out_size``) or None when QC dropped
    it; ``report()`` counts attempts, keeps and drops by reason.
    """

    def __init__(
        self,
        segmenter: str | Segmenter = "alpha",
        filler: str | BackgroundFiller = "procedural",
        llm: str | TextLLM = "template",
        scorer: str | SimilarityScorer = "scene_graph",
        threshold: float = 0.8,
        canvas: int = 512,
        out_size: int = 224,
        groups: str | GroupSource = "world",
        n_distractors: tuple[int, int] = (1, 2),
        refine: bool = True,
    ):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        if not 0 <= n_distractors[0] <= n_distractors[1]:
            raise ValueError(f"n_distractors must be (min, max) with 0 <= min <= max, got {n_distractors}")
        self.segmenter = build(SEGMENTERS, segmenter)
        self.filler = build(FILLERS, filler)
        self.llm = make_backend(llm)
        self.scorer = build(SCORERS, scorer)
        self.groups = build(GROUP_SOURCES, groups)
        self.threshold, self.canvas, self.out_size = threshold, canvas, out_size
        self.n_distractors, self.refine = n_distractors, refine
        self._counts: Counter = Counter()
        self._drops: Counter = Counter()
        self._fallbacks: Counter = Counter()

    @classmethod
    def from_folders(cls, root: str | os.PathLike, segmenter: str | Segmenter | None = None, **kwargs):
        """Groups from ``root/<object>/<images>``; segmentation by GrabCut unless ``segmenter`` is given."""
        if segmenter is None:
            if not _has_cv2():
                raise ImportError(
                    "segmenting photos from image folders needs OpenCV's GrabCut: pip install opencv-python-headless "
                    "(or pass segmenter='alpha' for cut-out PNGs with transparency, or a SegmentAnythingSegmenter)"
                )
            segmenter = "grabcut"
        return cls(segmenter=segmenter, groups=ImageFolderGroups(root), **kwargs)

    # ------------------------------------------------------------------ step 1

    def _cutout(self, group: ObjectGroup, view: View, role: str) -> Cutout:
        mask = np.asarray(self.segmenter.segment(view.image)).astype(bool)
        if mask.shape != (view.image.size[1], view.image.size[0]):
            raise ValueError(f"segmenter returned a {mask.shape} mask for a {view.image.size} image")
        frac = mask.mean()
        if frac < 0.005 or frac > 0.98:
            raise Dropped("segmentation", f"mask covers {frac:.1%} of {group.label}")
        return cut_out(group, view, mask, role)

    def plan(self, rng: np.random.Generator, split: str) -> Plan:
        """Step 1: pick the main object (two poses) and distractors, segment them and compose two canvases."""
        main = self.groups.sample(rng, split, n_views=2)
        lo, hi = self.n_distractors
        taken = [main]
        per_image: list[list[ObjectGroup]] = []
        for _ in range(2):
            ds: list[ObjectGroup] = []
            for _ in range(int(rng.integers(lo, hi + 1))):
                try:  # distractors differ from the main object and from each other, across both images if possible
                    ds.append(self.groups.sample(rng, split, n_views=1, exclude=taken))
                except NoMoreGroups:
                    try:  # a small folder collection: reuse the other image's distractors
                        ds.append(self.groups.sample(rng, split, n_views=1, exclude=[main, *ds]))
                    except NoMoreGroups:
                        if not ds:
                            raise
                        break
                taken.append(ds[-1])
            per_image.append(ds)
        compositions = []
        for view, ds in zip(main.views, per_image):
            cutouts = [self._cutout(main, view, "main")] + [self._cutout(d, d.views[0], "distractor") for d in ds]
            order = [int(i) for i in rng.permutation(len(cutouts))]
            cutouts = [cutouts[i] for i in order]
            compositions.append(compose(cutouts, layout(rng, cutouts, self.canvas), self.canvas))
        return Plan(main, compositions, per_image)

    # ------------------------------------------------------------------ step 2

    def _background(self, context: str, rng: np.random.Generator) -> str:
        # The template path draws from the sample's rng exactly as it always has, so world samples stay the same.
        if isinstance(self.llm, TemplateLLM):
            return template_background(context, rng)
        hint = BACKGROUND_HINTS[int(rng.integers(len(BACKGROUND_HINTS)))]  # variety, even with greedy decoding
        desc = _clean(self.llm.ask(BACKGROUND_PROMPT, context=context, hint=hint))
        if not desc or context_of(desc) != context or len(desc) > 300 or _PEOPLE.search(desc):
            self._fallbacks["background"] += 1
            desc = template_background(context, rng)
        return desc

    def describe(self, group: ObjectGroup, rng: np.random.Generator) -> str:
        """The main object's description: from the scene graph, else the folder's description or name."""
        if group.identity is not None:
            return describe_identity(group.identity, rng).strip().rstrip(".")
        if group.description:
            return group.description.strip().rstrip(".")
        return "the " + group.label.replace("_", " ").replace("-", " ")

    def _refined(self, text: str, group: ObjectGroup, rng: np.random.Generator) -> tuple[str, bool]:
        if not self.refine:
            return text, False
        rewrite = _clean(text if isinstance(self.llm, TemplateLLM) else self.llm.ask(REFINE_PROMPT, text=text))
        if rewrite == text:
            return text, False
        if not keeps_facts(rewrite, text, group.facts) or len(rewrite) > 3 * len(text) + 50:
            self._fallbacks["refine"] += 1
            return text, False
        return rewrite.rstrip("."), True

    def scene_of(self, comp: Composition, context: str, description: str) -> Scene:
        lighting, seed = 1.0, 0
        if isinstance(self.filler, ProceduralFiller):
            _, seed, lighting = self.filler.params(description, comp.mask)
        objects = []
        for o in comp.objects:
            if o.group.identity is None:
                continue
            x0, y0, x1, y1 = o.box
            s = self.canvas
            objects.append(
                Character(o.group.identity, o.pose or Pose(), (x0 + x1) / 2 / s, (y0 + y1) / 2 / s, (y1 - y0) / s)
            )
        return Scene(context, tuple(objects), lighting, seed)

    def finish(self, plan: Plan, rng: np.random.Generator) -> WorldSample | None:
        """Step 2 + QC: backgrounds, annotation, scoring. None (and a counted drop) when QC rejects the sample."""
        try:
            return self._finish(plan, rng)
        except Dropped as d:
            self._drops[d.reason] += 1
            return None

    def _finish(self, plan: Plan, rng: np.random.Generator) -> WorldSample:
        self._counts["attempted"] += 1
        main = plan.main
        contexts = [str(c) for c in rng.choice(CONTEXTS, size=2, replace=False)]
        backgrounds = [self._background(c, rng) for c in contexts]
        images = [
            Image.fromarray(np.asarray(self.filler.fill(comp.rgba, comp.mask, desc), dtype=np.uint8), "RGB")
            for comp, desc in zip(plan.compositions, backgrounds)
        ]
        template = self.describe(main, rng)
        description, refined = self._refined(template, main, rng)

        obj_scores, bg_scores = [], []
        color = main.identity.color if main.identity is not None else None
        for img, comp, ctx, bg in zip(images, plan.compositions, contexts, backgrounds):
            obj_scores.append(self.scorer.score(img, description, QCRecord("object", comp, ctx, main.facts, color)))
            bg_scores.append(self.scorer.score(img, bg, QCRecord("background", comp, ctx, main.facts, color)))
        for name, scores in (("object_score", obj_scores), ("background_score", bg_scores)):
            if min(scores) < self.threshold:
                raise Dropped(name, f"{min(scores):.3f} < {self.threshold}")

        mains = [c.main for c in plan.compositions]
        where = [_where(m, self.canvas) for m in mains]
        if main.identity is not None:
            instruction = INSTRUCTIONS[int(rng.integers(len(INSTRUCTIONS)))]
            acts = [m.pose.action if m.pose else "standing" for m in mains]
            answer = (
                f"{_sentence(description)} In Image 1 it is {acts[0]} {where[0]}; "
                f"in Image 2 it is {acts[1]} {where[1]}."
            )
        else:
            instruction = OBJECT_INSTRUCTIONS[int(rng.integers(len(OBJECT_INSTRUCTIONS)))]
            answer = f"Both images show {description}. In Image 1 it is {where[0]}; in Image 2 it is {where[1]}."

        scale = self.out_size / self.canvas
        out_images = [im.resize((self.out_size, self.out_size), Image.LANCZOS) for im in images]

        def out_box(b: Box) -> list[int]:
            return [int(b[0] * scale), int(b[1] * scale), int(np.ceil(b[2] * scale)), int(np.ceil(b[3] * scale))]

        objects_meta = [
            [
                {
                    "role": o.role,
                    "key": o.group.key,
                    "label": o.group.label,
                    "box": out_box(o.box),
                    "canvas_box": list(o.box),
                    "visible_fraction": round(o.visible_fraction, 4),
                    "action": o.pose.action if o.pose else None,
                    "source": o.source,
                }
                for o in comp.objects
            ]
            for comp in plan.compositions
        ]
        meta = {
            "task": "mmlink_synth",
            "main": main.key,
            "main_label": main.label,
            "main_boxes": [out_box(m.box) for m in mains],
            "objects": objects_meta,
            "distractors": [[d.key for d in ds] for ds in plan.distractors],
            "contexts": contexts,
            "backgrounds": backgrounds,
            "description": description,
            "refined": refined,
            "qc": {"object": [round(s, 4) for s in obj_scores], "background": [round(s, 4) for s in bg_scores],
                   "score": round(min(obj_scores + bg_scores), 4), "threshold": self.threshold},
            "canvas": self.canvas,
            "components": self.components(),
        }  # fmt: skip
        self._counts["kept"] += 1
        return WorldSample(
            scenes=[self.scene_of(c, ctx, bg) for c, ctx, bg in zip(plan.compositions, contexts, backgrounds)],
            conversations=[
                {"from": "human", "value": f"Image 1: <image>\nImage 2: <image>\n{instruction}"},
                {"from": "gpt", "value": answer},
            ],
            meta=meta,
            images=out_images,
        )

    def make(self, rng: np.random.Generator, split: str) -> WorldSample | None:
        """One sample (two images of the same main object), or None when segmentation or QC rejects it."""
        try:
            plan = self.plan(rng, split)
        except Dropped as d:
            self._counts["attempted"] += 1
            self._drops[d.reason] += 1
            return None
        return self.finish(plan, rng)

    # ------------------------------------------------------------------ reporting

    def components(self) -> dict[str, str]:
        return {
            k: type(v).__name__
            for k, v in (("groups", self.groups), ("segmenter", self.segmenter), ("filler", self.filler),
                         ("llm", self.llm), ("scorer", self.scorer))
        }  # fmt: skip

    def report(self) -> dict[str, Any]:
        attempted = self._counts["attempted"]
        return {
            "attempted": attempted,
            "kept": self._counts["kept"],
            "dropped": dict(sorted(self._drops.items())),
            "keep_rate": round(self._counts["kept"] / attempted, 4) if attempted else None,
            "fallbacks": dict(sorted(self._fallbacks.items())),
            "threshold": self.threshold,
            "components": self.components(),
        }


# ============================================================================ the task

MAX_TRIES = 20
_DEFAULT: MmlinkSynthesizer | None = None


def default_synthesizer() -> MmlinkSynthesizer:
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = MmlinkSynthesizer()
    return _DEFAULT


def make_until_kept(
    synth: MmlinkSynthesizer, rng: np.random.Generator, split: str, max_tries: int = MAX_TRIES
) -> WorldSample:
    """``synth.make`` with the same random stream until QC keeps a sample; RuntimeError after ``max_tries``."""
    for _ in range(max_tries):
        sample = synth.make(rng, split)
        if sample is not None:
            return sample
    raise RuntimeError(
        f"MmLINK synthesis: quality control rejected {max_tries} samples in a row (threshold {synth.threshold}); "
        f"report: {synth.report()}"
    )


if "mmlink_synth" not in TASKS:

    @TASKS.register("mmlink_synth")
    def mmlink_synth(rng: np.random.Generator, split: str) -> WorldSample:
        """The MmLINK 2-step synthesis with the offline defaults (world characters, alpha masks, procedural
        backgrounds, template text, scene-graph QC), retried until a sample passes QC."""
        return make_until_kept(default_synthesizer(), rng, split)


__all__ = [
    "FILLERS", "GROUP_SOURCES", "SCORERS", "SEGMENTERS", "AlphaSegmenter", "BackgroundFiller",
    "ClipScorer", "Composition", "Cutout", "Cv2InpaintFiller", "DiffusersInpaintFiller", "Dropped", "GrabCutSegmenter",
    "GroupSource", "ImageFolderGroups", "MmlinkSynthesizer", "NoMoreGroups", "ObjectGroup", "PastedObject",
    "Plan", "ProceduralFiller", "QCRecord", "SceneGraphScorer", "SegmentAnythingSegmenter", "Segmenter",
    "SimilarityScorer", "View", "WorldGroups", "build", "compose", "context_of", "cut_out", "identity_facts",
    "keeps_facts", "layout", "make_until_kept", "mentions", "template_background",
]  # fmt: skip

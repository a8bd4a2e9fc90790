"""The MmLINK synthesizer: `MmlinkSynthesizer` runs step 1 (groups, segmentation, composition), step 2 (background
text and filling, annotation) and quality control, and counts what it keeps and drops; `make_until_kept` retries
with the same random stream until a sample passes QC (the ``mmlink_synth`` task, `mmlink.data.tasks.synthesis`)."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mmlink.data.mmlink_synth.base import FILLERS, GROUP_SOURCES, SCORERS, SEGMENTERS, Box, _has_cv2, build
from mmlink.data.mmlink_synth.composition import Composition, Cutout, compose, cut_out, layout
from mmlink.data.mmlink_synth.facts import context_of, keeps_facts
from mmlink.data.mmlink_synth.fill import BackgroundFiller, ProceduralFiller
from mmlink.data.mmlink_synth.groups import GroupSource, ImageFolderGroups, NoMoreGroups, ObjectGroup, View
from mmlink.data.mmlink_synth.quality import QCRecord, SimilarityScorer
from mmlink.data.mmlink_synth.segment import Segmenter
from mmlink.data.mmlink_synth.text import (
    _PEOPLE,
    BACKGROUND_HINTS,
    BACKGROUND_PROMPT,
    INSTRUCTIONS,
    OBJECT_INSTRUCTIONS,
    REFINE_PROMPT,
    _clean,
    _sentence,
    _where,
    template_background,
)
from mmlink.data.world.scene import CONTEXTS, Character, Pose, Scene
from mmlink.data.world.text import describe_identity
from mmlink.textllm import TemplateLLM, TextLLM, make_backend

if TYPE_CHECKING:
    from mmlink.data.tasks import WorldSample


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
    """The MmLINK 2-step pipeline with quality control (see the package docstring, `mmlink.data.mmlink_synth`).

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
        # Imported here, not at module level: mmlink.data.tasks imports this package (to register `mmlink_synth`),
        # never the reverse while either is being imported.
        from mmlink.data.tasks import WorldSample

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


# ============================================================================ retrying (the ``mmlink_synth`` task)

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

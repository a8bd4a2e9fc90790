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

The task ``mmlink_synth`` (in `mmlink.data.tasks.TASKS`, registered by `mmlink.data.tasks.synthesis`) runs the
offline defaults and retries with the same random stream until a sample passes QC. Registration is one-way:
`mmlink.data.tasks` imports this package; this package does not import `mmlink.data.tasks` when it is imported.

Modules: ``base`` (registries, `build`, shared helpers) · ``facts`` (fact words, shared by annotation and QC) ·
``groups`` · ``segment`` · ``composition`` (step 1) · ``text`` (prompts, template backgrounds, annotation text) ·
``fill`` (step 2) · ``quality`` (QC scorers) · ``pipeline`` (`MmlinkSynthesizer`, `make_until_kept`).
"""


from __future__ import annotations

from mmlink.data.mmlink_synth.base import FILLERS, GROUP_SOURCES, SCORERS, SEGMENTERS, build
from mmlink.data.mmlink_synth.composition import Composition, Cutout, PastedObject, compose, cut_out, layout
from mmlink.data.mmlink_synth.facts import context_of, identity_facts, keeps_facts, mentions
from mmlink.data.mmlink_synth.fill import BackgroundFiller, Cv2InpaintFiller, DiffusersInpaintFiller, ProceduralFiller
from mmlink.data.mmlink_synth.groups import GroupSource, ImageFolderGroups, NoMoreGroups, ObjectGroup, View, WorldGroups
from mmlink.data.mmlink_synth.pipeline import Dropped, MmlinkSynthesizer, Plan, make_until_kept
from mmlink.data.mmlink_synth.quality import ClipScorer, QCRecord, SceneGraphScorer, SimilarityScorer
from mmlink.data.mmlink_synth.segment import AlphaSegmenter, GrabCutSegmenter, SegmentAnythingSegmenter, Segmenter
from mmlink.data.mmlink_synth.text import template_background

# Public names of the single module this package replaced that are not in __all__: still importable from here.
from mmlink.data.mmlink_synth.base import Box  # noqa: F401
from mmlink.data.mmlink_synth.facts import fact_regex  # noqa: F401
from mmlink.data.mmlink_synth.groups import IMAGE_EXTENSIONS  # noqa: F401
from mmlink.data.mmlink_synth.pipeline import MAX_TRIES, default_synthesizer  # noqa: F401
from mmlink.data.mmlink_synth.text import (  # noqa: F401
    BACKGROUND_HINTS,
    BACKGROUND_PROMPT,
    INSTRUCTIONS,
    OBJECT_INSTRUCTIONS,
    REFINE_PROMPT,
)

__all__ = [
    "FILLERS", "GROUP_SOURCES", "SCORERS", "SEGMENTERS", "AlphaSegmenter", "BackgroundFiller",
    "ClipScorer", "Composition", "Cutout", "Cv2InpaintFiller", "DiffusersInpaintFiller", "Dropped", "GrabCutSegmenter",
    "GroupSource", "ImageFolderGroups", "MmlinkSynthesizer", "NoMoreGroups", "ObjectGroup", "PastedObject",
    "Plan", "ProceduralFiller", "QCRecord", "SceneGraphScorer", "SegmentAnythingSegmenter", "Segmenter",
    "SimilarityScorer", "View", "WorldGroups", "build", "compose", "context_of", "cut_out", "identity_facts",
    "keeps_facts", "layout", "make_until_kept", "mentions", "template_background",
]  # fmt: skip

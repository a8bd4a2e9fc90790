"""Zero-shot multiple-choice VQA over one to three images: one question, exactly four labelled options.

Question families (drawn uniformly): the setting of image k (``context``), the color of the only thing of a kind
in image k (``color``), how many things of a kind image k holds (``count``) and, over two or three images, which
image shows a kind of thing (``which_image``, padded with "None of them" / "All of them").

Every answer is read off the scene graphs, and a question about things is only asked when it cannot be misread
from the rendered pixels: each thing it is about keeps at least `MIN_VISIBLE` of its footprint after occlusion,
and no kind is asked about in a setting whose painted scenery already shows lookalikes (background trees in a
forest). The answer itself is drawn uniformly within a family and the options are shuffled, so neither the answer
value nor its position carries a prior. Recorded in ``meta``: ``answer``, ``choices`` (prompt order),
``question_type``, ``image_index`` (1-based, for questions about one image) and ``kind`` (for thing questions).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from mmlink.data.tasks import TASKS, WorldSample
from mmlink.data.world.edit import fresh_identities, new_thing
from mmlink.data.world.render import render_object, render_with_masks
from mmlink.data.world.scene import COLORS, CONTEXT_THINGS, CONTEXTS, THINGS, Identity, Scene, sample_scene
from mmlink.data.world.text import NUMBER_WORDS, choose, conversation, image_prompt, plural, with_article

VQA_TYPES = ("context", "color", "count", "which_image")
N_OPTIONS = 4
# Counts asked about; the option set is always these four words, so the set itself never hints at the answer.
COUNT_RANGE = (1, 2, 3, 4)
NONE_OPTION = "None of them"
ALL_OPTION = "All of them"

# Kinds the painted background of a setting already shows (forest and snow scenery has trees, the city skyline
# has buildings): asking about them there would have two right answers, so those pairs are never asked.
SCENERY_LOOKALIKES: dict[str, frozenset[str]] = {
    "forest": frozenset({"tree"}),
    "snow": frozenset({"tree"}),
    "city": frozenset({"house"}),
}
# Visibility is measured on masks this size: about 2 ms a scene, and a fraction of footprint barely depends on it.
MASK_SIZE = 96
MIN_VISIBLE = 0.5  # fraction of an object's own footprint left after occlusion for it to count as visible

CONTEXT_TEMPLATES = (
    "Which setting is shown in Image {k}?",
    "What kind of scene is Image {k}?",
    "Which of these best describes the setting of Image {k}?",
)
COLOR_TEMPLATES = (
    "What color is the {kind} in Image {k}?",
    "Which color does the {kind} in Image {k} have?",
    "In Image {k}, what is the color of the {kind}?",
)
COUNT_TEMPLATES = (
    "How many {kinds} are there in Image {k}?",
    "How many {kinds} does Image {k} contain?",
    "Count the {kinds} in Image {k}. How many are there?",
)
WHICH_TEMPLATES = (
    "Which image shows {a_kind}?",
    "In which image is there {a_kind}?",
    "Which image contains {a_kind}?",
)
ANSWER_LINES = ("Answer with one of the options.", "Answer with the option's text only.")


# ---------------------------------------------------------------------------------------------------------------
# Scene helpers
# ---------------------------------------------------------------------------------------------------------------


def askable(kind: str, context: str) -> bool:
    """Whether a question about ``kind`` things can be asked of a scene set in ``context`` (no scenery lookalike)."""
    return kind not in SCENERY_LOOKALIKES.get(context, frozenset())


def kind_visible(scene: Scene, kind: str) -> bool:
    """Whether every thing of ``kind`` in ``scene`` keeps at least `MIN_VISIBLE` of its footprint in the render."""
    idx = [i for i, t in enumerate(scene.objects) if t.kind == kind]
    if not idx:
        return True
    _, masks = render_with_masks(scene, MASK_SIZE)
    for i in idx:
        footprint = int((np.asarray(render_object(scene.objects[i], MASK_SIZE).getchannel("A")) > 0).sum())
        if footprint == 0 or masks[i].sum() < MIN_VISIBLE * footprint:
            return False
    return True


def _with_kind(rng: np.random.Generator, scene: Scene, kind: str, n: int, color: str | None = None) -> Scene:
    """``scene`` with exactly ``n`` things of ``kind`` (its own ones removed, new ones placed away from the rest)."""
    scene = replace(scene, objects=tuple(o for o in scene.objects if o.kind != kind))
    for _ in range(n):
        scene = replace(scene, objects=(*scene.objects, new_thing(rng, scene, kind, color)))
    return scene


def _scene(rng: np.random.Generator, split: str, exclude: set[str], context: str | None = None,
           n_things: int | None = None) -> Scene:  # fmt: skip
    """A scene with one or two characters of ``split`` that no other image of the sample shows."""
    chars: list[Identity] = fresh_identities(rng, split, int(rng.integers(1, 3)), exclude)
    return sample_scene(rng, chars, context, n_things=int(rng.integers(1, 4)) if n_things is None else n_things)


def _options(rng: np.random.Generator, answer: str, distractors: list[str]) -> list[str]:
    """The answer and three distractors drawn from ``distractors`` (which exclude it), shuffled."""
    picked = [distractors[int(i)] for i in rng.choice(len(distractors), N_OPTIONS - 1, replace=False)]
    return _shuffled(rng, [answer, *picked])


def _shuffled(rng: np.random.Generator, options: list[str]) -> list[str]:
    return [options[int(i)] for i in rng.permutation(len(options))]


# ---------------------------------------------------------------------------------------------------------------
# Question families: each returns (scenes, question, answer, choices, extra meta) or None to draw again
# ---------------------------------------------------------------------------------------------------------------

_Question = tuple[list[Scene], str, str, list[str], dict[str, Any]]


def _context_question(rng: np.random.Generator, split: str) -> _Question:
    n_images = int(rng.integers(1, 4))
    k = int(rng.integers(1, n_images + 1))
    exclude: set[str] = set()
    answer = str(choose(rng, CONTEXTS))
    scenes = [_scene(rng, split, exclude, answer if i == k else None) for i in range(1, n_images + 1)]
    choices = _options(rng, answer, [c for c in CONTEXTS if c != answer])
    question = str(choose(rng, CONTEXT_TEMPLATES)).format(k=k)
    return scenes, question, answer, choices, {"image_index": k}


def _thing_question(rng: np.random.Generator, split: str, family: str) -> _Question | None:
    """``color`` (exactly one thing of the kind) or ``count`` (one to four) about image k."""
    n_images = int(rng.integers(1, 4))
    k = int(rng.integers(1, n_images + 1))
    exclude: set[str] = set()
    ctx = str(choose(rng, CONTEXTS))
    kind = str(choose(rng, [t for t in CONTEXT_THINGS[ctx] if askable(t, ctx)]))
    base = _scene(rng, split, exclude, ctx, n_things=int(rng.integers(0, 3)))
    if family == "color":
        answer = str(choose(rng, list(COLORS)))
        target = _with_kind(rng, base, kind, 1, answer)
        choices = _options(rng, answer, [c for c in COLORS if c != answer])
        question = str(choose(rng, COLOR_TEMPLATES)).format(kind=kind, k=k)
    else:
        n = int(choose(rng, COUNT_RANGE))
        target = _with_kind(rng, base, kind, n)
        answer = NUMBER_WORDS[n]
        choices = _shuffled(rng, [NUMBER_WORDS[m] for m in COUNT_RANGE])
        question = str(choose(rng, COUNT_TEMPLATES)).format(kinds=plural(kind), k=k)
    if not kind_visible(target, kind):
        return None
    scenes = [target if i == k else _scene(rng, split, exclude) for i in range(1, n_images + 1)]
    return scenes, question, answer, choices, {"image_index": k, "kind": kind}


def _which_image_question(rng: np.random.Generator, split: str) -> _Question | None:
    """Which of two or three images shows a kind; the answer (an image, none or all) is drawn uniformly."""
    n_images = int(rng.integers(2, 4))
    images = [f"Image {i}" for i in range(1, n_images + 1)]
    answer = str(choose(rng, [*images, NONE_OPTION, ALL_OPTION]))
    if n_images == 2:
        pads = [NONE_OPTION, ALL_OPTION]
    else:  # one pad: the answer when it is none/all, otherwise either (so the pad alone never gives it away)
        pads = [answer if answer in (NONE_OPTION, ALL_OPTION) else str(choose(rng, [NONE_OPTION, ALL_OPTION]))]
    if answer == ALL_OPTION:
        present = set(range(n_images))
    elif answer == NONE_OPTION:
        present = set()
    else:
        present = {images.index(answer)}
    kind = str(choose(rng, THINGS))
    exclude: set[str] = set()
    scenes = []
    for i in range(n_images):
        if i in present:
            ctx = str(choose(rng, [c for c in CONTEXTS if kind in CONTEXT_THINGS[c] and askable(kind, c)]))
            base = _scene(rng, split, exclude, ctx, n_things=int(rng.integers(0, 3)))
            scene = _with_kind(rng, base, kind, int(rng.integers(1, 3)))
        else:
            ctx = str(choose(rng, [c for c in CONTEXTS if askable(kind, c)]))
            scene = _with_kind(rng, _scene(rng, split, exclude, ctx), kind, 0)
        if not kind_visible(scene, kind):
            return None
        scenes.append(scene)
    choices = _shuffled(rng, [*images, *pads])
    question = str(choose(rng, WHICH_TEMPLATES)).format(a_kind=with_article(kind))
    return scenes, question, answer, choices, {"kind": kind}


@TASKS.register("vqa_options")
def vqa_options(rng: np.random.Generator, split: str) -> WorldSample:
    """Zero-shot multiple-choice VQA: setting, color, count or which-image questions over 1-3 images, 4 options."""
    qtype = str(choose(rng, VQA_TYPES))
    while True:  # a draw fails only when a thing asked about is hidden; redraw the whole question
        if qtype == "context":
            res: _Question | None = _context_question(rng, split)
        elif qtype == "which_image":
            res = _which_image_question(rng, split)
        else:
            res = _thing_question(rng, split, qtype)
        if res is not None:
            break
    scenes, question, answer, choices, extra = res
    assert len(choices) == N_OPTIONS == len(set(choices)) and answer in choices
    instruction = f"{question}\nOptions: {', '.join(choices)}\n{choose(rng, ANSWER_LINES)}"
    meta = {"answer": answer, "choices": choices, "question_type": qtype, **extra}
    return WorldSample(scenes, conversation(image_prompt(len(scenes), instruction), answer), meta)


__all__ = ["MIN_VISIBLE", "SCENERY_LOOKALIKES", "VQA_TYPES", "askable", "kind_visible", "vqa_options"]

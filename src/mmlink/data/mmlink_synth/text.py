"""Step 2 of the MmLINK synthesis, text: the text-LLM prompts (background description, description rewrite), the
template backgrounds written without a model, and the annotation's instructions and phrasing."""

from __future__ import annotations

import re

import numpy as np

from mmlink.data.mmlink_synth.composition import PastedObject
from mmlink.data.world.scene import Character, Pose, location
from mmlink.data.world.text import choose
from mmlink.textllm import load_prompt


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
    place = choose(rng, _BG_PLACES[context])
    detail = choose(rng, _BG_DETAILS[context])
    frame = choose(rng, _BG_FRAMES)
    return frame.format(A=_an(place).capitalize(), a=_an(place), place=place, detail=detail)


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

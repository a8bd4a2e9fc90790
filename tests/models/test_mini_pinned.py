"""Pinned answers of the shipped trained models: fixed pictures, greedy decoding in float32, exact strings.

The presets' own tests check that a trained model says *something*; these check that it says what it said when the
weights were shipped, so a change to loading, the processor, SAM/CMAA, LoRA merging or the decoding loop that alters
a single token fails here. Each model is prepared as ``mmlink generate --dtype float32`` prepares it
(`mmlink.models.decoding.ready_for_inference`: eval mode, no quantization, the LLM's layers packed) and runs on one
thread (the answers are the same on two; one is faster on the small CPU machine).

The strings were recorded on a 2-core Intel Xeon (AVX512) with torch 2.13 CPU and checked unchanged under
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``. float32 greedy decoding is deterministic on a given machine;
another CPU family's kernels could still flip a near-tie between two tokens. If one of these fails after a change
that was *meant* to change answers (new weights, a new prompt format), record the new strings and say why in the
commit; otherwise the failure is the bug this file exists to catch.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmlink.generate import answer, make_generation_config
from mmlink.models import load
from mmlink.models.decoding import ready_for_inference

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "images"
BEACH, FOREST = EXAMPLES / "red_ball_beach.png", EXAMPLES / "red_ball_forest.png"
COMMON = "Image 1: <image>\nImage 2: <image>\nWhat is common to both pictures?"
DESCRIBE = "Image 1: <image>\nDescribe the picture."
GREEDY_32 = make_generation_config(max_new_tokens=32)

# --- what the models said when these were recorded -------------------------------------------------------------------
MINI_COMMON = ("A brown square is on the left and a pink ball is on the right. In the first picture, it is on the left "
               "and in the second picture,")
MINI_DESCRIBE = ("A red ball is on the left, a red square is on the right, a blue square is in the top left and a "
                 "green square is in the top")
MINI_WORLD = "In the first image, the character is wearing a hat and in the second image, it is wearing a bow."
CMAA_COMMON = "A green square appears in the first image and a pink ball appears in the second."
CMAA_DESCRIBE = ("A red ball is on the left, a red square is on the right, a blue square is in the middle, and a "
                 "green square is in the top")
CADVI_WORLD = ("The sky is now blue, and the character is a green-colored character with a bow in the centre. The "
               "character is wearing a blue and white stripes.")
# the world item: change captioning, test split, seed 0, sample 0 (`mmlink synth change_caption --n 1 --split test`)
WORLD_PROMPT = "Image 1: <image>\nImage 2: <image>\nWhat has changed between the two images?"
WORLD_REFERENCE = "A red ball has appeared on the left."


def _ready(preset: str):
    model, processor = load(preset)
    ready_for_inference(model, torch.float32, "none", True)  # what `mmlink generate --dtype float32` does
    assert next(model.parameters()).dtype == torch.float32
    return model, processor


@pytest.fixture(scope="module")
def mini():
    return _ready("mini")  # read-only below: no test changes the model or its processor


@pytest.fixture(scope="module")
def world_item(tmp_path_factory):
    """(prompt, image paths) of a fixed world test item, rendered at 224 px."""
    from mmlink.data.synth import synthesize

    out = tmp_path_factory.mktemp("world") / "change_caption"
    synthesize("change_caption", out, 1, "test", 0, image_size=224, progress=False)
    (record,) = [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]
    human, gpt = record["conversations"]
    # the item itself is pinned too: a changed generator would make the answer pins below meaningless
    assert (record["id"], human["value"], gpt["value"]) == ("change_caption-test-s0-000000", WORLD_PROMPT,
                                                            WORLD_REFERENCE)
    return human["value"], [out / p for p in record["image"]]


@pytest.mark.parametrize(
    "prompt, images, expected",
    [(COMMON, [BEACH, FOREST], MINI_COMMON), (DESCRIBE, [BEACH], MINI_DESCRIBE)],
    ids=["two-images", "one-image"],
)
def test_mini_answers_the_example_pictures(mini, prompt, images, expected):
    model, processor = mini
    assert answer(model, processor, prompt, images, GREEDY_32) == [expected]


def test_mini_answers_a_padded_batch_as_it_answers_each_prompt(mini):
    """Two prompts of different lengths and image counts, left-padded into one batch: the same strings."""
    model, processor = mini
    got = answer(model, processor, [COMMON, DESCRIBE], [[BEACH, FOREST], [BEACH]], GREEDY_32)
    assert got == [MINI_COMMON, MINI_DESCRIBE]


def test_mini_answers_a_world_test_item(mini, world_item):
    model, processor = mini
    prompt, images = world_item
    assert answer(model, processor, prompt, images, GREEDY_32) == [MINI_WORLD]


def test_mini_answers_the_presets_test_prompt(mini):
    """The prompt and budget of `tests/models/test_presets.py::test_mini_generates_offline_from_two_images`, which
    checks only that the answer is not empty."""
    model, processor = mini
    got = answer(model, processor, "Image 1: <image>\nImage 2: <image>\nWhat is common?", [BEACH, FOREST],
                 make_generation_config(max_new_tokens=8))
    assert got == ["A red square in the first image is"]


def test_mini_cmaa_answers_the_example_pictures():
    model, processor = _ready("mini-cmaa")
    got = answer(model, processor, [COMMON, DESCRIBE], [[BEACH, FOREST], [BEACH]], GREEDY_32)
    assert got == [CMAA_COMMON, CMAA_DESCRIBE]


def test_mini_cadvi_answers_a_world_test_item(world_item):
    model, processor = _ready("mini-cadvi")  # the LoRA adapters of both phases merged at load
    prompt, images = world_item
    assert answer(model, processor, prompt, images, GREEDY_32) == [CADVI_WORLD]


def test_mini_llava_answers_the_presets_test_prompt():
    """The prompt and budget of `tests/models/test_presets.py::test_the_trained_mini_llava_ships_its_projector_alone_
    and_answers` (not empty, it checks): `mini-llava` is only Stage-1 aligned and answers with a list skeleton."""
    model, processor = _ready("mini-llava")
    got = answer(model, processor, "<image>\nDescribe the picture.", [BEACH], make_generation_config(max_new_tokens=12))
    assert got == ["*  1.\n\n*  2."]

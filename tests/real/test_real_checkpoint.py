"""`hub`: a real checkpoint in a local directory (``MMLINK_REAL_CHECKPOINT``: InstructBLIP-Vicuna/Flan-T5 or
LLaVA-1.5 in transformers' layout, e.g. a download of ``Salesforce/instructblip-vicuna-7b``), checked against
transformers on the same inputs, then used the mmlink way. Run: ``MMLINK_REAL_CHECKPOINT=/ckpt/instructblip-vicuna-7b
pytest -m hub tests/real`` (CUDA when present, bf16 there; float32 on a CPU — a 7B model then needs ~30 GB RAM)."""

import os

import pytest
import torch

from checks import model_type, processor_batch, reference_parity, sam_is_base_at_init, two_images

pytestmark = pytest.mark.hub
PATH = os.environ.get("MMLINK_REAL_CHECKPOINT")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPE = torch.bfloat16 if DEVICE == "cuda" else torch.float32


@pytest.fixture(scope="module")
def path():
    if not PATH:
        pytest.skip("set MMLINK_REAL_CHECKPOINT to a local InstructBLIP or LLaVA-1.5 directory")
    if model_type(PATH) not in ("instructblip", "llava"):
        pytest.skip(f"{PATH}: model_type {model_type(PATH)!r} is neither instructblip nor llava")
    return PATH


def test_logits_and_greedy_tokens_match_transformers(path):
    result = reference_parity(path, processor_batch(path), DEVICE, DTYPE, max_new_tokens=20)
    print(result["kind"], "max |logit difference|", result["max_abs_diff"])


def test_answers_over_two_images(path):
    text = two_images(path, DEVICE, DTYPE, max_new_tokens=30)
    print("two images:", text)
    assert text.strip()


def test_sam_at_initialisation_is_the_checkpoint(path):
    if model_type(path) != "instructblip":
        pytest.skip("SAM belongs to the Q-Former family")
    assert sam_is_base_at_init(path, DEVICE, DTYPE) == 0.0

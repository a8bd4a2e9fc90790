"""The real-checkpoint and CUDA checks (`tests/real/checks.py`) run on `tiny` directories on the CPU, so the code the
`hub` and `gpu` tests run is exercised by the default suite."""

import pytest

from checks import (batch_matches_single, reference_parity, sam_is_base_at_init, stage2_step, tiny_reference_dir,
                    two_images)
from mmlink.data.synth import synthesize
from mmlink.models import load

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("kind", ["instructblip", "llava"])
def test_reference_parity_on_a_tiny_hub_layout(tmp_path, kind):
    path, batch = tiny_reference_dir(kind, tmp_path / kind)
    result = reference_parity(path, batch)
    assert result["kind"] == kind and result["max_abs_diff"] < 1e-4 and len(result["tokens"][0]) >= 1


def test_two_images_sam_and_batching_on_tiny():
    assert isinstance(two_images("tiny"), str)
    assert isinstance(two_images("tiny-llava"), str)
    assert sam_is_base_at_init("tiny") == 0.0
    model, processor = load("tiny")
    assert len(batch_matches_single(model.eval(), processor)) == 3


def test_stage2_step_on_tiny(tmp_path, fresh_accelerate_state):
    synthesize("mmlink_pair", tmp_path / "data", 4, "train", 0, image_size=32, progress=False)
    result = stage2_step(tmp_path / "data" / "data.jsonl", tmp_path / "run", mixed_precision="no")
    assert result["changed"] >= 1

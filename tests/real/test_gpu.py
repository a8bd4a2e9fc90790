"""`gpu`: mmlink on a CUDA device — bf16 and fp16 generation, ``device_map="auto"``, batched generation equal to one
prompt at a time, SAM on and off, one step of the Stage-2 recipe — on `tiny` and on `mini` (its weights ship in the
package; no download). Run: ``pytest -m gpu tests/real``."""

import pytest
import torch

from checks import batch_matches_single, sam_is_base_at_init, stage2_step, two_images
from mmlink.data.synth import synthesize
from mmlink.models import load

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
PRESETS = ["tiny", "mini"]
# Batched and single generation are compared token for token: full fp32 (no TF32) in matmuls and convolutions.
# In bf16 a padded batch rounds differently from a lone prompt and greedy answers may part after a few tokens.
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_two_image_generation_in_half_precision(preset, dtype):
    text = two_images(preset, "cuda", dtype, max_new_tokens=16)
    if preset == "mini":  # trained: says something
        assert text.strip()


@pytest.mark.parametrize("preset", PRESETS)
def test_device_map_auto_places_the_model_on_the_gpu(preset, tmp_path):
    model, processor = load(preset)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again, processor = load(tmp_path, device_map="auto", dtype=torch.float32)
    assert {p.device.type for p in again.parameters()} == {"cuda"}
    assert len(batch_matches_single(again.eval(), processor)) == 3


@pytest.mark.parametrize("preset", PRESETS)
def test_batched_generation_equals_one_at_a_time_on_cuda(preset):
    model, processor = load(preset, dtype=torch.float32)
    batch_matches_single(model.to("cuda").eval(), processor)


@pytest.mark.parametrize("preset", PRESETS)
def test_sam_on_and_off(preset):
    sam_is_base_at_init("tiny" if preset == "tiny" else "mini-stage1", "cuda", torch.bfloat16)
    on, off = (two_images(preset, "cuda", torch.bfloat16, sam_mode=m) for m in ("bsg_adaptive", "none"))
    assert isinstance(on, str) and isinstance(off, str)


def test_one_stage2_training_step_on_cuda(tmp_path):
    synthesize("mmlink_pair", tmp_path / "data", 4, "train", 0, image_size=64, progress=False)
    result = stage2_step(tmp_path / "data" / "data.jsonl", tmp_path / "run", mixed_precision="bf16")
    assert result["summary"] is not None

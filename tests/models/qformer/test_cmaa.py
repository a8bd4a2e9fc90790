"""VisLingInstruct's CMAA in the Q-Former family: placeholders per image follow the config through the processor and
loading, only the projection (and SAM) get gradients with CMAA and SAM on together, it saves and reloads, CMAA off
leaves the model as it was (parity: test_modeling.py)."""

from __future__ import annotations

import pytest
import torch
from huggingface_hub.errors import StrictDataclassFieldValidationError
from PIL import Image
from torch.testing import assert_close

from mmlink.models import load
from mmlink.models.loading import load_checkpoint
from mmlink.models.presets import tiny_config

Q = 4


def _images(k, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [Image.fromarray((torch.rand(32, 32, 3, generator=g) * 255).byte().numpy()) for _ in range(k)]


@pytest.mark.parametrize("cmaa,extra", [("none", 0), ("per_query", Q), ("pooled", 1), ("released", 2)])
def test_placeholders_per_image_follow_the_config(cmaa, extra):
    model, processor = load("tiny", cmaa=cmaa)
    assert model.config.image_seq_length == processor.image_seq_length == Q + extra
    batch = processor(["Image 1: <image>\nImage 2: <image>\nWhat differs?", "<image>\nDescribe."],
                      [_images(2), _images(1, 1)])
    assert (batch["input_ids"] == model.config.image_token_index).sum() == 3 * (Q + extra)
    with torch.no_grad():
        out = model(**batch)
    assert out.image_features.shape == (3, Q + extra, model.config.text_config.hidden_size)
    assert out.query_output.shape[:2] == (3, Q)


def test_cmaa_and_sam_together_train_only_the_projection_and_sam():
    model, processor = load("tiny", cmaa="per_query", sam_mode="bsg_adaptive")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.sam.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    model.set_trainable()
    model.train()
    batch = processor(["Image 1: <image>\nImage 2: <image>\nImage 3: <image>\nCompare."], [_images(3)],
                      targets=["They differ."])
    model(**batch).loss.backward()
    for name, p in model.named_parameters():
        assert (p.grad is not None) == name.startswith(("sam.", "language_projection.")), name
    assert model.language_projection.weight.grad.abs().sum() > 0
    assert model.sam.guide_proj.weight.grad.abs().sum() > 0


def test_cmaa_changes_the_image_tokens_only_by_what_it_appends():
    base, processor = load("tiny")
    cmaa, _ = load("tiny", cmaa="per_query")
    cmaa.load_state_dict(base.state_dict())  # CMAA adds no parameter
    pixels = processor(["<image>\nDescribe."], [_images(1)])
    ids = processor.qformer_tokenizer(["Describe."], return_tensors="pt")
    args = (pixels["pixel_values"], ids["input_ids"], ids["attention_mask"], torch.tensor([0]))
    with torch.no_grad():
        _, plain = base.get_image_features(*args)
        _, more = cmaa.get_image_features(*args)
    assert_close(more[:, :Q], plain)  # the query tokens are those of the base model
    assert more.shape[1] == 2 * Q and not torch.allclose(more[:, Q:], plain)


def test_save_and_reload_keep_cmaa(tmp_path):
    model, processor = load("tiny", cmaa="released", cmaa_text="embedding")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    again, proc = load_checkpoint(tmp_path)
    assert (again.config.cmaa, again.config.cmaa_text, proc.image_seq_length) == ("released", "embedding", Q + 2)
    off, proc_off = load_checkpoint(tmp_path, cmaa="none")  # an override re-sizes the processor's placeholders too
    assert off.config.image_seq_length == proc_off.image_seq_length == Q


def test_cmaa_settings_are_validated():
    with pytest.raises(StrictDataclassFieldValidationError, match="cmaa"):
        tiny_config(cmaa="all")
    with pytest.raises(StrictDataclassFieldValidationError, match="cmaa_text"):
        tiny_config(cmaa_text="tokens")
    assert tiny_config().cmaa == "none" and tiny_config().image_seq_length == Q

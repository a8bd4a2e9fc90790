"""mmlink.data.mmlink_synth.quality: the scene-graph scorer (facts and visibility against the composition record) and
the CLIP scorer (a tiny random CLIP saved to a directory, and a fake model for the cosine mapping and the crop)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mmlink.data.mmlink_synth import ClipScorer, MmlinkSynthesizer, QCRecord, SceneGraphScorer, identity_facts
from mmlink.data.world.scene import COLORS, Identity


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_scene_graph_scorer_counts_facts_and_visibility(hidden_plan):
    synth = MmlinkSynthesizer()
    plan = hidden_plan(synth, how="clean")
    comp = plan.compositions[1]
    ident = Identity("round", "blue", "plain", "none", "hat")
    scorer = SceneGraphScorer()
    img = Image.fromarray(comp.rgba[..., :3])
    rec = QCRecord("object", comp, None, identity_facts(ident), "blue")
    full = "a round blue character wearing a hat"
    assert identity_facts(ident) == ("blue", "round", "hat")
    # the pixels are the sampled main object's, not blue: the colour fact is mentioned but not seen
    blue_seen = scorer.color_fraction(img, comp.main, "blue") >= scorer.min_color
    assert scorer.score(img, full, rec) == pytest.approx(1.0 if blue_seen else 2 / 3)
    recolored = comp.rgba.copy()
    recolored[comp.main.mask, :3] = COLORS["blue"]
    img_blue = Image.fromarray(recolored[..., :3])
    assert scorer.score(img_blue, full, rec) == 1.0
    assert scorer.score(img_blue, "a round blue character", rec) == pytest.approx(2 / 3)
    assert scorer.score(img_blue, "something", rec) == 0.0
    bg = QCRecord("background", comp, "beach")
    assert scorer.score(img, "A sandy beach with soft sand.", bg) == 1.0
    assert scorer.score(img, "A green forest.", bg) == 0.0
    with pytest.raises(ValueError, match="record"):
        scorer.score(img, full)


def _tiny_clip_dir(tmp_path):
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    from mmlink.models.presets import byte_tokenizer

    common = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
    text = {**common, "vocab_size": 260, "max_position_embeddings": 128, "bos_token_id": 1, "eos_token_id": 2,
            "pad_token_id": 0}  # fmt: skip
    vision = {**common, "image_size": 32, "patch_size": 8}
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(tmp_path)
    byte_tokenizer().save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tmp_path)
    return tmp_path


def test_clip_scorer_tiny_random_model_from_a_directory(tmp_path):
    scorer = ClipScorer(_tiny_clip_dir(tmp_path))
    synth = MmlinkSynthesizer(scorer=scorer, threshold=0.0)
    s = synth.make(rng(0), "train")
    assert s is not None
    for v in s.meta["qc"]["object"] + s.meta["qc"]["background"]:
        assert 0.0 <= v <= 1.0
    with pytest.raises(FileNotFoundError, match="CLIP model directory"):
        ClipScorer(tmp_path / "missing")


def test_clip_scorer_mapping_and_crop_with_a_fake_model():
    class Out:
        def __init__(self, t):
            self.pooler_output = t

    class FakeClip(torch.nn.Module):
        config = None

        def get_image_features(self, pixel_values):
            return Out(torch.tensor([[1.0, 0.0]]))

        def get_text_features(self, input_ids, attention_mask):
            cos = 0.25  # cosine 0.25 with the image features
            return Out(torch.tensor([[cos, (1 - cos**2) ** 0.5]]))

    seen = []

    def image_processor(images, return_tensors):
        seen.append(images.size)
        return {"pixel_values": torch.zeros(1, 3, 4, 4)}

    def tokenizer(text, return_tensors, truncation, max_length):
        return {"input_ids": torch.ones(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3, dtype=torch.long)}

    scorer = ClipScorer(model=FakeClip(), tokenizer=tokenizer, image_processor=image_processor, low=0.15, high=0.35)
    comp = MmlinkSynthesizer().plan(rng(0), "train").compositions[0]
    img = Image.new("RGB", (512, 512))
    assert scorer.score(img, "x") == pytest.approx(0.5)
    scorer.score(img, "x", QCRecord("object", comp))
    x0, y0, x1, y1 = comp.main.box
    assert seen[-1] == (x1 - x0, y1 - y0)  # the object check looks at the main object only
    assert (
        ClipScorer(model=FakeClip(), tokenizer=tokenizer, image_processor=image_processor, low=0.3, high=0.4).score(
            img, "x"
        )
        == 0.0
    )

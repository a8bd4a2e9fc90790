"""Every registered vision tower plugs into the Q-Former family behind ``patch_features -> (n, P, D)``."""

from __future__ import annotations

import pytest
import torch

from mmlink.models.presets import tiny_config
from mmlink.models.qformer import MmlinkQFormerForConditionalGeneration
from mmlink.models.vision import VISION_TOWERS, build_vision_tower

TOWERS = {
    "instructblip_vision_model": (
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32, patch_size=8),
        16 + 1,  # patches + CLS
    ),
    "clip_vision_model": (
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
        16 + 1,
    ),
    "siglip_vision_model": (
        dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8),
        16,
    ),
    "mmlink_efficientnet_lite": (dict(image_size=64), 4),  # 64 px / stride 32 = 2x2 map
}


def test_every_registered_tower_is_covered():
    assert set(VISION_TOWERS.names()) == set(TOWERS)


@pytest.mark.parametrize("model_type", sorted(TOWERS))
def test_tower_in_the_full_model(model_type):
    vision, patches = TOWERS[model_type]
    config = tiny_config(vision_config={"model_type": model_type, **vision})
    size = vision["image_size"]
    model = MmlinkQFormerForConditionalGeneration(config).eval()
    pixel_values = torch.randn(3, 3, size, size)
    feats = model.vision_model.patch_features(pixel_values)
    assert feats.shape == (3, patches, config.vision_config.hidden_size)
    q = config.num_query_tokens
    input_ids = torch.tensor([[1] + [260] * (2 * q) + [40], [0] * (q - 1) + [1, 41] + [260] * q + [40]])
    with torch.no_grad():
        out = model(pixel_values=pixel_values, qformer_input_ids=torch.ones(3, 4, dtype=torch.long), input_ids=input_ids)
    assert out.logits.shape == (2, input_ids.shape[1], 260)
    assert out.query_output.shape == (3, q, 32)
    assert torch.isfinite(out.logits).all()


def test_penultimate_layer_features_for_clip():
    vision, _ = TOWERS["clip_vision_model"]
    config = tiny_config(vision_config={"model_type": "clip_vision_model", **vision}, vision_feature_layer=-2)
    tower = build_vision_tower(config.vision_config, -2).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        hidden = tower(pixel_values=x, output_hidden_states=True).hidden_states
        assert torch.equal(tower.patch_features(x), hidden[-2])


def test_unknown_tower_lists_valid_names():
    from transformers import BertConfig

    with pytest.raises(ValueError, match="valid names: .*clip_vision_model"):
        build_vision_tower(BertConfig())


def test_color_histograms_are_per_cell_fractions_in_the_right_bins():
    from mmlink.models.vision import EfficientNetLiteVisionConfig

    config = EfficientNetLiteVisionConfig(image_size=64, color_bins=4)
    assert config.hidden_size == 1280 + 64
    tower = build_vision_tower(config).eval()
    mean, std = torch.tensor(config.image_mean).view(3, 1, 1), torch.tensor(config.image_std).view(3, 1, 1)
    rgb = torch.zeros(3, 64, 64)
    rgb[0, :, :32] = 1.0  # left half pure red, right half black
    rgb[:, 48:, 32:] = 0.6  # bottom-right quarter of the right half mid-gray
    pixel_values = ((rgb - mean) / std)[None]
    hist = tower.color_histograms(pixel_values, (2, 2))  # (1, 64, 2, 2)
    assert hist.shape == (1, 64, 2, 2)
    assert torch.allclose(hist.sum(1), torch.ones(1, 2, 2))
    red, black, gray = (3 * 4 + 0) * 4 + 0, 0, (2 * 4 + 2) * 4 + 2
    assert hist[0, red, :, 0].tolist() == [1.0, 1.0]  # both left cells all red
    assert hist[0, black, 0, 1] == 1.0  # top-right all black
    assert hist[0, black, 1, 1] == 0.5 and hist[0, gray, 1, 1] == 0.5  # bottom-right: half black, half gray
    feats = tower.patch_features(pixel_values)
    assert feats.shape == (1, 4, 1344)
    assert torch.equal(feats[0, :, 1280:], 8 * hist[0].flatten(1).T)  # row-major cells, scaled by sqrt(4**3)


def test_color_histograms_survive_save_and_from_pretrained(tmp_path):
    # from_pretrained allocates tensors empty and fills those in the checkpoint: the un-normalisation the histograms
    # need must not live in a tensor the checkpoint lacks, or it reads uninitialised memory
    config = tiny_config(vision_config={"model_type": "mmlink_efficientnet_lite", "image_size": 64, "color_bins": 4})
    model = MmlinkQFormerForConditionalGeneration(config).eval()
    model.save_pretrained(tmp_path)
    loaded = MmlinkQFormerForConditionalGeneration.from_pretrained(tmp_path).eval()
    mean = torch.tensor(config.vision_config.image_mean).view(3, 1, 1)
    std = torch.tensor(config.vision_config.image_std).view(3, 1, 1)
    rgb = torch.zeros(3, 64, 64)
    rgb[2, :, 32:] = 1.0  # right half pure blue, left half black
    pixel_values = ((rgb - mean) / std)[None]
    hist = loaded.vision_model.color_histograms(pixel_values, (2, 2))
    blue = (0 * 4 + 0) * 4 + 3
    assert hist[0, 0, :, 0].tolist() == [1.0, 1.0] and hist[0, blue, :, 1].tolist() == [1.0, 1.0]
    with torch.no_grad():
        assert torch.equal(loaded.vision_model.patch_features(pixel_values), model.vision_model.patch_features(pixel_values))


def test_color_bins_are_validated():
    from mmlink.models.vision import EfficientNetLiteVisionConfig

    with pytest.raises(ValueError, match="color_bins"):
        EfficientNetLiteVisionConfig(color_bins=9)

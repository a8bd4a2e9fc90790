"""mmlink.models.qformer.configuration: MmlinkQFormerConfig's validation (errors name the field), its JSON and dict
round trips, the derived sizes, the lossless InstructBLIP conversion, and its Auto-class registration."""

from __future__ import annotations

import pytest
from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers import AutoConfig, InstructBlipConfig

from mmlink.models.presets import tiny_config
from mmlink.models.qformer import MmlinkQFormerConfig
from mmlink.models.qformer.configuration import CMAA_MODES, CMAA_TEXTS, CONTEXT_POOLS


def test_config_validation():
    with pytest.raises(ValueError, match="must not precede"):
        tiny_config(sam_guide_layer=2, sam_context_layer=1)
    with pytest.raises(ValueError, match="1..2"):
        tiny_config(sam_guide_layer=3)
    with pytest.raises(StrictDataclassFieldValidationError, match="sam_mode"):
        tiny_config(sam_mode="bogus")
    with pytest.raises(StrictDataclassFieldValidationError, match="sam_context_pool"):
        tiny_config(sam_context_pool="mine")
    assert tiny_config().guide_layer == tiny_config().context_layer == 2


def test_config_round_trips_through_json(tmp_path):
    config = tiny_config(sam_mode="bsg_mean", sam_context_pool="all", sam_guide_layer=1)
    config.save_pretrained(tmp_path)
    again = MmlinkQFormerConfig.from_pretrained(tmp_path)
    assert (again.sam_mode, again.sam_context_pool, again.guide_layer, again.context_layer) == ("bsg_mean", "all", 1, 2)
    assert again.qformer_config.encoder_hidden_size == again.vision_config.hidden_size


def _with(**changes) -> MmlinkQFormerConfig:
    """The tiny config with fields changed (tiny_config sets a few itself, so go through its dict)."""
    return MmlinkQFormerConfig(**{**tiny_config().to_dict(), **changes})


@pytest.mark.parametrize("changes, message", [
    ({"num_query_tokens": 0}, "num_query_tokens must be >= 1, got 0"),
    ({"max_images": 0}, "max_images must be >= 1, got 0"),
    ({"qformer_max_length": 0}, "qformer_max_length must be >= 1, got 0"),
    ({"sam_guide_layer": 0}, r"sam_guide_layer=0 and sam_context_layer=2 must lie in 1\.\.2"),
    ({"text_config": {"model_type": "vit", "hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 1,
                      "intermediate_size": 8}}, "text_config.model_type='vit' is neither a causal nor a seq2seq LM"),
])
def test_each_invalid_field_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        _with(**changes)


@pytest.mark.parametrize("changes, message", [
    ({"cmaa": "all"}, r"Field 'cmaa' expected one of \('none', 'per_query', 'pooled', 'released'\), got all"),
    ({"cmaa_text": "input"}, "Field 'cmaa_text' expected one of"),
    ({"sam_context_pool": "mine"}, "Field 'sam_context_pool' expected one of"),
    ({"sam_mode": "bogus"}, "Field 'sam_mode' expected one of"),
])
def test_a_value_outside_its_literal_is_refused_by_the_strict_dataclass(changes, message):
    with pytest.raises(StrictDataclassFieldValidationError, match=message):
        _with(**changes)


def test_the_allowed_values_are_the_literals():
    assert CONTEXT_POOLS == ("others", "all") and CMAA_TEXTS == ("output", "embedding")
    assert CMAA_MODES == ("none", "per_query", "pooled", "released")


def test_derived_sizes_and_aliases():
    config = tiny_config()
    assert config.qformer_config.encoder_hidden_size == config.vision_config.hidden_size == 32
    assert config.use_decoder_only_language_model and config.image_token_id == config.image_token_index == 260
    tokens = {mode: _with(cmaa=mode) for mode in CMAA_MODES}
    assert {m: c.cmaa_tokens for m, c in tokens.items()} == {"none": 0, "per_query": 4, "pooled": 1, "released": 2}
    assert {m: c.image_seq_length for m, c in tokens.items()} == {"none": 4, "per_query": 8, "pooled": 5,
                                                                   "released": 6}
    assert (_with(sam_guide_layer=1).guide_layer, _with(sam_guide_layer=1).context_layer) == (1, 2)


def test_dict_round_trip_and_auto_config(tmp_path):
    config = _with(sam_mode="linear", cmaa="pooled", cmaa_text="embedding", cmaa_scale=True, max_images=3)
    data = config.to_dict()
    assert data["model_type"] == "mmlink_qformer" and data["cmaa"] == "pooled" and data["max_images"] == 3
    again = MmlinkQFormerConfig.from_dict(data)
    assert again.to_dict() == data and again.text_config.model_type == "llama"
    config.save_pretrained(tmp_path)
    auto = AutoConfig.from_pretrained(tmp_path)
    assert type(auto) is MmlinkQFormerConfig and {**auto.to_dict(), "_name_or_path": ""} == data
    assert type(AutoConfig.for_model("mmlink_qformer")) is MmlinkQFormerConfig


def test_from_instructblip_keeps_every_size_and_adds_sam():
    blip = InstructBlipConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=28, patch_size=14),
        qformer_config=dict(vocab_size=100, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=64, max_position_embeddings=64, cross_attention_frequency=2),
        text_config=dict(model_type="llama", vocab_size=120, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128),
        num_query_tokens=4, image_token_index=119, initializer_range=0.01)
    config = MmlinkQFormerConfig.from_instructblip(blip, sam_mode="none", max_images=2)
    assert (config.num_query_tokens, config.image_token_index, config.initializer_range) == (4, 119, 0.01)
    assert (config.sam_mode, config.max_images, config.guide_layer, config.context_layer) == ("none", 2, 4, 4)
    for name in ("vision_config", "qformer_config", "text_config"):
        ours, theirs = getattr(config, name).to_dict(), getattr(blip, name).to_dict()
        assert {k: ours[k] for k in theirs if k not in ("transformers_version", "encoder_hidden_size")} == {
            k: v for k, v in theirs.items() if k not in ("transformers_version", "encoder_hidden_size")}, name
    assert MmlinkQFormerConfig.from_instructblip(blip).sam_mode == "bsg_adaptive"  # full SAM by default
    blip.image_token_index = None
    with pytest.raises(ValueError, match="has no image_token_index; re-save it"):
        MmlinkQFormerConfig.from_instructblip(blip)


@pytest.mark.parametrize("field, value", [("max_images", 1.5), ("cmaa_scale", "yes"), ("image_token_index", 2.5)])
def test_field_types_are_checked(field, value):
    with pytest.raises((StrictDataclassFieldValidationError, TypeError, ValueError), match=field):
        _with(**{field: value})

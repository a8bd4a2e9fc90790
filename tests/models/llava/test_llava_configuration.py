"""mmlink.models.llava.configuration: MmlinkLlavaConfig — transformers' LlavaConfig plus ``max_images`` — its
checks, the lossless conversion of a ``llava`` config, dict and JSON round trips, and its Auto-class registration."""

from __future__ import annotations

import pytest
from huggingface_hub.errors import StrictDataclassFieldValidationError
from transformers import AutoConfig

from mmlink.models.llava import MmlinkLlavaConfig
from mmlink.models.presets import tiny_llava_config
from llava_reference import IMG, P, reference_config


def test_from_llava_keeps_the_architecture_and_checks_max_images():
    config = MmlinkLlavaConfig.from_llava(reference_config(), max_images=3)
    assert config.model_type == "mmlink_llava" and config.max_images == 3
    assert config.image_seq_length == P and config.vision_feature_layer == -2
    with pytest.raises(ValueError, match="max_images must be >= 1"):
        MmlinkLlavaConfig.from_llava(reference_config(), max_images=0)


def test_from_llava_converts_every_field_and_drops_transformers_bookkeeping():
    llava = reference_config()
    config = MmlinkLlavaConfig.from_llava(llava)
    ours, theirs = config.to_dict(), llava.to_dict()
    assert ours["model_type"] == "mmlink_llava" and ours["max_images"] == 8  # the default
    skip = {"model_type", "architectures", "transformers_version", "max_images", "vision_config", "text_config"}
    assert {k: v for k, v in ours.items() if k not in skip} == {k: v for k, v in theirs.items() if k not in skip}
    for name in ("vision_config", "text_config"):
        assert {k: v for k, v in ours[name].items() if k != "transformers_version"} == {
            k: v for k, v in theirs[name].items() if k != "transformers_version"}
    assert (config.image_token_index, config.vision_feature_select_strategy) == (IMG, "default")


def test_checks_and_the_language_model_kind():
    assert tiny_llava_config().use_decoder_only_language_model
    with pytest.raises(ValueError, match="max_images must be >= 1, got 0"):
        tiny_llava_config(max_images=0)
    data = tiny_llava_config().to_dict()
    with pytest.raises((ValueError, StrictDataclassFieldValidationError), match="vision_feature_layer"):
        MmlinkLlavaConfig(**{**data, "vision_feature_layer": [-2, -1]})  # several layers: not supported


def test_dict_json_and_auto_config_round_trips(tmp_path):
    config = tiny_llava_config(max_images=3)
    data = config.to_dict()
    assert MmlinkLlavaConfig.from_dict(data).to_dict() == data
    config.save_pretrained(tmp_path)
    auto = AutoConfig.from_pretrained(tmp_path)
    assert type(auto) is MmlinkLlavaConfig and auto.max_images == 3
    assert {**auto.to_dict(), "_name_or_path": ""} == data
    assert type(AutoConfig.for_model("mmlink_llava")) is MmlinkLlavaConfig


def test_max_images_type_is_checked():
    with pytest.raises((StrictDataclassFieldValidationError, TypeError, ValueError), match="max_images"):
        tiny_llava_config(max_images=1.5)

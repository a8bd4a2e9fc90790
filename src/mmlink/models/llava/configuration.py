"""Config of the LLaVA family: transformers' ``LlavaConfig`` plus the multi-image setting mmlink needs.

``LlavaConfig`` already holds everything the architecture needs (``vision_config``, ``text_config``,
``image_token_index``, ``image_seq_length``, ``vision_feature_layer``, ``vision_feature_select_strategy``,
``projector_hidden_act``); the model type differs (``mmlink_llava``) only so that mmlink's class can be registered
with the Auto classes beside transformers' own. A ``llava`` config (e.g. ``llava-hf/llava-1.5-7b-hf``) converts
losslessly with `MmlinkLlavaConfig.from_llava`.
"""

# No `from __future__ import annotations`: @strict validates field types from the real annotations.
from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, LlavaConfig


@strict
class MmlinkLlavaConfig(LlavaConfig):
    r"""
    max_images: most images one sample may hold (the processor refuses more).
    """

    model_type = "mmlink_llava"
    max_images: int = 8

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.max_images < 1:
            raise ValueError(f"max_images must be >= 1, got {self.max_images}")
        if not isinstance(self.vision_feature_layer, int):
            raise ValueError("vision_feature_layer must be one layer (an int); several concatenated are not supported")

    @property
    def use_decoder_only_language_model(self) -> bool:
        return True  # LLaVA's LLM is a causal LM; the Q-Former family also admits Flan-T5

    @classmethod
    def from_llava(cls, config: LlavaConfig, **overrides) -> "MmlinkLlavaConfig":
        """Convert a transformers ``LlavaConfig``; ``overrides`` set mmlink's fields (``max_images``)."""
        data = config.to_dict()
        for key in ("model_type", "architectures", "transformers_version"):
            data.pop(key, None)
        return cls(**{**data, **overrides})


AutoConfig.register(MmlinkLlavaConfig.model_type, MmlinkLlavaConfig)

__all__ = ["MmlinkLlavaConfig"]

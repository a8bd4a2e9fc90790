"""transformers' own LLaVA at the tiny size, the reference the LLaVA-family tests compare mmlink against (imported by
the tests; `tests/` is on pytest's pythonpath)."""

from __future__ import annotations

import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration

from mmlink.models.presets import tiny_llava_config

IMG = 261  # the reference model needs its placeholder inside the vocabulary (transformers embeds input_ids)
P = 16  # patch tokens per image of the tiny configs: (32 / 8)², CLS dropped


def reference_config() -> LlavaConfig:
    text = tiny_llava_config().text_config.to_dict()
    text["vocab_size"] = IMG + 1
    return LlavaConfig(vision_config=tiny_llava_config().vision_config.to_dict(), text_config=text,
                       image_token_index=IMG, image_seq_length=P, vision_feature_layer=-2,
                       vision_feature_select_strategy="default")


def reference_llava(seed: int = 0) -> LlavaForConditionalGeneration:
    torch.manual_seed(seed)
    return LlavaForConditionalGeneration(reference_config()).eval()

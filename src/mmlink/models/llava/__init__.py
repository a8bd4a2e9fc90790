"""LLaVA family: vision tower → MLP projector → LLM (transformers' ``LlavaForConditionalGeneration``), multi-image."""

from mmlink.models.llava.configuration import MmlinkLlavaConfig
from mmlink.models.llava.modeling import MmlinkLlavaForConditionalGeneration
from mmlink.models.llava.processing import MmlinkLlavaProcessor

__all__ = ["MmlinkLlavaConfig", "MmlinkLlavaForConditionalGeneration", "MmlinkLlavaProcessor"]

"""Q-Former family: InstructBLIP-compatible multi-image MLLM with SAM."""

from mmlink.models.qformer.configuration import MmlinkQFormerConfig
from mmlink.models.qformer.modeling import MmlinkQFormerForConditionalGeneration, MmlinkQFormerOutput

__all__ = ["MmlinkQFormerConfig", "MmlinkQFormerForConditionalGeneration", "MmlinkQFormerOutput"]

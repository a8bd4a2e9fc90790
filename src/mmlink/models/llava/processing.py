"""The LLaVA family's processor: the shared multi-image encoding (`mmlink.models.processing`); each image takes
``image_seq_length`` placeholders (its patch tokens, CLS dropped for ``vision_feature_select_strategy="default"``),
which the model fills with the projected patch features. Multi-image prompts interleave ``<image>`` placeholders
(``"Image 1: <image>\\nImage 2: <image>\\n..."``, NLVR2's ``"Left: <image> Right: <image>"``); LLaVA's chat template
is not applied (mmlink's LLaVA-style training data carries its prompts as written).
"""

from __future__ import annotations

import torch
from transformers import CLIPImageProcessorPil

from mmlink.models.processing import IMAGE_PLACEHOLDER, MultiImageProcessor, _Encoded


class MmlinkLlavaProcessor(MultiImageProcessor):
    """Images + text → ``pixel_values`` ``(n, C, H, W)``, ``input_ids``/``attention_mask`` (+ ``labels``)."""

    def __init__(
        self,
        image_processor,
        tokenizer,
        image_seq_length: int = 576,
        image_token_index: int = 32000,
        max_images: int = 8,
        **kwargs,
    ):
        self.image_seq_length = image_seq_length
        self.image_token_index = image_token_index
        self.max_images = max_images
        super().__init__(image_processor, tokenizer, **kwargs)
        self._setup()

    @classmethod
    def from_config(cls, config, tokenizer, image_processor=None) -> "MmlinkLlavaProcessor":
        """Build from a `MmlinkLlavaConfig`; the image processor follows the vision tower unless given."""
        from mmlink.models.vision import image_normalization, image_size

        if image_processor is None:
            mean, std = image_normalization(config.vision_config)
            size = image_size(config.vision_config)
            image_processor = CLIPImageProcessorPil(
                size={"height": size, "width": size}, crop_size={"height": size, "width": size},
                do_center_crop=False, image_mean=mean, image_std=std, do_convert_rgb=True,
            )
        return cls(
            image_processor,
            tokenizer,
            image_seq_length=config.image_seq_length,
            image_token_index=config.image_token_index,
            max_images=getattr(config, "max_images", 8),
        )

    def _image_inputs(self, encoded: list[_Encoded]) -> dict[str, torch.Tensor]:
        images = [img for e in encoded for img in e.images]
        return {"pixel_values": self._pixel_values(images)}  # (n, C, H, W)


__all__ = ["MmlinkLlavaProcessor", "IMAGE_PLACEHOLDER"]

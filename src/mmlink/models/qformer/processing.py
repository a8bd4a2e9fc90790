"""The Q-Former family's processor: the shared multi-image encoding (`mmlink.models.processing`) plus one Q-Former
row per image holding its sample's instruction (the prompt without placeholders), as InstructBLIP feeds the
instruction to the Q-Former. Each image takes ``num_query_tokens`` placeholders in the LLM prompt — InstructBLIP's name
for them; with CMAA on it is the model's ``image_seq_length`` (queries + CMAA tokens).

Saved in InstructBLIP's layout: the LLM tokenizer at the top, the Q-Former tokenizer in ``qformer_tokenizer/``, the
image processor and the settings in ``processor_config.json``.
"""

from __future__ import annotations

import torch
from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

from mmlink.models.processing import IMAGE_PLACEHOLDER, MultiImageProcessor, _Encoded


class MmlinkQFormerProcessor(MultiImageProcessor):
    """Images + text → ``pixel_values``, ``qformer_input_ids``/``qformer_attention_mask`` (one row per image),
    ``input_ids``/``attention_mask`` (and ``labels`` when targets are given)."""

    def __init__(
        self,
        image_processor,
        tokenizer,
        qformer_tokenizer,
        num_query_tokens: int = 32,
        image_token_index: int = 0,
        max_images: int = 8,
        qformer_max_length: int = 128,
        is_encoder_decoder: bool = False,
        **kwargs,
    ):
        self.num_query_tokens = num_query_tokens
        self.image_token_index = image_token_index
        self.max_images = max_images
        self.qformer_max_length = qformer_max_length
        # An encoder-decoder LLM (Flan-T5) reads the prompt and decodes the answer: targets become `labels` alone.
        self.is_encoder_decoder = is_encoder_decoder
        super().__init__(image_processor, tokenizer, qformer_tokenizer, **kwargs)
        self._setup()

    @property
    def image_seq_length(self) -> int:
        return self.num_query_tokens

    @classmethod
    def from_config(cls, config, tokenizer, qformer_tokenizer, image_processor=None) -> "MmlinkQFormerProcessor":
        """Build from a `MmlinkQFormerConfig`; the image processor follows the vision tower unless given."""
        from mmlink.models.vision import image_normalization, image_size

        if image_processor is None:
            mean, std = image_normalization(config.vision_config)
            size = image_size(config.vision_config)
            image_processor = BlipImageProcessorPil(
                size={"height": size, "width": size}, image_mean=mean, image_std=std, do_convert_rgb=True
            )
        return cls(
            image_processor,
            tokenizer,
            qformer_tokenizer,
            num_query_tokens=config.image_seq_length,  # placeholders per image: queries + CMAA tokens
            image_token_index=config.image_token_index,
            max_images=config.max_images,
            qformer_max_length=config.qformer_max_length,
            is_encoder_decoder=not config.use_decoder_only_language_model,
        )

    def _image_inputs(self, encoded: list[_Encoded]) -> dict[str, torch.Tensor]:
        # One Q-Former row per image, repeating its sample's instruction.
        instructions = [e.instruction for e in encoded for _ in e.images]
        images = [img for e in encoded for img in e.images]
        if not images:  # a text-only batch: no Q-Former rows (the tokenizer refuses an empty list)
            empty = torch.zeros(0, 0, dtype=torch.long)
            return {"pixel_values": self._pixel_values([]), "qformer_input_ids": empty,
                    "qformer_attention_mask": empty.clone()}
        q = self.qformer_tokenizer(
            instructions, padding="longest", truncation=True, max_length=self.qformer_max_length, return_tensors="pt"
        )
        return {
            "pixel_values": self._pixel_values(images),  # (n, C, H, W)
            "qformer_input_ids": q["input_ids"],  # (n, L)
            "qformer_attention_mask": q["attention_mask"],  # (n, L)
        }


__all__ = ["MmlinkQFormerProcessor", "IMAGE_PLACEHOLDER"]

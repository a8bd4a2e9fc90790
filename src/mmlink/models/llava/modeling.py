"""Multi-image LLaVA: transformers' ``LlavaForConditionalGeneration`` with mmlink's family interface.

The architecture, weights and module names are transformers' own (``model.vision_tower``,
``model.multi_modal_projector``, ``model.language_model``, ``lm_head``), so a directory in the
``llava-hf/llava-1.5-7b-hf`` layout loads unchanged and the logits equal transformers' on the same tensors. The whole
forward pass:

1. vision tower: every image of the batch at once → ``hidden_states[vision_feature_layer]`` ``(n, 1 + P, Dv)``
   (CLIP; the CLS token dropped for ``vision_feature_select_strategy="default"``) or ``(n, P, Dv)`` (EfficientNet-Lite);
2. MLP projector (``mlp2x_gelu``: Linear → GELU → Linear) → ``(n, P, Dl)``;
3. LLM: each image's P vectors replace its P placeholder tokens in the prompt embeddings, images in row-major order
   (sample 0's images first), so one prompt interleaves any number of images.

mmlink does step 3 itself (`merge_image_features`) rather than through transformers' embedding lookup of the
placeholder id: the placeholder may then lie outside the LLM's vocabulary (``mini-llava`` keeps SmolLM2's embedding
matrix unchanged), and precomputed image features (``image_features=``, candidate ranking) enter the same way.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForImageTextToText, GenerationConfig, LlavaForConditionalGeneration
from transformers.conversion_mapping import get_checkpoint_conversion_mapping, register_checkpoint_conversion_mapping

from mmlink.models.common import TrainableMixin, image_to_sample
from mmlink.models.llava.configuration import MmlinkLlavaConfig


class _CausalLMView:
    """LLaVA keeps the LLM's body (``model.language_model``) and head (``lm_head``) apart; mmlink's static-cache
    greedy loop (`mmlink.models.decoding`) wants them as one causal LM. Holds references only — no copies."""

    def __init__(self, llava: "MmlinkLlavaForConditionalGeneration"):
        self.model = llava.model.language_model
        self.lm_head = llava.lm_head
        self.config = llava.config.text_config
        self.generation_config = llava.generation_config

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.model.get_input_embeddings()


class MmlinkLlavaForConditionalGeneration(TrainableMixin, LlavaForConditionalGeneration):
    """LLaVA with several images per sample; ``forward``/``generate`` take mmlink processor batches."""

    config_class = MmlinkLlavaConfig
    config: MmlinkLlavaConfig
    projector_prefix = "model.multi_modal_projector."
    language_model_prefix = "model.language_model."
    lm_head_name = "lm_head"

    # ------------------------------------------------------------------ placeholders → images

    def image_to_sample(self, input_ids: torch.Tensor, num_images: int) -> torch.Tensor:
        """Sample index of every image ``(n,)``, from the placeholder runs in ``input_ids (B, T)``."""
        c = self.config
        return image_to_sample(input_ids, num_images, c.image_token_index, c.image_seq_length, c.max_images)

    # ------------------------------------------------------------------ steps 1–2

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Steps 1–2: pixel_values ``(n, C, H, W)`` → projected patch features ``(n, P, Dl)``."""
        out = self.model.get_image_features(pixel_values=pixel_values.to(self.dtype), return_dict=True)
        return torch.stack(list(out.pooler_output))  # (n, P, Dl)

    def prompt_image_features(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Steps 1–2 for a processor batch → image features ``(n, P, Dl)`` and each image's sample index ``(n,)``
        (the same call exists in every family)."""
        image_to_sample = self.image_to_sample(batch["input_ids"], batch["pixel_values"].shape[0])  # (n,)
        return self.encode_images(batch["pixel_values"]), image_to_sample

    # ------------------------------------------------------------------ step 3

    def merge_image_features(
        self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None, image_features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Prompt embeddings ``(B, T, Dl)`` with every image's features at its placeholders (steps 1–3)."""
        if (pixel_values is None) == (image_features is None):
            raise ValueError("pass exactly one of pixel_values and image_features")
        num_images = (pixel_values if image_features is None else image_features).shape[0]
        self.image_to_sample(input_ids, num_images)  # the placeholders must match the n images
        if num_images == 0:
            return self.text_only_embeddings(input_ids)
        if image_features is None:
            image_features = self.encode_images(pixel_values)  # (n, P, Dl)
        else:
            # masked_scatter below only checks the element count: a wrong P or Dl would shift every image silently.
            want = (self.config.image_seq_length, self.config.text_config.hidden_size)
            if image_features.dim() != 3 or tuple(image_features.shape[1:]) != want:
                raise ValueError(f"image_features must be (n, {want[0]}, {want[1]}), got {tuple(image_features.shape)}")
        is_image = input_ids == self.config.image_token_index  # (B, T)
        # The placeholder id may lie outside the vocabulary; its embedding is overwritten anyway.
        inputs_embeds = self.get_input_embeddings()(input_ids.masked_fill(is_image, 0))  # (B, T, Dl)
        return inputs_embeds.masked_scatter(is_image.unsqueeze(-1), image_features.to(inputs_embeds.dtype))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_features: torch.Tensor | None = None,
        **kwargs,
    ):
        """transformers' forward, with steps 1–3 done by `merge_image_features` when images are given
        (``pixel_values``, or ``image_features`` ``(n, P, Dl)`` from `prompt_image_features`); without images (a
        cached decoding step, text only) it is transformers' forward unchanged."""
        if pixel_values is None and image_features is None:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if input_ids is None:
            raise ValueError("input_ids is required with pixel_values or image_features")
        inputs_embeds = self.merge_image_features(input_ids, pixel_values, image_features)
        return super().forward(inputs_embeds=inputs_embeds, attention_mask=attention_mask, **kwargs)

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        fast_greedy: bool = True,
        **generate_kwargs,
    ) -> torch.LongTensor:
        """Decode the answer per ``generation_config`` and ``generate_kwargs`` (as transformers' ``generate`` takes
        them); returns only the new tokens ``(B * num_return_sequences, T_new)``. Prompts must be left-padded. Greedy
        decoding runs mmlink's static-cache loop (token-identical to ``generate``); anything else (and
        ``fast_greedy=False``) goes through transformers' ``generate`` on the merged embeddings."""
        from mmlink.models.decoding import greedy_decode, greedy_plan

        if pixel_values is None or input_ids is None:
            raise ValueError("generate needs pixel_values and input_ids (a processor batch)")
        inputs_embeds = self.merge_image_features(input_ids, pixel_values)  # (B, T, Dl)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        view = _CausalLMView(self)
        plan = greedy_plan(view, generate_kwargs, generation_config) if fast_greedy else None
        if plan is not None:
            return greedy_decode(view, inputs_embeds, attention_mask, plan)
        return super().generate(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                generation_config=generation_config, **generate_kwargs)


AutoModelForImageTextToText.register(MmlinkLlavaConfig, MmlinkLlavaForConditionalGeneration)
# transformers saves LLaVA under its legacy key names (``language_model.lm_head.weight``, ...) and renames them on
# load by model type; mmlink's model type takes the same renaming.
register_checkpoint_conversion_mapping(MmlinkLlavaConfig.model_type, get_checkpoint_conversion_mapping("llava"))

__all__ = ["MmlinkLlavaForConditionalGeneration"]

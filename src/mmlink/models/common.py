"""What every mmlink model class shares, whatever its family."""

from __future__ import annotations

import torch
from torch import nn


def image_to_sample(input_ids: torch.Tensor, num_images: int, image_token_index: int, tokens_per_image: int,
                    max_images: int) -> torch.Tensor:
    """Sample index of every image ``(n,)``, from the placeholder runs (``tokens_per_image`` each) in ``input_ids``
    ``(B, T)``; images are in row-major order (sample 0's first). Both families use it."""
    counts = (input_ids == image_token_index).sum(dim=1)  # (B,)
    if bool((counts % tokens_per_image != 0).any()):
        raise ValueError(f"each image needs exactly {tokens_per_image} placeholder tokens; got placeholder counts "
                         f"{counts.tolist()}")
    per_sample = counts // tokens_per_image  # (B,)
    if int(per_sample.sum()) != num_images:
        raise ValueError(
            f"input_ids hold placeholders for {int(per_sample.sum())} images but pixel_values (or image_features) "
            f"has {num_images}"
        )
    if per_sample.numel() and int(per_sample.max()) > max_images:
        raise ValueError(f"a sample has {int(per_sample.max())} images; max_images is {max_images}")
    return torch.repeat_interleave(torch.arange(input_ids.shape[0], device=input_ids.device), per_sample)


def llm_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The LLM's decoder-block linear layers and its LM head, by full name in ``model`` — what decoding packs and
    weight-only quantization replaces (never a vision tower's layers, which are named ``...layers...`` too). ``model``
    is an mmlink model (its ``language_model_prefix`` and ``lm_head_name`` say where the LLM is) or a bare causal LM."""
    prefix = getattr(model, "language_model_prefix", "")
    head = getattr(model, "lm_head_name", "lm_head")
    return [
        (name, m) for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and (name == head or (name.startswith(prefix) and ".layers." in f".{name}"))
    ]


class TrainableMixin:
    """Freezing by parameter-name prefix. Each family names its projector (``projector_prefix``) and where its LLM
    lives (``language_model_prefix``), so training recipes (policies, LoRA targets, the projector's own learning
    rate) need no knowledge of the family."""

    projector_prefix: str
    language_model_prefix: str
    lm_head_name: str

    def set_trainable(self, prefixes: tuple[str, ...]) -> tuple[int, int]:
        """Train only parameters whose name starts with one of ``prefixes``. Returns (trainable, total) counts."""
        trainable = total = 0
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith(tuple(prefixes)))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return trainable, total

    def text_only_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Prompt embeddings ``(B, T, Dl)`` of a batch without any image (text-only records of instruction mixes).

        The vision side does not run (transformers' attention cannot take an empty batch), yet while gradients
        are recorded every trainable parameter outside the LLM is added in ×0: with a frozen LLM the loss still
        has a gradient to take (zeros for those parameters), and data-parallel runs see every parameter used."""
        embeds = self.get_input_embeddings()(input_ids)
        if not torch.is_grad_enabled():
            return embeds
        llm = (self.language_model_prefix, self.lm_head_name)
        zero = sum((p.reshape(-1)[:1] * 0).sum() for n, p in self.named_parameters()
                   if p.requires_grad and not n.startswith(llm))
        return embeds + zero.to(embeds.dtype) if torch.is_tensor(zero) else embeds


__all__ = ["TrainableMixin", "image_to_sample", "llm_linears"]

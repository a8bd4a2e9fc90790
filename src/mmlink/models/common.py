"""What every mmlink model class shares, whatever its family."""

from __future__ import annotations

from torch import nn


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


__all__ = ["TrainableMixin", "llm_linears"]

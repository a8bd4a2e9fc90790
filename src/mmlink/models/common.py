"""What every mmlink model class shares, whatever its family."""

from __future__ import annotations


class TrainableMixin:
    """Freezing by parameter-name prefix. Each family names its projector (``projector_prefix``) and where its LLM
    lives (``language_model_prefix``), so training recipes (policies, LoRA targets, the projector's own learning
    rate) need no knowledge of the family."""

    projector_prefix: str
    language_model_prefix: str

    def set_trainable(self, prefixes: tuple[str, ...]) -> tuple[int, int]:
        """Train only parameters whose name starts with one of ``prefixes``. Returns (trainable, total) counts."""
        trainable = total = 0
        for name, p in self.named_parameters():
            p.requires_grad_(name.startswith(tuple(prefixes)))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
        return trainable, total


__all__ = ["TrainableMixin"]

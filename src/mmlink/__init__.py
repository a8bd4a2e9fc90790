"""mmlink: multi-image multimodal LLMs (SAM, CaD-VI, VisLingInstruct)."""

__version__ = "0.1.0"


def load(path_or_preset, **overrides):
    """Load a preset or checkpoint directory of either family → ``(model, processor)``. See `mmlink.models.load`."""
    from mmlink.models import load as _load

    return _load(path_or_preset, **overrides)


def from_pretrained(path_or_preset, **overrides):
    """Load a model by preset name (``tiny``, ``mini``) or checkpoint directory. See `mmlink.models.from_pretrained`."""
    from mmlink.models import from_pretrained as _from_pretrained

    return _from_pretrained(path_or_preset, **overrides)


__all__ = ["from_pretrained", "load", "__version__"]

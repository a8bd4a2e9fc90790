"""mmlink: multi-image multimodal LLMs (SAM, CaD-VI, VisLingInstruct)."""

__version__ = "0.1.0"


def from_pretrained(path_or_preset, **overrides):
    """Load a model by preset name (``tiny``, ``mini``) or checkpoint directory. See `mmlink.models.from_pretrained`."""
    from mmlink.models import from_pretrained as _from_pretrained

    return _from_pretrained(path_or_preset, **overrides)


__all__ = ["from_pretrained", "__version__"]

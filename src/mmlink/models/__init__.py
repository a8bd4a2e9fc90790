"""Model families. ``load`` returns ``(model, processor)``; ``from_pretrained`` returns the model alone."""

from __future__ import annotations

import os
from pathlib import Path


def load(path_or_preset: str | os.PathLike, **overrides):
    """Load a preset (``tiny``, ``mini``) or a checkpoint directory → ``(model, processor)``.

    ``overrides`` set config fields (e.g. ``sam_mode="bsg_mean"``, ``sam_context_pool="all"``) or loader options
    (``dtype``, ``device_map``, ``attn_implementation``). An existing directory wins over a preset of the same name.
    """
    from mmlink.models.loading import check_overrides, load_checkpoint
    from mmlink.models.presets import PRESETS

    name = os.fspath(path_or_preset)
    if Path(name).exists():
        return load_checkpoint(name, **overrides)
    if name in PRESETS:
        build = PRESETS.get(name)
        extra = ("seed",) if name.startswith("tiny") else ()
        config_class = getattr(build, "config_class", None)
        check_overrides(overrides, extra, **({"config_class": config_class} if config_class else {}))
        model, processor = build(**overrides)
        model.mmlink_source = name
        return model, processor
    if os.sep in name or name.startswith("."):
        raise FileNotFoundError(f"checkpoint directory not found: {name}")
    raise ValueError(
        f"unknown preset {name!r}; valid presets: {', '.join(PRESETS.names())} (or pass a checkpoint directory)"
    )


def from_pretrained(path_or_preset: str | os.PathLike, **overrides):
    """Load the model of a preset or checkpoint directory (see `load`)."""
    return load(path_or_preset, **overrides)[0]


__all__ = ["load", "from_pretrained"]

"""Model families. ``load`` returns ``(model, processor)``; ``from_pretrained`` returns the model alone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

# SAM's variants (Table 2 rows): plain InstructBLIP, +LIN, +BSG, full SAM. Here, not in the configuration module, so
# the CLI and the settings classes can name them without importing transformers.
SamMode = Literal["none", "linear", "bsg_mean", "bsg_adaptive"]
SAM_MODES: tuple[str, ...] = get_args(SamMode)


def load(path_or_preset: str | os.PathLike, **overrides):
    """Load a preset (``tiny``, ``mini``) or a checkpoint directory → ``(model, processor)``.

    ``overrides`` set config fields (e.g. ``sam_mode="bsg_mean"``, ``sam_context_pool="all"``) or loader options
    (``dtype``, ``device_map``, ``attn_implementation``). An existing directory wins over a preset of the same name.
    """
    from huggingface_hub.errors import StrictDataclassFieldValidationError

    try:
        return _load(os.fspath(path_or_preset), overrides)
    except StrictDataclassFieldValidationError as err:  # a config field of the wrong type: one line, like other input
        raise ValueError(str(err.__cause__)) from None


def _load(name: str, overrides: dict):
    from mmlink.models.loading import check_overrides, load_checkpoint
    from mmlink.models.presets import PRESETS

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


def family(path_or_preset: str | os.PathLike) -> str:
    """``"qformer"`` or ``"llava"`` for a preset or checkpoint directory, read from its config without loading
    weights (a trainable-only save has its base's family). Settings such as ``sam_mode`` exist in the Q-Former
    family only."""
    import json

    from mmlink.models.loading import DELTA_CONFIG, resolve_base
    from mmlink.models.presets import PRESETS

    name = os.fspath(path_or_preset)
    path = Path(name)
    if path.is_dir() and (path / DELTA_CONFIG).exists():
        return family(resolve_base(path, json.loads((path / DELTA_CONFIG).read_text())))
    if path.is_dir():
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
        return "llava" if model_type in ("llava", "mmlink_llava") else "qformer"
    config_class = getattr(PRESETS.get(name), "config_class", None)
    return "llava" if config_class is not None and config_class.model_type == "mmlink_llava" else "qformer"


def from_pretrained(path_or_preset: str | os.PathLike, **overrides):
    """Load the model of a preset or checkpoint directory (see `load`)."""
    return load(path_or_preset, **overrides)[0]


__all__ = ["family", "load", "from_pretrained"]

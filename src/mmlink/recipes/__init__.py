"""Recipes: a paper's multi-stage procedure as one resumable command over mmlink's parts (synth, generate, the
world-fact scorer, train). `mmlink.recipes.cadvi`: CaD-VI Phase 2 (annotate → filter → mix → train).

Kept light on purpose (no torch import): ``python -m mmlink.recipes.cadvi`` imports this package first.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any


def check_fields(obj: Any, prefix: str = "") -> None:
    """Type-check and convert every field of a settings dataclass in place, with `TrainConfig`'s checker (list →
    tuple, int → float, Literal, Optional, nested sections); a wrong value is a ValueError naming
    ``<prefix><field>``."""
    from mmlink.train.config import _check

    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        setattr(obj, f.name, _check(prefix + f.name, getattr(obj, f.name), hints[f.name]))


__all__ = ["check_fields"]

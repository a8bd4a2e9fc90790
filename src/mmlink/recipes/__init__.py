"""Recipes: a paper's multi-stage procedure as one resumable command over mmlink's parts (synth, generate, the
world-fact scorer, train). `mmlink.recipes.cadvi`: CaD-VI Phase 2 (annotate → filter → mix → train).

Kept light on purpose (no torch import): ``python -m mmlink.recipes.cadvi`` imports this package first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mmlink.runtime import DTYPE_HELP
from mmlink.settings import check_fields, setting


@dataclass
class WorldTableSettings:
    """What every table recipe on the world's test sets (`mmlink ablation`, `mmlink cadvi tables`,
    `mmlink vislinginstruct`) runs with; each recipe's settings add their own fields."""

    out: str = setting(help="where the runs and the tables go (resumable)")
    seed: int = setting(0, min=0, help="seed of the world's test sets")
    batch_size: int = setting(8, min=1, help="items per forward/generate")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = setting("auto", help=DTYPE_HELP)
    progress: bool = setting(True, help="progress bars")

    def __post_init__(self) -> None:
        check_fields(self)


__all__ = ["WorldTableSettings"]

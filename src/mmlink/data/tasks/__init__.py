"""Task generators of the embedded world: each turns a random stream into one `WorldSample`.

A generator is a function ``(rng, split) -> WorldSample`` registered under its task name. It returns scene graphs
(rendered later by the writer) and text derived from them, so every target is correct by construction.
Importing this package registers every built-in task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mmlink.data.world.scene import Scene
from mmlink.registry import Registry


@dataclass
class WorldSample:
    """One multi-image sample.

    scenes: one scene graph per image, in the order of the ``<image>`` placeholders.
    conversations: LLaVA turns, ``[{"from": "human", "value": "Image 1: <image>\\n..."}, {"from": "gpt", ...}]``.
    meta: structured labels (e.g. ``{"answer": 1}`` for a closed-ended task, the changed attributes, CaD axes).
    images: pixels, for pipelines that make images themselves (MmLINK synthesis); else None and the writer renders
        ``scenes``.
    """

    scenes: list[Scene]
    conversations: list[dict[str, str]]
    meta: dict[str, Any] = field(default_factory=dict)
    images: list[Any] | None = None


TaskFn = Callable[[np.random.Generator, str], WorldSample]
TASKS: Registry[TaskFn] = Registry("task")

__all__ = ["TASKS", "TaskFn", "WorldSample"]

# Built-in task generators register themselves on import (kept at the end: they import the names above).
from mmlink.data.tasks import captioning, closed, pairs, vqa  # noqa: E402,F401
from mmlink.data.tasks import synthesis  # noqa: E402,F401  (registers `mmlink_synth`; one-way, see its docstring)

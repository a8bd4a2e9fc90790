"""What every stage of the MmLINK synthesis shares: the component registries (`GROUP_SOURCES`, `SEGMENTERS`,
`FILLERS`, `SCORERS`), `build` (a component from a registry name or an instance), the `Box` type, and helpers for
optional dependencies (OpenCV, segment-anything, diffusers) and stable seeds."""

from __future__ import annotations

import hashlib
import importlib.util
from typing import Any

from mmlink.registry import Registry


Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive)

GROUP_SOURCES: Registry[type] = Registry("group source")
SEGMENTERS: Registry[type] = Registry("segmenter")
FILLERS: Registry[type] = Registry("background filler")
SCORERS: Registry[type] = Registry("similarity scorer")


def build(registry: Registry, spec: Any, **kwargs) -> Any:
    """An instance from a registry name (``kwargs`` go to its constructor) or ``spec`` itself if it is one."""
    if isinstance(spec, str):
        return registry.get(spec)(**kwargs)
    if kwargs:
        raise TypeError(f"options {sorted(kwargs)} given for a ready-made {registry.kind}")
    return spec


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _has_cv2() -> bool:
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def _require_cv2(what: str):
    if not _has_cv2():
        raise ImportError(f"{what} needs OpenCV: pip install opencv-python-headless")
    import cv2

    return cv2


def _stable_seed(*parts: bytes | str) -> int:
    h = hashlib.blake2b(digest_size=8)
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
    return int.from_bytes(h.digest(), "big") % 2**31

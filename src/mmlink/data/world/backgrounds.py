"""Backgrounds of the world's contexts: sky, ground and scenery drawn supersampled once per (context, size) and
cached, plus each scene's seed-driven texture."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

from .draw import ALPHA_CUTOFF, _LANCZOS, _Pen
from .scene import CONTEXTS


# --------------------------------------------------------------------------------------------------- backgrounds

# Sky (top, bottom colour), ground (top, bottom colour) and horizon height of each context.
_SKY_GROUND = {
    "beach": ((85, 155, 230), (185, 222, 250), (238, 218, 165), (222, 195, 140), 0.42),
    "forest": ((135, 185, 225), (200, 225, 240), (75, 145, 65), (50, 115, 45), 0.46),
    "city": ((165, 195, 225), (215, 225, 235), (100, 100, 106), (85, 85, 92), 0.52),
    "snow": ((175, 200, 232), (228, 236, 248), (240, 244, 252), (218, 226, 240), 0.47),
    "night": ((8, 12, 40), (30, 42, 95), (36, 52, 62), (22, 32, 40), 0.5),
    "indoor": ((226, 212, 182), (214, 198, 166), (160, 112, 68), (135, 92, 54), 0.56),
    "desert": ((195, 218, 238), (246, 236, 212), (236, 202, 142), (222, 184, 118), 0.47),
    "park": ((115, 178, 235), (200, 230, 250), (105, 182, 80), (78, 156, 58), 0.47),
}
assert set(_SKY_GROUND) == set(CONTEXTS), "every context needs a background"


def _background(context: str, size: int, seed: int) -> Image.Image:
    """A fresh, unlit background: the cached scenery of (context, size) plus this seed's texture."""
    if context not in _SKY_GROUND:
        raise ValueError(f"unknown context {context!r}; expected one of {CONTEXTS}")
    arr = np.array(_scenery(context, size))  # a copy: the cached scenery stays untouched
    rng = np.random.default_rng(seed)
    horizon = round(_SKY_GROUND[context][4] * size)
    n = size * size
    dot = max(1, size // 160)
    if context == "beach":
        _specks(arr, rng, n // 60, horizon + size // 8, size, (150, 120, 80), 0.35, dot)
        _specks(arr, rng, n // 400, horizon, horizon + size // 8, (255, 255, 255), 0.7, dot)
    elif context in ("forest", "park"):
        _specks(arr, rng, n // 40, horizon, size, (30, 80, 25), 0.35, dot)
        _specks(arr, rng, n // 80, horizon, size, (170, 220, 120), 0.35, dot)
        _specks(arr, rng, n // 2000, horizon + size // 10, size, (250, 240, 90), 0.9, dot + 1)
    elif context == "city":
        _specks(arr, rng, n // 60, horizon + size // 10, size, (60, 60, 65), 0.4, dot)
    elif context == "snow":
        _specks(arr, rng, n // 80, horizon, size, (170, 185, 215), 0.35, dot)
        _specks(arr, rng, n // 500, 0, size, (255, 255, 255), 0.95, dot + 1)  # falling snow
    elif context == "night":
        _specks(arr, rng, n // 300, 0, horizon - size // 20, (255, 255, 230), 0.9, dot)  # stars
        _specks(arr, rng, n // 3000, 0, horizon - size // 10, (255, 255, 240), 1.0, dot + 1)
        _specks(arr, rng, n // 80, horizon, size, (10, 15, 20), 0.35, dot)
    elif context == "indoor":
        _specks(arr, rng, n // 50, horizon + size // 30, size, (90, 55, 30), 0.3, dot)
    elif context == "desert":
        _specks(arr, rng, n // 50, horizon, size, (170, 130, 80), 0.35, dot)
        _specks(arr, rng, n // 2500, horizon + size // 10, size, (120, 100, 85), 0.9, dot + 1)  # pebbles
    img = Image.fromarray(arr, "RGB")
    if context in ("beach", "park", "desert", "snow", "city"):
        cloud = _cloud(size)
        for _ in range(int(rng.integers(1, 4))):
            x = int(rng.integers(-cloud.width // 2, size - cloud.width // 2))
            y = int(rng.integers(0, max(1, round(size * 0.22))))
            img.paste(cloud, (x, y), cloud)
    return img


def _specks(arr: np.ndarray, rng: np.random.Generator, n: int, y0: int, y1: int, color, alpha: float, dot: int):
    """Blend ``n`` small ``dot``-pixel squares of ``color`` into rows [y0, y1) of ``arr`` (in place)."""
    h, w = arr.shape[:2]
    y1 = min(y1, h)
    if n <= 0 or y1 <= y0:
        return
    ys = rng.integers(y0, y1, n)
    xs = rng.integers(0, w, n)
    if dot > 1:  # every pixel of each dot x dot square
        offsets = np.arange(dot)
        ys = np.minimum(ys[:, None, None] + offsets[None, :, None], h - 1).repeat(dot, axis=2).ravel()
        xs = np.minimum(xs[:, None, None] + offsets[None, None, :], w - 1).repeat(dot, axis=1).ravel()
    c = np.asarray(color, np.float32) * alpha
    arr[ys, xs] = (arr[ys, xs] * (1 - alpha) + c).astype(np.uint8)


@lru_cache(maxsize=16)
def _cloud(size: int) -> Image.Image:
    ss = 4 if size < 160 else 2
    w, h = max(4, round(size * 0.28)), max(2, round(size * 0.1))
    big = Image.new("RGBA", (w * ss, h * ss), (0, 0, 0, 0))
    pen = _Pen(big, w * ss / 2, h * ss / 2, h * ss)
    white = (250, 252, 255, 235)
    for x, y, r in ((-0.75, 0.15, 0.3), (-0.3, -0.05, 0.42), (0.25, -0.02, 0.38), (0.75, 0.15, 0.3)):
        pen.circle(x, y, r, fill=white)
    pen.rect(-0.95, 0.1, 0.95, 0.45, white, radius=0.2)
    return big.resize((w, h), _LANCZOS)


def _vgradient(w: int, h: int, top, bottom) -> np.ndarray:
    t = np.linspace(0.0, 1.0, max(h, 1), dtype=np.float32)[:, None, None]
    rows = np.asarray(top, np.float32) + (np.asarray(bottom, np.float32) - np.asarray(top, np.float32)) * t
    return np.broadcast_to(rows, (h, w, 3)).round().astype(np.uint8)


@lru_cache(maxsize=32)
def _scenery(context: str, size: int) -> Image.Image:
    """Everything in a background that does not depend on the seed, drawn 2x and downsampled (cached)."""
    big = 2 * size
    sky_top, sky_bottom, ground_top, ground_bottom, horizon = _SKY_GROUND[context]
    hz = round(horizon * big)
    arr = np.concatenate([_vgradient(big, hz, sky_top, sky_bottom),
                          _vgradient(big, big - hz, ground_top, ground_bottom)])  # fmt: skip
    img = Image.fromarray(arr, "RGB")
    # Scenery coordinates: x and y are fractions of the image side.
    pen = _Pen(img, 0, 0, big)
    _SCENERY[context](pen, horizon)
    return img.resize((size, size), _LANCZOS)


def _scenery_beach(pen, hz):
    pen.circle(0.82, 0.1, 0.06, fill=(255, 240, 170))
    pen.rect(0, hz, 1, hz + 0.13, fill=(40, 120, 190))
    pen.rect(0, hz, 1, hz + 0.015, fill=(30, 95, 165))  # a darker far sea line sharpens the horizon
    for k in range(6):
        y = hz + 0.03 + k * 0.017
        pen.line([(0.05 + 0.15 * (k % 3), y), (0.13 + 0.15 * (k % 3), y)], (120, 185, 230), 0.004, caps=False)
        pen.line([(0.55 + 0.12 * (k % 2), y), (0.62 + 0.12 * (k % 2), y)], (120, 185, 230), 0.004, caps=False)
    # Foam where the waves meet the sand.
    xs = np.linspace(0, 1, 41)
    pen.line([(x, hz + 0.13 + 0.008 * math.sin(x * 40)) for x in xs], (250, 250, 245), 0.012, caps=False)


def _scenery_forest(pen, hz):
    rng = np.random.default_rng(7)  # fixed: the scenery is the same for every seed, so it can be cached
    for shade, base, tall in (((40, 105, 60), hz + 0.01, 0.3), ((25, 80, 42), hz + 0.04, 0.22)):
        x = -0.05
        while x < 1.05:
            w = float(rng.uniform(0.06, 0.11))
            h = float(rng.uniform(0.6, 1.0)) * tall
            pen.poly([(x - w, base), (x, base - h), (x + w, base)], fill=shade)
            x += float(rng.uniform(0.05, 0.1))
    pen.rect(0, hz + 0.03, 1, hz + 0.05, fill=(60, 125, 52))


def _scenery_city(pen, hz):
    rng = np.random.default_rng(11)
    for shade, win, tall in (((150, 162, 185), None, 0.38), ((95, 105, 125), (225, 220, 160), 0.28)):
        x = -0.02
        while x < 1.0:
            w = float(rng.uniform(0.08, 0.16))
            top = hz - float(rng.uniform(0.35, 1.0)) * tall
            pen.rect(x, top, x + w, hz, fill=shade)
            if win is not None:
                for wy in np.arange(top + 0.025, hz - 0.03, 0.045):
                    for wx in np.arange(x + 0.015, x + w - 0.025, 0.035):
                        pen.rect(wx, wy, wx + 0.018, wy + 0.022, fill=win)
            x += w + float(rng.uniform(0.0, 0.02))
    pen.rect(0, hz, 1, hz + 0.07, fill=(175, 175, 178))  # pavement
    pen.rect(0, hz + 0.07, 1, hz + 0.08, fill=(140, 140, 145))  # kerb
    for x in np.arange(0.02, 1.0, 0.16):
        pen.rect(x, 0.86, x + 0.08, 0.875, fill=(235, 235, 235))  # lane markings


def _scenery_snow(pen, hz):
    for x, r, shade in ((0.15, 0.3, (214, 224, 240)), (0.6, 0.38, (224, 232, 246)), (1.0, 0.3, (210, 220, 238))):
        pen.ellipse(x, hz + 0.02, r, 0.12, fill=shade)
    pen.rect(0, hz + 0.02, 1, hz + 0.2, fill=(238, 242, 251))
    for x in (0.08, 0.3, 0.72, 0.93):  # far pines, dusted
        pen.poly([(x - 0.03, hz + 0.02), (x, hz - 0.09), (x + 0.03, hz + 0.02)], fill=(70, 110, 100))
        pen.poly([(x - 0.015, hz - 0.045), (x, hz - 0.09), (x + 0.015, hz - 0.045)], fill=(245, 248, 255))


def _scenery_night(pen, hz):
    pen.circle(0.8, 0.14, 0.065, fill=(245, 242, 205))
    pen.circle(0.83, 0.12, 0.058, fill=(14, 20, 55))  # the sky bites a crescent out of the moon
    for x, r in ((0.1, 0.25), (0.5, 0.32), (0.9, 0.28)):
        pen.ellipse(x, hz + 0.03, r, 0.08, fill=(28, 42, 52))
    pen.rect(0, hz + 0.03, 1, 1, fill=(36, 52, 62))


def _scenery_indoor(pen, hz):
    frame, glass = (250, 250, 248), (160, 205, 240)
    pen.rect(0.1, 0.08, 0.42, 0.38, fill=glass, outline=frame, width=0.02)
    pen.rect(0.1, 0.3, 0.42, 0.38, fill=(110, 170, 90))  # a lawn seen through the window
    pen.rect(0.1, 0.08, 0.42, 0.38, outline=frame, width=0.02)
    pen.line([(0.26, 0.08), (0.26, 0.38)], frame, 0.015, caps=False)
    pen.line([(0.1, 0.23), (0.42, 0.23)], frame, 0.015, caps=False)
    pen.rect(0.62, 0.12, 0.84, 0.3, fill=(200, 90, 70), outline=(120, 80, 40), width=0.015)  # a picture
    pen.poly([(0.64, 0.28), (0.7, 0.18), (0.76, 0.28)], fill=(240, 200, 90))
    pen.rect(0, hz - 0.02, 1, hz, fill=(190, 170, 140))  # skirting board
    y, gap = hz + 0.02, 0.03
    while y < 1:  # floorboards, further apart as they come nearer
        pen.line([(0, y), (1, y)], (115, 78, 45), 0.004, caps=False)
        y += gap
        gap *= 1.3


def _scenery_desert(pen, hz):
    pen.circle(0.2, 0.12, 0.06, fill=(255, 245, 205))
    xs = np.linspace(0, 1, 33)
    for amp, base, phase, shade in ((0.05, hz + 0.01, 0.0, (228, 190, 125)), (0.04, hz + 0.05, 2.0, (238, 204, 140))):
        top = [(x, base - amp * (1 + math.sin(x * 9 + phase)) / 2) for x in xs]
        pen.poly([*top, (1, base + 0.06), (0, base + 0.06)], fill=shade)


def _scenery_park(pen, hz):
    for x in np.arange(-0.02, 1.05, 0.09):  # hedge of round bushes
        pen.circle(float(x), hz - 0.01, 0.055, fill=(55, 125, 55))
    pen.rect(0, hz - 0.01, 1, hz + 0.02, fill=(55, 125, 55))
    path = (222, 205, 160)
    pen.poly([(0.55, hz + 0.02), (0.62, hz + 0.02), (0.9, 1.0), (0.5, 1.0)], fill=path)


_SCENERY = {"beach": _scenery_beach, "forest": _scenery_forest, "city": _scenery_city, "snow": _scenery_snow,
            "night": _scenery_night, "indoor": _scenery_indoor, "desert": _scenery_desert,
            "park": _scenery_park}  # fmt: skip


__all__ = ["ALPHA_CUTOFF", "render", "render_background", "render_object", "render_with_masks"]

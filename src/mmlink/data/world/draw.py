"""Drawing primitives of the world's renderer: colours by name and shade, and the pen that draws in sprite units
(supersampled, then downsampled with LANCZOS)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from .scene import COLORS

# Antialiased edges fainter than this are dropped: they would only add a halo to masks and pasted sprites.
ALPHA_CUTOFF = 64
SUPERSAMPLE = 2  # objects are drawn at least this much larger, then downsampled
_MIN_DRAW_PX = 64  # ... and at least this tall, so the details of small sprites still antialias well
_LANCZOS = Image.Resampling.LANCZOS


# ------------------------------------------------------------------------------------------------ colour helpers


def _shade(rgb, f: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, round(c * f))) for c in rgb)


def _mix(a, b, t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b))


def _luma(rgb) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _edge(rgb) -> tuple[int, int, int]:
    """Outline colour: a darker shade, or a mid grey for colours already too dark to darken visibly."""
    return _shade(rgb, 0.55) if _luma(rgb) > 70 else (110, 110, 118)


def _contrasting(main, alt, against):
    """``main`` unless it is close to ``against`` (an accessory must not vanish on a same-coloured body)."""
    return alt if sum(abs(x - y) for x, y in zip(main, against)) < 150 else main


def _rgba(rgb) -> tuple[int, int, int, int]:
    return (*rgb, 255)


def _color(name: str) -> tuple[int, int, int]:
    try:
        return COLORS[name]
    except KeyError:
        raise ValueError(f"unknown colour {name!r}; expected one of {tuple(COLORS)}") from None


# ------------------------------------------------------------------------------------------------ drawing pen


class _Pen:
    """ImageDraw in sprite units: (0, 0) is the nominal centre, 1 unit the nominal height, y points down."""

    def __init__(self, image: Image.Image, cx: float, cy: float, unit: float):
        self.draw = ImageDraw.Draw(image)
        self.cx, self.cy, self.u = cx, cy, unit

    def pt(self, x, y):
        return (self.cx + x * self.u, self.cy + y * self.u)

    def w(self, width):
        return max(1, round(width * self.u))

    def box(self, x0, y0, x1, y1):
        return [*self.pt(x0, y0), *self.pt(x1, y1)]

    def ellipse(self, x, y, rx, ry, fill=None, outline=None, width=0.0):
        self.draw.ellipse(self.box(x - rx, y - ry, x + rx, y + ry), fill=fill, outline=outline,
                          width=self.w(width) if outline is not None else 0)  # fmt: skip

    def circle(self, x, y, r, fill=None, outline=None, width=0.0):
        self.ellipse(x, y, r, r, fill, outline, width)

    def rect(self, x0, y0, x1, y1, fill=None, outline=None, width=0.0, radius=0.0):
        self.draw.rounded_rectangle(self.box(x0, y0, x1, y1), radius=radius * self.u, fill=fill, outline=outline,
                                    width=self.w(width) if outline is not None else 0)  # fmt: skip

    def poly(self, points, fill=None, outline=None, width=0.0):
        self.draw.polygon([self.pt(x, y) for x, y in points], fill=fill, outline=outline,
                          width=self.w(width) if outline is not None else 0)  # fmt: skip

    def line(self, points, fill, width, caps=True):
        """A thick polyline; round caps and joints, because limbs look broken without them."""
        self.draw.line([self.pt(x, y) for x, y in points], fill=fill, width=self.w(width), joint="curve")
        if caps:
            for x, y in points:
                self.circle(x, y, width / 2, fill=fill)

    def arc(self, x, y, rx, ry, start, end, fill, width):
        self.draw.arc(self.box(x - rx, y - ry, x + rx, y + ry), start, end, fill=fill, width=self.w(width))


def _supersampled(h_px: int) -> int:
    return max(SUPERSAMPLE, math.ceil(_MIN_DRAW_PX / h_px))


def _new_canvas(w: float, h: float, ss: int) -> Image.Image:
    """A transparent supersampled canvas at least w x h, its sides multiples of ``ss``."""
    # Premultiplied RGBa: opaque ink on a (0, 0, 0, 0) canvas is the same in both encodings, and PIL resamples
    # RGBa directly, where RGBA would be converted back and forth on every resize and rotation.
    return Image.new("RGBa", (math.ceil(w / ss) * ss, math.ceil(h / ss) * ss), (0, 0, 0, 0))


def _finish_sprite(canvas: Image.Image, ss: int, centre: tuple[float, float]):
    """Crop an RGBa canvas to its content and downsample it by ``ss`` with LANCZOS; returns (sprite, centre)."""
    bbox = canvas.getchannel("a").getbbox() or (0, 0, ss, ss)
    # Snap the crop to the supersampling grid so the downsample is an exact ss:1 reduction.
    l, t = (bbox[0] // ss) * ss, (bbox[1] // ss) * ss
    r, b = -(-bbox[2] // ss) * ss, -(-bbox[3] // ss) * ss
    sprite = canvas.resize(((r - l) // ss, (b - t) // ss), _LANCZOS, box=(l, t, r, b))
    return sprite, ((centre[0] - l) / ss, (centre[1] - t) / ss)

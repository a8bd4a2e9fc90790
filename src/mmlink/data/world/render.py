"""Render scene graphs of the embedded world to images, with PIL and numpy only.

A scene is drawn as: background (sky/ground/scenery of its context, plus seed-driven texture), soft contact
shadows, then its objects from back to front (smaller ``y`` first, so nearer objects occlude), and finally the
scene's lighting as a brightness scale.

Characters are built so that their **identity** reads at a glance even at 64-96 px: the body shape is the
silhouette, the body colour fills it, the pattern is clipped to the body, the accessory sits outside or across
it, and eyes give a front. The **pose** changes limbs and placement only (arms, legs, lift, mirror, rotation), so
the identity cues stay the same in every pose.

Objects are drawn supersampled (at least 2x) and downsampled with LANCZOS, which is cheap because sprites are
small (the pen and colours: `draw`); backgrounds are drawn supersampled once per (context, size) and cached
(`backgrounds`). Every step is deterministic: the
same scene and size give identical bytes.

Sprite alpha below ``ALPHA_CUTOFF`` is cleared, so "alpha > 0" is a crisp footprint: the visibility masks of
`render_with_masks` and the alpha of `render_object` agree exactly.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from .backgrounds import _background
from .draw import (ALPHA_CUTOFF, _color, _contrasting, _edge, _finish_sprite, _luma, _mix, _new_canvas, _Pen, _rgba,
                   _shade, _supersampled)
from .scene import COLORS, THINGS, Character, Scene, Thing



# --------------------------------------------------------------------------------------------------- public API


def render(scene: Scene, size: int = 224) -> Image.Image:
    """The scene as an RGB ``size``x``size`` image."""
    return _compose(scene, size, want_masks=False)[0]


def render_with_masks(scene: Scene, size: int = 224) -> tuple[Image.Image, list[np.ndarray]]:
    """The image and one boolean ``(size, size)`` visibility mask per ``scene.objects`` entry (same order).

    Masks are after occlusion: a pixel belongs to the last-drawn object covering it, so masks are disjoint and
    a fully hidden object gets an all-False mask. Shadows belong to no object.
    """
    return _compose(scene, size, want_masks=True)


def render_object(obj: Character | Thing, size: int) -> Image.Image:
    """One object alone, as an RGBA ``size``x``size`` image, transparent everywhere except the object.

    It is drawn exactly where and how `render` would draw it (no shadow, no lighting), so it can be used as a
    segmented object: alpha > 0 equals the object's mask in a single-object scene.
    """
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    sprite, pos = _placed(obj, size)
    canvas.paste(sprite, pos)  # a plain paste copies alpha too; clipping at the borders is PIL's
    return canvas


def render_background(context: str, size: int, seed: int = 0, lighting: float = 1.0) -> Image.Image:
    """The background of ``context`` alone (RGB); ``seed`` only moves incidental texture (stars, specks, clouds)."""
    return _apply_lighting(_background(context, size, seed), lighting)


# ------------------------------------------------------------------------------------------------- composition


def _compose(scene: Scene, size: int, want_masks: bool) -> tuple[Image.Image, list[np.ndarray]]:
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    img = _background(scene.context, size, scene.seed)
    _draw_shadows(img, scene.objects, size)
    # Stable sort: objects at the same depth keep the scene's order.
    order = sorted(range(len(scene.objects)), key=lambda i: scene.objects[i].y)
    owner = np.full((size, size), -1, np.int16) if want_masks else None
    for i in order:
        sprite, (left, top) = _placed(scene.objects[i], size)
        img.paste(sprite, (left, top), sprite)
        if owner is not None:
            _claim(owner, np.asarray(sprite.getchannel("A")) > 0, left, top, i)
    img = _apply_lighting(img, scene.lighting)
    masks = [owner == i for i in range(len(scene.objects))] if owner is not None else []
    return img, masks


def _claim(owner: np.ndarray, footprint: np.ndarray, left: int, top: int, index: int) -> None:
    """Mark ``footprint`` (placed at left/top, possibly partly outside) as owned by ``index``."""
    h, w = footprint.shape
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, owner.shape[0]), min(left + w, owner.shape[1])
    if y0 >= y1 or x0 >= x1:
        return
    region = owner[y0:y1, x0:x1]
    region[footprint[y0 - top : y1 - top, x0 - left : x1 - left]] = index


def _apply_lighting(img: Image.Image, lighting: float) -> Image.Image:
    if lighting == 1.0:
        return img
    # Blending with black scales every channel (clipped at 255 above 1); in C, faster than a lookup table.
    return Image.blend(_black(img.size), img, lighting)


@lru_cache(maxsize=8)
def _black(size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, (0, 0, 0))


def _draw_shadows(img: Image.Image, objects, size: int) -> None:
    """Soft dark ellipses on the ground under each object (under a jumping character, smaller and detached)."""
    boxes = []
    for obj in objects:
        ground = (obj.y + obj.size / 2) * size
        w = obj.size * size * _SHADOW_WIDTH.get(obj.kind, 0.45)
        if isinstance(obj, Character) and obj.pose.action == "jumping":
            w *= 0.7
        h = max(1.0, w * 0.22)
        boxes.append((obj.x * size - w / 2, ground - h / 2, obj.x * size + w / 2, ground + h / 2))
    # One small mask over the band the shadows occupy, blended in one paste.
    top = max(0, math.floor(min((b[1] for b in boxes), default=size)))
    bottom = min(size, math.ceil(max((b[3] for b in boxes), default=0)) + 1)
    if bottom <= top:
        return
    shadow = Image.new("L", (size, bottom - top), 0)
    draw = ImageDraw.Draw(shadow)
    for x0, y0, x1, y1 in boxes:
        draw.ellipse([x0, y0 - top, x1, y1 - top], fill=80)
    img.paste((0, 0, 0), (0, top), shadow)


_SHADOW_WIDTH = {"car": 1.9, "house": 0.95, "rock": 1.2, "box": 1.0, "ball": 0.9, "tree": 0.6, "lamp": 0.3,
                 "flower": 0.35, "character": 0.6}  # fmt: skip


def _placed(obj: Character | Thing, size: int) -> tuple[Image.Image, tuple[int, int]]:
    """The object's final RGBA sprite and the top-left position where it goes on a ``size`` canvas."""
    h_px = max(2, round(obj.size * size))
    if isinstance(obj, Character):
        sprite, (cx, cy) = _character_sprite(obj.identity, obj.pose.action, h_px)
        if obj.pose.facing == "left":
            sprite = sprite.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            cx = sprite.width - cx
        angle = float(obj.pose.rotation)
        if abs(angle) >= 0.5:  # a smaller turn is invisible, and skipping it keeps the edges sharp
            sprite, (cx, cy) = _rotate(sprite, (cx, cy), angle)
        sprite = _straight(sprite)
    elif isinstance(obj, Thing):
        sprite, (cx, cy) = _thing_sprite(obj.kind, obj.color, h_px)
    else:
        raise TypeError(f"cannot render {type(obj).__name__}")
    return sprite, (round(obj.x * size - cx), round(obj.y * size - cy))


def _straight(sprite: Image.Image) -> Image.Image:
    """Premultiplied RGBa → RGBA, with the faint antialiasing fringe (alpha < ALPHA_CUTOFF) cleared."""
    out = sprite.convert("RGBA")
    alpha = np.array(out.getchannel("A"))
    alpha[alpha < ALPHA_CUTOFF] = 0
    out.putalpha(Image.fromarray(alpha, "L"))
    return out


def _rotate(sprite: Image.Image, centre: tuple[float, float], angle: float):
    """Turn ``sprite`` counter-clockwise by ``angle`` degrees; returns it and where the point ``centre`` went.

    Placing the result by that point is the same as turning about it.
    """
    w, h = sprite.size
    # Bilinear is enough on an already antialiased sprite, and several times faster than bicubic.
    out = sprite.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    # PIL turns about the image centre and keeps it at the centre of the expanded image; follow our point.
    dx, dy = centre[0] - w / 2, centre[1] - h / 2
    a = math.radians(angle)
    nx = dx * math.cos(a) + dy * math.sin(a)
    ny = -dx * math.sin(a) + dy * math.cos(a)
    return out, (out.width / 2 + nx, out.height / 2 + ny)


# --------------------------------------------------------------------------------------------------- characters

# Body geometry in sprite units for a standing character (ground at y = +0.5): top and bottom of the body, eye
# height, half the distance between the eyes, arm height, and how far a hat/bow sinks into the top.
_BODY = {
    "round": dict(top=-0.30, bottom=0.33, eye_y=-0.07, eye_dx=0.11, arm_y=0.08, sink=0.035),
    "tall": dict(top=-0.42, bottom=0.33, eye_y=-0.25, eye_dx=0.085, arm_y=-0.04, sink=0.02),
    "square": dict(top=-0.26, bottom=0.33, eye_y=-0.10, eye_dx=0.11, arm_y=0.06, sink=0.0),
    "triangle": dict(top=-0.40, bottom=0.33, eye_y=0.03, eye_dx=0.085, arm_y=0.13, sink=0.09),
}
_TALL_HALF, _SQUARE_HALF, _TRI_HALF = 0.21, 0.295, 0.38
_LIFT = {"standing": 0.0, "waving": 0.0, "jumping": -0.13, "sitting": 0.12}  # vertical body offset per action


def _half_width(body: str, y: float) -> float:
    """Half the body's width at height ``y`` (standing frame)."""
    g = _BODY[body]
    if body == "round":
        r, c = (g["bottom"] - g["top"]) / 2, (g["bottom"] + g["top"]) / 2
        return math.sqrt(max(0.0, r * r - (y - c) ** 2))
    if body == "tall":
        return _TALL_HALF
    if body == "square":
        return _SQUARE_HALF
    return _TRI_HALF * min(1.0, max(0.0, (y - g["top"]) / (g["bottom"] - g["top"])))


def _draw_body(pen: _Pen, body: str, dy: float, fill=None, outline=None, width=0.0) -> None:
    g = _BODY[body]
    top, bottom = g["top"] + dy, g["bottom"] + dy
    if body == "round":
        r = (bottom - top) / 2
        pen.circle(0, (top + bottom) / 2, r, fill, outline, width)
    elif body == "tall":
        pen.rect(-_TALL_HALF, top, _TALL_HALF, bottom, fill, outline, width, radius=0.17)
    elif body == "square":
        pen.rect(-_SQUARE_HALF, top, _SQUARE_HALF, bottom, fill, outline, width, radius=0.035)
    else:
        pen.poly([(0, top), (_TRI_HALF, bottom), (-_TRI_HALF, bottom)], fill, outline, width)


@lru_cache(maxsize=128)
def _pattern_field(pattern: str, unit: int) -> Image.Image:
    """An L mask of ``pattern`` (255 = pattern colour) large enough for any body, its grid anchored at the centre."""
    w = h = math.ceil(0.85 * unit)  # the widest body (triangle) is 0.76 units, the tallest (tall) 0.75
    yy, xx = np.ogrid[0:h, 0:w]
    x = (xx - w / 2) / unit
    y = (yy - h / 2) / unit
    if pattern == "striped":
        on = np.floor(y / 0.085).astype(np.int64) % 2 == 0
        on = np.broadcast_to(on, (h, w))
    elif pattern == "checkered":
        on = (np.floor(x / 0.11).astype(np.int64) + np.floor(y / 0.11).astype(np.int64)) % 2 == 0
    elif pattern == "dotted":
        period, radius = 0.16, 0.048
        row = np.floor(y / period)
        fx = np.mod(x + (row % 2) * period / 2, period) - period / 2
        fy = np.mod(y, period) - period / 2
        on = fx * fx + fy * fy < radius * radius
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    return Image.fromarray(np.where(on, 255, 0).astype(np.uint8), "L")


# Sizes vary continuously, so a sprite is mostly reused when the same object is drawn again (render_object of an
# object of a rendered scene, the same scene at another step); a small cache covers that and bounds memory.
@lru_cache(maxsize=256)
def _character_sprite(identity, action: str, h_px: int):
    """The unrotated, right-facing RGBa sprite of ``identity`` doing ``action`` at ``h_px`` (and its centre)."""
    if identity.body not in _BODY:
        raise ValueError(f"unknown body {identity.body!r}")
    if action not in _LIFT:
        raise ValueError(f"unknown action {action!r}")
    ss = _supersampled(h_px)
    unit = h_px * ss
    canvas = _new_canvas(1.45 * unit + 2 * ss, 1.45 * unit + 2 * ss, ss)
    centre = (canvas.width / 2, canvas.height / 2)
    _draw_character(_Pen(canvas, *centre, unit), canvas, identity, action)
    return _finish_sprite(canvas, ss, centre)


def _draw_character(pen: _Pen, canvas: Image.Image, ident, action: str) -> None:
    body, g = ident.body, _BODY[ident.body]
    dy = _LIFT[action]
    color = _color(ident.color)
    edge = _rgba(_edge(color))
    ink = (25, 25, 30, 255)
    top, bottom = g["top"] + dy, g["bottom"] + dy
    eye_y, arm_y = g["eye_y"] + dy, g["arm_y"] + dy
    arm_x = _half_width(body, g["arm_y"]) - 0.03

    # Behind the body: backpack, legs, the far arm.
    if ident.accessory == "backpack":
        pack = _rgba(_contrasting((150, 95, 45), (60, 130, 70), color))
        hw = _half_width(body, g["arm_y"])
        pen.rect(-hw - 0.12, eye_y - 0.01, -hw + 0.08, bottom - 0.07, pack, ink, 0.018, radius=0.05)
    _draw_legs(pen, action, bottom, edge)
    far_arm, near_arm = _arm_ends(action, arm_x, arm_y)
    pen.line([(-arm_x, arm_y), far_arm], edge, 0.055)
    pen.circle(*far_arm, 0.04, fill=edge)

    # The body: colour fill, the pattern clipped to the body silhouette, then the outline on top.
    _draw_body(pen, body, dy, fill=_rgba(color))
    if ident.pattern != "plain":
        pattern = _pattern_field(ident.pattern, round(pen.u))
        bx, by = pen.pt(0, (top + bottom) / 2)
        left, upper = round(bx - pattern.width / 2), round(by - pattern.height / 2)
        body_mask = Image.new("L", pattern.size, 0)
        _draw_body(_Pen(body_mask, pen.cx - left, pen.cy - upper, pen.u), body, dy, fill=255)
        canvas.paste(_rgba(_color(ident.pattern_color)), (left, upper), ImageChops.multiply(body_mask, pattern))
    _draw_body(pen, body, dy, outline=edge, width=0.025)

    # Face, looking right (a left-facing sprite is this one mirrored).
    ex = 0.035
    for sx in (-1, 1):
        pen.circle(ex + sx * g["eye_dx"], eye_y, 0.055, fill=(255, 255, 255, 255), outline=ink, width=0.012)
        pen.circle(ex + sx * g["eye_dx"] + 0.018, eye_y + 0.005, 0.03, fill=ink)
    pen.arc(ex, eye_y + 0.065, 0.06, 0.04, 20, 160, ink, 0.018)

    # Accessories that sit on or across the body.
    acc = ident.accessory
    if acc == "scarf":
        scarf = _rgba(_contrasting((215, 30, 60), (40, 170, 200), color))
        ny = g["eye_y"] + 0.14
        hw = _half_width(body, ny) + 0.025
        pen.poly([(-hw + 0.05, ny + dy), (-hw + 0.14, ny + dy), (-hw + 0.1, ny + dy + 0.2), (-hw, ny + dy + 0.19)],
                 scarf, ink, 0.014)  # fmt: skip
        pen.rect(-hw, ny + dy - 0.04, hw, ny + dy + 0.04, scarf, ink, 0.014, radius=0.03)
    elif acc == "glasses":
        frame = (25, 25, 30, 255) if _luma(color) > 90 else (235, 235, 235, 255)
        for sx in (-1, 1):
            pen.circle(ex + sx * g["eye_dx"], eye_y, 0.075, outline=frame, width=0.022)
        pen.line([(ex - g["eye_dx"] + 0.075, eye_y), (ex + g["eye_dx"] - 0.075, eye_y)], frame, 0.02, caps=False)
        pen.line([(ex - g["eye_dx"] - 0.075, eye_y), (ex - g["eye_dx"] - 0.15, eye_y - 0.02)], frame, 0.02)
    elif acc == "backpack":
        strap = _rgba(_contrasting((150, 95, 45), (60, 130, 70), color))
        hw = _half_width(body, g["arm_y"])
        pen.line([(-hw + 0.04, eye_y + 0.03), (-hw + 0.1, bottom - 0.1)], strap, 0.04)
    hat_y = top + g["sink"]
    if acc == "hat":
        hat = _rgba(_contrasting((45, 45, 60), (235, 235, 240), color))
        pen.rect(-0.12, hat_y - 0.19, 0.12, hat_y, hat, ink, 0.014, radius=0.015)
        pen.rect(-0.12, hat_y - 0.075, 0.12, hat_y - 0.035, (210, 40, 40, 255))  # band: red shows on dark and white
        pen.rect(-0.19, hat_y - 0.035, 0.19, hat_y + 0.01, hat, ink, 0.014, radius=0.02)
    elif acc == "bow":
        bow = _rgba(_contrasting((240, 80, 150), (250, 220, 60), color))
        kx = 0.0 if body == "triangle" else 0.09
        ky = hat_y + 0.01
        for sx in (-1, 1):
            pen.poly([(kx, ky), (kx + sx * 0.15, ky - 0.08), (kx + sx * 0.15, ky + 0.08)], bow, ink, 0.014)
        pen.circle(kx, ky, 0.04, fill=bow, outline=ink, width=0.014)

    # The near arm last, so a wave shows in front of everything.
    pen.line([(arm_x, arm_y), near_arm], edge, 0.055)
    pen.circle(*near_arm, 0.045, fill=edge)


def _arm_ends(action: str, arm_x: float, arm_y: float):
    """Hand positions of the far (back, x < 0) and near (front) arm."""
    if action == "waving":
        return (-arm_x - 0.08, arm_y + 0.17), (arm_x + 0.13, arm_y - 0.27)
    if action == "jumping":
        return (-arm_x - 0.13, arm_y - 0.2), (arm_x + 0.13, arm_y - 0.2)
    if action == "sitting":
        return (-arm_x - 0.05, arm_y + 0.14), (arm_x + 0.1, arm_y + 0.12)
    return (-arm_x - 0.08, arm_y + 0.17), (arm_x + 0.08, arm_y + 0.17)


def _draw_legs(pen: _Pen, action: str, bottom: float, color) -> None:
    width = 0.065
    if action == "sitting":  # legs straight out in front, resting on the ground
        for x0, y in ((-0.06, 0.455), (0.04, 0.465)):
            pen.line([(x0, bottom - 0.03), (x0 + 0.36, y)], color, width)
            pen.ellipse(x0 + 0.37, y - 0.035, 0.03, 0.05, fill=color)
        return
    for sx in (-1, 1):
        if action == "jumping":  # tucked: short legs bent outwards, well above the ground
            knee = (sx * 0.15, bottom + 0.04)
            foot = (sx * 0.1, bottom + 0.1)
            pen.line([(sx * 0.08, bottom - 0.03), knee, foot], color, width)
        else:
            foot = (sx * 0.09, 0.47)
            pen.line([(sx * 0.09, bottom - 0.03), foot], color, width)
        pen.ellipse(foot[0] + 0.03, foot[1] + 0.005, 0.065, 0.03, fill=color)


# ------------------------------------------------------------------------------------------------------- things

# Width of each thing's sprite in units of its height (size is the height fraction, as for characters).
_THING_WIDTH = {"tree": 0.75, "house": 1.0, "car": 2.0, "ball": 1.0, "flower": 0.55, "rock": 1.3, "lamp": 0.5,
                "box": 1.0}  # fmt: skip


@lru_cache(maxsize=512)
def _thing_sprite(kind: str, color_name: str, h_px: int):
    """The final RGBA sprite of a ``kind`` thing in ``color_name`` at height ``h_px`` (and its nominal centre)."""
    if kind not in _THING_DRAW:
        raise ValueError(f"unknown thing kind {kind!r}")
    ss = _supersampled(h_px)
    unit = h_px * ss
    canvas = _new_canvas((_THING_WIDTH[kind] + 0.2) * unit, 1.2 * unit, ss)
    centre = (canvas.width / 2, canvas.height / 2)
    color = _color(color_name)
    _THING_DRAW[kind](_Pen(canvas, *centre, unit), _rgba(color), _rgba(_edge(color)), color)
    sprite, centre = _finish_sprite(canvas, ss, centre)
    return _straight(sprite), centre  # things never turn, so the final sprite can be cached


def _tree(pen, fill, edge, rgb):
    trunk = (75, 45, 25, 255) if rgb == COLORS["brown"] else (115, 72, 38, 255)
    pen.rect(-0.07, 0.0, 0.07, 0.5, trunk, (50, 30, 15, 255), 0.02)
    blobs = [(0, -0.22, 0.25), (-0.18, -0.04, 0.19), (0.18, -0.04, 0.19), (0, -0.02, 0.2), (0, -0.38, 0.13)]
    # Outline first (slightly larger discs), then fills: the union of the blobs gets one clean outline.
    for x, y, r in blobs:
        pen.circle(x, y, r + 0.02, fill=edge)
    for x, y, r in blobs:
        pen.circle(x, y, r, fill=fill)
    pen.circle(-0.07, -0.28, 0.05, fill=_rgba(_mix(rgb, (255, 255, 255), 0.35)))


def _house(pen, fill, edge, rgb):
    roof = _rgba(_shade(rgb, 0.6) if _luma(rgb) > 70 else (150, 60, 50))
    pen.rect(-0.4, -0.08, 0.4, 0.5, fill, edge, 0.025)
    pen.poly([(-0.5, -0.05), (0, -0.5), (0.5, -0.05)], roof, (40, 30, 30, 255), 0.025)
    pen.rect(-0.1, 0.18, 0.1, 0.5, (110, 65, 35, 255), (50, 30, 15, 255), 0.015)
    pen.circle(0.06, 0.35, 0.015, fill=(240, 210, 60, 255))
    for x in (-0.3, 0.17):
        pen.rect(x, 0.02, x + 0.14, 0.16, (175, 215, 245, 255), (250, 250, 250, 255), 0.02)


def _car(pen, fill, edge, rgb):
    ink = (30, 30, 30, 255)
    pen.poly([(-0.5, -0.08), (-0.32, -0.45), (0.3, -0.45), (0.52, -0.08)], fill, edge, 0.03)
    pen.poly([(-0.4, -0.1), (-0.27, -0.38), (-0.03, -0.38), (-0.03, -0.1)], (175, 215, 245, 255))
    pen.poly([(0.03, -0.1), (0.03, -0.38), (0.25, -0.38), (0.42, -0.1)], (175, 215, 245, 255))
    pen.rect(-0.95, -0.12, 0.95, 0.3, fill, edge, 0.03, radius=0.1)
    pen.rect(0.82, -0.04, 0.95, 0.06, (250, 230, 120, 255))
    for x in (-0.55, 0.55):
        pen.circle(x, 0.3, 0.19, fill=ink)
        pen.circle(x, 0.3, 0.08, fill=(180, 180, 185, 255))


def _ball(pen, fill, edge, rgb):
    pen.circle(0, 0, 0.48, fill, edge, 0.035)
    band = (255, 255, 255, 255) if _luma(rgb) < 200 else (40, 90, 210, 255)
    pen.arc(-0.45, 0.0, 0.42, 0.4, 300, 60, band, 0.08)
    pen.circle(-0.17, -0.2, 0.08, fill=_rgba(_mix(rgb, (255, 255, 255), 0.6)))


def _flower(pen, fill, edge, rgb):
    green = (50, 140, 50, 255)
    pen.line([(0, -0.2), (0, 0.5)], green, 0.05)
    pen.ellipse(-0.1, 0.22, 0.1, 0.045, fill=green)
    pen.ellipse(0.1, 0.12, 0.1, 0.045, fill=green)
    for k in range(6):
        a = k * math.pi / 3
        pen.circle(0.14 * math.cos(a), -0.26 + 0.14 * math.sin(a), 0.1, fill=fill, outline=edge, width=0.02)
    centre = (240, 140, 30, 255) if rgb == COLORS["yellow"] else (245, 205, 40, 255)
    pen.circle(0, -0.26, 0.08, fill=centre, outline=(120, 80, 20, 255), width=0.02)


def _rock(pen, fill, edge, rgb):
    outline = [(-0.62, 0.5), (-0.55, 0.05), (-0.3, -0.3), (0.05, -0.42), (0.38, -0.25), (0.6, 0.1), (0.64, 0.5)]
    pen.poly(outline, fill, edge, 0.035)
    pen.poly([(-0.3, -0.2), (0.03, -0.33), (0.15, -0.1), (-0.15, 0.02)], _rgba(_mix(rgb, (255, 255, 255), 0.3)))
    pen.line([(0.15, -0.1), (0.3, 0.2)], edge, 0.025)


def _lamp(pen, fill, edge, rgb):
    metal = (70, 70, 78, 255)
    pen.ellipse(0, 0.47, 0.18, 0.04, fill=metal)
    pen.rect(-0.03, -0.28, 0.03, 0.47, metal)
    pen.circle(0, -0.22, 0.06, fill=(255, 240, 150, 255))
    pen.poly([(-0.11, -0.5), (0.11, -0.5), (0.22, -0.24), (-0.22, -0.24)], fill, edge, 0.03)


def _box(pen, fill, edge, rgb):
    top = _rgba(_mix(rgb, (255, 255, 255), 0.3))
    side = _rgba(_shade(rgb, 0.7))
    pen.poly([(0.3, -0.24), (0.45, -0.4), (0.45, 0.35), (0.3, 0.5)], side, edge, 0.025)
    pen.poly([(-0.45, -0.24), (-0.3, -0.4), (0.45, -0.4), (0.3, -0.24)], top, edge, 0.025)
    pen.rect(-0.45, -0.24, 0.3, 0.5, fill, edge, 0.025)
    tape = _rgba(_contrasting((225, 190, 120), (120, 75, 40), rgb))
    pen.rect(-0.11, -0.24, -0.04, 0.5, tape)
    pen.poly([(-0.11, -0.24), (-0.04, -0.24), (0.11, -0.4), (0.04, -0.4)], tape)


_THING_DRAW = {"tree": _tree, "house": _house, "car": _car, "ball": _ball, "flower": _flower, "rock": _rock,
               "lamp": _lamp, "box": _box}  # fmt: skip
assert set(_THING_DRAW) == set(THINGS), "every thing kind needs a drawing"

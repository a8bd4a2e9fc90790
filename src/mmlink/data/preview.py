"""The preview contact sheet (``preview.png`` of ``mmlink synth --preview``, the CaD-VI Phase-1 writer and the
ablation recipe's examples): one row per record, its images side by side, then each turn's text wrapped below."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

from mmlink.data.formats import IMAGE_TOKEN
from mmlink.fileio import atomic_write


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable, legible font
    except (TypeError, ImportError, OSError):  # pragma: no cover - old Pillow or no FreeType
        return ImageFont.load_default()


def _wrap(draw, text: str, font, width: int, max_lines: int) -> list[str]:
    """Greedy word wrap by pixel width; paragraphs kept; at most ``max_lines`` (the last ends with '...')."""
    lines: list[str] = []
    for para in text.split("\n"):
        words, current = para.split(" "), ""
        for word in words:
            trial = f"{current} {word}" if current else word
            if draw.textlength(trial, font=font) <= width or not current:
                current = trial
                while draw.textlength(current, font=font) > width and len(current) > 1:  # one over-long word
                    cut = len(current)
                    while cut > 1 and draw.textlength(current[:cut], font=font) > width:
                        cut -= 1
                    lines.append(current[:cut])
                    current = current[cut:]
            else:
                lines.append(current)
                current = word
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip()[: max(0, len(lines[-1]) - 3)] + "..."
    return lines


_PLACEHOLDER_LINE = re.compile(r"^\s*(?:Image\s*\d+\s*:?\s*)?" + re.escape(IMAGE_TOKEN) + r"\s*$")


def _instruction(text: str) -> str:
    """A human turn without its placeholder lines ("Image 1: <image>"), other placeholders shown as [image]."""
    kept = [ln for ln in text.split("\n") if not _PLACEHOLDER_LINE.match(ln)]
    return "\n".join(kept).replace(IMAGE_TOKEN, "[image]").strip() or "(images only)"


def make_preview(
    records: list[dict[str, Any]],
    image_root: str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    width: int = 1100,
    max_samples: int = 6,
) -> Path:
    """A contact sheet: one row per record — its images side by side, then each turn's text wrapped below (a turn's
    ``label``, when it has one, replaces its "Q"/"A" prefix: "base", "SAM", "reference")."""
    from PIL import Image, ImageDraw

    from mmlink.data.formats import resolve_image
    from mmlink.images import load_image

    pad, gap, thumb_max = 14, 10, 220
    title_font, label_font, text_font = _font(17), _font(13), _font(15)
    line_h = 20
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    blocks = []
    for rec in records[:max_samples]:
        images = [load_image(resolve_image(p, image_root)) for p in rec["image"]]
        k = max(1, len(images))
        thumb = int(min(thumb_max, (width - 2 * pad - (k - 1) * gap) / k))
        text_lines: list[tuple[str, str]] = []  # (style, text)
        for turn in rec["conversations"]:
            human = turn["from"] == "human"
            body = _instruction(turn["value"]) if human else turn["value"]
            prefix, max_lines = ("Q: ", 6) if human else ("A: ", 14)
            prefix = f"{turn['label']}: " if turn.get("label") else prefix
            wrapped = _wrap(scratch, prefix + body, text_font, width - 2 * pad, max_lines)
            text_lines += [("q" if human else "a", ln) for ln in wrapped]
        height = pad + 24 + 18 + thumb + 10 + line_h * len(text_lines) + pad
        block = Image.new("RGB", (width, height), "white")
        draw = ImageDraw.Draw(block)
        draw.text((pad, pad), rec.get("id", ""), fill=(20, 20, 20), font=title_font)
        y = pad + 24
        for j, img in enumerate(images):
            x = pad + j * (thumb + gap)
            draw.text((x, y), f"Image {j + 1}", fill=(90, 90, 90), font=label_font)
            scaled = img.resize((thumb, thumb) if img.width == img.height else _fit(img.size, thumb),
                                Image.Resampling.LANCZOS)
            block.paste(scaled, (x, y + 18))
            draw.rectangle([x - 1, y + 17, x + scaled.width, y + 18 + scaled.height], outline=(170, 170, 170))
        y += 18 + thumb + 10
        for style, ln in text_lines:
            draw.text((pad, y), ln, fill=(25, 60, 150) if style == "q" else (20, 110, 40), font=text_font)
            y += line_h
        blocks.append(block)
    total = sum(b.height for b in blocks) + max(0, len(blocks) - 1) * 2 or 1
    sheet = Image.new("RGB", (width, total), (200, 200, 200))
    y = 0
    for b in blocks:
        sheet.paste(b, (0, y))
        y += b.height + 2
    path = Path(path)
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", compress_level=6)
    atomic_write(path, buf.getvalue())
    return path


def _fit(size: tuple[int, int], box: int) -> tuple[int, int]:
    w, h = size
    scale = box / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


__all__ = ["make_preview"]

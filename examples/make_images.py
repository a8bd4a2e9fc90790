"""Render the bundled example images (a red ball on a beach, in a forest, in the snow) with PIL.

Usage: python examples/make_images.py [OUT_DIR]   (default: examples/images)
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SCENES = {
    "beach": ((135, 200, 250), (230, 210, 150)),
    "forest": ((120, 170, 120), (60, 110, 50)),
    "snow": ((200, 215, 235), (245, 245, 250)),
}


def render(scene: str, size: int = 256) -> Image.Image:
    sky, ground = SCENES[scene]
    img = Image.new("RGB", (size, size), sky)
    d = ImageDraw.Draw(img)
    d.rectangle([0, size * 0.6, size, size], fill=ground)
    if scene == "forest":
        for x in (30, 90, 200):
            d.rectangle([x + 8, 120, x + 16, 160], fill=(90, 60, 30))
            d.polygon([(x - 10, 125), (x + 12, 60), (x + 34, 125)], fill=(30, 100, 40))
    if scene == "beach":
        d.rectangle([0, size * 0.5, size, size * 0.6], fill=(40, 110, 200))
        d.ellipse([190, 20, 230, 60], fill=(250, 220, 60))
    if scene == "snow":
        d.polygon([(20, 155), (90, 70), (160, 155)], fill=(250, 250, 255), outline=(150, 160, 180))
    d.ellipse([100, 150, 160, 210], fill=(210, 30, 30), outline=(120, 10, 10), width=2)  # the red ball
    return img


def main(out: str = "examples/images") -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for scene in SCENES:
        render(scene).save(out_dir / f"red_ball_{scene}.png", optimize=True)


if __name__ == "__main__":
    main(*sys.argv[1:])

"""mmlink.data.preview: the contact sheet — its size from the records, thumbnails where the layout puts them, each
turn's text (labels, placeholders hidden) wrapped to the width."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw

import mmlink.data.preview as preview

PAD, GAP, THUMB, LINE, HEADER = 14, 10, 220, 20, 14 + 24 + 18  # the layout constants of make_preview


def test_preview_hides_placeholder_lines():
    assert preview._instruction("Image 1: <image>\nImage 2: <image>\nWhat differs?") == "What differs?"
    assert preview._instruction("<image>\nDescribe.") == "Describe."
    assert preview._instruction("Compare <image> and <image>.") == "Compare [image] and [image]."


def test_an_instruction_of_placeholders_only_says_so():
    assert preview._instruction("Image 1: <image>\nImage 2:<image>") == "(images only)"


def _records(tmp_path, n=1, sizes=((32, 32),), colors=((220, 20, 20), (20, 20, 220))):
    (tmp_path / "img").mkdir(exist_ok=True)
    records = []
    for i in range(n):
        paths = []
        for j, size in enumerate(sizes):
            Image.new("RGB", size, colors[j % len(colors)]).save(tmp_path / "img" / f"{i}_{j}.png")
            paths.append(f"img/{i}_{j}.png")
        prompt = "".join(f"Image {j + 1}: <image>\n" for j in range(len(sizes))) + "What colour?"
        records.append({"id": f"rec-{i}", "image": paths,
                        "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": "Red."}]})
    return records


@pytest.fixture
def wrapped(monkeypatch):
    """The texts make_preview wraps, in order (the wrapping itself runs as usual)."""
    seen, real = [], preview._wrap
    monkeypatch.setattr(preview, "_wrap", lambda draw, text, *a: seen.append(text) or real(draw, text, *a))
    return seen


def test_sheet_size_and_thumbnail_positions(tmp_path, wrapped):
    records = _records(tmp_path, n=2, sizes=((32, 32), (40, 20)))
    out = preview.make_preview(records, tmp_path, tmp_path / "preview.png")
    assert out == tmp_path / "preview.png"
    block = HEADER + THUMB + 10 + 2 * LINE + PAD  # two one-line turns
    with Image.open(out) as img:
        assert img.format == "PNG" and img.size == (1100, 2 * block + 2)
        rgb = img.convert("RGB")
        assert rgb.getpixel((PAD + 50, HEADER + 50)) == (220, 20, 20)  # image 1, square: fills its thumbnail
        x2 = PAD + THUMB + GAP
        assert rgb.getpixel((x2 + 50, HEADER + 50)) == (20, 20, 220)  # image 2: 2:1, fitted to 220 x 110
        assert rgb.getpixel((x2 + 50, HEADER + 150)) == (255, 255, 255)  # below it: the block's white
        assert rgb.getpixel((PAD + 50, block + 2 + HEADER + 50)) == (220, 20, 20)  # the second record's block
        assert rgb.getpixel((5, block)) == (200, 200, 200)  # the 2-pixel separator between blocks
    assert wrapped == ["Q: What colour?", "A: Red."] * 2


def test_labels_replace_the_prefix_and_max_samples_limits_the_rows(tmp_path, wrapped):
    records = _records(tmp_path, n=4)
    records[0]["conversations"][1]["label"] = "SAM"
    out = preview.make_preview(records, tmp_path, tmp_path / "p.png", width=400, max_samples=1)
    with Image.open(out) as img:
        assert img.size == (400, HEADER + THUMB + 10 + 2 * LINE + PAD)
    assert wrapped == ["Q: What colour?", "SAM: Red."]


def test_narrow_sheets_shrink_the_thumbnails(tmp_path):
    records = _records(tmp_path, sizes=((32, 32), (32, 32)))
    out = preview.make_preview(records, tmp_path, tmp_path / "p.png", width=300)
    thumb = int((300 - 2 * PAD - GAP) / 2)
    with Image.open(out) as img:
        assert img.size == (300, HEADER + thumb + 10 + 2 * LINE + PAD)
        assert img.convert("RGB").getpixel((PAD + thumb + GAP + thumb - 3, HEADER + thumb - 3)) == (20, 20, 220)


def test_no_records_give_a_one_pixel_sheet(tmp_path):
    with Image.open(preview.make_preview([], tmp_path, tmp_path / "empty.png", width=50)) as img:
        assert img.size == (50, 1)


def test_wrap_breaks_by_pixel_width_and_keeps_paragraphs():
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = preview._font(15)
    text = "the quick brown fox jumps over the lazy dog " * 4
    lines = preview._wrap(draw, text.strip() + "\nsecond paragraph", font, 120, 50)
    assert all(draw.textlength(ln, font=font) <= 120 for ln in lines)
    k = next(i for i, ln in enumerate(lines) if ln.startswith("second"))  # a paragraph starts a line
    assert " ".join(lines[:k]) == text.strip() and " ".join(lines[k:]) == "second paragraph"
    long_word = "x" * 80
    pieces = preview._wrap(draw, long_word, font, 100, 50)
    assert len(pieces) > 1 and "".join(pieces) == long_word
    assert all(draw.textlength(p, font=font) <= 100 for p in pieces)
    cut = preview._wrap(draw, text, font, 120, 3)
    assert len(cut) == 3 and cut[-1].endswith("...") and cut[:2] == lines[:2]


def test_fit_keeps_the_aspect_ratio():
    assert preview._fit((40, 20), 220) == (220, 110)
    assert preview._fit((10, 300), 100) == (3, 100)
    assert preview._fit((1, 1000), 10) == (1, 10)  # never 0 pixels wide

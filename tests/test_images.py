"""Tests for mmlink.images; every fixture image is generated in tmp_path."""

import os
import struct
import warnings
import zlib
from unittest import mock

import numpy as np
import pytest
from PIL import Image, ImageFile

import mmlink.images as images_module
from mmlink.images import DEFAULT_MAX_PIXELS, load_image, load_images


def _save(img, path, **kwargs):
    img.save(path, **kwargs)
    return path


def _noise(size=(64, 64)):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _png_claiming_size(path, width, height):
    """A valid 1x1 PNG whose IHDR is patched to claim width x height (CRC fixed up)."""
    _save(Image.new("L", (1, 1)), path)
    data = bytearray(path.read_bytes())
    # Signature (8) + chunk length (4), then b"IHDR" + 13 data bytes + CRC (4).
    chunk = b"IHDR" + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = chunk
    data[29:33] = struct.pack(">I", zlib.crc32(chunk))
    path.write_bytes(bytes(data))
    return path


def _assert_rgb(img, size):
    assert isinstance(img, Image.Image)
    assert img.mode == "RGB"
    assert img.size == size


# --- basic contract -------------------------------------------------------------


def test_loads_rgb_png_from_str_and_pathlike(tmp_path):
    path = _save(Image.new("RGB", (5, 3), (10, 20, 30)), tmp_path / "plain.png")
    for source in (path, str(path)):
        img = load_image(source)
        _assert_rgb(img, (5, 3))
        assert img.getpixel((4, 2)) == (10, 20, 30)
        assert getattr(img, "fp", None) is None


def test_in_memory_image_is_copied_not_modified():
    src = Image.new("RGB", (4, 4), (1, 2, 3))
    img = load_image(src)
    _assert_rgb(img, (4, 4))
    assert img is not src
    img.putpixel((0, 0), (9, 9, 9))
    assert src.getpixel((0, 0)) == (1, 2, 3)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_file_handles_are_closed(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ("red", "lime")]
    gif = _save(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    png = _save(Image.new("RGB", (4, 4)), tmp_path / "still.png")
    before = len(os.listdir("/proc/self/fd"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(5):
            load_image(gif)
            load_image(png)
    assert len(os.listdir("/proc/self/fd")) == before


def test_rejects_non_path_non_image():
    with pytest.raises(TypeError, match=r"image #0.*int"):
        load_image(123)


# --- file-system errors ---------------------------------------------------------


def test_missing_file(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(FileNotFoundError, match="not found") as info:
        load_image(path)
    assert "missing.png" in str(info.value)


def test_directory(tmp_path):
    path = tmp_path / "folder.png"
    path.mkdir()
    with pytest.raises(ValueError, match="directory") as info:
        load_image(path)
    assert "folder.png" in str(info.value)


def test_unreadable_file(tmp_path, monkeypatch):
    path = _save(Image.new("RGB", (2, 2)), tmp_path / "secret.png")
    path.chmod(0)
    if os.access(path, os.R_OK):  # running as root: permission bits are ignored
        def deny(*args, **kwargs):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(images_module, "open", deny, raising=False)
    try:
        with pytest.raises(ValueError, match="permission denied") as info:
            load_image(path)
        assert "secret.png" in str(info.value)
    finally:
        path.chmod(0o600)


# --- undecodable data -----------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"this is a text file, not a picture\n", b"\x89PNG\r\n\x1a\n" + bytes(range(200))],
    ids=["text", "png-magic-garbage"],
)
def test_not_an_image(tmp_path, payload):
    path = tmp_path / "notes.png"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match="not a readable image") as info:
        load_image(path)
    assert "notes.png" in str(info.value)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    full = _save(_noise(), tmp_path / f"full.{fmt.lower()}", format=fmt)
    data = full.read_bytes()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated") as info:
        load_image(path)
    assert f"cut.{fmt.lower()}" in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_zero_size_in_memory():
    with pytest.raises(ValueError, match=r"image #0 has zero width or height \(0x4\)"):
        load_image(Image.new("RGB", (0, 4)))


def test_zero_size_file_header(tmp_path):
    path = _png_claiming_size(tmp_path / "empty.png", 0, 5)
    with pytest.raises(ValueError) as info:  # PIL already refuses to parse it
        load_image(path)
    assert "empty.png" in str(info.value)


def test_unsupported_mode():
    odd = mock.Mock(spec=Image.Image, mode="I;32X", size=(2, 2), info={})
    with pytest.raises(ValueError, match="unsupported image mode 'I;32X'") as info:
        load_image(odd)
    assert "image #0" in str(info.value)


# --- decompression bombs --------------------------------------------------------


def test_bomb_over_max_pixels(tmp_path):
    path = _save(Image.new("RGB", (20, 20)), tmp_path / "big.png")
    with pytest.raises(ValueError, match=r"20x20 = 400 pixels.*limit of 100") as info:
        load_image(path, max_pixels=100)
    assert "big.png" in str(info.value)
    _assert_rgb(load_image(path, max_pixels=400), (20, 20))


def test_bomb_in_memory_image():
    with pytest.raises(ValueError, match=r"image #0 is 20x20 .*limit"):
        load_image(Image.new("L", (20, 20)), max_pixels=100)


@pytest.mark.parametrize(
    "width, height, max_pixels",
    [
        (9_000, 9_000, DEFAULT_MAX_PIXELS),  # our own header check
        (10_000, 10_000, 10**12),  # PIL's DecompressionBombWarning, made an error
        (100_000, 100_000, 10**12),  # PIL's DecompressionBombError
    ],
)
def test_bomb_header_rejected_without_decoding(tmp_path, width, height, max_pixels):
    path = _png_claiming_size(tmp_path / "bomb.png", width, height)
    filters_before = list(warnings.filters)
    with mock.patch.object(ImageFile.ImageFile, "load", side_effect=AssertionError("decoded")):
        with pytest.raises(ValueError, match="limit") as info:
            load_image(path, max_pixels=max_pixels)
    assert "bomb.png" in str(info.value)
    message = str(info.value)
    assert f"{width * height:,}" in message or str(width * height) in message
    assert warnings.filters == filters_before


# --- mode conversions -----------------------------------------------------------


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 32768, 65535, 257]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    img = load_image(path)
    _assert_rgb(img, (4, 1))
    assert [img.getpixel((x, 0)) for x in range(4)] == [
        (0, 0, 0), (128, 128, 128), (255, 255, 255), (1, 1, 1)]


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16bit_modes_in_memory(mode):
    src = Image.new(mode, (2, 1))
    src.putpixel((0, 0), 65535)
    src.putpixel((1, 0), 32768)
    img = load_image(src)
    _assert_rgb(img, (2, 1))
    assert img.getpixel((0, 0)) == (255, 255, 255)
    assert img.getpixel((1, 0)) == (128, 128, 128)


def test_32bit_integer_tiff_uses_full_int32_range(tmp_path):
    values = np.array([[0, 2**31 - 1, 2**30, -5]], dtype=np.int32)
    path = _save(Image.fromarray(values), tmp_path / "int32.tiff")
    img = load_image(path)
    _assert_rgb(img, (4, 1))
    assert [img.getpixel((x, 0))[0] for x in range(4)] == [0, 255, 128, 0]


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.0, 0.5, 1.0, -0.2], [0, 128, 255, 0]),  # normalised [0, 1]
        ([0.0, 100.0, 300.0, np.nan], [0, 100, 255, 0]),  # 8-bit range, clipped
    ],
)
def test_float_images(tmp_path, values, expected):
    path = _save(Image.fromarray(np.array([values], dtype=np.float32)), tmp_path / "float.tiff")
    img = load_image(path)
    _assert_rgb(img, (4, 1))
    assert [img.getpixel((x, 0))[0] for x in range(4)] == expected


def test_cmyk_cyan_becomes_rgb_cyan(tmp_path):
    path = _save(Image.new("CMYK", (3, 2), (255, 0, 0, 0)), tmp_path / "cyan.tiff")
    img = load_image(path)
    _assert_rgb(img, (3, 2))
    assert img.getpixel((1, 1)) == (0, 255, 255)


def test_cmyk_jpeg(tmp_path):
    path = _save(Image.new("CMYK", (16, 16), (255, 0, 0, 0)), tmp_path / "cyan.jpg", quality=95)
    pixel = np.array(load_image(path).getpixel((8, 8)))
    assert np.abs(pixel - (0, 255, 255)).max() <= 4


def test_bilevel(tmp_path):
    src = Image.new("1", (2, 1))
    src.putpixel((1, 0), 1)
    img = load_image(_save(src, tmp_path / "bw.png"))
    _assert_rgb(img, (2, 1))
    assert [img.getpixel((x, 0)) for x in range(2)] == [(0, 0, 0), (255, 255, 255)]


def test_grayscale(tmp_path):
    img = load_image(_save(Image.new("L", (3, 3), 77), tmp_path / "gray.png"))
    _assert_rgb(img, (3, 3))
    assert img.getpixel((2, 2)) == (77, 77, 77)


def _palette_image():
    src = Image.new("P", (3, 1))
    src.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    for x in range(3):
        src.putpixel((x, 0), x)
    return src


def test_palette_colours_preserved(tmp_path):
    img = load_image(_save(_palette_image(), tmp_path / "pal.png"))
    _assert_rgb(img, (3, 1))
    assert [img.getpixel((x, 0)) for x in range(3)] == [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def test_palette_transparency_becomes_white(tmp_path):
    img = load_image(_save(_palette_image(), tmp_path / "pal_t.png", transparency=1))
    _assert_rgb(img, (3, 1))
    assert [img.getpixel((x, 0)) for x in range(3)] == [(255, 0, 0), (255, 255, 255), (0, 0, 255)]


def test_rgba_composited_on_white(tmp_path):
    src = Image.new("RGBA", (3, 1))
    src.putdata([(255, 0, 0, 255), (255, 0, 0, 0), (0, 0, 0, 128)])
    img = load_image(_save(src, tmp_path / "alpha.png"))
    _assert_rgb(img, (3, 1))
    assert img.getpixel((0, 0)) == (255, 0, 0)
    assert img.getpixel((1, 0)) == (255, 255, 255)
    assert all(abs(c - 127) <= 1 for c in img.getpixel((2, 0)))


def test_la_composited_on_white(tmp_path):
    src = Image.new("LA", (2, 1))
    src.putdata([(0, 255), (0, 0)])
    img = load_image(_save(src, tmp_path / "la.png"))
    _assert_rgb(img, (2, 1))
    assert [img.getpixel((x, 0)) for x in range(2)] == [(0, 0, 0), (255, 255, 255)]


def test_rgb_with_transparency_key(tmp_path):
    src = Image.new("RGB", (2, 1), (10, 20, 30))
    src.putpixel((1, 0), (1, 2, 3))
    img = load_image(_save(src, tmp_path / "trns.png", transparency=(1, 2, 3)))
    assert [img.getpixel((x, 0)) for x in range(2)] == [(10, 20, 30), (255, 255, 255)]


@pytest.mark.parametrize(
    "mode, value, expected",
    [
        ("YCbCr", (76, 85, 255), (254, 0, 0)),
        ("HSV", (0, 255, 255), (255, 0, 0)),
        ("LAB", (255, 128, 128), (255, 255, 255)),
        ("RGBX", (1, 2, 3, 0), (1, 2, 3)),
    ],
)
def test_other_colour_spaces(mode, value, expected):
    img = load_image(Image.new(mode, (2, 2), value))
    _assert_rgb(img, (2, 2))
    assert np.abs(np.array(img.getpixel((0, 0))) - expected).max() <= 2


def test_premultiplied_la():
    img = load_image(Image.new("La", (2, 2), (0, 0)))
    _assert_rgb(img, (2, 2))
    assert img.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_applied(tmp_path):
    src = Image.new("RGB", (4, 2), (0, 0, 255))
    src.paste((255, 0, 0), (0, 0, 2, 2))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img = load_image(_save(src, tmp_path / "rotated.png", exif=exif))
    _assert_rgb(img, (2, 4))
    assert img.getpixel((0, 0)) == (255, 0, 0)  # the left edge is now on top
    assert img.getpixel((0, 3)) == (0, 0, 255)


# --- animation ------------------------------------------------------------------


@pytest.mark.parametrize("fmt, ext", [("GIF", "gif"), ("PNG", "png"), ("WEBP", "webp")])
def test_animated_uses_first_frame_and_warns(tmp_path, fmt, ext):
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    path = _save(frames[0], tmp_path / f"anim.{ext}", format=fmt, save_all=True,
                 append_images=frames[1:], duration=100, lossless=True)
    with pytest.warns(UserWarning, match=r"anim\.\w+ is animated \(3 frames\).*first frame"):
        img = load_image(path)
    _assert_rgb(img, (8, 6))
    assert img.getpixel((4, 3)) == (255, 0, 0)


def test_still_image_does_not_warn(tmp_path):
    path = _save(Image.new("RGB", (2, 2)), tmp_path / "still.gif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_image(path)


# --- load_images ----------------------------------------------------------------


def test_load_images_mixed_sources(tmp_path):
    path = _save(Image.new("L", (3, 2), 200), tmp_path / "a.png")
    out = load_images([path, Image.new("RGBA", (4, 4), (0, 0, 0, 0)), str(path)])
    assert [im.mode for im in out] == ["RGB"] * 3
    assert [im.size for im in out] == [(3, 2), (4, 4), (3, 2)]
    assert out[1].getpixel((0, 0)) == (255, 255, 255)


def test_load_images_names_in_memory_images_by_index(tmp_path):
    good = _save(Image.new("RGB", (2, 2)), tmp_path / "good.png")
    with pytest.raises(ValueError, match=r"^image #2 has zero width"):
        load_images([good, Image.new("RGB", (2, 2)), Image.new("RGB", (2, 0))])
    with pytest.raises(ValueError, match=r"image #1 is 20x20"):
        load_images([Image.new("RGB", (2, 2)), Image.new("RGB", (20, 20))], max_pixels=100)


def test_load_images_names_failing_path(tmp_path):
    good = _save(Image.new("RGB", (2, 2)), tmp_path / "good.png")
    with pytest.raises(FileNotFoundError, match="gone.png"):
        load_images([good, tmp_path / "gone.png"])


def test_load_images_warns_for_animated(tmp_path):
    frames = [Image.new("RGB", (2, 2), c) for c in ("red", "lime")]
    path = _save(frames[0], tmp_path / "two.gif", save_all=True, append_images=frames[1:])
    with pytest.warns(UserWarning, match=r"two\.gif is animated \(2 frames\)") as record:
        load_images([path])
    assert record[0].filename == __file__

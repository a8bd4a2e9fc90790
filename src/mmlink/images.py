"""Robust image loading: any path or PIL image in, a fully decoded 8-bit RGB image out.

Datasets for multimodal models are scraped from everywhere, so loading has to
survive broken, hostile and exotic files. Every failure raises an exception
whose message names the input (its path, or ``image #i`` for in-memory images)
and says what is wrong, so a bad sample can be found and dropped quickly.
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct
import warnings
import zlib
from collections.abc import Iterable, Iterator
from typing import IO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A decompression bomb is a small file whose header claims a huge canvas
# (a few KB of PNG can inflate to gigabytes). 64 MP (~192 MB as RGB) is above
# any realistic photo or scan yet far below what would exhaust a worker's RAM.
DEFAULT_MAX_PIXELS = 64_000_000

ImageSource = Union[str, "os.PathLike[str]", Image.Image]

# Errors PIL raises for undecodable data; it is not consistent about which.
_DECODE_ERRORS = (OSError, SyntaxError, EOFError, ValueError, struct.error, zlib.error)

# Integer grayscale is rescaled by the full range of its storage type, so the
# same stored value always maps to the same brightness, whatever the image.
_INT_MODE_MAX = {"I;16": 2**16 - 1, "I;16L": 2**16 - 1, "I;16B": 2**16 - 1,
                 "I;16N": 2**16 - 1, "I": 2**31 - 1}
_ALPHA_MODES = {"LA", "La", "PA", "RGBA", "RGBa"}
_PIL_TO_RGB_MODES = {"1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "HSV", "LAB"}
_SUPPORTED_MODES = _PIL_TO_RGB_MODES | _ALPHA_MODES | set(_INT_MODE_MAX) | {"F"}


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Load one image (path or ``PIL.Image.Image``) as a fully loaded 8-bit RGB image.

    EXIF orientation is applied and transparency is composited onto white.
    Animated files (GIF, WebP, APNG) yield their first frame and a
    ``UserWarning``: models here take still images, and silently dropping the
    other frames would hide that the sample is not what it seems. An
    in-memory image is used at its current frame, untouched. Images with
    more than ``max_pixels`` pixels are rejected before decoding;
    ``PIL.Image.MAX_IMAGE_PIXELS`` also applies, so raise both to go higher.
    """
    return _load(source, "image #0", max_pixels)


def load_images(
    sources: Iterable[ImageSource], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[Image.Image]:
    """Apply `load_image` to each source; in-memory images are named ``image #i``."""
    images = []
    for i, source in enumerate(sources):  # a plain loop keeps warning stacklevels right
        images.append(_load(source, f"image #{i}", max_pixels))
    return images


def _load(source: ImageSource, memory_name: str, max_pixels: int) -> Image.Image:
    if isinstance(source, Image.Image):
        with _bombs_as_errors(memory_name):
            return _decode(source, memory_name, max_pixels)
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"{memory_name}: expected a file path or PIL.Image.Image, got {type(source).__name__}"
        )
    name = os.fsdecode(source)
    # Our own handle, closed on exit: PIL keeps multi-frame files open otherwise.
    with _open(name) as file, _bombs_as_errors(name):
        try:
            img = Image.open(file)
            n_frames = getattr(img, "n_frames", 1)
        except UnidentifiedImageError as exc:
            raise ValueError(
                f"{name} is not a readable image: unknown format or corrupt header"
            ) from exc
        except _DECODE_ERRORS as exc:
            raise ValueError(f"{name} is not a readable image: {exc}") from exc
        rgb = _decode(img, name, max_pixels)
    if n_frames > 1:
        warnings.warn(
            f"{name} is animated ({n_frames} frames); using only the first frame",
            UserWarning,
            stacklevel=3,
        )
    return rgb


def _open(name: str) -> IO[bytes]:
    if os.path.isdir(name):  # Windows reports directories as PermissionError
        raise ValueError(f"{name} is a directory, not an image file")
    try:
        return open(name, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, "image file not found", name) from None
    except PermissionError as exc:
        raise ValueError(f"{name} cannot be read: permission denied") from exc
    except OSError as exc:
        raise ValueError(f"{name} cannot be opened: {exc.strerror or exc}") from exc


@contextlib.contextmanager
def _bombs_as_errors(name: str) -> Iterator[None]:
    # PIL only *warns* between 1x and 2x its limit; make that fatal here, but
    # restore the caller's warning filters afterwards.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(
                f"{name} is too large to decode safely: {exc} "
                "(raise PIL.Image.MAX_IMAGE_PIXELS and max_pixels to allow it)"
            ) from exc


def _decode(img: Image.Image, name: str, max_pixels: int) -> Image.Image:
    # Size and mode come from the header: check them before paying for decoding.
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ValueError(f"{name} has zero width or height ({width}x{height})")
    if width * height > max_pixels:
        raise ValueError(
            f"{name} is {width}x{height} = {width * height:,} pixels, more than the "
            f"limit of {max_pixels:,} (max_pixels); refusing a possible decompression bomb"
        )
    if img.mode not in _SUPPORTED_MODES:
        raise ValueError(f"{name} has unsupported image mode {img.mode!r}")
    try:
        img.load()
        img = ImageOps.exif_transpose(img)
    except _DECODE_ERRORS as exc:
        raise ValueError(f"{name} could not be decoded (truncated or corrupt): {exc}") from exc
    try:
        return _to_rgb(img)
    except ValueError as exc:
        raise ValueError(f"{name} cannot convert mode {img.mode!r} to RGB: {exc}") from exc


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in _INT_MODE_MAX:
        return _gray_to_rgb(np.asarray(img, dtype=np.float64) * (255 / _INT_MODE_MAX[mode]))
    if mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, neginf=0.0)
        # Float images are either normalised to [0, 1] or already in 8-bit range.
        return _gray_to_rgb(values * 255 if values.max() <= 1.0 else values)
    if mode in _ALPHA_MODES or "transparency" in img.info:
        # PIL has no La -> RGBA conversion, only La -> LA.
        rgba = (img.convert("LA") if mode == "La" else img).convert("RGBA")
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    gray = np.rint(np.clip(values, 0, 255)).astype(np.uint8)
    return Image.fromarray(gray).convert("RGB")

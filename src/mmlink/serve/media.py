"""Images of a chat request, under a policy: ``data:`` URLs always; ``file://`` only below one allowed directory;
``http(s)://`` only from allowed hosts, size- and time-capped, no redirects. Every refusal is a `RequestError`
naming the limit or the flag that lifts it, so the server answers 4xx and never crashes on an image."""

from __future__ import annotations

import base64
import binascii
import io
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mmlink.images import load_image as decode
from mmlink.settings import check_fields, setting


class RequestError(Exception):
    """A request the server refuses: ``status`` (4xx) and an OpenAI-style error body."""

    def __init__(self, message: str, status: int = 400, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.status, self.param, self.code, self.kind = message, status, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


@dataclass(frozen=True)
class MediaPolicy:
    """Where images may come from and how big they may be."""

    allowed_local_path: Path | None = setting(None, help="serve file:// images below DIR only (null: no local files)")
    allowed_domains: tuple[str, ...] = setting((), help="comma-separated hosts whose http(s) images may be fetched "
                                               "(none: no remote images)")
    max_image_bytes: int = setting(10 * 2**20, min=1, help="one image's encoded size")
    max_image_pixels: int = setting(4096 * 4096, min=1, help="one image's width × height, checked before decoding "
                                    "(decompression bombs)")
    fetch_timeout_s: float = setting(10.0, above=0, help="seconds a remote image may take")

    def __post_init__(self) -> None:
        check_fields(self)
        if self.allowed_local_path is not None and not self.allowed_local_path.is_dir():
            raise ValueError(f"allowed_local_path {self.allowed_local_path}: not a directory")
        # host names compare case-insensitively
        object.__setattr__(self, "allowed_domains", tuple(h.strip().lower() for h in self.allowed_domains if h.strip()))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # a redirect could leave the allowed hosts
        raise RequestError(f"image URL {req.full_url} redirects ({code}); remote images are fetched without redirects",
                           code="media_not_allowed")


def _data_url(url: str, param: str, policy: MediaPolicy) -> bytes:
    head, sep, payload = url.partition(",")
    if not sep or ";base64" not in head:
        raise RequestError("a data: image URL must be base64 (data:image/png;base64,...)", param=param)
    if len(payload) * 3 // 4 > policy.max_image_bytes:
        raise RequestError(f"image exceeds {policy.max_image_bytes} bytes (--max-image-bytes)", status=413,
                           param=param, code="image_too_large")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("the data: image URL is not valid base64", param=param) from None


def _local_file(url: str, param: str, policy: MediaPolicy) -> bytes:
    if policy.allowed_local_path is None:
        raise RequestError("file:// images are off (serve with --allowed-local-media-path DIR)", status=403,
                           param=param, code="media_not_allowed")
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise RequestError(f"file:// URL names a host ({parsed.netloc}); only local paths are served", status=403,
                           param=param, code="media_not_allowed")
    root = policy.allowed_local_path.resolve()
    path = Path(urllib.parse.unquote(parsed.path)).resolve()  # follows links and `..`: the real place is checked
    if not path.is_relative_to(root):
        raise RequestError(f"file:// image outside the allowed directory {root} (--allowed-local-media-path)",
                           status=403, param=param, code="media_not_allowed")
    if not path.is_file():
        raise RequestError(f"file:// image not found: {path}", param=param)
    if path.stat().st_size > policy.max_image_bytes:
        raise RequestError(f"image exceeds {policy.max_image_bytes} bytes (--max-image-bytes)", status=413,
                           param=param, code="image_too_large")
    return path.read_bytes()


def _remote(url: str, param: str, policy: MediaPolicy) -> bytes:
    host = (urllib.parse.urlparse(url).hostname or "").lower()
    if host not in policy.allowed_domains:
        raise RequestError(f"remote image host {host!r} is not allowed (--allowed-media-domains)", status=403,
                           param=param, code="media_not_allowed")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=policy.fetch_timeout_s) as response:
            data = response.read(policy.max_image_bytes + 1)
    except RequestError:
        raise
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise RequestError(f"could not fetch image {url}: {err}", param=param, code="media_fetch_failed") from None
    if len(data) > policy.max_image_bytes:
        raise RequestError(f"image exceeds {policy.max_image_bytes} bytes (--max-image-bytes)", status=413,
                           param=param, code="image_too_large")
    return data


def load_image(url: str, param: str, policy: MediaPolicy) -> Image.Image:
    """The RGB image behind ``url`` (``param``: where it sits in the request, for the error)."""
    if url.startswith("data:"):
        data = _data_url(url, param, policy)
    elif url.startswith("file://"):
        data = _local_file(url, param, policy)
    elif url.startswith(("http://", "https://")):
        data = _remote(url, param, policy)
    else:
        raise RequestError("image_url must be a data:, file:// or http(s):// URL", param=param)
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only: the size is known before any decoding
        width, height = image.size
    except Image.DecompressionBombError:  # PIL's own guard, above twice its MAX_IMAGE_PIXELS
        raise RequestError(f"image has more pixels than {policy.max_image_pixels} (--max-image-pixels)", status=413,
                           param=param, code="image_too_large") from None
    except (OSError, ValueError, SyntaxError):
        raise RequestError("the image could not be decoded: unknown format or corrupt header", param=param,
                           code="invalid_image") from None
    if width * height > policy.max_image_pixels:
        raise RequestError(f"image of {width}×{height} pixels exceeds {policy.max_image_pixels} (--max-image-pixels)",
                           status=413, param=param, code="image_too_large")
    try:  # the toolkit's one decoder: EXIF orientation, transparency, exotic modes, truncation
        return decode(image, max_pixels=policy.max_image_pixels)
    except ValueError as err:
        raise RequestError(f"the image could not be decoded: {err}", param=param, code="invalid_image") from None


__all__ = ["MediaPolicy", "RequestError", "load_image"]

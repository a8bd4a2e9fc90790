"""Images of a request under the media policy: data URLs, file:// inside / outside / through `..` and links,
remote hosts off by default, decompression bombs refused before decoding, each refusal naming its flag."""

import base64
import io
import os

import pytest
from PIL import Image

from mmlink.serve.media import MediaPolicy, RequestError, load_image


def _png(size=(8, 6), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, {"1": 1, "L": 90}.get(mode, (200, 30, 30))).save(buf, format="PNG")
    return buf.getvalue()


def data_url(payload: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(payload).decode()


def test_data_url_is_decoded_to_rgb():
    image = load_image(data_url(_png((8, 6), "L")), "p", MediaPolicy())
    assert image.mode == "RGB" and image.size == (8, 6)


@pytest.mark.parametrize("url, status, text", [
    ("data:image/png,abc", 400, "base64"),
    ("data:image/png;base64,@@@", 400, "not valid base64"),
    ("data:image/png;base64," + base64.b64encode(b"not an image").decode(), 400, "could not be decoded"),
    ("ftp://example.com/a.png", 400, "data:, file:// or http"),
    ("https://example.com/a.png", 403, "--allowed-media-domains"),
    ("file:///etc/hostname", 403, "--allowed-local-media-path"),
])
def test_refusals_name_the_reason(url, status, text):
    with pytest.raises(RequestError) as err:
        load_image(url, "messages.0.content.0.image_url", MediaPolicy())
    assert err.value.status == status and text in err.value.message
    assert err.value.body()["error"]["param"] == "messages.0.content.0.image_url"


@pytest.mark.parametrize("side", [5000, 20000])  # above mmlink's limit; above PIL's own guard too
def test_a_decompression_bomb_is_refused_before_decoding(side):
    bomb = _png((side, side), "1")  # up to 400 M pixels in a few kB
    assert len(bomb) < 200_000
    with pytest.raises(RequestError) as err:
        load_image(data_url(bomb), "p", MediaPolicy())
    assert err.value.status == 413 and "--max-image-pixels" in err.value.message


def test_image_bytes_limit():
    with pytest.raises(RequestError, match="--max-image-bytes"):
        load_image(data_url(_png((64, 64))), "p", MediaPolicy(max_image_bytes=100))


def test_local_files_only_inside_the_allowed_directory(tmp_path):
    root, outside = tmp_path / "media", tmp_path / "secret"
    root.mkdir(), outside.mkdir()
    (root / "a.png").write_bytes(_png())
    (outside / "b.png").write_bytes(_png())
    os.symlink(outside / "b.png", root / "link.png")
    policy = MediaPolicy(allowed_local_path=root)
    assert load_image(f"file://{root}/a.png", "p", policy).size == (8, 6)
    for url in (f"file://{outside}/b.png", f"file://{root}/../secret/b.png", f"file://{root}/link.png",
                f"file://otherhost{root}/a.png"):
        with pytest.raises(RequestError) as err:
            load_image(url, "p", policy)
        assert err.value.status == 403, url
    with pytest.raises(RequestError, match="not found"):
        load_image(f"file://{root}/missing.png", "p", policy)


def test_a_truncated_image_is_a_400_from_the_toolkits_decoder():
    with pytest.raises(RequestError) as err:
        load_image(data_url(_png((64, 64))[:-40]), "p", MediaPolicy())
    assert err.value.status == 400 and "could not be decoded" in err.value.message

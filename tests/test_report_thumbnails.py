"""Thumbnails are encoded once: the runner memoises its PNGs by pixels, and the report embeds a PNG that is
already a plain small RGB thumbnail byte for byte instead of decoding and re-encoding it."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
from PIL import Image, PngImagePlugin

from mechinterp.report.html import THUMB_PX, _thumbnail_of, is_plain_thumbnail, thumbnail_uri
from mechinterp.suite.runner import THUMB, thumbnail

PREFIX = "data:image/png;base64,"


def old_thumbnail(image: Image.Image, size: int = THUMB) -> str:
    """The runner's thumbnail before it was memoised (the oracle)."""
    im = image.copy()
    im.thumbnail((size, size))
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def png(image: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", **params)
    return buf.getvalue()


def noise(size=(64, 64), mode="RGB", seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode, 1)
    arr = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(arr[..., 0] if channels == 1 else arr, mode if mode != "P" else "L").convert(mode)


def pixels(uri: str) -> np.ndarray:
    assert uri.startswith(PREFIX)
    with Image.open(io.BytesIO(base64.b64decode(uri[len(PREFIX):]))) as im:
        return np.asarray(im.convert("RGB"))


def test_runner_thumbnails_are_what_they_were():
    with_info = noise(seed=3)
    with_info.info["dpi"] = (72, 72)
    cases = [noise(), noise((64, 64), seed=1), noise((200, 120)), noise((96, 96)), noise((97, 40)),
             noise(mode="RGBA"), noise(mode="L"), noise(mode="P"), with_info, Image.new("RGB", (64, 64), (9, 8, 7))]
    for image in cases:
        assert thumbnail(image) == old_thumbnail(image)
        assert thumbnail(image, 32) == old_thumbnail(image, 32)
    twin = Image.fromarray(np.asarray(noise()))  # another object with the same pixels: the memo's answer
    assert thumbnail(twin) is thumbnail(noise()) and thumbnail(twin) == old_thumbnail(twin)


def test_a_runner_thumbnail_is_embedded_byte_for_byte():
    for image in (noise(), noise((96, 80), seed=2), Image.new("RGB", (64, 64), (200, 30, 30))):
        stored = thumbnail(image)
        data = base64.b64decode(stored)
        assert is_plain_thumbnail(data)
        assert thumbnail_uri({"png": stored}, None) == PREFIX + stored
        assert np.array_equal(pixels(PREFIX + stored), np.asarray(image))


def test_embedded_or_re_encoded_the_page_shows_the_same_pixels(tmp_path):
    """The shortcut changes PNG bytes only: the old re-encode (RGB, optimize) gives the same pixels."""
    for image in (noise(), noise((160, 100), seed=5)):
        data = png(image)
        old = io.BytesIO()
        image.convert("RGB").save(old, format="PNG", optimize=True)
        assert np.array_equal(pixels(_thumbnail_of(data)), pixels(PREFIX + base64.b64encode(old.getvalue()).decode()))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_anything_but_plain_small_rgb_pixels_is_re_encoded():
    plain = png(noise())
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<script>alert(1)</script>")
    iend = plain.rindex(b"IEND") - 4
    others = {
        "text chunk": png(noise(), pnginfo=info),
        "private chunk": plain[:iend] + _chunk(b"prVt", b"payload") + plain[iend:],
        "bytes after IEND": plain + b"<html>",
        "RGBA": png(noise(mode="RGBA")),
        "grey": png(noise(mode="L")),
        "palette": png(noise(mode="P")),
        "larger than the page's thumbnails": png(noise((THUMB_PX + 1, 20))),
        "16-bit": png(Image.fromarray(np.full((8, 8), 40000, np.uint16))),
    }
    for name, data in others.items():
        assert not is_plain_thumbnail(data), name
        uri = _thumbnail_of(data)
        assert uri is not None and uri != PREFIX + base64.b64encode(data).decode(), name
        embedded = base64.b64decode(uri[len(PREFIX):])
        assert b"script" not in embedded and b"prVt" not in embedded and embedded.endswith(b"IEND\xaeB`\x82"), name
        with Image.open(io.BytesIO(embedded)) as im:
            assert im.mode == "RGB" and max(im.size) <= THUMB_PX, name


def test_a_damaged_plain_png_is_not_embedded():
    plain = bytearray(png(noise()))
    bad_crc = bytes(plain[:-5]) + bytes([plain[-5] ^ 1]) + bytes(plain[-4:])  # the IEND CRC
    assert not is_plain_thumbnail(bad_crc)
    start = plain.index(b"IDAT") + 4  # the pixel data replaced by junk under a valid CRC: fails to decode
    length = int.from_bytes(plain[start - 8:start - 4], "big")
    junk = bytes(plain[:start - 8]) + _chunk(b"IDAT", b"\x00" * length) + bytes(plain[start + length + 4:])
    assert is_plain_thumbnail(junk)
    assert _thumbnail_of(junk) is None
    assert not is_plain_thumbnail(b"GIF89a....") and not is_plain_thumbnail(bytes(plain[:40]))

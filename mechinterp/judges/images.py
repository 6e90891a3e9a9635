"""Images as the judge API sees them: size limits, PNG/base64 blocks, content hashes.

Why downscale locally: the API rejects an image over 8000 px on a side or 5 MB (base64) and
silently resizes any image whose long edge exceeds 1568 px or that would cost more than
about 1600 tokens (``width * height / 750``). Doing it here makes the tokens we pay for and
the pixels the judge sees predictable, and keeps requests small.
"""

from __future__ import annotations

import base64
import functools
import io
import math

from PIL import Image

from mechinterp.io import as_rgb, bounded_memo, pixel_key

#: longest side the API keeps unresized (Anthropic vision docs)
MAX_EDGE_PX = 1568
#: ~1600 image tokens at width*height/750 tokens; larger images are resized by the API
MAX_PIXELS = 1_200_000
#: the API's per-image limit on the base64 payload
MAX_BASE64_BYTES = 5 * 1024 * 1024


def fit_for_api(image: Image.Image) -> Image.Image:
    """RGB, downscaled (aspect kept) so the long edge is <= MAX_EDGE_PX and the area is
    <= MAX_PIXELS."""
    image = as_rgb(image)
    w, h = image.size
    scale = min(1.0, MAX_EDGE_PX / max(w, h), math.sqrt(MAX_PIXELS / (w * h)))
    if scale < 1.0:
        image = image.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.LANCZOS)
    return image


def png_base64(image: Image.Image) -> str:
    """Base64 PNG of ``fit_for_api(image)``, halved further until under MAX_BASE64_BYTES."""
    image = fit_for_api(image)
    while True:
        buf = io.BytesIO()
        image.save(buf, format="PNG", optimize=False)
        data = base64.standard_b64encode(buf.getvalue()).decode("ascii")
        if len(data) <= MAX_BASE64_BYTES or min(image.size) <= 8:
            return data
        image = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.LANCZOS)


def image_block(image: Image.Image) -> dict:
    """A Messages-API image content block (base64 PNG)."""
    return {"type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": png_base64(image)}}


def memo_by_pixels(fn):
    """Memoise ``fn(image)`` (a pure function of an image's pixels returning a NumPy array, made read-only, or
    an immutable value) by the image's pixels (:func:`mechinterp.io.pixel_key`, :func:`mechinterp.io.bounded_memo`). A
    claim's bundles share their references and baselines (one I2I baseline serves every knockout of a task),
    so a pixel judge sees the same image many times; the memo returns the same object each time."""
    @functools.wraps(fn)
    def frozen(image: Image.Image):
        value = fn(image)
        if hasattr(value, "setflags"):
            value.setflags(write=False)
        return value

    return bounded_memo(pixel_key)(frozen)

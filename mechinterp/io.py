"""Files: atomic writes (the one way every cache, run folder and model file is written), a cross-process
:func:`file_lock`, and content hashes
(of files, and :func:`image_digest`, the one hash of an image's pixels every cache key uses); and
:func:`bounded_memo`, the in-process memo by content digest, with :func:`pixel_key` for images; and
:func:`as_rgb`, the one conversion of an image to the 8-bit RGB pixels the model and every judge see."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and PIL are imported where an image is converted: writing a file needs neither
    from PIL import Image


def atomic_write(path: str | os.PathLike, data: str | bytes, *, fsync: bool = False) -> Path:
    """Write ``data`` to ``path`` so readers never see a partial file (temp file + ``os.replace``).

    The temporary file sits in the same folder (so the rename is atomic); with ``fsync`` the
    bytes reach the disk before the rename, so a crash cannot leave a renamed empty file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; caches and reports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike):
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block: serialises a
    read-modify-write of a shared file across processes; the OS drops it when its holder dies."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@lru_cache(maxsize=4096)
def _sha256(path: Path, mtime_ns: int, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, memoised on (path, mtime, size): a changed file is hashed again,
    an unchanged one (an 18 GB checkpoint, a reference image) only once per process."""
    path = Path(path)
    st = path.stat()
    return _sha256(path, st.st_mtime_ns, st.st_size)


#: modes with an alpha channel: composited on white
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa")
#: 8-bit modes without alpha: converted as PIL converts them (a palette or colour-key transparency composited on white)
EIGHT_BIT_MODES = ("RGB", "L", "1", "P", "RGBX", "CMYK", "YCbCr")
#: 16-bit unsigned greyscale (a 16-bit PNG): scaled to 8 bits, 65535 -> 255 (``round(v * 255 / 65535)``)
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
#: every mode :func:`as_rgb` accepts
RGB_MODES = ALPHA_MODES + EIGHT_BIT_MODES + SIXTEEN_BIT_MODES


def as_rgb(image) -> Image.Image:
    """``image`` as the 8-bit RGB pixels the model is given and every judge looks at (one conversion for both,
    so a judge never sees another reference than the model): alpha (an alpha channel, or a palette's or
    colour key's transparency) composited on white; 16-bit greyscale scaled to 8 bits (65535 is white, not
    255: PIL's own ``convert`` clips it); an RGB image without transparency returned as it is.

    ``ValueError`` names any other mode and the accepted ones: a 32-bit integer (``I``) or float (``F``)
    image has no defined white level (its values might be 8-bit, 16-bit or anything), so it is refused
    rather than guessed; ``TypeError`` when ``image`` is not a PIL image.
    """
    import numpy as np
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL.Image.Image, got {type(image).__name__}")
    mode, keyed = image.mode, "transparency" in image.info
    if mode == "RGB" and not keyed:
        return image
    if mode not in RGB_MODES:
        raise ValueError(f"image mode {mode!r} is not supported: accepted modes are {', '.join(RGB_MODES)} "
                         "(8-bit, alpha composited on white; 16-bit greyscale scaled to 8 bits); convert a 32-bit "
                         "integer ('I') or float ('F') image to one of them with the white level it means")
    if mode in SIXTEEN_BIT_MODES:
        if keyed:
            raise ValueError(f"a 16-bit greyscale image (mode {mode!r}) with a transparent colour key is not "
                             "supported: give it an alpha channel (mode 'LA' or 'RGBA') instead")
        wide = np.asarray(image).astype(np.uint32)
        return Image.fromarray(((wide * 255 + 32767) // 65535).astype(np.uint8)).convert("RGB")
    if mode in ALPHA_MODES or keyed:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def image_digest(image) -> str:
    """SHA-256 of a PIL image's pixels as :func:`as_rgb` gives them (what the model and the judges see) and its
    size: equal images hash equal whatever file or mode they came from, two images the readers see differently
    (an RGBA pair differing in alpha) hash differently, and the hash does not depend on an encoder's version
    (generation, verdict and instruction-proposal cache keys)."""
    rgb = as_rgb(image)
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


def pixel_key(image) -> tuple:
    """An in-process memo key of a PIL image's exact pixels: mode, size and a digest of its raw bytes (with
    the palette of a palette image, whose bytes are indices). Not :func:`image_digest` (RGB after convert):
    an RGBA image is composited on white where it is shown, so two that differ only in alpha differ here."""
    h = hashlib.blake2b(image.tobytes(), digest_size=16)
    if image.mode in ("P", "PA"):
        h.update(bytes(image.getpalette() or ()))
    return image.mode, image.size, h.digest()


def bounded_memo(key: Callable, size: int = 4096):
    """Memoise a one-argument function by ``key(argument)`` (a content digest, so the argument itself, say a
    full-size image, is not kept alive), keeping the ``size`` newest entries; ``cache_clear()`` empties it."""
    def wrap(fn):
        cache: dict = {}

        @functools.wraps(fn)
        def memoised(argument):
            k = key(argument)
            if k not in cache:
                if len(cache) >= size:
                    cache.pop(next(iter(cache)))
                cache[k] = fn(argument)
            return cache[k]

        memoised.cache_clear = cache.clear
        return memoised

    return wrap


def report_damage(logger, found: list[dict], path: str | os.PathLike, reason: str, then: str) -> None:
    """Record one damaged on-disk cache entry in ``found`` as ``{"path", "reason"}`` (the reason ends with what
    happens next, ``then``) and log it once as a warning. Why: every cache reports damage the same way, so the
    run's metadata (``run.json``), its report and the console list each entry with its path and reason."""
    reason = f"{str(reason)[:300]}; {then}"
    found.append({"path": str(path), "reason": reason})
    logger.warning("damaged cache entry %s: %s", path, reason)

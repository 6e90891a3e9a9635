"""What to generate: one in-context edit (instruction, reference image, seed, size, steps)."""

from __future__ import annotations

import hashlib
import numbers
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from PIL import Image

from mechinterp.io import as_rgb, image_digest

#: the seeds a noise generator takes (``torch.Generator.manual_seed``: 64 bits)
MAX_SEED = 2**64 - 1


def _read_image(path: str | Path, read):
    """``read(opened PIL image)`` for an image file, with one clear error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"reference image {str(path)!r} does not exist (expected a readable PNG/JPEG file)")
    try:
        with Image.open(path) as im:
            return read(im)
    except Exception as err:  # PIL raises several types for corrupt files
        raise ValueError(f"reference image {str(path)!r} is not a readable image: {err}") from err


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as the RGB pixels the model sees (:func:`mechinterp.io.as_rgb`), with one clear
    error when it is missing, unreadable or of a mode that has no such pixels."""
    image = _read_image(path, lambda im: im.copy())  # a copy: the file is closed on return
    try:
        return as_rgb(image)
    except ValueError as err:
        raise ValueError(f"reference image {str(path)!r}: {err}") from err


def check_integer(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as a Python ``int`` when it is an integer (a NumPy one too, never a bool, a float or a
    string) in ``low..high``; else one ``ValueError`` naming the field, its value and what was expected.
    Bad sizes, steps and seeds otherwise fail deep inside torch or diffusers, or are silently rounded."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or not low <= value <= (value if high is None else high):
        span = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"{name} must be an integer {span}, got {value!r} ({type(value).__name__})")
    return int(value)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file, read from its header only."""
    return _read_image(path, lambda im: im.size)


@dataclass(frozen=True)
class Edit:
    """One in-context edit, the unit every experiment runs.

    ``instruction`` is the edit instruction (the "content" token span); ``prompt`` is the
    full text sent to the model and defaults to the instruction; the instruction must occur
    in it. ``reference`` is a PIL image, a path to one, or ``None`` for text-to-image; it is kept
    as the RGB pixels the model sees (:func:`mechinterp.io.as_rgb`: alpha composited on white,
    16-bit greyscale scaled to 8 bits), the same pixels every judge is shown.
    ``seed`` (an integer in ``0..MAX_SEED``) seeds the model's noise generator (``Model.noise``: on
    the model's device by default, or the CPU); ``steps``, ``height`` and ``width`` are positive
    integers (the model also needs the size in multiples of its patch, ``Model.layout``).
    """

    instruction: str
    reference: Image.Image | str | Path | None = None
    seed: int = 0
    height: int = 1024
    width: int = 1024
    steps: int = 4
    prompt: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.instruction, str):
            raise ValueError(f"instruction must be a string, got {type(self.instruction).__name__}")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise ValueError(f"prompt must be a string or None, got {self.prompt!r} ({type(self.prompt).__name__})")
        if self.prompt is not None and self.instruction not in self.prompt:
            raise ValueError(
                f"instruction {self.instruction!r} not found in prompt {self.prompt!r}; "
                "the prompt must contain the instruction verbatim"
            )
        for name, low, high in (("seed", 0, MAX_SEED), ("steps", 1, None), ("height", 1, None), ("width", 1, None)):
            object.__setattr__(self, name, check_integer(name, getattr(self, name), low, high))
        ref = self.reference
        if isinstance(ref, (str, Path)):
            object.__setattr__(self, "reference", load_image(ref))
        elif isinstance(ref, Image.Image):
            try:
                object.__setattr__(self, "reference", as_rgb(ref))
            except ValueError as err:
                raise ValueError(f"reference: {err}") from err
        elif ref is not None:
            raise ValueError(f"reference must be a PIL image, a path or None, got {type(ref).__name__}")

    @cached_property
    def reference_digest(self) -> str:
        """The reference's pixel hash (``""`` without one), computed from the reference itself, so a copy
        with another reference (``dataclasses.replace`` too) can never keep the old one's digest."""
        return "" if self.reference is None else image_digest(self.reference)

    def __hash__(self) -> int:
        return hash(self.key())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Edit) and self.key() == other.key()

    @property
    def text(self) -> str:
        """The text actually sent to the model."""
        return self.instruction if self.prompt is None else self.prompt

    def key(self) -> str:
        """Stable content hash of everything that determines the generation."""
        parts = [self.text, self.instruction, self.reference_digest, str(self.seed), str(self.height), str(self.width), str(self.steps)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    def replace(self, **changes) -> "Edit":
        """A copy with some fields changed (same as ``dataclasses.replace``)."""
        values = {
            "instruction": self.instruction,
            "reference": self.reference,
            "seed": self.seed,
            "height": self.height,
            "width": self.width,
            "steps": self.steps,
            "prompt": self.prompt,
        }
        values.update(changes)
        return Edit(**values)

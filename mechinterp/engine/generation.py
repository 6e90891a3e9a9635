"""``Generation``: what one generation returns (image, captures, layout, what fired), how its image is
rendered from its array (``render``), and capture entries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from mechinterp.engine.edit import Edit
from mechinterp.engine.interventions import Capture, Captures, Intervention, Knockout, Patch, RefDrop
from mechinterp.engine.layout import TokenLayout


@dataclass
class Generation:
    """The result of one generation: the image, what was captured, and what fired where."""

    image: Image.Image
    array: "np.ndarray"  # float32 [H, W, 3] in [0, 1], before 8-bit quantisation
    captures: Captures
    edit: Edit
    layout: TokenLayout
    interventions: tuple = ()
    fired: Counter = field(default_factory=Counter)


def render(array: np.ndarray) -> Image.Image:
    """The RGB image of a float ``(h, w, 3)`` array in [0, 1], exactly as the pipeline renders its output
    (``VaeImageProcessor.numpy_to_pil``: scale by 255, round, 8 bits). One definition for every generation's
    image and for the generation cache, which stores the array alone and renders the image from it."""
    from diffusers.image_processor import VaeImageProcessor

    return VaeImageProcessor.numpy_to_pil(np.asarray(array)[None])[0]


def as_capture(item) -> Capture:
    """A capture entry as a :class:`Capture` (a site name or flat block index: the text stream there)."""
    if isinstance(item, Capture):
        return item
    if isinstance(item, (str, int)) and not isinstance(item, bool):
        return Capture(item)
    raise ValueError(f"capture entries must be Capture objects or site names, got {item!r}")


def generation_args(edits: Sequence, interventions: Iterable, capture: Iterable
                    ) -> tuple[list[Edit], tuple[Intervention, ...], list[Capture]]:
    """The arguments of ``Model.generate``/``generate_many`` checked, as ``(edits, interventions, captures)``:
    one ``ValueError`` naming the argument and what it takes, before anything runs (a lone intervention or
    site name where a list belongs would otherwise be iterated, a site name letter by letter)."""
    for name, arg in (("edits", edits), ("interventions", interventions), ("capture", capture)):
        if isinstance(arg, (str, Edit, Capture, Patch, Knockout, RefDrop)) or not isinstance(arg, Iterable):
            raise ValueError(f"{name} must be a list (or other iterable) of entries, got {arg!r}; "
                             f"wrap a single entry in a list")
    edits = list(edits)
    for i, e in enumerate(edits):
        if not isinstance(e, Edit):
            raise ValueError(f"edit {i} must be an Edit, got {e!r} ({type(e).__name__})")
    return edits, tuple(interventions), [as_capture(c) for c in capture]  # Intervene names a non-intervention

"""What the organisms learn and how their outputs are read: colours, object shapes, splits, a colour check.

Colours and objects are the colour family's (``mechinterp.tasks.color``: the authors' exact
solid-reference RGB values and object words). Each object word is drawn as one simple shape
on a neutral background; the training target of "draw a {object} in this color" with a solid
reference is that shape filled with the reference colour. Without a reference the target is
the shape in a neutral dark grey, and with neither reference nor instruction it is the empty
background, so reference-free runs (the T2I Lens baseline) have a defined, colour-free answer.

``classify_color`` names the colour the objective colour judge sees (its dominant colour, nearest
palette colour by CIEDE2000); ``classify_shape`` finds which object shape was drawn.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from mechinterp.tasks.color import COLORS, INSTRUCTION, OBJECTS, SolidColor

#: neutral background of every training image, and the colour of an object drawn without a reference
BACKGROUND = (215, 215, 215)
NO_REF_GRAY = (90, 90, 90)

#: object word -> its shape on an 8×8 grid (``#`` = object), drawn in 4×4-pixel cells at 32×32,
#: the organisms' VAE resolution, so a shape survives the VAE round trip exactly
SHAPES: dict[str, tuple[str, ...]] = {
    "ball": ("........", "...##...", "..####..", ".######.", ".######.", "..####..", "...##...", "........"),
    "car": ("........", "........", "........", "########", "########", "........", "........", "........"),
    "vase": ("...##...",) * 8,
    "couch": ("........", "........", "..####..", "..####..", "..####..", "..####..", "........", "........"),
    "chair": ("........", "...##...", "...##...", ".######.", ".######.", "...##...", "...##...", "........"),
    "hat": ("........", "........", "...##...", "..####..", ".######.", "########", "........", "........"),
    "mug": ("........", ".######.", ".#....#.", ".#....#.", ".#....#.", ".#....#.", ".######.", "........"),
    "pillow": ("........", ".######.", ".######.", "........", "........", ".######.", ".######.", "........"),
}

#: (colour, object) combinations never shown in training: one per colour and one per object
HELD_OUT: frozenset[tuple[str, str]] = frozenset(
    (c, OBJECTS[(3 * i + 1) % len(OBJECTS)]) for i, c in enumerate(COLORS)
)


def instruction(obj: str) -> str:
    """The colour-family instruction for ``obj`` (the text the organisms are trained on)."""
    return INSTRUCTION.format(object=obj)


def target_image(obj: str | None, rgb: tuple[int, int, int] | None, size: int = 32) -> Image.Image:
    """The image an organism should draw: ``obj``'s shape in ``rgb`` (grey when ``None``; empty when ``obj`` is ``None``)."""
    img = Image.new("RGB", (size, size), BACKGROUND)
    if obj is not None:
        if obj not in SHAPES:
            raise ValueError(f"unknown object {obj!r}; valid objects: {', '.join(SHAPES)}")
        if size % 8:
            raise ValueError(f"image size must be a multiple of 8, got {size}")
        cell, fill = size // 8, tuple(rgb) if rgb is not None else NO_REF_GRAY
        draw = ImageDraw.Draw(img)
        for r, row in enumerate(SHAPES[obj]):
            for c, ch in enumerate(row):
                if ch == "#":
                    draw.rectangle([c * cell, r * cell, (c + 1) * cell - 1, (r + 1) * cell - 1], fill=fill)
    return img


def reference_image(color: str, size: int = 32) -> Image.Image:
    """The solid colour reference of ``color``."""
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; valid colours: {', '.join(COLORS)}")
    return SolidColor(color, COLORS[color]).render(size, size)


def train_combos() -> list[tuple[str, str]]:
    """Every (colour, object) combination the organisms train on (all but ``HELD_OUT``)."""
    return [(c, o) for c in COLORS for o in OBJECTS if (c, o) not in HELD_OUT]


@lru_cache(maxsize=8)
def shape_masks(size: int = 32) -> dict[str, np.ndarray]:
    """Boolean pixel mask of every object's shape at ``size``."""
    bg = np.array(BACKGROUND)
    return {o: (np.asarray(target_image(o, (0, 0, 0), size)).astype(int) != bg).any(-1) for o in OBJECTS}


def _lab(rgb01: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab

    return rgb2lab(np.clip(rgb01, 0.0, 1.0).reshape(-1, 1, 3)).reshape(-1, 3)


@lru_cache(maxsize=1)
def _palette() -> tuple[tuple[str, ...], np.ndarray]:
    names = (*COLORS, "gray")
    rgbs = np.array([*COLORS.values(), NO_REF_GRAY], dtype=np.float64) / 255.0
    return names, _lab(rgbs)


def _as_array(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0
    arr = np.asarray(image, dtype=np.float64)
    return arr / 255.0 if arr.max() > 1.5 else arr


def foreground(image, threshold: float = 12.0) -> np.ndarray:
    """Boolean mask of pixels whose CIEDE2000 distance to the background exceeds ``threshold``."""
    from skimage.color import deltaE_ciede2000

    arr = _as_array(image)
    lab = _lab(arr.reshape(-1, 3))
    bg = _lab(np.array([BACKGROUND], dtype=np.float64) / 255.0)
    return (deltaE_ciede2000(lab, np.repeat(bg, len(lab), 0)) > threshold).reshape(arr.shape[:2])


def classify_color(image, min_pixels: int = 12) -> str:
    """The colour an image's foreground shows: one of the eight colours, ``"gray"`` or ``"none"``.

    The one colour rule of the project: the objective colour judge's dominant colour
    (:func:`mechinterp.judges.color.dominant_color`, ΔE2000 in CIELAB), named by the nearest
    palette colour; an image with fewer than ``min_pixels`` foreground pixels shows ``"none"``.
    """
    from skimage.color import deltaE_ciede2000

    from mechinterp.judges.color import dominant_color

    if int(foreground(image).sum()) < min_pixels:
        return "none"
    pil = image if isinstance(image, Image.Image) else Image.fromarray(np.round(_as_array(image) * 255).astype(np.uint8))
    dom = np.asarray(dominant_color(pil), dtype=np.float64)[None]
    names, pal = _palette()
    return names[int(np.argmin(deltaE_ciede2000(np.repeat(dom, len(pal), 0), pal)))]


def classify_shape(image) -> str:
    """The object whose shape best matches the image's foreground (IoU), or ``"none"``."""
    fg = foreground(image)
    if not fg.any():
        return "none"
    masks = shape_masks(fg.shape[0])
    iou = {o: (fg & m).sum() / max((fg | m).sum(), 1) for o, m in masks.items()}
    best = max(iou, key=iou.get)
    return best if iou[best] >= 0.5 else "none"

"""How a task's reference image is prepared before the pipeline sees it: the authors' rule.

The authors' runners prepare a reference by where it comes from and which experiment runs:

- a *named* reference (``real_ref_name``: every colour, style and style_real task) is used at
  its native size, centre-cropped to a multiple of 16 pixels on each side (aspect kept);
- a *source image* (``source_image_path``: human, add and remove tasks) is resized to the
  task's width × height with PIL's default filter in the lens, knockout and reference-drop
  runs and their I2I baselines, and used at native size in I2I→I2I patching.

The pipeline then applies its own ≤ 1024² area limit and flooring to its patch size
(``mechinterp.engine.layout.reference_tokens``). A run at another size than the task's (a
small model running a paper task) has no protocol to follow: every reference is resized to
that size.
"""

from __future__ import annotations

from PIL import Image

#: the side multiple the authors crop named references to (FLUX.2-klein's VAE factor × 2×2 patch)
CROP_MULTIPLE = 16

Size = tuple[int, int]  # (width, height), as PIL gives it


def prepared_size(native: Size, task_size: Size, *, named: bool, native_source: bool) -> Size:
    """The (width, height) the authors hand the pipeline for a reference of size ``native``.

    ``task_size`` is the task's (width, height); ``named``: a ``real_ref_name`` reference;
    ``native_source``: the experiment passes source images at native size (I2I→I2I patching).
    """
    w, h = native
    if named:
        cw, ch = w - w % CROP_MULTIPLE, h - h % CROP_MULTIPLE
        if cw == 0 or ch == 0:
            raise ValueError(f"reference of size {w}x{h} is smaller than {CROP_MULTIPLE} pixels on a side; "
                             f"a named reference must be at least {CROP_MULTIPLE}x{CROP_MULTIPLE}")
        return cw, ch
    return (w, h) if native_source else task_size


def prepare(image: Image.Image, task_size: Size, *, named: bool, native_source: bool) -> Image.Image:
    """``image`` brought to ``prepared_size``: centre-cropped if named, else resized (PIL default filter)."""
    size = prepared_size(image.size, task_size, named=named, native_source=native_source)
    if size == image.size:
        return image
    if named:
        left, top = (image.width - size[0]) // 2, (image.height - size[1]) // 2
        return image.crop((left, top, left + size[0], top + size[1]))
    return image.resize(size)

"""A reference image reaches the model and the judges as the same pixels (``mechinterp.io.as_rgb``):
alpha composited on white, 16-bit greyscale scaled to 8 bits, unsupported modes refused by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mechinterp as mi
from mechinterp.judges.images import as_rgb as judge_view
from mechinterp.judges.color import lab_pixels


def _rgba() -> Image.Image:
    """Blue at quarter opacity on the left, opaque red on the right, fully transparent black at the bottom."""
    a = np.zeros((64, 64, 4), np.uint8)
    a[:, :32] = (30, 30, 220, 64)
    a[:, 32:] = (220, 30, 30, 255)
    a[48:] = (0, 0, 0, 0)
    return Image.fromarray(a, "RGBA")


def _palette() -> Image.Image:
    """A palette image whose index 1 is transparent (a GIF/PNG ``tRNS`` entry)."""
    p = Image.new("P", (64, 64), 0)
    p.putpalette([200, 40, 40, 10, 200, 10] + [0] * 762)
    p.paste(1, (0, 0, 64, 32))
    p.info["transparency"] = 1
    return p


def _sixteen(mode: str = "I;16") -> Image.Image:
    """16-bit greyscale: 1000 (nearly black), 32768 (mid grey) and 65535 (white) in three bands."""
    a = np.full((64, 64), 1000, np.uint16)
    a[20:40] = 32768
    a[40:] = 65535
    if mode == "I;16B":  # big-endian bytes (PIL's own convert to I;16B clips at 255)
        return Image.frombytes(mode, (64, 64), a.astype(">u2").tobytes())
    return Image.fromarray(a)


REFERENCES = {
    "RGBA": _rgba,
    "LA": lambda: _rgba().convert("LA"),
    "P with transparency": _palette,
    "I;16": _sixteen,
    "I;16B": lambda: _sixteen("I;16B"),
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_model_and_judges_see_one_reference(tiny_model, name, monkeypatch):
    """What the pipeline encodes (the image its processor is handed, after its own RGB conversion)
    equals what a judge looks at, shown the caller's reference or the edit's."""
    original = REFERENCES[name]()
    seen = []
    processor = tiny_model.pipe.image_processor
    preprocess = processor.preprocess

    def record(image, *args, **kwargs):
        seen.append(processor.convert_to_rgb(image))
        return preprocess(image, *args, **kwargs)

    monkeypatch.setattr(processor, "preprocess", record)
    edit = mi.Edit("draw a ball in this color", reference=original, seed=3, height=64, width=64, steps=2)
    tiny_model.generate(edit)
    tiny_model.generate_many([edit, edit.replace(seed=4)])  # the batched path encodes the reference itself
    assert len(seen) >= 2
    judged = np.asarray(judge_view(original))
    for model_input in seen:
        assert np.array_equal(np.asarray(model_input), judged)
    assert np.array_equal(np.asarray(judge_view(edit.reference)), judged)
    assert np.array_equal(lab_pixels(edit.reference), lab_pixels(original))  # the colour judge's own pixels


def test_alpha_is_composited_on_white():
    rgb = np.asarray(mi.Edit("x", _rgba(), height=64, width=64).reference)
    assert tuple(rgb[0, 0]) == tuple(round(c * 64 / 255 + 255 * 191 / 255) for c in (30, 30, 220)) == (199, 199, 246)
    assert tuple(rgb[0, 40]) == (220, 30, 30)
    assert tuple(rgb[60, 0]) == (255, 255, 255)  # transparent is white, not the black underneath
    pal = np.asarray(mi.Edit("x", _palette(), height=64, width=64).reference)
    assert tuple(pal[0, 0]) == (255, 255, 255) and tuple(pal[63, 0]) == (200, 40, 40)


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_sixteen_bit_greyscale_is_scaled_not_clipped(mode, tmp_path):
    """65535 is white; 1000 is nearly black (round(1000 * 255 / 65535) = 4), not white as PIL's convert
    clips it. A 16-bit PNG read from a file is scaled alike."""
    expected = {0: 4, 30: 128, 50: 255}
    for reference in (_sixteen(mode), tmp_path / "grey16.png"):
        if not isinstance(reference, Image.Image):
            _sixteen().save(reference)
        rgb = np.asarray(mi.Edit("x", reference, height=64, width=64).reference)
        assert {row: tuple(rgb[row, 0]) for row in expected} == {row: (v, v, v) for row, v in expected.items()}


@pytest.mark.parametrize("mode", ["I", "F", "HSV"])
def test_modes_without_a_defined_white_level_are_refused_by_name(mode, tmp_path):
    image = _sixteen().convert(mode) if mode != "HSV" else Image.new("HSV", (64, 64))
    with pytest.raises(ValueError, match=rf"reference: image mode '{mode}' is not supported: accepted modes are RGBA"):
        mi.Edit("x", image, height=64, width=64)
    with pytest.raises(ValueError, match=rf"image mode '{mode}' is not supported"):
        judge_view(image)
    if mode == "I":
        path = tmp_path / "grey32.tif"
        image.save(path)
        with pytest.raises(ValueError, match=r"grey32.tif'?: image mode 'I' is not supported"):
            mi.Edit("x", path, height=64, width=64)

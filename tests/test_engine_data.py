"""Interventions are plain frozen, hashable data with stable keys."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import mechinterp as mi
from mechinterp.engine.interventions import interventions_key
from mechinterp.engine.sites import SiteTable

GROUP = st.sampled_from(mi.GROUPS)


@given(src=GROUP, dst=GROUP, steps=st.none() | st.lists(st.integers(0, 3), min_size=1, max_size=3))
def test_knockouts_are_hashable_values(src, dst, steps):
    a, b = mi.Knockout(src, dst, steps=steps), mi.Knockout(src, dst, steps=steps)
    assert a == b and hash(a) == hash(b) and a.key() == b.key()
    assert mi.Knockout.from_dict(a.to_dict()) == a
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.source = "image"


def test_patch_equality_follows_values():
    t = torch.arange(6.0).reshape(2, 3)
    assert mi.Patch("single.0", t) == mi.Patch("single.0", t.clone())
    assert hash(mi.Patch("single.0", t)) == hash(mi.Patch("single.0", t.clone()))
    assert mi.Patch("single.0", t) != mi.Patch("single.0", t + 1)
    assert mi.Patch("single.0", t) != mi.Patch("single.0", t, tokens="text.pad")


def test_a_resolved_patch_keeps_its_values_hash_and_key():
    """``interventions_key`` resolves every patch: the copy must not hash the (large) values again."""
    table = SiteTable(8, 24)
    patch = mi.Patch(17, torch.arange(6.0).reshape(2, 3))
    resolved = patch.resolved(table)
    assert resolved.site == "single.9" and resolved._values_digest == patch.values_digest() != ""
    assert resolved.key() == mi.Patch("single.9", torch.arange(6.0).reshape(2, 3)).key()
    assert interventions_key([patch], table) == interventions_key([resolved], table)


def test_keys_are_canonical_over_site_spellings():
    table = SiteTable(8, 24)
    assert interventions_key([mi.Knockout("ref", "text", sites=(17,))], table) == \
        interventions_key([mi.Knockout("ref", "text", sites=("single.9",))], table)
    assert interventions_key([mi.RefDrop(7)], table) == interventions_key([mi.RefDrop("double.7")], table)
    assert interventions_key([mi.RefDrop(7)], table) != interventions_key([mi.RefDrop(8)], table)


def test_ref_drop_cutoff_is_the_first_severed_block():
    """The authors' convention, written out by hand: ref→image blocked on the blocks before the
    cutoff, all four reference edges cut from the cutoff on."""
    table = SiteTable(8, 24)
    edges = [("ref", "image"), ("ref", "text"), ("image", "ref"), ("text", "ref")]
    kos = mi.RefDrop("single.9").expand(table)
    assert kos[0] == mi.Knockout("ref", "image", tuple(f"double.{i}" for i in range(8)) + tuple(f"single.{j}" for j in range(9)))
    after = tuple(f"single.{j}" for j in range(9, 24))
    assert kos[1:] == [mi.Knockout(s, d, after) for s, d in edges]
    assert mi.RefDrop("double.7").expand(table)[0].sites == tuple(f"double.{i}" for i in range(7))
    everything = tuple(s.name for s in table.blocks)
    assert mi.RefDrop("embed").expand(table) == mi.RefDrop("double.0").expand(table) == \
        [mi.Knockout(s, d, everything) for s, d in edges]
    last = mi.RefDrop(31).expand(table)
    assert last == [mi.Knockout("ref", "image", everything[:-1]), *(mi.Knockout(s, d, ("single.23",)) for s, d in edges)]


def test_bad_intervention_arguments():
    with pytest.raises(ValueError, match="site must be"):
        mi.Capture(1.5)
    with pytest.raises(ValueError, match="at least one step"):
        mi.Knockout("ref", "text", steps=[])
    with pytest.raises(ValueError, match="steps must be non-negative"):
        mi.Capture("embed", steps=-1)
    with pytest.raises(ValueError, match="patch values must be"):
        mi.Patch("embed", [1, 2, 3])
    with pytest.raises(ValueError, match="needs 'source' and 'dest'"):
        mi.Knockout.from_dict({"source": "ref", "to": "text"})
    with pytest.raises(ValueError, match="'embed' has none"):
        mi.Knockout("ref", "text", sites=("embed",)).resolved(SiteTable(2, 2))


def test_an_edit_cannot_keep_a_stale_reference_digest():
    """The digest is computed from the reference: a copy with another reference (even through
    ``dataclasses.replace``) has another digest and another key; equal pixels give equal keys."""
    import dataclasses

    from PIL import Image

    from mechinterp.engine.edit import Edit
    from mechinterp.io import image_digest

    red, blue = Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue")
    edit = Edit("draw a ball", red, height=16, width=16)
    other = dataclasses.replace(edit, reference=blue)
    assert other.reference_digest == image_digest(blue) != edit.reference_digest == image_digest(red)
    assert other.key() != edit.key() and other != edit
    assert edit.replace(reference=blue) == other
    assert Edit("draw a ball", red.convert("RGBA"), height=16, width=16) == edit  # same pixels, same edit
    assert Edit("draw a ball", None, height=16, width=16).reference_digest == ""
    assert "reference_digest" not in {f.name for f in dataclasses.fields(Edit)}


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_patch_values_must_be_finite(bad):
    """NaN or infinite patch values would be written into the forward pass and give a NaN or noise
    image instead of an error: every form of values is checked, naming where the bad entry is."""
    t = torch.zeros(4, 8)
    t[2, 5] = bad
    with pytest.raises(ValueError, match=r"Patch\(single.0, text, steps=all\): values must be finite; .*at index \(2, 5\)"):
        mi.Patch("single.0", t)
    with pytest.raises(ValueError, match=r"values at \('single.0', 1\) must be finite"):
        mi.Patch("single.0", {("single.0", 0): torch.zeros(4, 8), ("single.0", 1): t})
    with pytest.raises(ValueError, match=r"must be finite"):
        mi.Patch("single.0", mi.Captures({("single.0", 0): t.unsqueeze(0)}))
    assert mi.Patch("single.0", torch.zeros(4, 8)).resolved(SiteTable(2, 2)).site == "single.0"


@pytest.mark.parametrize("field, value, expected", [
    ("seed", "3", "seed must be an integer in 0..18446744073709551615, got '3' (str)"),
    ("seed", 2.0, "seed must be an integer in 0..18446744073709551615, got 2.0 (float)"),
    ("seed", True, "seed must be an integer in 0..18446744073709551615, got True (bool)"),
    ("seed", -1, "seed must be an integer in 0..18446744073709551615, got -1 (int)"),
    ("seed", 2**64, "seed must be an integer in 0..18446744073709551615, got 18446744073709551616 (int)"),
    ("steps", 2.5, "steps must be an integer >= 1, got 2.5 (float)"),
    ("steps", 0, "steps must be an integer >= 1, got 0 (int)"),
    ("steps", -2, "steps must be an integer >= 1, got -2 (int)"),
    ("height", 64.0, "height must be an integer >= 1, got 64.0 (float)"),
    ("width", 0, "width must be an integer >= 1, got 0 (int)"),
    ("prompt", 7, "prompt must be a string or None, got 7 (int)"),
])
def test_bad_edit_fields_are_named(field, value, expected):
    """One error naming the field, its value and what it takes, not a failure deep inside torch."""
    import re

    with pytest.raises(ValueError, match="^" + re.escape(expected) + "$"):
        mi.Edit("draw a ball", None, **{"height": 64, "width": 64, field: value})


def test_numpy_integers_are_plain_ints_in_an_edit():
    import numpy as np

    edit = mi.Edit("draw a ball", None, seed=np.int64(3), steps=np.int32(2), height=np.int64(64), width=64)
    assert (edit.seed, edit.steps, edit.height) == (3, 2, 64)
    assert all(type(v) is int for v in (edit.seed, edit.steps, edit.height, edit.width))
    assert edit == mi.Edit("draw a ball", None, seed=3, steps=2, height=64, width=64)


def test_generate_names_a_misplaced_argument(tiny_model, edit):
    with pytest.raises(ValueError, match=r"edit 0 must be an Edit, got 'draw a ball' \(str\)"):
        tiny_model.generate("draw a ball")
    with pytest.raises(ValueError, match=r"edits must be a list .* wrap a single entry in a list"):
        tiny_model.generate_many(edit)
    with pytest.raises(ValueError, match=r"interventions must be a list .*Knockout\(source='ref'"):
        tiny_model.generate(edit, mi.Knockout("ref", "image"))
    with pytest.raises(ValueError, match=r"capture must be a list .*got 'single.0'"):
        tiny_model.generate(edit, capture="single.0")
    m = tiny_model.multiple_of  # the pipeline would otherwise resize a size it cannot patch, with a warning
    with pytest.raises(ValueError, match=rf"height and width must be multiples of {m} for this model, got {64 + m // 2}x64"):
        tiny_model.generate(edit.replace(height=64 + m // 2))


def test_an_image_digest_is_of_the_pixels_the_readers_see():
    """Two RGBA images with equal colour channels and other alpha are two references to the model and the
    judges (alpha is composited on white), so every cache key that hashes them must tell them apart; an
    image and its composite hash alike (the instruction-proposal cache keys a raw task image by it)."""
    import numpy as np
    from PIL import Image

    from mechinterp.io import as_rgb, image_digest

    colour = np.zeros((8, 8, 4), dtype=np.uint8)
    colour[..., 0] = 200
    opaque, clear = colour.copy(), colour.copy()
    opaque[..., 3], clear[..., 3] = 255, 0
    a, b = Image.fromarray(opaque, "RGBA"), Image.fromarray(clear, "RGBA")
    assert image_digest(a) != image_digest(b)
    assert image_digest(b) == image_digest(as_rgb(b)) == image_digest(Image.new("RGB", (8, 8), "white"))

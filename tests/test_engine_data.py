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

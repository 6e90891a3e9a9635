"""Batched generation equals one-by-one, and interventions fire under regional ``torch.compile``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import mechinterp as mi
from mechinterp.engine.attention import flex_available
from mechinterp.engine.batch import stack_captures
from mechinterp.testing.tiny import tiny_pipeline

TOL = 1e-5  # batched matrix products round differently from batch-1 ones; the maths is the same


def _close(many, ones):
    for a, b in zip(many, ones, strict=True):
        np.testing.assert_allclose(a.array, b.array, atol=TOL, rtol=0)
        assert a.edit == b.edit
        for key in b.captures:
            torch.testing.assert_close(a.captures[key], b.captures[key], atol=TOL, rtol=0)


def test_batched_edits_with_different_seeds_and_references_equal_one_by_one(tiny_model, edit, solid):
    edits = [edit, edit.replace(seed=5), edit.replace(reference=solid((20, 200, 20)), seed=7)]
    items = [mi.Knockout("ref", "text.padding")]
    many = tiny_model.generate_many(edits, items, capture=["single.0"])
    ones = [tiny_model.generate(e, items, capture=["single.0"]) for e in edits]
    _close(many, ones)
    assert not np.array_equal(many[0].array, many[2].array)


def test_batched_text_to_image_with_different_prompts(tiny_model):
    edits = [mi.Edit("draw a car in this color", seed=1, height=64, width=64),
             mi.Edit("add a hat to the scene", seed=2, height=64, width=64)]
    _close(tiny_model.generate_many(edits), [tiny_model.generate(e) for e in edits])


def test_batched_patch_gives_each_sample_its_own_source(tiny_model, edit, solid):
    sources = [tiny_model.generate(edit.replace(reference=solid(c), seed=s), capture=["single.0"])
               for c, s in (((20, 200, 20), 8), ((30, 30, 220), 9))]
    targets = [edit.replace(seed=11), edit.replace(seed=12)]
    many = tiny_model.generate_many(targets, [mi.Patch("single.0", stack_captures([s.captures for s in sources]))])
    ones = [tiny_model.generate(t, [mi.Patch("single.0", s.captures)]) for t, s in zip(targets, sources)]
    _close(many, ones)


def test_unbatchable_edits_are_rejected_with_the_reason(tiny_model, edit):
    with pytest.raises(ValueError, match="share height"):
        tiny_model.generate_many([edit, edit.replace(height=32)])
    with pytest.raises(ValueError, match="all have a reference or all have none"):
        tiny_model.generate_many([edit, edit.replace(reference=None)])
    other = edit.replace(instruction="draw the hat in this color, keep everything else")
    with pytest.raises(ValueError, match="token group 'text.content' differs"):
        tiny_model.generate_many([edit, other], capture=[mi.Capture("double.0", "text.content", steps=0)])
    with pytest.raises(ValueError, match="token group 'text.padding' differs"):
        tiny_model.generate_many([edit, other], [mi.Patch("single.0", torch.zeros(1, 32), "text.padding")])
    tiny_model.generate_many([edit, other], [mi.Knockout("ref", "text")], capture=[mi.Capture("double.0", "image", steps=0)])


@pytest.mark.parametrize("mode", ["auto", "dense"] + (["flex"] if flex_available() else []))
def test_knockouts_batch_across_prompts_that_place_groups_differently(tiny_model, edit, mode):
    """Rows whose prompts put ``text.content`` at other positions each block their own positions
    (rows that block alike share a plan): every row equals its one-by-one generation, in every mode."""
    model = tiny_model.with_modes(knockout_mode=mode)
    other = edit.replace(instruction="draw the hat in this color, keep everything else", seed=3)
    edits = [edit, other, edit.replace(seed=9), other.replace(seed=4)]
    assert not torch.equal(model.layout(edit)["text.content"], model.layout(other)["text.content"])
    items = [mi.Knockout("text.padding", "image"), mi.Knockout("ref", "text.content", sites=("single.0",), steps=(1, 2))]
    many = model.generate_many(edits, items, capture=["single.1"])
    ones = [model.generate(e, items, capture=["single.1"]) for e in edits]
    _close(many, ones)
    assert many[0].fired == ones[0].fired  # each knockout fires once per block and step, as one by one
    for row, e in ((0, edit), (1, other)):  # the knockout acts, far beyond the tolerance
        assert np.abs(many[row].array - model.generate(e).array).max() > 20 * TOL


def _compile_backends():
    backends = [pytest.param("aot_eager", id="aot_eager")]
    # inductor compiles C++ kernels (about a minute on a 2-core CPU): it needs a C++ compiler
    no_cxx = not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"))
    backends.append(pytest.param("inductor", id="inductor", marks=[pytest.mark.slow, pytest.mark.skipif(
        no_cxx, reason="torch inductor on CPU needs a C++ compiler (g++/clang++), and none is on PATH")]))
    return backends


@pytest.mark.parametrize("backend", _compile_backends())
def test_interventions_fire_under_regional_compile(edit, backend):
    """``compile_repeated_blocks`` compiles every block; captures, patches, split knockouts and
    a truncating reference drop still fire (they run eagerly at graph breaks) and change nothing."""
    if not hasattr(torch, "compile"):
        pytest.skip("this torch build has no torch.compile")
    model = mi.Model(tiny_pipeline(seed=0))  # compiled in place: not the shared session model
    items = [mi.Knockout("ref", "text.padding", sites=("double.1", "single.0")), mi.RefDrop("single.0"),
             mi.Patch("double.0", torch.zeros(len(model.layout(edit)["text.pad"]), 32), "text.pad")]
    eager = model.generate(edit, items, capture=["single.1"])
    torch._dynamo.reset()
    try:
        model.transformer.compile_repeated_blocks(backend=backend, fullgraph=False)
        compiled = model.generate(edit, items, capture=["single.1"])
        clean = model.generate(edit)
    finally:
        torch._dynamo.reset()
    assert compiled.fired == eager.fired and compiled.fired
    np.testing.assert_allclose(compiled.array, eager.array, atol=TOL, rtol=0)
    torch.testing.assert_close(compiled.captures[("single.1", 3)], eager.captures[("single.1", 3)], atol=TOL, rtol=0)
    assert not np.allclose(clean.array, compiled.array, atol=1e-3)  # interventions really acted

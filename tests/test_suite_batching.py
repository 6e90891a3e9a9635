"""Batched looks: every experiment gets the generations it would get one by one, computed together."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import mechinterp as mi
from mechinterp import experiments as ex
from mechinterp.claims import claims_by_id, load_registry
from mechinterp.judges import ColorJudge
from mechinterp.suite import batching
from mechinterp.suite.batching import run_batched
from mechinterp.suite.gencache import CachingModel, GenerationCache
from mechinterp.suite.models import resolve_model
from mechinterp.suite.runner import ClaimRunner

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 210), (230, 200, 30)]


def _edits(n: int = 4) -> list[mi.Edit]:
    """Edits with one prompt (so one token layout) and different references and seeds."""
    return [mi.Edit("draw a ball in this color", reference=Image.new("RGB", (64, 64), COLOURS[i % 4]), seed=i,
                    height=64, width=64) for i in range(n)]


def _sizes(monkeypatch) -> list[int]:
    """Record the size of every batch ``generate_many`` is asked for."""
    seen: list[int] = []
    real = mi.Model.generate_many

    def spy(self, edits, *args, **kwargs):
        seen.append(len(edits))
        return real(self, edits, *args, **kwargs)

    monkeypatch.setattr(mi.Model, "generate_many", spy)
    return seen


@pytest.mark.parametrize("experiment", ["knockout", "lens", "lens_padding", "patching"])
def test_batched_experiments_equal_one_by_one_to_float_tolerance(tiny_model, tmp_path, monkeypatch, experiment):
    edits = _edits()
    jobs = {
        "knockout": [lambda m, e=e: ex.knockout(m, e, "ref", "text") for e in edits],
        "lens": [lambda m, e=e: ex.t2i_lens(m, e, "double.1") for e in edits],
        "lens_padding": [lambda m, e=e: ex.t2i_lens(m, e, "double.1", tokens="text.padding") for e in edits],
        "patching": [lambda m, s=s, t=t: ex.i2i_patch(m, s, t, "double.1", tokens="text.padding")
                     for s, t in zip(edits, edits[1:] + edits[:1])],
    }[experiment]
    alone = CachingModel(tiny_model, GenerationCache(tmp_path / "alone"))
    together = CachingModel(tiny_model, GenerationCache(tmp_path / "together"))
    sizes = _sizes(monkeypatch)
    one = run_batched(alone, jobs, batch=1)
    assert sizes == []  # batch=1 never batches
    many = run_batched(together, jobs, batch=16)
    # each kind of generation of every task in one batch (kinds that differ only in their prompts, with no
    # capture or patch, share one: the lens's two text-to-image runs)
    assert sizes and max(sizes) >= len(edits) and all(s % len(edits) == 0 for s in sizes)
    # nothing computed twice (a capture run also stores the plain generation, which a batch then reads)
    assert together.generated <= alone.generated
    for a, b in zip(one, many):
        assert a.experiment == b.experiment and set(a.images) == set(b.images)
        for role, gen in a.generations.items():
            assert np.abs(gen.array - b.generations[role].array).max() < 1e-4, role
            # each task keeps its own interventions (a lens patches its own capture, to float tolerance)
            assert [i.describe() for i in gen.interventions] == [i.describe() for i in b.generations[role].interventions]
            for x, y in zip(gen.interventions, b.generations[role].interventions):
                if isinstance(x, mi.Patch):
                    vx, vy = (v if isinstance(v, dict) else {(): v} for v in (x.values, y.values))
                    assert all(np.allclose(vx[k].numpy(), vy[k].numpy(), atol=1e-4) for k in vx), role
    done = together.generated
    again = run_batched(together, jobs, batch=16)  # a rerun reads the cache: bit for bit
    assert together.generated == done
    assert all(np.array_equal(g.array, b.generations[r].array) for a, b in zip(again, many) for r, g in a.generations.items())


def test_a_group_of_one_is_generated_exactly_as_without_batching(tiny_model, tmp_path, monkeypatch):
    (edit,) = _edits(1)
    sizes = _sizes(monkeypatch)
    other = mi.Edit("paint the large wooden chair in this color", reference=edit.reference, seed=0, height=32, width=32)
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    a, b = run_batched(cm, [lambda m: m.generate(edit), lambda m: m.generate(other)], batch=16)
    assert sizes == []  # two shapes: two groups of one, each generated one by one
    assert np.array_equal(a.array, tiny_model.generate(edit).array)
    assert np.array_equal(b.array, tiny_model.generate(other).array)


def test_a_job_that_reads_a_promise_is_rerun_once_the_generation_exists(tiny_model, tmp_path):
    edits = _edits(3)
    runs = []

    def job(model, e):
        runs.append(e.seed)
        gen = model.generate(e, capture=["double.1"])
        return float(gen.captures[("double.1", 0)].abs().sum())  # reads the generation: stops on a promise

    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    out = run_batched(cm, [lambda m, e=e: job(m, e) for e in edits], batch=8)
    assert runs == [0, 1, 2, 0, 1, 2] and cm.generated == 3  # stopped once, rerun once
    expected = [float(tiny_model.generate(e, capture=["double.1"]).captures[("double.1", 0)].abs().sum()) for e in edits]
    assert np.allclose(out, expected, rtol=1e-4)


def test_a_real_error_in_a_job_is_raised_not_retried(tiny_model, tmp_path):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    (edit,) = _edits(1)
    with pytest.raises(ValueError, match="unknown token group 'txt'"):
        run_batched(cm, [lambda m: ex.knockout(m, edit, "ref", "txt"), lambda m: m.generate(edit)], batch=8)


def test_a_batched_claim_decides_as_the_one_by_one_claim(tmp_path, monkeypatch):
    """The runner's looks through batching: same tasks, same verdicts, same decision, same generation count."""
    index = claims_by_id(load_registry())
    claim = index["knockout[ref->text]-color"]
    model = mi.load(resolve_model("padding-routed"), device="cpu")
    judge = ColorJudge()
    sizes = _sizes(monkeypatch)
    outcomes = {}
    for batch in (1, 16):
        cm = CachingModel(model, GenerationCache(tmp_path / str(batch)))
        outcomes[batch] = (ClaimRunner(cm, lambda q: judge, batch=batch).run(claim, index), cm.generated)
    (one, gens1), (many, gens16) = outcomes[1], outcomes[16]
    assert sizes and max(sizes) > 1
    assert many.decision == one.decision and gens16 == gens1
    assert [(r.task_id, r.passed) for r in many.rows] == [(r.task_id, r.passed) for r in one.rows]


def test_forms_keep_apart_what_cannot_share_a_batch(tiny_model, tmp_path):
    cm = CachingModel(tiny_model, GenerationCache(tmp_path))
    a, b = _edits(2)
    req = lambda e, its=(), cap=(): batching.Request(cm.key(e, its, cap), e, tuple(its), tuple(cap))  # noqa: E731
    form = lambda r: batching._form(cm, r)  # noqa: E731
    assert form(req(a)) == form(req(b))  # same prompt and shape, different reference and seed
    assert form(req(a)) != form(req(a, [mi.Knockout("ref", "text")]))
    assert form(req(a)) != form(req(a.replace(steps=2)))
    chair = mi.Edit("paint the large wooden chair in this color", a.reference, seed=0, height=64, width=64)
    # another prompt places text.content elsewhere: kept apart where a capture or patch uses it, batched for knockouts
    content = [mi.Capture("double.1", "text.content")]
    assert form(req(a, cap=content)) != form(req(chair, cap=content))
    knockout = [mi.Knockout("ref", "text.content")]
    assert form(req(a, knockout)) == form(req(chair, knockout)) and form(req(a)) == form(req(chair))
    assert form(req(a, cap=[mi.Capture("double.1", "text")])) != form(req(a))

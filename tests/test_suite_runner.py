"""The claims runner's decision loop on the default organism: planned budgets, caps, paired relations."""

from __future__ import annotations

import pytest

from mechinterp.claims import load_registry
from mechinterp.stats import Decision, plain_interval
from mechinterp.suite.runner import ARM_SUFFIX


@pytest.fixture(scope="module")
def registry():
    return {c.id: c for c in load_registry()}


def runner(tmp_path, samples=None):
    """A runner on the default organism with the objective colour judge, counting generations."""
    import mechinterp
    from mechinterp.judges import ColorJudge
    from mechinterp.suite.gencache import CachingModel, GenerationCache
    from mechinterp.suite.models import resolve_model
    from mechinterp.suite.runner import ClaimRunner

    model = CachingModel(mechinterp.load(resolve_model("padding-routed"), device="cpu"), GenerationCache(tmp_path))
    judge = ColorJudge()
    count = {"n": 0}
    r = ClaimRunner(model, lambda q: judge, samples=samples, on_generation=lambda: count.__setitem__("n", count["n"] + 1))
    return r, count


def test_a_claim_its_cap_makes_undecidable_says_so_before_generating_anything(tmp_path, registry):
    r, count = runner(tmp_path, samples=40)
    outcome = r.run(registry["patching[single.9:text.content]-color"], registry)  # rate <= 0.05 needs >= 72
    assert outcome.decision is Decision.INCONCLUSIVE and count["n"] == 0 and not outcome.rows
    assert "undecidable with at most 40 tasks (--samples)" in outcome.note and "nothing was run" in outcome.summary()
    assert outcome.plan["budget"] == 40 and outcome.plan["power"] == 0.0


def test_a_cell_stops_at_a_look_and_reports_the_interval_that_decided(tmp_path, registry):
    r, count = runner(tmp_path)
    claim = registry["knockout[ref->image]-color"]
    outcome = r.run(claim, registry)
    plan = r.plan(claim, registry, len(r.items(claim)))
    assert outcome.decision is Decision.HOLDS and outcome.looks
    assert len(outcome.rows) == outcome.looks[-1] == outcome.n + outcome.abstained <= plan.cap
    assert outcome.n in plan.design.schedule  # the look fell at its number of answers
    assert claim.hypothesis.decide(outcome.interval) is Decision.HOLDS  # what is printed is what decided
    assert outcome.plain.confidence == 0.95 and "decided at look" in outcome.summary()
    assert outcome.plan["budget"] == plan.budget and outcome.plan["power"] >= 0.9


def test_a_relation_pairs_its_cells_by_task_and_runs_its_own_test(tmp_path, registry):
    r, _ = runner(tmp_path)
    rel = registry["rel[ko.text>ko.image]-color"]
    outcome = r.run(rel, registry)
    a, b = r.run(registry[rel.a], registry), r.run(registry[rel.b], registry)  # memoised: the cells' own runs
    assert outcome.decision is Decision.HOLDS and outcome.pairs.judged == outcome.looks[-1]
    assert outcome.pairs.answered in r.plan(rel, registry, 320).design.schedule
    tasks = {row.task_id[:-2] for row in outcome.rows}
    assert {row.task_id[-2:] for row in outcome.rows} == set(ARM_SUFFIX) and len(outcome.rows) == 2 * len(tasks)
    assert {row.claim_id for row in outcome.rows} == {rel.id}
    # the pairs reuse the cells' verdicts on shared tasks
    cell_a = {row.task_id: row.passed for row in a.rows}
    assert all(cell_a[row.task_id[:-2]] == row.passed for row in outcome.rows
               if row.task_id.endswith("|a") and row.task_id[:-2] in cell_a)
    assert outcome.plain == plain_interval(outcome.pairs) and rel.hypothesis.decide(outcome.interval) is Decision.HOLDS
    p = outcome.pairs
    if not p.abstained:
        assert (outcome.k, outcome.n, outcome.k2, outcome.n2) == (p.n11 + p.n10, p.decided, p.n11 + p.n01, p.decided)
    result = outcome.result()
    assert result.pairs["n10"] == outcome.pairs.n10 and result.decision_low == outcome.interval.low

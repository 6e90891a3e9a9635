"""One sampling order: the runner's draws and the released-verdict replays' draws are the same order."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mechinterp.claims import claims_by_id, load_registry
from mechinterp.claims.budget import claim_plan
from mechinterp.claims.draws import claim_items, draw_order, drawn_family
from mechinterp.engine.meta import ModelMeta
from mechinterp.report.power import released_outcomes, released_strata, replay, task_data_dir
from mechinterp.report.released import read_released_rows, released_entity
from mechinterp.suite.runner import ClaimRunner

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp"
VERDICTS = REFERENCE / "verdicts"
needs_verdicts = pytest.mark.skipif(not VERDICTS.is_dir(), reason=f"released verdicts not found at {VERDICTS}")
CLAIMS = load_registry()
INDEX = claims_by_id(CLAIMS)


def _runner(seed: int, data_dir=None) -> ClaimRunner:
    """A runner whose ``items`` needs no model: only its metadata is read."""
    return ClaimRunner(SimpleNamespace(meta=ModelMeta()), lambda q: None, seed=seed, data_dir=data_dir)


def test_a_claim_draws_from_its_tasks_family_and_patching_from_pairs():
    assert drawn_family(INDEX["knockout[ref->text]-human"]) == ("human", False)
    assert drawn_family(INDEX["patching[double.7:text]-human"]) == ("human", True)
    assert len(claim_items(INDEX["patching[single.9:text]-color"])) == 448
    assert len(claim_items(INDEX["lens[single.9]-color"])) == 320


@needs_verdicts
@pytest.mark.parametrize("cid", ["lens[single.9]-color", "patching[single.9:text.padding]-color",
                                 "knockout[ref->text]-color", "rel[ko.text>ko.image]-color"])
def test_a_replay_draws_the_released_rows_in_the_runners_order(cid):
    claim = INDEX[cid]
    outcomes = released_outcomes(claim, INDEX, VERDICTS)
    strata = released_strata(claim, INDEX, task_data_dir(VERDICTS))
    assert strata is not None and set(outcomes) <= set(strata)  # every CSV row is a task of the family
    cell = INDEX[claim.a] if claim.is_relation else claim
    for seed in (0, 3):
        runner_order = [released_entity(item) for item in _runner(seed).items(cell)]
        assert draw_order(outcomes, strata, seed) == [e for e in runner_order if e in outcomes]
        plan = claim_plan(claim, INDEX, len(outcomes))
        test, used = replay(plan, outcomes, seed, strata)
        assert used == [e for e in runner_order if e in outcomes][:len(used)] and len(used) == test.last.n


@needs_verdicts
@pytest.mark.parametrize("cid", ["knockout[ref->text]-style", "patching[double.7:text]-style",
                                 "knockout[ref->text]-human", "patching[double.7:text]-human", "lens[double.7]-add"])
def test_the_task_lists_beside_the_verdicts_give_every_released_row_its_stratum(cid):
    """Released pair ids (``source__target``) and task ids are the families' own: no row is drawn
    outside the stratified order."""
    claim = INDEX[cid]
    strata = released_strata(claim, INDEX, task_data_dir(VERDICTS))
    assert strata is not None
    assert {r.entity for r in read_released_rows(VERDICTS / claim.csv)} <= set(strata)


def test_without_task_lists_a_replay_is_a_seeded_shuffle(tmp_path):
    assert task_data_dir(tmp_path / "verdicts") is None
    assert released_strata(INDEX["knockout[ref->text]-style"], INDEX, None) is None


@given(st.lists(st.text("abcdef", min_size=1, max_size=4), unique=True, max_size=40), st.integers(0, 10**6))
def test_draw_order_is_a_seeded_permutation(ids, seed):
    order = draw_order(ids, None, seed)
    assert sorted(order) == sorted(ids) and order == draw_order(list(reversed(ids)), None, seed)
    strata = {i: str(len(i)) for i in ids}
    extra = [f"zz{i}" for i in range(3)]
    mixed = draw_order(ids + extra, strata, seed)
    assert mixed[:len(ids)] == draw_order(ids, strata, seed) and sorted(mixed[len(ids):]) == extra

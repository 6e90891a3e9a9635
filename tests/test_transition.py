"""Transition claims: the crossing rule (mechinterp.stats.transition), the TOML table that states one,
and how a claim's transition site maps onto a model (the paper's and the organisms')."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mechinterp.claims import Transition, load_registry
from mechinterp.stats import Decision
from mechinterp.stats.transition import Crossing, decide_transition, locate, window

H, R, I = Decision.HOLDS, Decision.REFUTED, Decision.INCONCLUSIVE
CROSSING = "refdrop[embed+:crosses.single.9]-color"


def test_a_clean_sweep_locates_its_crossing_exactly():
    assert locate([H, H, H, R, R, R, R]) == Crossing(3, 3)
    assert locate([R, R, H], holds="after") == Crossing(2, 2)
    assert locate([H, H]) == Crossing(2, 2)  # never turns: past the last site
    assert locate([R, R]) == Crossing(0, 0)  # turned before the first site


def test_inconclusive_sites_widen_the_span_and_a_non_monotone_sweep_spans_its_crossings():
    assert locate([H, I, I, R]) == Crossing(1, 3)
    assert locate([I, I, I]) == Crossing(0, 3)
    assert locate([H, R, H, R]) == Crossing(1, 3)  # crossings after site 0 and after site 2


def test_the_decision_is_inside_disjoint_or_neither():
    claimed = window(3, 1, 7)
    assert claimed == Crossing(2, 4)
    assert decide_transition(Crossing(3, 3), claimed) == H
    assert decide_transition(Crossing(2, 4), claimed) == H
    assert decide_transition(Crossing(5, 7), claimed) == R
    assert decide_transition(Crossing(0, 1), claimed) == R
    assert decide_transition(Crossing(1, 3), claimed) == I  # the intervals do not locate it finely enough
    assert window(0, 2, 3) == Crossing(0, 2) and window(3, 2, 3) == Crossing(1, 3)  # clipped
    with pytest.raises(ValueError, match="not a crossing of a 3-site sweep"):
        window(4, 0, 3)


@given(st.integers(0, 12), st.integers(0, 12), st.integers(0, 3), st.lists(st.booleans(), min_size=12, max_size=12))
def test_a_monotone_sweep_never_loses_its_true_crossing(n, c, within, hidden):
    """Correct per-site decisions (some left inconclusive) always locate a span holding the true
    crossing, so the claim is never refuted at its true crossing and holds when every site is decided."""
    c = min(c, n)
    truth = [H if i < c else R for i in range(n)]
    seen = [I if hidden[i] else d for i, d in enumerate(truth)]
    located = locate(seen)
    assert located.lo <= c <= located.hi
    assert decide_transition(located, window(c, within, n)) != R
    assert locate(truth) == Crossing(c, c) and decide_transition(locate(truth), window(c, within, n)) == H
    far = c + within + 1
    if far <= n:  # a claim more than `within` blocks off is refuted by a fully decided sweep
        assert decide_transition(locate(truth), window(far, within, n)) == R


def test_the_registry_states_the_crossing_claims():
    claims = {c.id: c for c in load_registry()}
    assert claims[CROSSING].transition == Transition("single.9", 1, "before")
    assert claims["refdrop[embed+:crosses.double.7]-style"].transition == Transition("double.7", 1, "before")
    assert claims["refdrop[embed..single.8]-color"].transition is None
    for cid in (CROSSING, "refdrop[embed..single.8]-color"):
        assert str(claims[cid].hypothesis) == "rate >= 0.5"
        assert "within one block" in claims[CROSSING].statement


BASE = '''schema = 1
[[claim]]
id = "refdrop[x]-color"
statement = "s"
family = "color"
tasks = ["color"]
experiment = {experiment}
question = "refdrop.color"
markers = ["color", "refdrop"]
hypothesis = "rate >= 0.5"
transition = {transition}
'''
SWEEP = '{ name = "refdrop", cutoff = "embed", sweep = "cutoff" }'


@pytest.mark.parametrize("experiment, transition, message", [
    (SWEEP, '{ at = "single.9", within = 1 }', r"transition keys are at, within, holds; unknown none, missing \['holds'\]"),
    (SWEEP, '{ at = "single.9", within = 1, holds = "before", by = 2 }', r"unknown \['by'\]"),
    (SWEEP, '"single.9"', "transition must be a table"),
    ('{ name = "refdrop", cutoff = "embed" }', '{ at = "single.9", within = 1, holds = "before" }', "needs a sweep"),
    (SWEEP, '{ at = "block.9", within = 1, holds = "before" }', "transition at 'block.9' is not a site"),
    ('{ name = "refdrop", cutoff = "double.3", sweep = "cutoff" }', '{ at = "double.2", within = 1, holds = "before" }',
     "must lie after the sweep's first site 'double.3'"),
    ('{ name = "refdrop", cutoff = "embed", sweep = "cutoff", sweep_to = "double.4" }',
     '{ at = "single.0", within = 1, holds = "before" }', "and not past its last 'double.4'"),
    (SWEEP, '{ at = "single.9", within = -1, holds = "before" }', "within -1 must be a whole number of blocks"),
    (SWEEP, '{ at = "single.9", within = true, holds = "before" }', "within True must be a whole number"),
    (SWEEP, '{ at = "single.9", within = 1, holds = "above" }', "transition holds 'above' is not one of before, after"),
])
def test_a_bad_transition_table_is_one_error_naming_the_claim(tmp_path, experiment, transition, message):
    path = tmp_path / "bad.claims.toml"
    path.write_text(BASE.format(experiment=experiment, transition=transition))
    with pytest.raises(ValueError, match=message) as err:
        load_registry(path)
    assert "refdrop[x]-color" in str(err.value)


def test_a_relation_cannot_state_a_transition(tmp_path):
    path = tmp_path / "rel.claims.toml"
    path.write_text(BASE.format(experiment=SWEEP, transition='{ at = "single.9", within = 1, holds = "before" }')
                    + '''
[[claim]]
id = "rel[x>y]-color"
statement = "s"
a = "refdrop[x]-color"
b = "refdrop[x]-color"
hypothesis = "a - b > 0"
transition = { at = "single.9", within = 1, holds = "before" }
''')
    with pytest.raises(ValueError, match="relation 'rel\\[x>y\\]-color': a transition belongs to a sweep claim"):
        load_registry(path)


def test_the_transition_site_maps_like_the_sweeps_cutoff():
    """On the paper's numbering the crossing claim's window is single.8..single.10 of 33 cutoffs; on an
    organism the binding-layer cutoff is the block after its binding block, and the early-cutoff sweep
    ends at the binding block itself."""
    import mechinterp
    from mechinterp.suite.models import resolve_model
    from mechinterp.suite.runner import ClaimRunner, ClaimSkipped

    claims = {c.id: c for c in load_registry()}
    model = mechinterp.load(resolve_model("late-double.1"), device="cpu")
    runner = ClaimRunner(model, lambda q: None)
    every = ["embed", *(b.name for b in model.table.blocks)]
    assert runner.sweep_sites(claims[CROSSING]) == every
    assert runner.sweep_sites(claims["refdrop[embed..single.8]-color"]) == ["embed", "double.0", "double.1"]
    assert runner.transition_at(claims[CROSSING], every) == every.index("single.0")
    record = runner.transition(claims[CROSSING], dict(zip(every, [H, H, H, R, R, R, R])))
    assert record == {"at": "single.0", "claimed": ["double.1", "single.1"], "located": ["single.0", "single.0"],
                      "within": 1, "holds": "before", "decision": "holds"}
    record = runner.transition(claims[CROSSING], dict(zip(every, [H] * 7)))  # never kept: past the last block
    assert record["located"] == ["end", "end"] and record["decision"] == "refuted"
    with pytest.raises(ClaimSkipped, match="is not in its sweep"):
        runner.transition_at(claims[CROSSING], every[:2])


def test_the_docs_transition_example_loads_as_the_registrys_rule(tmp_path):
    """docs/custom-claims.md's transition block (the shipped claim, shown) loads as a registry of its own, stating
    the registry's crossing (as a ``*.claims.toml`` its id would be taken: the paper's registry defines it)."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "custom-claims.md").read_text()
    block = next(b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "transition =" in b)
    path = tmp_path / "doc.toml"
    path.write_text("schema = 1\n" + block)
    (claim,) = load_registry(path)
    registry = {c.id: c for c in load_registry()}[CROSSING]
    assert (claim.id, claim.transition, claim.experiment, claim.hypothesis) == (
        registry.id, registry.transition, registry.experiment, registry.hypothesis)

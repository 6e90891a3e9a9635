"""Sequential sampling: look schedule, alpha spending, and false-decision rate by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from mechinterp.stats import (
    Decision, Hypothesis, SequentialTest, alpha_spent, run_sequential, sampling_order, wilson,
)

ALPHA = 0.05
BUDGET = 400


def _simulate(p: float, hyp: str, reps: int, seed: int, spending: str = "obrien-fleming") -> tuple[np.ndarray, list]:
    """Run ``reps`` sequential tests on Bernoulli(p) data; returns decisions and stopping sizes."""
    rng = np.random.default_rng(seed)
    draws = rng.random((reps, BUDGET)) < p
    cum = np.cumsum(draws, axis=1)
    decisions, stops = [], []
    for row in cum:
        test = SequentialTest(Hypothesis.parse(hyp), BUDGET, ALPHA, looks=5, spending=spending)
        for n in test.schedule:
            test.update(int(row[n - 1]), n)
            if test.done:
                break
        decisions.append(test.decision)
        stops.append(test.history[-1].n)
    return np.array([d.value for d in decisions]), stops


@pytest.mark.parametrize("spending", ["obrien-fleming", "linear"])
def test_false_refutation_rate_at_the_boundary_is_within_alpha(spending):
    # the claim "rate >= 0.8" is true when p = 0.8: refuting it is the false decision
    decisions, _ = _simulate(0.80, "rate >= 0.80", reps=2000, seed=1, spending=spending)
    assert (decisions == "refuted").mean() <= ALPHA


def test_false_acceptance_rate_just_below_the_threshold_is_within_alpha():
    # the claim "rate >= 0.8" is false when p = 0.79: declaring it holds is the false decision
    decisions, _ = _simulate(0.79, "rate >= 0.80", reps=2000, seed=2)
    assert (decisions == "holds").mean() <= ALPHA


def test_naive_repeated_looks_exceed_what_the_spending_allows():
    """The simulation can detect inflation: 95% intervals at every look make more errors."""
    rng = np.random.default_rng(3)
    cum = np.cumsum(rng.random((2000, BUDGET)) < 0.80, axis=1)
    h, looks = Hypothesis.parse("rate >= 0.80"), (80, 160, 240, 320, 400)
    naive = np.mean([any(h.decide(wilson(int(r[n - 1]), n)) is Decision.REFUTED for n in looks) for r in cum])
    spent, _ = _simulate(0.80, "rate >= 0.80", reps=2000, seed=3)
    assert naive > (spent == "refuted").mean()


def test_clear_claims_stop_early():
    decisions, stops = _simulate(0.97, "rate >= 0.80", reps=300, seed=4)
    assert (decisions == "holds").mean() > 0.99 and np.median(stops) < BUDGET / 2


def test_comparison_false_decision_rate_is_within_alpha():
    rng = np.random.default_rng(5)
    h, errors, reps = Hypothesis.parse("a - b > 0"), 0, 600
    a, b = np.cumsum(rng.random((reps, BUDGET)) < 0.5, axis=1), np.cumsum(rng.random((reps, BUDGET)) < 0.5, axis=1)
    for ra, rb in zip(a, b):
        test = SequentialTest(h, BUDGET, ALPHA, looks=4)
        for n in test.schedule:
            if test.update(int(ra[n - 1]), n, int(rb[n - 1]), n) is not Decision.INCONCLUSIVE:
                break
        errors += test.decision is Decision.HOLDS
    assert errors / reps <= ALPHA


@pytest.mark.parametrize("spending", ["obrien-fleming", "linear"])
def test_spending_is_increasing_and_totals_alpha(spending):
    values = [alpha_spent(t, ALPHA, spending) for t in np.linspace(0, 1, 21)]
    assert values[0] == 0.0 and values == sorted(values) and values[-1] == pytest.approx(ALPHA)


def test_looks_happen_only_on_schedule_and_budget_exhaustion_is_inconclusive():
    test = SequentialTest(Hypothesis.parse("rate >= 0.5"), budget=100, looks=4)
    assert test.schedule == (25, 50, 75, 100)
    assert test.update(10, 24) is Decision.INCONCLUSIVE and not test.history
    test.update(12, 25)
    assert [look.n for look in test.history] == [25]
    test.update(50, 100)  # several looks passed at once: one evaluation, remaining alpha spent
    assert test.done and test.history[-1].n == 100 and test.spent == pytest.approx(0.05)
    assert test.decision is Decision.INCONCLUSIVE


def test_decided_test_ignores_further_data():
    test = run_sequential([True] * 400, SequentialTest(Hypothesis.parse("rate >= 0.5"), 400))
    assert test.decision is Decision.HOLDS and test.history[-1].n == 80
    assert test.update(0, 400) is Decision.HOLDS


@pytest.mark.parametrize("kwargs,match", [
    ({"budget": 0}, "budget"), ({"budget": 10, "alpha": 1.2}, "alpha"),
    ({"budget": 10, "looks": [5, 8]}, "ending at budget=10"), ({"budget": 10, "spending": "pocock"}, "valid: obrien-fleming"),
])
def test_bad_configuration_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequentialTest(Hypothesis.parse("rate >= 0.5"), **kwargs)


def test_comparison_needs_both_arms():
    with pytest.raises(ValueError, match="k, n, k2, n2"):
        SequentialTest(Hypothesis.parse("a - b > 0"), 10).update(3, 10)


def test_sampling_order_is_seeded_stable_and_prefix_preserving():
    ids = [f"task_{i}" for i in range(50)]
    order = sampling_order(ids, seed=7)
    assert sorted(order) == sorted(ids) and order == sampling_order(reversed(ids), seed=7)
    assert order != sampling_order(ids, seed=8)
    grown = sampling_order(ids + ["task_new"], seed=7)
    assert [t for t in grown if t != "task_new"] == order


def test_finish_spends_the_rest_when_data_run_out():
    """Abstentions can leave fewer verdicts than the budget: the last look still happens."""
    from mechinterp.stats import SequentialTest
    from mechinterp.stats.hypothesis import Decision, Hypothesis

    test = SequentialTest(Hypothesis.parse("rate >= 0.5"), budget=32, looks=1)
    assert test.update(27, 27) is Decision.INCONCLUSIVE and not test.history  # 27 < the look at 32
    assert test.finish(27, 27) is Decision.HOLDS
    assert test.finish(0, 27) is Decision.HOLDS  # done: further data change nothing

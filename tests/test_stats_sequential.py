"""Sequential tests of a rate: exact boundaries, the look's interval, error at the threshold, abstentions."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechinterp.stats import (
    ALPHA, Decision, Design, Hypothesis, SequentialTest, Tally, alpha_spent, run_sequential, wilson,
)
from mechinterp.stats.binomial import binomial_oc
from mechinterp.stats.spending import SPENDING, look_schedule

H = Hypothesis.parse


def _expected(design: Design, look: int, k: int) -> Decision:
    """The decision the count boundaries give (up = the count shows a rate above the threshold)."""
    up, down = design.bounds()
    above, below = k >= up[look], k <= down[look]
    holds_up = design.hypothesis.op in (">=", ">")
    if (above if holds_up else below):
        return Decision.HOLDS
    if (below if holds_up else above):
        return Decision.REFUTED
    return Decision.INCONCLUSIVE


@pytest.mark.parametrize("hyp,budget", [("rate >= 0.8", 102), ("rate <= 0.05", 173), ("rate < 0.5", 40),
                                        ("rate > 0.5", 41), ("rate >= 0.75", 407), ("rate <= 0.05", 72)])
def test_the_looks_interval_is_inside_the_claim_exactly_when_the_count_crosses_its_boundary(hyp, budget):
    """What is printed is what decided: every count at every look, exhaustively."""
    d = Design(H(hyp), budget)
    for j, n in enumerate(d.schedule):
        sizes = d.schedule[:j + 1]
        for k in range(n + 1):
            assert d.hypothesis.decide(d.interval(sizes, Tally(k, n))) is _expected(d, j, k), (j, n, k)


@pytest.mark.parametrize("hyp,budget", [("rate >= 0.8", 102), ("rate >= 0.75", 407), ("rate <= 0.05", 173),
                                        ("rate <= 0.05", 450), ("rate < 0.5", 18), ("rate >= 0.5", 65)])
def test_each_wrong_decision_at_the_threshold_is_within_alpha_exactly(hyp, budget):
    d = Design(H(hyp), budget)
    oc = d.operating(d.hypothesis.value)
    assert oc.p_holds <= ALPHA and oc.p_refuted <= ALPHA
    # the boundaries use the error they may: the last look leaves little unspent
    assert max(oc.p_holds, oc.p_refuted) > 0.5 * ALPHA


def test_the_exact_operating_characteristics_are_what_the_runtime_loop_does():
    """Monte Carlo through run_sequential (the runner's loop) agrees with the exact recursion."""
    d = Design(H("rate <= 0.05"), 173)
    rng = random.Random(1)
    reps = 3000
    tests = [run_sequential(d, lambda m: [rng.random() < 0.05 for _ in range(m)])[0] for _ in range(reps)]
    exact = d.operating(0.05)
    for decision, p in ((Decision.HOLDS, exact.p_holds), (Decision.REFUTED, exact.p_refuted)):
        got = sum(t.decision is decision for t in tests) / reps
        assert abs(got - p) < 4 * np.sqrt(p * (1 - p) / reps) + 1e-3
    assert abs(np.mean([t.last.n for t in tests]) - exact.mean_n) < 1.0


def test_the_old_rule_wilson_at_the_spent_level_refuted_true_low_rate_claims_too_often():
    """Why the boundaries are exact: Wilson at the spent level over the suite's old looks (budget 128)
    refutes ``rate <= 0.05`` at p = 0.05 more often than one-sided 2.5 %; the exact design does not."""
    from mechinterp.stats.intervals import wilson as w
    from mechinterp.stats.spending import alpha_spent as spent

    looks, p, h = (32, 64, 96, 128), 0.05, H("rate <= 0.05")
    dist, last, refuted, prev = np.array([1.0]), 0, 0.0, 0.0
    for n in looks:
        from mechinterp.stats.binomial import binomial_pmf

        dist = np.convolve(dist, binomial_pmf(n - last, p))
        level = spent(n / 128, 0.05) - prev  # the old two-sided spending per look
        prev += level
        for k in range(n + 1):
            if dist[k] and h.decide(w(k, n, 1 - level)) is Decision.REFUTED:
                refuted += dist[k]
                dist[k] = 0.0
            elif dist[k] and h.decide(w(k, n, 1 - level)) is Decision.HOLDS:
                dist[k] = 0.0
        last = n
    assert refuted > ALPHA
    assert Design(h, 128).operating(p).p_refuted <= ALPHA


def test_naive_repeated_95_percent_looks_make_more_errors_than_the_design():
    d = Design(H("rate >= 0.80"), 200)
    naive_up = [min(k for k in range(n + 2) if k == n + 1 or wilson(k, n).low >= 0.8) for n in d.schedule]
    naive_down = [max(k for k in range(-1, n + 1) if k == -1 or wilson(k, n).high < 0.8) for n in d.schedule]
    _, naive_refuted, _ = binomial_oc(0.8, d.schedule, tuple(naive_up), tuple(naive_down))
    assert naive_refuted > 0.025 >= d.operating(0.8).p_refuted


@pytest.mark.parametrize("spending", SPENDING)
def test_spending_is_increasing_and_totals_alpha(spending):
    values = [alpha_spent(t, ALPHA, spending) for t in np.linspace(0, 1, 21)]
    assert values[0] == 0.0 and values == sorted(values) and values[-1] == pytest.approx(ALPHA)


def test_schedule_and_looks_happen_only_at_their_sizes_of_answers():
    assert look_schedule(100, 4) == (25, 50, 75, 100) and look_schedule(3, 4) == (1, 2, 3)
    test = SequentialTest(Design(H("rate >= 0.5"), 100))
    assert test.update(Tally(10, 24, 5)) is Decision.INCONCLUSIVE and not test.history  # 29 judged, 24 answers
    test.update(Tally(12, 25, 5))
    assert [(look.n, look.answered) for look in test.history] == [(30, 25)]
    with pytest.raises(ValueError, match="feed every look"):
        test.update(Tally(40, 75))


def test_when_the_tasks_run_out_the_look_at_the_answers_there_are_spends_the_rest():
    d = Design(H("rate >= 0.5"), 40)
    test, seen = run_sequential(d, iter_draw([True] * 12 + [None] * 3))  # 12 answers, then nothing left
    assert test.exhausted and test.done and test.last.answered == 12 and len(seen) == 15
    assert test.last.interval == d.interval((10, 12), Tally(12, 12, 3), final=True)
    assert test.decision is Decision.HOLDS  # 12/12 at the full 2.5 %: 0.5 ** 12 < 0.025 - what was spent


def iter_draw(outcomes):
    """A draw over a fixed list: the next m outcomes, fewer at the end."""
    it = iter(list(outcomes))

    def draw(m):
        return [o for _, o in zip(range(m), it)]
    return draw


def test_a_decided_test_ignores_further_data():
    test, seen = run_sequential(Design(H("rate >= 0.5"), 400), lambda m: [True] * m)
    assert test.decision is Decision.HOLDS and test.history[-1].n == len(seen) < 400
    assert test.update(Tally(0, 400)) is Decision.HOLDS


@pytest.mark.parametrize("kwargs,match", [
    ({"budget": 0}, "budget"), ({"budget": 10, "alpha": 0.6}, "alpha"), ({"budget": 10, "looks": 0}, "looks"),
    ({"budget": 10, "spending": "wald"}, "valid: obrien-fleming"),
])
def test_bad_configuration_is_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Design(H("rate >= 0.5"), **kwargs)


def test_a_rate_design_needs_one_arm_and_a_rate():
    d = Design(H("rate >= 0.5"), 10)
    with pytest.raises(TypeError, match="one arm"):
        from mechinterp.stats import PairTally

        d.interval((3,), PairTally(n10=3))
    with pytest.raises(ValueError, match="true rate"):
        d.operating(1.5)


def test_abstentions_are_replaced_and_the_worst_case_is_shown():
    """A look falls at its number of answers (abstained draws are replaced); the worst case counts
    each abstention against the claim and is never narrower."""
    d = Design(H("rate >= 0.5"), 20, looks=1)
    outcomes = [True] * 10 + [None] * 3 + [True] * 6 + [False] * 4
    test, seen = run_sequential(d, iter_draw(outcomes))
    look = test.last
    assert look.answered == 20 and look.n == 23 and len(seen) == 23  # three more tasks drawn for three abstentions
    assert look.interval == d.interval((20,), Tally(16, 20)) and look.decision is Decision.HOLDS
    assert look.worst_case.low < look.interval.low and look.worst_case.high >= look.interval.high


def test_abstentions_at_random_keep_the_error_at_the_threshold():
    """With 30 % of bundles left open at random, the boundaries computed for the answers there
    are keep each wrong decision within alpha (simulated through the runner's loop)."""
    d = Design(H("rate >= 0.75"), 184)
    rng = random.Random(7)
    reps = 2500

    def draw(m):
        return [None if rng.random() < 0.3 else rng.random() < 0.75 for _ in range(m)]

    tests = [run_sequential(d, draw)[0] for _ in range(reps)]
    for decision in (Decision.HOLDS, Decision.REFUTED):
        assert sum(t.decision is decision for t in tests) / reps <= ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / reps)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60), st.sampled_from(["rate >= 0.8", "rate <= 0.05", "rate < 0.5"]), st.integers(0, 10**6))
def test_the_decision_is_monotone_in_the_count_at_every_look(budget, hyp, seed):
    d = Design(H(hyp), budget)
    rank = {Decision.REFUTED: 0, Decision.INCONCLUSIVE: 1, Decision.HOLDS: 2}
    j = seed % len(d.schedule)
    n, sizes = d.schedule[j], d.schedule[:j + 1]
    ranks = [rank[d.hypothesis.decide(d.interval(sizes, Tally(k, n)))] for k in range(n + 1)]
    assert ranks == sorted(ranks, reverse=d.hypothesis.op in ("<=", "<"))

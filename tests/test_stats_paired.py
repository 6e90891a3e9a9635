"""Paired differences: Tango's score statistic and interval, calibrated sequential critical values, power."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from mechinterp.stats import ALPHA, Decision, Design, Hypothesis, PairTally, paired_interval, run_sequential
from mechinterp.stats.lattice import GRID_MARGIN
from mechinterp.stats.paired import paired_critical, paired_error, tango_bound, tango_z

H = Hypothesis.parse


def _counts():
    return st.integers(1, 200).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))).flatmap(
        lambda bn: st.tuples(st.just(bn[0]), st.integers(0, bn[1] - bn[0]), st.just(bn[1])))


def test_at_zero_difference_the_score_statistic_is_mcnemars():
    for b, c in [(5, 0), (34, 6), (7, 9), (0, 3)]:
        assert tango_z(b, c, 90, 0.0) == pytest.approx((b - c) / math.sqrt(b + c))
    assert tango_z(0, 0, 30, 0.0) == 0.0  # no discordant pair: no evidence either way


@settings(max_examples=200, deadline=None)
@given(_counts(), st.floats(-0.95, 0.95).filter(lambda x: x == 0 or abs(x) > 1e-6))
def test_the_score_statistic_uses_the_constrained_maximum_likelihood(counts, d0):
    """Independent check of the closed form: maximise the likelihood under ``a - b = d0`` numerically."""
    b, c, n = counts
    lo, hi = max(0.0, -d0), (1.0 - d0) / 2.0

    def nll(q):
        terms = [(b, q + d0), (c, q), (n - b - c, 1 - 2 * q - d0)]
        return -sum(k * math.log(max(p, 1e-300)) for k, p in terms if k)

    q = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12}).x
    var = n * (2 * q + d0 * (1 - d0))
    expected = (b - c - n * d0) / math.sqrt(var)
    assert float(tango_z(b, c, n, d0)) == pytest.approx(expected, rel=1e-4, abs=1e-4)


@settings(max_examples=200, deadline=None)
@given(_counts())
def test_the_score_statistic_is_antisymmetric_and_decreasing_in_the_difference(counts):
    b, c, n = counts
    grid = np.linspace(-0.99, 0.99, 199)
    z = tango_z(b, c, n, grid)
    assert np.all(np.diff(z) <= 1e-9)
    assert np.allclose(z, -tango_z(c, b, n, -grid))


@settings(max_examples=100, deadline=None)
@given(_counts())
def test_the_95_interval_is_the_set_of_differences_the_score_test_keeps(counts):
    b, c, n = counts
    ci = paired_interval(PairTally(n10=b, n01=c, n00=n - b - c))
    z = norm.isf(0.025)
    grid = np.linspace(-1 + 1e-9, 1 - 1e-9, 4001)
    kept = grid[np.abs(tango_z(b, c, n, grid)) <= z]
    assert ci.low <= (b - c) / n <= ci.high
    assert abs(ci.low - kept.min()) < 1e-3 and abs(ci.high - kept.max()) < 1e-3


@settings(max_examples=60, deadline=None)
@given(_counts())
def test_a_pair_moved_to_a_smaller_difference_never_raises_the_bounds(counts):
    """Why the worst-case interval is a bound: each end is monotone in the pairs' differences."""
    b, c, n = counts
    if b + c >= n:
        return
    z = 2.0
    for upper in (False, True):
        base = tango_bound(b, c, n, z, upper)
        assert tango_bound(b, c + 1, n, z, upper) <= base + 1e-9  # a concordant pair becomes b-only
        assert tango_bound(b + 1, c, n, z, upper) >= base - 1e-9  # a concordant pair becomes a-only


def test_pair_tally_counts_and_bounds_abstentions():
    t = PairTally.of([(True, True), (True, False), (False, True), (False, False), (None, True), (True, None),
                      (None, None)])
    assert (t.n11, t.n10, t.n01, t.n00, t.abstained) == (1, 1, 1, 1, 3) and t.judged == 7 and t.decided == 4
    assert t.lower_counts == (1, 1 + 2) and t.upper_counts == (1 + 2, 1)  # (None, True), (None, None) may lower
    assert t.estimate == 0.0


@pytest.mark.parametrize("d0,budget", [(0.0, 60), (0.15, 120), (-0.15, 120), (0.5, 40), (-0.5, 40)])
def test_the_calibrated_critical_values_keep_the_error_within_alpha_between_grid_points(d0, budget):
    """The calibration maximises over 13 discordances; the exact error on 61 stays within alpha."""
    d = Design(H("a - b > 0"), budget)
    crit = paired_critical(d0, d.schedule, d.fractions(d.schedule), ALPHA, "obrien-fleming")
    q01 = np.linspace(max(0.0, -d0), (1 - d0) / 2, 61)
    err = paired_error(d0, d.schedule, crit, q01)
    assert err.max() <= ALPHA and err.max() > 0.5 * GRID_MARGIN * ALPHA


def test_looks_decide_on_the_interval_exactly_as_the_states_cross():
    """What is printed is what decided: every paired state of every look, both hypothesis kinds."""
    for hyp in ("|a - b| <= 0.15", "a - b >= 0.5", "a - b > 0"):
        d = Design(H(hyp), 24)
        for j, n in enumerate(d.schedule):
            b, c = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
            expected = d._state_decision(j, b, c, n)
            for bi in range(n + 1):
                for ci in range(n + 1 - bi):
                    got = d.hypothesis.decide(d.interval(d.schedule[:j + 1], PairTally(n10=bi, n01=ci, n00=n - bi - ci)))
                    assert {Decision.HOLDS: 1, Decision.REFUTED: -1, Decision.INCONCLUSIVE: 0}[got] == expected[bi, ci]


def test_paired_operating_characteristics_match_the_runtime_loop():
    d = Design(H("|a - b| <= 0.15"), 80)
    q10, q01 = 0.10, 0.04
    rng = random.Random(3)

    def draw(m):
        out = []
        for _ in range(m):
            u = rng.random()
            out.append((True, False) if u < q10 else (False, True) if u < q10 + q01 else (True, True))
        return out

    reps = 800
    tests = [run_sequential(d, draw)[0] for _ in range(reps)]
    exact = d.operating(q10=q10, q01=q01)
    got = sum(t.decision is Decision.HOLDS for t in tests) / reps
    assert abs(got - exact.p_holds) < 4 * math.sqrt(exact.p_holds * (1 - exact.p_holds) / reps) + 2e-3


def test_a_paired_design_needs_paired_counts():
    d = Design(H("a - b > 0"), 10)
    with pytest.raises(TypeError, match="paired outcomes"):
        from mechinterp.stats import Tally

        d.interval((3,), Tally(3, 3))
    with pytest.raises(ValueError, match="q10, q01"):
        d.operating(q10=0.8, q01=0.4)


def _decision(design: Design, n10: int, n01: int) -> Decision:
    """The decision of a one-look ``design`` on ``n10`` a-only and ``n01`` b-only pairs of its budget."""
    from mechinterp.stats import SequentialTest

    test = SequentialTest(design)
    return test.update(PairTally(n10=n10, n01=n01, n00=design.budget - n10 - n01))


def test_states_with_one_statistic_decide_alike():
    """``(2, 0)`` and ``(12, 6)`` of 25 pairs have Tango's Z = sqrt(2) at ``d0 = 0`` (2/sqrt(2) = 6/sqrt(18)),
    computed one float step apart; this design's calibrated critical value fell between them, and one was
    inconclusive while the other held, both with a lower end of 0.000 (their mirror images, (0, 2) and
    (6, 12), one refuted). Rounded as the unpaired statistic is (``lattice.tie``), they tie and decide alike,
    and so does every group of states with one exact statistic at these sizes."""
    from fractions import Fraction

    design = Design(H("a - b > 0"), budget=25, looks=1, alpha=0.1)
    assert tango_z(2, 0, 25, 0.0) == tango_z(12, 6, 25, 0.0) and tango_z(0, 2, 25, 0.0) == tango_z(6, 12, 25, 0.0)
    assert _decision(design, 2, 0) == _decision(design, 12, 6)
    assert _decision(design, 2, 6) == _decision(design, 6, 12)
    (crit,), _ = design.critical()
    assert (tango_z(2, 0, 25, 0.0) > crit) == (tango_z(12, 6, 25, 0.0) > crit)  # the calibration's crossing rule
    for n in (25, 31):
        design = Design(H("a - b > 0"), budget=n, looks=1, alpha=0.1)
        groups: dict = {}
        for b in range(n + 1):
            for c in range(1 if b == 0 else 0, n + 1 - b):  # Z(0) = (b - c) / sqrt(b + c): one exact value per group
                groups.setdefault((b > c, Fraction((b - c) ** 2, b + c)), []).append((b, c))
        for states in groups.values():
            assert len({_decision(design, b, c) for b, c in states}) == 1, (n, states)
            assert len({float(tango_z(b, c, n, 0.0)) for b, c in states}) == 1, (n, states)

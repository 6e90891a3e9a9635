"""Unpaired differences: Newcombe's hybrid score interval, calibrated sequential critical values, type-I error
and power of the unpaired design (Table 1's ordering across task families)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import binom, norm

from mechinterp.stats import (
    ALPHA, ArmsTally, Decision, Design, Hypothesis, Tally, newcombe, plain_interval, plan_unpaired, run_sequential,
)
from mechinterp.stats.lattice import GRID_MARGIN
from mechinterp.stats.unpaired import (
    newcombe_interval, newcombe_lower, newcombe_upper, newcombe_z, prefix_arms, unpaired_critical, unpaired_error,
    wilson_bounds,
)

H = Hypothesis.parse
Z95 = float(norm.isf(0.025))


def _arm():
    return st.integers(1, 150).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))


def _direct_wilson(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's bounds from their definition: the rates ``p`` where ``|k/n - p| = z sqrt(p (1 - p) / n)``."""
    phat = k / n
    f = lambda p: (phat - p) ** 2 - z * z * p * (1 - p) / n  # noqa: E731 - zero at the bounds
    # f < 0 between the bounds (at k/n itself, or just inside it when k/n is 0 or 1, where f vanishes)
    low = 0.0 if k == 0 else brentq(f, 1e-15, min(phat, 1 - 1e-12), xtol=1e-14)
    high = 1.0 if k == n else brentq(f, max(phat, 1e-12), 1 - 1e-15, xtol=1e-14)
    return low, high


# -- the interval ------------------------------------------------------------------------------
@pytest.mark.parametrize("counts,expected", [
    ((56, 70, 48, 80), (0.0524, 0.3339)),  # Newcombe (1998), Table II, method 10: example (a)
    ((9, 10, 3, 10), (0.1705, 0.8090)),  # (b)
    ((0, 10, 0, 20), (-0.1611, 0.2775)),  # (e)
    ((10, 10, 0, 20), (0.6791, 1.0000)),  # (f)
])
def test_newcombe_reproduces_the_published_examples(counts, expected):
    ci = newcombe(*counts)
    assert (round(ci.low, 4), round(ci.high, 4)) == expected
    ka, na, kb, nb = counts
    assert float(newcombe_lower(ka, na, kb, nb, Z95)) == pytest.approx(ci.low, abs=1e-12)
    assert float(newcombe_upper(ka, na, kb, nb, Z95)) == pytest.approx(ci.high, abs=1e-12)
    assert plain_interval(ArmsTally(Tally(ka, na), Tally(kb, nb))) == ci


@settings(max_examples=200, deadline=None)
@given(_arm(), _arm(), st.floats(0.1, 5.0))
def test_the_vectorised_ends_match_a_direct_computation(a, b, z):
    """Each arm's Wilson bounds solved from the score equation, then squared and added by hand."""
    (ka, na), (kb, nb) = a, b
    la, ua = _direct_wilson(ka, na, z)
    lb, ub = _direct_wilson(kb, nb, z)
    assert np.allclose(wilson_bounds(ka, na, z), (la, ua), atol=1e-9)
    pa, pb = ka / na, kb / nb
    low = max(-1.0, pa - pb - math.hypot(pa - la, ub - pb))
    high = min(1.0, pa - pb + math.hypot(ua - pa, pb - lb))
    assert float(newcombe_lower(ka, na, kb, nb, z)) == pytest.approx(low, abs=1e-9)
    assert float(newcombe_upper(ka, na, kb, nb, z)) == pytest.approx(high, abs=1e-9)
    ci = newcombe(ka, na, kb, nb, 1 - 2 * norm.sf(z))  # scipy's Wilson, at the same level
    assert (ci.low, ci.high) == pytest.approx((low, high), abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(_arm(), _arm(), st.floats(0.1, 5.0))
def test_the_ends_grow_with_arm_a_and_fall_with_arm_b(a, b, z):
    """Why the null boundary is the least favourable part of the null, and why the worst case is a bound."""
    (ka, na), (kb, nb) = a, b
    for end in (newcombe_lower, newcombe_upper):
        base = float(end(ka, na, kb, nb, z))
        if ka < na:
            assert float(end(ka + 1, na, kb, nb, z)) >= base - 1e-12
        if kb < nb:
            assert float(end(ka, na, kb + 1, nb, z)) <= base + 1e-12


@pytest.mark.parametrize("n", [10, 30, 90])
def test_the_95_interval_covers_about_as_newcombe_reports(n):
    """Exact coverage over a grid of true rates: near 95 % on average, never far below (method 10's profile)."""
    k = np.arange(n + 1)
    low = newcombe_lower(k[:, None], n, k[None, :], n, Z95)
    high = newcombe_upper(k[:, None], n, k[None, :], n, Z95)
    cover = []
    for pa in np.linspace(0.05, 0.95, 19):
        for pb in np.linspace(0.05, 0.95, 19):
            p = np.outer(binom.pmf(k, n, pa), binom.pmf(k, n, pb))
            cover.append(p[(low <= pa - pb) & (pa - pb <= high)].sum())
    assert 0.945 <= np.mean(cover) <= 0.96 and min(cover) >= 0.90


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.integers(0, n), st.integers(0, n), st.just(n))),
       st.sampled_from([-0.5, -0.15, 0.0, 0.15, 0.5]), st.floats(0.0, 8.0))
def test_the_statistic_is_where_the_lower_end_reaches_the_null(counts, d0, z):
    ka, kb, n = counts
    t = float(newcombe_z(ka, kb, n, d0))
    if (ka - kb) / n <= d0:
        assert t == -math.inf
        return
    above = float(newcombe_lower(ka, n, kb, n, z)) > d0
    if math.isfinite(t) and abs(z - t) > 1e-9:
        assert above == (z < t)
        assert float(newcombe_lower(ka, n, kb, n, t)) == pytest.approx(d0, abs=1e-9)
    elif t == math.inf:
        assert above


# -- the tally and abstentions -------------------------------------------------------------------
def test_arms_tally_counts_each_arm_and_bounds_abstentions():
    t = ArmsTally.of(([True, None, False, True], [False, None, None]))
    assert (t.a, t.b) == (Tally(2, 3, 1), Tally(0, 1, 2))
    assert t.answered == t.decided == 1 and t.judged == 4 and t.abstained == 3 and t.wanted(3) == (0, 2)
    assert t.estimate == pytest.approx(2 / 3)
    assert t.lower_counts == (2, 4, 2, 3) and t.upper_counts == (3, 4, 0, 3)
    assert (t + ArmsTally(Tally(1, 1), Tally())).a == Tally(3, 4, 1)
    with pytest.raises(TypeError, match="arm a's, arm b's"):
        ArmsTally.of([(True, False)])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=7),
       st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=7), st.floats(0.5, 3.0))
def test_the_worst_case_interval_is_the_least_favourable_reading_of_the_abstentions(xs, ys, z):
    """Brute force: every way the abstentions could have been answered stays inside the worst case."""
    import itertools

    tally = ArmsTally.of((xs, ys))
    worst = newcombe_interval(tally, z, z, worst_case=True)
    holes = [i for i, o in enumerate(xs + ys) if o is None]
    for fill in itertools.product((True, False), repeat=len(holes)):
        filled = list(xs + ys)
        for i, f in zip(holes, fill):
            filled[i] = f
        ci = newcombe_interval(ArmsTally.of((filled[:len(xs)], filled[len(xs):])), z, z)
        assert worst.low <= ci.low + 1e-12 and ci.high <= worst.high + 1e-12


def test_a_look_takes_each_arms_answers_up_to_its_size():
    assert prefix_arms(([None, True, False, True], [False, None, True]), 2) == ([None, True, False], [False, None, True])


# -- the design ----------------------------------------------------------------------------------
@pytest.mark.parametrize("d0,budget", [(0.0, 60), (0.15, 120), (-0.15, 120), (0.5, 40), (-0.5, 40), (0.0, 320)])
def test_the_calibrated_critical_values_keep_the_error_within_alpha_between_grid_points(d0, budget):
    """The calibration maximises over 21 null rates; the exact error on 161 stays within alpha."""
    d = Design(H("a - b > 0"), budget, unpaired=True)
    crit = unpaired_critical(d0, d.schedule, d.fractions(d.schedule), ALPHA, "obrien-fleming")
    pb = np.linspace(max(0.0, -d0), min(1.0, 1 - d0), 161)
    err = unpaired_error(d0, d.schedule, crit, pb)
    assert err.max() <= ALPHA and err.max() > 0.5 * GRID_MARGIN * ALPHA
    assert all(c >= 0 for c in crit)


@pytest.mark.parametrize("hyp,budget", [("a - b > 0", 90), ("a - b >= 0.5", 40), ("|a - b| <= 0.15", 150),
                                        ("a - b < -0.1", 70)])
def test_the_type_one_error_at_the_boundary_is_within_alpha_by_the_exact_recursion(hyp, budget):
    """At every null rate on the claim's threshold, holding a false claim (and refuting a true one) happens at
    most alpha of the time — computed exactly by the operating-characteristics recursion."""
    d = Design(H(hyp), budget, unpaired=True)
    v = d.hypothesis.value
    for d0 in ((v, -v) if d.hypothesis.quantity == "|a - b|" else (v,)):
        for pb in np.linspace(max(0.0, -d0), min(1.0, 1 - d0), 15):
            oc = d.operating(pa=min(1.0, max(0.0, pb + d0)), pb=pb)
            assert oc.p_holds <= ALPHA + 1e-9, (d0, pb, oc)
            if d.hypothesis.quantity != "|a - b|":
                assert oc.p_refuted <= ALPHA + 1e-9, (d0, pb, oc)


def _simulated(d: Design, pa: float, pb: float, reps: int, seed: int) -> tuple[float, float]:
    rng = random.Random(seed)

    def draw(want):
        return [rng.random() < pa for _ in range(want[0])], [rng.random() < pb for _ in range(want[1])]

    tests = [run_sequential(d, draw)[0] for _ in range(reps)]
    return (sum(t.decision is Decision.HOLDS for t in tests) / reps,
            sum(t.decision is Decision.REFUTED for t in tests) / reps)


@pytest.mark.parametrize("pa,pb", [(0.45, 0.45), (0.9, 0.9), (0.75, 0.45)])
def test_the_exact_operating_characteristics_match_a_monte_carlo_of_the_runtime_loop(pa, pb):
    """The boundary (a - b = 0: the type-I error) and a point of power, through run_sequential itself."""
    d = Design(H("a - b > 0"), 60, unpaired=True)
    exact = d.operating(pa=pa, pb=pb)
    reps = 1500
    holds, refuted = _simulated(d, pa, pb, reps, seed=int(100 * pa + pb * 10))
    for got, want in ((holds, exact.p_holds), (refuted, exact.p_refuted)):
        assert abs(got - want) < 4 * math.sqrt(max(want * (1 - want), 1e-4) / reps) + 2e-3, (got, want)
    if pa == pb:
        assert exact.p_holds <= ALPHA and holds <= ALPHA + 4 * math.sqrt(ALPHA / reps)


def test_looks_decide_on_the_interval_exactly_as_the_states_cross():
    """What is printed is what decided: every state of every look, every kind of hypothesis."""
    code = {Decision.HOLDS: 1, Decision.REFUTED: -1, Decision.INCONCLUSIVE: 0}
    for hyp in ("|a - b| <= 0.15", "a - b >= 0.5", "a - b > 0", "a - b < -0.1"):
        d = Design(H(hyp), 24, unpaired=True)
        for j, n in enumerate(d.schedule):
            ka, kb = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
            expected = d._state_decision(j, ka, kb, n)
            for x in range(n + 1):
                for y in range(n + 1):
                    ci = d.interval(d.schedule[:j + 1], ArmsTally(Tally(x, n), Tally(y, n)))
                    assert code[d.hypothesis.decide(ci)] == expected[x, y], (hyp, j, x, y)


def test_power_grows_with_the_difference_and_a_reversed_order_is_refuted():
    d = Design(H("a - b > 0"), 60, unpaired=True)
    powers = [d.operating(pa=0.5 + e / 2, pb=0.5 - e / 2).p_holds for e in (0.0, 0.1, 0.2, 0.3, 0.5)]
    assert powers == sorted(powers) and powers[0] <= ALPHA and powers[-1] > 0.99
    reversed_ = d.operating(pa=0.2, pb=0.8)
    assert reversed_.p_refuted > 0.99 and reversed_.p_holds < 1e-6
    plan = plan_unpaired(H("a - b > 0"), 0.9, 0.7, 400)
    assert plan.reached and plan.power.p_holds >= 0.9
    smaller = Design(H("a - b > 0"), plan.budget - 8, unpaired=True).operating(pa=0.9, pb=0.7)
    assert smaller.p_holds < plan.power.p_holds


def test_an_arm_that_runs_out_ends_the_test_on_both_arms_first_answers():
    d = Design(H("a - b > 0"), 40, unpaired=True)
    a_arm = [True] * 40
    b_arm = [None, False] * 6  # 6 answers, then nothing left
    given = {"a": 0, "b": 0}

    def draw(want):
        xs = a_arm[given["a"]:given["a"] + want[0]]
        ys = b_arm[given["b"]:given["b"] + want[1]]
        given["a"] += len(xs)
        given["b"] += len(ys)
        return xs, ys

    test, seen = run_sequential(d, draw)
    assert test.exhausted and test.last.answered == 6
    assert [o for o in seen[1] if o is not None] == [False] * 6 and seen[0] == [True] * 6  # a trimmed to b's six
    assert test.last.levels == d.levels((*[look.answered for look in test.history],), final=True)[-1]


def test_an_unpaired_design_says_what_it_needs():
    with pytest.raises(ValueError, match="unpaired applies to a relation"):
        Design(H("rate >= 0.5"), 10, unpaired=True)
    d = Design(H("a - b > 0"), 10, unpaired=True)
    assert (d.kind, d.relation, d.paired) == ("unpaired", True, False)
    with pytest.raises(TypeError, match="two arms' outcomes"):
        from mechinterp.stats import PairTally

        d.interval((3,), PairTally(n10=3))
    with pytest.raises(ValueError, match="pa, pb"):
        d.operating(q10=0.3, q01=0.1)
    with pytest.raises(ValueError, match=r"draw\(\(3, 3\)\) gave \(4, 3\)"):
        run_sequential(Design(H("a - b > 0"), 12, unpaired=True), lambda want: ([True] * (want[0] + 1), [False] * want[1]))


def test_the_smallest_decidable_budget_of_a_relation_is_found_by_doubling_and_bisection():
    from mechinterp.stats.plan import smallest_decidable

    for hyp in ("a - b > 0", "a - b >= 0.5"):
        scan = next(n for n in range(1, 60) if Design(H(hyp), n, unpaired=True).can_hold)
        assert smallest_decidable(H(hyp), 1, unpaired=True, limit=64) == scan
    assert smallest_decidable(H("a - b >= 0.99"), 25, unpaired=True, limit=100) is None  # needs hundreds per arm

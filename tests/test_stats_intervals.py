"""Wilson and Newcombe intervals against published values, edge cases and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechinterp.stats import newcombe, wilson


def _wilson_closed_form(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Independent textbook formula, to cross-check scipy's implementation."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n,low,high", [
    # Newcombe (1998) Table I, method 3 (Wilson score, no continuity correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_published_values(k, n, low, high):
    ci = wilson(k, n)
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


def test_wilson_reproduces_paper_example():
    assert wilson(276, 320).as_percent_text() == "86.2 +3.3 \u22124.2"
    assert wilson(0, 90).as_percent_text() == "0.0 +4.1 \u22120.0"


@pytest.mark.parametrize("n", [1, 2, 7, 90, 1000])
def test_wilson_edges(n):
    zero, full = wilson(0, n), wilson(n, n)
    assert zero.low == 0.0 and zero.estimate == 0.0 and 0 < zero.high < 1
    assert full.high == 1.0 and full.estimate == 1.0 and 0 < full.low < 1
    assert math.isclose(zero.high, 1 - full.low, abs_tol=1e-12)  # symmetry


def test_wilson_n_equals_one():
    ci = wilson(1, 1)
    assert ci.estimate == 1.0 and ci.high == 1.0
    assert math.isclose(ci.low, 1 / (1 + 1.959963984540054 ** 2), rel_tol=1e-9)


def test_wilson_without_data_is_uninformative():
    ci = wilson(0, 0)
    assert math.isnan(ci.estimate) and (ci.low, ci.high) == (0.0, 1.0)
    assert ci.as_percent_text() == "n/a"


@pytest.mark.parametrize("k,n", [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_bad_counts(k, n):
    with pytest.raises(ValueError, match=f"k={k}, n={n}"):
        wilson(k, n)


def test_wilson_rejects_bad_confidence():
    with pytest.raises(ValueError, match="confidence"):
        wilson(1, 2, confidence=1.5)


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_rate_and_stays_in_unit_interval(kn):
    k, n = kn
    ci = wilson(k, n)
    assert 0.0 <= ci.low <= k / n <= ci.high <= 1.0
    lo, hi = _wilson_closed_form(k, n)
    assert math.isclose(ci.low, max(lo, 0.0), abs_tol=1e-9) and math.isclose(ci.high, min(hi, 1.0), abs_tol=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 1000).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))))
def test_wilson_bounds_are_monotone_in_k(kn):
    k, n = kn
    a, b = wilson(k, n), wilson(k + 1, n)
    assert a.low < b.low and a.high < b.high


@pytest.mark.parametrize("counts,low,high", [
    # Newcombe (1998) Table II, method 10 (hybrid score, no continuity correction)
    ((56, 70, 48, 80), 0.0524, 0.3339), ((9, 10, 3, 10), 0.1705, 0.8090), ((6, 7, 2, 7), 0.0582, 0.8062),
    ((5, 56, 0, 29), -0.0381, 0.1926), ((0, 10, 0, 20), -0.1611, 0.2775), ((10, 10, 0, 20), 0.6791, 1.0),
])
def test_newcombe_matches_published_values(counts, low, high):
    ci = newcombe(*counts)
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


def test_newcombe_without_data_is_uninformative():
    ci = newcombe(0, 0, 3, 5)
    assert (ci.low, ci.high) == (-1.0, 1.0) and math.isnan(ci.estimate)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 500), st.integers(1, 500), st.floats(0, 1), st.floats(0, 1))
def test_newcombe_contains_difference_and_stays_in_range(n1, n2, f1, f2):
    k1, k2 = round(f1 * n1), round(f2 * n2)
    ci = newcombe(k1, n1, k2, n2)
    assert -1.0 <= ci.low <= k1 / n1 - k2 / n2 <= ci.high <= 1.0
    flipped = newcombe(k2, n2, k1, n1)
    assert math.isclose(flipped.low, -ci.high, abs_tol=1e-12) and math.isclose(flipped.high, -ci.low, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))), st.floats(1e-6, 0.2))
def test_clopper_pearson_bounds_are_where_the_binomial_tail_equals_the_level(kn, level):
    from scipy.stats import binom

    from mechinterp.stats.intervals import cp_lower, cp_upper

    k, n = kn
    low, high = cp_lower(k, n, level), cp_upper(k, n, level)
    assert 0.0 <= low <= k / n <= high <= 1.0
    if k > 0:
        assert math.isclose(binom.sf(k - 1, n, low), level, rel_tol=1e-6)  # P_low(X >= k) = level
    if k < n:
        assert math.isclose(binom.cdf(k, n, high), level, rel_tol=1e-6)  # P_high(X <= k) = level
    assert cp_lower(k, n, 0.0) == 0.0 and cp_upper(k, n, 0.0) == 1.0

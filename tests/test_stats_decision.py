"""Hypotheses and the three-valued decision."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mechinterp.stats import Decision, Hypothesis, Interval, PairTally, Tally, decide, wilson

ORDER = {Decision.REFUTED: 0, Decision.INCONCLUSIVE: 1, Decision.HOLDS: 2}


@pytest.mark.parametrize("text,canonical", [
    ("rate >= 0.80", "rate >= 0.8"), ("rate<=0.05", "rate <= 0.05"), ("a - b > 0", "a - b > 0"),
    ("a-b >= .5", "a - b >= 0.5"), ("|a - b| <= 0.15", "|a - b| <= 0.15"), ("a - b > -0.1", "a - b > -0.1"),
])
def test_parse_round_trips(text, canonical):
    h = Hypothesis.parse(text)
    assert str(h) == canonical and Hypothesis.parse(str(h)) == h


@pytest.mark.parametrize("text,match", [
    ("rate => 0.8", "cannot parse"), ("p >= 0.8", "cannot parse"), ("rate >= 1.5", r"\[0.0, 1\]"),
    ("|a - b| >= 0.1", "only '<=' and '<'"),
])
def test_parse_errors_name_the_bad_value(text, match):
    with pytest.raises(ValueError, match=match):
        Hypothesis.parse(text)


@pytest.mark.parametrize("hyp,low,high,expected", [
    ("rate >= 0.8", 0.82, 0.90, "holds"), ("rate >= 0.8", 0.70, 0.79, "refuted"), ("rate >= 0.8", 0.75, 0.85, "inconclusive"),
    ("rate >= 0.8", 0.80, 0.85, "holds"), ("rate > 0.8", 0.80, 0.85, "inconclusive"), ("rate > 0.8", 0.70, 0.80, "refuted"),
    ("rate <= 0.05", 0.0, 0.041, "holds"), ("rate <= 0.05", 0.06, 0.2, "refuted"), ("rate < 0.5", 0.36, 0.56, "inconclusive"),
    ("a - b > 0", 0.1, 0.3, "holds"), ("a - b > 0", -0.3, -0.1, "refuted"), ("a - b > 0", -0.1, 0.2, "inconclusive"),
    ("|a - b| <= 0.15", 0.03, 0.11, "holds"), ("|a - b| <= 0.15", -0.14, 0.05, "holds"),
    ("|a - b| <= 0.15", 0.16, 0.3, "refuted"), ("|a - b| <= 0.15", -0.4, -0.2, "refuted"),
    ("|a - b| <= 0.15", 0.1, 0.2, "inconclusive"), ("|a - b| <= 0.15", -0.2, 0.2, "inconclusive"),
])
def test_decision_compares_the_whole_interval(hyp, low, high, expected):
    assert Hypothesis.parse(hyp).decide(Interval((low + high) / 2, low, high)) == Decision(expected)


def test_decide_uses_wilson_for_a_rate_and_the_paired_score_interval_for_a_difference():
    d, ci = decide("rate >= 0.80", Tally(276, 320))
    assert d is Decision.HOLDS and ci == wilson(276, 320)
    d, ci = decide("a - b > 0", PairTally(n11=35, n10=6, n01=34, n00=15))  # text only 6 vs image only 34
    assert d is Decision.REFUTED and ci.high < 0 and ci.estimate == pytest.approx((6 - 34) / 90)
    assert decide("rate >= 0.5", Tally(0, 0))[0] is Decision.INCONCLUSIVE


def test_the_fixed_sample_decision_leaves_abstentions_out():
    assert decide("rate >= 0.5", Tally(30, 40, 60)) == decide("rate >= 0.5", Tally(30, 40))


def test_decide_rejects_the_wrong_kind_of_counts():
    with pytest.raises(ValueError, match="paired counts"):
        decide("a - b > 0", Tally(1, 2))
    with pytest.raises(ValueError, match="one arm"):
        decide("rate >= 0.5", PairTally(1, 2, 1, 2))


def _rank(h: Hypothesis, k: int, n: int) -> int:
    """Decision rank oriented so that it must not decrease as k grows."""
    r = ORDER[h.decide(wilson(k, n))]
    return r if h.op in (">=", ">") else 2 - r


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n - 1), st.just(n))),
       st.sampled_from([">=", ">", "<=", "<"]), st.floats(0.01, 0.99))
def test_decision_is_monotone_in_k(kn, op, threshold):
    k, n = kn
    h = Hypothesis("rate", op, round(threshold, 3))
    assert _rank(h, k, n) <= _rank(h, k + 1, n)


@pytest.mark.parametrize("hyp", ["rate >= 0.8", "rate < 0.5", "rate <= 0.05"])
@pytest.mark.parametrize("n", [1, 10, 90, 320])
def test_decision_sweeps_refuted_inconclusive_holds_once(hyp, n):
    h = Hypothesis.parse(hyp)
    ranks = [_rank(h, k, n) for k in range(n + 1)]
    assert ranks == sorted(ranks)


def test_decision_prints_as_word():
    assert f"{Decision.HOLDS}" == "holds" and Decision("refuted") is Decision.REFUTED

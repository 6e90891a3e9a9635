"""Confidence intervals for pooled judge verdicts.

The paper reports every cell as a pooled rate with a 95% Wilson score interval, computed
with ``scipy.stats.binomtest(k, n).proportion_ci(method="wilson")``; we use exactly that
call so our numbers match the printed tables digit for digit. Differences between two
independent cells (two runs of one claim) use Newcombe's hybrid score interval (Newcombe
1998, method 10), built from the two Wilson intervals; :func:`mover` is that construction for any two
independent intervals (two runs' paired differences). The sequential decisions use exact
Clopper–Pearson bounds at the look's one-sided levels (:func:`cp_lower`, :func:`cp_upper`);
paired differences are in :mod:`mechinterp.stats.paired`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy.stats import beta, binomtest

#: the paper's confidence level
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval ``[low, high]``.

    For a proportion ``estimate`` is ``k / n``; for a difference it is ``p_a - p_b``.
    ``estimate`` is ``nan`` when there is no data (``n == 0``).
    """

    estimate: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    def as_percent_text(self) -> str:
        """Format like the paper's tables: ``86.2 +3.3 −4.2`` (percent, one decimal)."""
        if math.isnan(self.estimate):
            return "n/a"
        p = 100 * self.estimate
        return f"{p:.1f} +{100 * self.high - p:.1f} \u2212{p - 100 * self.low:.1f}"

    def as_difference_text(self) -> str:
        """Format a difference in percentage points: ``+6.9 [+2.8, +11.1]``."""
        if math.isnan(self.estimate):
            return "n/a"
        return f"{100 * self.estimate:+.1f} [{100 * self.low:+.1f}, {100 * self.high:+.1f}]"


def _check_counts(k: int, n: int) -> None:
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise TypeError(f"k and n must be integers, got k={k!r}, n={n!r}")
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


@lru_cache(maxsize=65536)
def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval for ``k`` successes out of ``n`` (scipy's implementation).

    ``n == 0`` gives the uninformative interval ``[0, 1]`` with a ``nan`` estimate, so a
    claim without data is always inconclusive rather than an error.
    """
    _check_counts(k, n)
    _check_confidence(confidence)
    if n == 0:
        return Interval(math.nan, 0.0, 1.0, confidence)
    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    rate = k / n
    # scipy's bounds can miss k/n by one ulp at k == 0 or k == n; clamp so low <= rate <= high
    return Interval(rate, min(float(ci.low), rate), max(float(ci.high), rate), confidence)


def newcombe(k1: int, n1: int, k2: int, n2: int, confidence: float = CONFIDENCE) -> Interval:
    """Newcombe hybrid score interval for the difference ``k1/n1 - k2/n2``.

    Method 10 of Newcombe (1998): square-and-add the distances from each rate to its own
    Wilson bounds. Either arm without data gives the uninformative ``[-1, 1]``.
    """
    a = wilson(k1, n1, confidence)
    b = wilson(k2, n2, confidence)
    if n1 == 0 or n2 == 0:
        return Interval(math.nan, -1.0, 1.0, confidence)
    return mover(a, b, 1.0)


def mover(a: Interval, b: Interval, bound: float) -> Interval:
    """Interval for ``a - b`` of two *independent* estimates, each with its own interval (MOVER, the method of
    variance estimates recovery: Zou & Donner 2008; Newcombe's method 10 is its case of two Wilson intervals).

    Each bound squares and adds the distances from the two estimates to the bounds that move the difference that
    way; the result is clipped to ``[-bound, bound]`` (1 for two rates, 2 for two differences of rates) and keeps
    ``a``'s confidence. Why: it turns any two valid intervals into one for their difference, e.g. the change of
    a paired relation's ``a - b`` between two runs from each run's own paired interval.
    """
    d = a.estimate - b.estimate
    low = d - math.hypot(a.estimate - a.low, b.high - b.estimate)
    high = d + math.hypot(a.high - a.estimate, b.estimate - b.low)
    return Interval(d, max(-bound, low), min(bound, high), a.confidence)


@lru_cache(maxsize=65536)
def cp_lower(k: int, n: int, level: float) -> float:
    """Exact (Clopper–Pearson) one-sided lower bound at ``level``: the rate ``p`` with ``P_p(X >= k) = level``.

    It exceeds a rate ``p0`` exactly when ``P_p0(X >= k) < level``; level 0 gives 0.
    """
    _check_counts(k, n)
    if k == 0 or level <= 0.0:
        return 0.0
    return float(beta.ppf(level, k, n - k + 1))


@lru_cache(maxsize=65536)
def cp_upper(k: int, n: int, level: float) -> float:
    """Exact (Clopper–Pearson) one-sided upper bound at ``level``: the rate ``p`` with ``P_p(X <= k) = level``."""
    _check_counts(k, n)
    if k == n or level <= 0.0:
        return 1.0
    return float(beta.isf(level, k + 1, n - k))

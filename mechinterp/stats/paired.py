"""Paired differences of two rates measured on the same tasks (a relation's two cells).

Per task the two arms give ``(x, y)``; the difference ``d = x - y`` is ``+1``, ``0`` or ``-1``,
and ``a - b = q10 - q01`` (the two discordant cells' probabilities). The statistic is Tango's
score statistic (Tango 1998) for ``H: a - b = d0``::

    Z(d0) = (n10 - n01 - n d0) / sqrt(n (2 q01~ + d0 (1 - d0)))

with ``q01~`` the maximum-likelihood ``q01`` under the constraint; ``Z`` decreases in ``d0``,
so "the interval's lower end exceeds ``d0``" is "``Z(d0)`` above a critical value".

Its null distribution depends on the discordance (a nuisance parameter). The critical
values of a look schedule are therefore *calibrated*: the exact distribution of the
discordant counts ``(n10, n01)`` is carried from look to look (2-D convolution with the
trinomial of each look's new tasks) for a grid of discordances covering the whole null
boundary ``a - b = d0``, and each look's critical value is the smallest one that keeps the
error spent so far within the spending function *at every discordance of the grid* (an
exact unconditional test in the manner of Suissa & Shuster 1991 and Hsueh, Liu & Chen 2001,
made group-sequential). The same recursion at a true ``(q10, q01)`` gives the probabilities
of each decision (:func:`paired_oc`). The recursion and the calibration are shared with the
unpaired relations (:mod:`mechinterp.stats.lattice`); this module supplies the trinomial step,
Tango's statistic and its interval.

A pair where an arm's judge abstained is left out of the decision and kept in view: the
worst-case interval enters it at the lower end at its smallest possible difference and at the
upper end at its largest (:class:`PairTally`, :func:`tango_interval`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import gammaln
from scipy.stats import norm

from mechinterp.stats.intervals import CONFIDENCE, Interval
from mechinterp.stats.lattice import Mass, calibrate, crossing_error, operating, tie

#: discordance values on the null boundary over which the critical values are maximised
NUISANCE_GRID = 13
_EDGE = 1e-9


@dataclass(frozen=True)
class PairTally:
    """Paired outcomes on ``n`` tasks: both arms succeeded, only a, only b, neither; and pairs
    with an abstaining arm (``may_lower``: could lower ``a - b`` to -1, ``may_raise``: could raise it to +1)."""

    n11: int = 0
    n10: int = 0
    n01: int = 0
    n00: int = 0
    abstained: int = 0
    may_lower: int = 0
    may_raise: int = 0

    @classmethod
    def of(cls, pairs) -> "PairTally":
        """Tally ``(x, y)`` outcomes (``True``/``False``, ``None`` = the arm's judge abstained)."""
        c = dict(n11=0, n10=0, n01=0, n00=0, abstained=0, may_lower=0, may_raise=0)
        for x, y in pairs:
            if x is None or y is None:
                c["abstained"] += 1
                lows = [int(a) - int(b) for a in ((0, 1) if x is None else (x,)) for b in ((0, 1) if y is None else (y,))]
                c["may_lower"] += min(lows) < 0
                c["may_raise"] += max(lows) > 0
            else:
                c["n" + str(int(bool(x))) + str(int(bool(y)))] += 1
        return cls(**c)

    def __add__(self, other: "PairTally") -> "PairTally":
        return PairTally(*(getattr(self, f) + getattr(other, f) for f in
                           ("n11", "n10", "n01", "n00", "abstained", "may_lower", "may_raise")))

    @property
    def judged(self) -> int:
        """Pairs looked at (abstentions included)."""
        return self.n11 + self.n10 + self.n01 + self.n00 + self.abstained

    @property
    def decided(self) -> int:
        """Pairs where both arms gave an answer: what a look decides on."""
        return self.n11 + self.n10 + self.n01 + self.n00

    @property
    def answered(self) -> int:
        """Pairs both arms answered: where the planned looks fall."""
        return self.decided

    @property
    def estimate(self) -> float:
        """``a - b`` on the pairs where both arms answered (``nan`` without any)."""
        return (self.n10 - self.n01) / self.decided if self.decided else math.nan

    @property
    def lower_counts(self) -> tuple[int, int]:
        """``(n10, n01)`` with every abstention at its smallest difference (for the interval's lower end)."""
        return self.n10, self.n01 + self.may_lower

    @property
    def upper_counts(self) -> tuple[int, int]:
        """``(n10, n01)`` with every abstention at its largest difference (for the interval's upper end)."""
        return self.n10 + self.may_raise, self.n01


def tango_z(n10, n01, n: int, d0):
    """Tango's score statistic for ``a - b = d0`` (vectorised over counts or ``d0``); 0 when undefined.

    Rounded as the unpaired statistic is (:func:`mechinterp.stats.lattice.tie`): states whose statistics
    are equal in exact arithmetic (``(2, 0)`` and ``(12, 6)`` at ``d0 = 0``: both ``sqrt(2)``) tie, so the
    calibration, the decision of a look and its interval can never put a critical value between them."""
    b, c, d0 = np.asarray(n10, float), np.asarray(n01, float), np.asarray(d0, float)
    B = -(b + c) + (2 * n - b + c) * d0
    C = -c * d0 * (1 - d0)
    q = (-B + np.sqrt(np.maximum(B * B - 8 * n * C, 0.0))) / (4 * n)
    var = n * (2 * q + d0 * (1 - d0))
    num = b - c - n * d0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var > 1e-300, num / np.sqrt(np.where(var > 1e-300, var, 1.0)),
                     np.where(num > 0, np.inf, np.where(num < 0, -np.inf, 0.0)))
    return tie(z)


@lru_cache(maxsize=65536)
def tango_bound(n10: int, n01: int, n: int, z: float, upper: bool) -> float:
    """One end of the score interval: the ``d0`` where ``Z(d0) = z`` (lower) or ``= -z`` (upper)."""
    if n == 0 or not math.isfinite(z):
        return 1.0 if upper else -1.0
    target = -z if upper else z
    f = lambda d: float(tango_z(n10, n01, n, d)) - target  # noqa: E731 - decreasing in d
    lo, hi = -1.0 + _EDGE, 1.0 - _EDGE
    if f(lo) <= 0:
        return -1.0
    if f(hi) >= 0:
        return 1.0
    return float(brentq(f, lo, hi, xtol=1e-12))


def z_tail(z: float) -> float:
    """The one-sided normal level of a critical value (0 for ``inf``)."""
    return 0.0 if math.isinf(z) else float(norm.sf(z))


def tango_interval(tally: PairTally, z_lower: float, z_upper: float, *, worst_case: bool = False) -> Interval:
    """Interval for ``a - b`` on the pairs both arms answered: the lower end where ``Z = z_lower``,
    the upper where ``Z = -z_upper`` (score bounds at one-sided levels ``z_tail(z)``).
    ``worst_case``: every pair with an abstention counted too, at each end at its least favourable."""
    if worst_case:
        n, lower, upper = tally.judged, tally.lower_counts, tally.upper_counts
    else:
        n, lower, upper = tally.decided, (tally.n10, tally.n01), (tally.n10, tally.n01)
    low = tango_bound(*lower, n, float(z_lower), False)
    high = tango_bound(*upper, n, float(z_upper), True)
    return Interval(tally.estimate, low, high, 1.0 - z_tail(z_lower) - z_tail(z_upper))


def paired_interval(tally: PairTally, confidence: float = CONFIDENCE) -> Interval:
    """The plain two-sided score interval (Tango) of a paired difference on the answered pairs."""
    z = float(norm.isf((1.0 - confidence) / 2.0))
    return tango_interval(tally, z, z)


def _trinomial(m: int, q10: float, q01: float, bs: tuple[int, int], cs: tuple[int, int]) -> np.ndarray:
    """pmf of ``(n10, n01)`` after ``m`` tasks on the box ``bs x cs`` (zero where ``n10 + n01 > m``)."""
    b = np.arange(bs[0], bs[1] + 1)[:, None]
    c = np.arange(cs[0], cs[1] + 1)[None, :]
    r = m - b - c
    valid = r >= 0
    rr = np.where(valid, r, 0)
    q00 = min(max(1.0 - q10 - q01, 0.0), 1.0)

    def term(count, prob):
        return np.where(count > 0, count * (math.log(prob) if prob > 0 else -np.inf), 0.0)

    with np.errstate(invalid="ignore"):
        logp = gammaln(m + 1) - gammaln(b + 1) - gammaln(c + 1) - gammaln(rr + 1) + term(b, q10) + term(c, q01) + term(rr, q00)
    return np.where(valid, np.exp(logp), 0.0)


def _valid(b, c, n: int):
    """The discordant counts possible after ``n`` pairs."""
    return b + c <= n


def _z(mass: Mass, n: int, d0: float) -> np.ndarray:
    """Tango's Z at every cell of the box (``-inf`` where ``n10 + n01 > n``)."""
    b, c = mass.coords()
    return np.where(_valid(b, c, n), tango_z(b, c, n, d0), -np.inf)


def _crosses(d0: float):
    """The crossing rule of "``a - b > d0``": Tango's ``Z(d0)`` above the critical value."""
    return lambda mass, n, crit: _z(mass, n, d0) > crit


def _grid(d0: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(q10, q01)`` along the null boundary ``q10 - q01 = d0``, Chebyshev-spaced: the error
    changes fastest near the ends (almost no discordance, or almost no concordance)."""
    lo, hi = max(0.0, -d0), (1.0 - d0) / 2.0
    q01 = lo + (hi - lo) * (1.0 - np.cos(np.pi * np.arange(size) / max(size - 1, 1))) / 2.0
    return q01 + d0, q01


@lru_cache(maxsize=256)
def paired_critical(d0: float, schedule: tuple[int, ...], fractions: tuple[float, ...], alpha: float, spending: str,
                    grid: int = NUISANCE_GRID) -> tuple[float, ...]:
    """Critical values of the one-sided test "``a - b > d0``" (reject when ``Z(d0)`` exceeds them), per look.

    ``schedule``: the (non-decreasing) numbers of pairs at the looks, ``fractions`` their
    information fractions. Calibrated so that at every discordance of the null grid the
    probability of crossing by look ``j`` is within ``GRID_MARGIN * alpha_spent(t_j)``
    (:func:`mechinterp.stats.lattice.calibrate`; non-binding: only this side stops paths);
    ``inf`` where no count can cross at that look.
    """
    return calibrate(lambda mass, n: _z(mass, n, d0), _crosses(d0), _grid(d0, grid), schedule, fractions, alpha,
                     spending, _trinomial)


def paired_error(d0: float, schedule: tuple[int, ...], crit: tuple[float, ...], q01) -> np.ndarray:
    """Exact probability that "``a - b > d0``" is shown at some look when ``a - b = d0`` and the
    b-only cell is ``q01`` (an array of them: one probability each), with critical values ``crit``."""
    return np.array([crossing_error(_crosses(d0), q + d0, q, schedule, crit, _trinomial)
                     for q in np.atleast_1d(np.asarray(q01, float))])


def paired_oc(q10: float, q01: float, schedule: tuple[int, ...], decide) -> tuple[float, float, float]:
    """``(P(holds), P(refuted), mean n)`` at a true ``(q10, q01)``; ``decide(j, b, c, n)`` gives, per
    state of look ``j``, +1 (holds), -1 (refuted) or 0 (go on)."""
    return operating(q10, q01, schedule, decide, _trinomial, _valid)

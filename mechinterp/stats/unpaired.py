"""Unpaired differences of two rates measured on different tasks (a relation across task families).

Each arm draws its own tasks: ``ka`` successes among ``na`` answers of arm a, ``kb`` among ``nb``
of arm b, the two independent. The interval for ``a - b`` is Newcombe's hybrid score interval
(Newcombe 1998, method 10), built from the two arms' Wilson bounds ``[la, ua]``, ``[lb, ub]`` at
the same ``z``::

    L(z) = pa - pb - sqrt((pa - la)^2 + (ub - pb)^2)
    U(z) = pa - pb + sqrt((ua - pa)^2 + (pb - lb)^2)

``L`` decreases in ``z`` (the Wilson bounds widen), from ``pa - pb`` at ``z = 0``; so "the
interval's lower end exceeds ``d0``" is "the ``z`` at which ``L`` reaches ``d0`` — the statistic
:func:`newcombe_z` — exceeds the look's critical value". ``L`` grows with ``ka`` and falls with
``kb`` (checked in the tests), so the least favourable null points lie on the boundary
``pa - pb = d0``.

The critical values of a look schedule (both arms at the same number of answers per look) are
calibrated exactly over that boundary, as for a paired relation
(:mod:`mechinterp.stats.lattice`): the joint distribution of ``(ka, kb)`` among the paths still
running is carried from look to look — each look's new answers add two independent binomials,
simpler than the paired trinomial — for a grid of ``pb`` along ``pa - pb = d0``, and each look's
value is the smallest that keeps the error spent so far within the spending function at every
grid point (:data:`UNPAIRED_GRID`). The same recursion at a true ``(pa, pb)`` gives the probability of each decision
(:func:`unpaired_oc`).

An abstention is left out and replaced by the next task *of its arm* (the cell claims' policy, arm
by arm), so each arm's answers stay its own Bernoulli sequence. The worst-case interval counts
arm a's abstentions as failures and arm b's as successes at the lower end, and the reverse at the
upper end (:class:`ArmsTally`, :func:`newcombe_interval`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mechinterp.stats.binomial import binomial_pmf
from mechinterp.stats.counts import Tally
from mechinterp.stats.intervals import CONFIDENCE, Interval, newcombe
from mechinterp.stats.lattice import Mass, calibrate, crossing_error, operating, tie
from mechinterp.stats.paired import z_tail

#: the largest ``z`` the statistic resolves; a state whose lower end still exceeds ``d0`` there crosses at every level
Z_MAX = 40.0
#: bisection steps of the statistic (``Z_MAX / 2**60``: far below the rounding that merges ties, ``lattice.tie``)
_STEPS = 60
#: rates of arm b on the null boundary over which the critical values are maximised: evenly spaced, as
#: the exact error wiggles across the whole boundary (with 13 points it exceeded alpha by up to 0.5 %
#: between them at 200-320 answers per arm; with 21 it stays within, checked on 161- and 321-point grids)
UNPAIRED_GRID = 21


@dataclass(frozen=True)
class ArmsTally:
    """Two independent arms' outcomes so far: arm a's :class:`Tally` and arm b's."""

    a: Tally = Tally()
    b: Tally = Tally()

    @classmethod
    def of(cls, arms: tuple[Sequence, Sequence]) -> "ArmsTally":
        """Tally ``(xs, ys)``: arm a's and arm b's outcomes (``True``/``False``, ``None`` = abstained)."""
        if not isinstance(arms, tuple) or len(arms) != 2:
            raise TypeError(f"an unpaired relation's outcomes are (arm a's, arm b's), got {arms!r}")
        return cls(Tally.of(arms[0]), Tally.of(arms[1]))

    def __add__(self, other: "ArmsTally") -> "ArmsTally":
        return ArmsTally(self.a + other.a, self.b + other.b)

    @property
    def answered(self) -> int:
        """Answers of the arm with fewer: where the planned looks fall (each arm at the look's size)."""
        return min(self.a.n, self.b.n)

    @property
    def decided(self) -> int:
        """Answers per arm a look decides on (:attr:`answered`)."""
        return self.answered

    @property
    def judged(self) -> int:
        """Tasks judged by the arm that judged more (abstentions included)."""
        return max(self.a.judged, self.b.judged)

    @property
    def abstained(self) -> int:
        """Abstentions of both arms."""
        return self.a.abstained + self.b.abstained

    @property
    def estimate(self) -> float:
        """``pa - pb`` on the answers (``nan`` while an arm has none)."""
        return self.a.k / self.a.n - self.b.k / self.b.n if self.a.n and self.b.n else math.nan

    def wanted(self, size: int) -> tuple[int, int]:
        """Answers each arm still needs for a look at ``size``."""
        return max(0, size - self.a.n), max(0, size - self.b.n)

    @property
    def lower_counts(self) -> tuple[int, int, int, int]:
        """``(ka, na, kb, nb)`` with arm a's abstentions as failures and b's as successes (the lower end's worst case)."""
        a, b = self.a, self.b
        return a.k, a.judged, b.k + b.abstained, b.judged

    @property
    def upper_counts(self) -> tuple[int, int, int, int]:
        """``(ka, na, kb, nb)`` with arm a's abstentions as successes and b's as failures (the upper end's worst case)."""
        a, b = self.a, self.b
        return a.k + a.abstained, a.judged, b.k, b.judged


def prefix_arms(arms: tuple[list, list], answers: int) -> tuple[list, list]:
    """Each arm's outcomes up to and including its ``answers``-th answer (its abstentions before it kept):
    what a look at ``answers`` per arm decides on when one arm has more."""
    def cut(outcomes: list) -> list:
        seen = 0
        for i, o in enumerate(outcomes):
            seen += o is not None
            if seen == answers:
                return outcomes[:i + 1]
        return list(outcomes)

    return cut(arms[0]), cut(arms[1])


def wilson_bounds(k, n, z) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score bounds of ``k`` successes in ``n`` at normal quantile ``z`` (vectorised; ``[0, 1]`` without data)."""
    k, n, z = (np.asarray(x, float) for x in (k, n, z))
    z2 = z * z
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = n + z2
        centre = (k + z2 / 2.0) / denom
        half = z * np.sqrt(np.maximum(k * (n - k) / n, 0.0) + z2 / 4.0) / denom
        low = np.where(k <= 0, 0.0, np.clip(centre - half, 0.0, 1.0))
        high = np.where(k >= n, 1.0, np.clip(centre + half, 0.0, 1.0))
    return np.where(n > 0, low, 0.0), np.where(n > 0, high, 1.0)


def newcombe_lower(ka, na, kb, nb, z) -> np.ndarray:
    """The lower end of Newcombe's hybrid score interval at normal quantile ``z`` (vectorised; ``-1`` without
    data or at an infinite ``z``)."""
    ka, na, kb, nb, z = (np.asarray(x, float) for x in (ka, na, kb, nb, z))
    la, _ = wilson_bounds(ka, na, z)
    _, ub = wilson_bounds(kb, nb, z)
    with np.errstate(divide="ignore", invalid="ignore"):
        pa, pb = ka / na, kb / nb
        low = pa - pb - np.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    return np.where((na > 0) & (nb > 0) & np.isfinite(z), np.maximum(low, -1.0), -1.0)


def newcombe_upper(ka, na, kb, nb, z) -> np.ndarray:
    """The upper end of Newcombe's hybrid score interval at ``z``: the mirror image (a <-> b) of the lower end."""
    return -newcombe_lower(kb, nb, ka, na, z)


@lru_cache(maxsize=64)
def _lattice_z(n: int, d0: float) -> np.ndarray:
    """:func:`newcombe_z` at every ``(ka, kb)`` of ``0..n`` (both arms at ``n`` answers), read-only."""
    k = np.arange(n + 1, dtype=float)
    ka, kb = np.broadcast_arrays(k[:, None], k[None, :])
    some = (ka - kb) / n > d0  # at z = 0 the interval is the estimate: the rest never cross
    top = newcombe_lower(ka, n, kb, n, Z_MAX) > d0
    lo, hi = np.zeros(ka.shape), np.full(ka.shape, Z_MAX)
    for _ in range(_STEPS):
        mid = (lo + hi) / 2.0
        ok = newcombe_lower(ka, n, kb, n, mid) > d0
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid)
    out = np.where(~some, -np.inf, np.where(top, np.inf, tie(lo)))
    out.setflags(write=False)
    return out


def newcombe_z(ka, kb, n: int, d0: float) -> np.ndarray:
    """The statistic of "``a - b > d0``" with both arms at ``n`` answers: the ``z`` at which Newcombe's lower end
    reaches ``d0`` (``-inf`` where the estimate does not exceed ``d0``, ``inf`` where the lower end exceeds it
    even at ``Z_MAX``); larger is more evidence."""
    return _lattice_z(int(n), float(d0))[np.asarray(ka, int), np.asarray(kb, int)]


def newcombe_interval(tally: ArmsTally, z_lower: float, z_upper: float, *, worst_case: bool = False) -> Interval:
    """Interval for ``a - b`` on the arms' answers: the lower end at normal quantile ``z_lower``, the upper
    at ``z_upper`` (one-sided levels ``z_tail(z)``). ``worst_case``: every abstention counted too, at each
    end at its least favourable (:attr:`ArmsTally.lower_counts`, :attr:`ArmsTally.upper_counts`)."""
    if worst_case:
        lower, upper = tally.lower_counts, tally.upper_counts
    else:
        lower = upper = (tally.a.k, tally.a.n, tally.b.k, tally.b.n)
    low = float(newcombe_lower(*lower, float(z_lower)))
    high = float(newcombe_upper(*upper, float(z_upper)))
    return Interval(tally.estimate, low, high, 1.0 - z_tail(z_lower) - z_tail(z_upper))


def unpaired_interval(tally: ArmsTally, confidence: float = CONFIDENCE) -> Interval:
    """The plain two-sided Newcombe interval of the arms' answers (:func:`mechinterp.stats.intervals.newcombe`)."""
    return newcombe(tally.a.k, tally.a.n, tally.b.k, tally.b.n, confidence)


def _binomials(m: int, pa: float, pb: float, bs: tuple[int, int], cs: tuple[int, int]) -> np.ndarray:
    """pmf of the two arms' new successes after ``m`` answers each, on the box ``bs x cs`` (independent binomials)."""
    return np.outer(binomial_pmf(m, pa)[bs[0]:bs[1] + 1], binomial_pmf(m, pb)[cs[0]:cs[1] + 1])


def _every(b, c, n: int):
    """Every ``(ka, kb)`` of ``0..n`` can occur."""
    return np.ones(np.broadcast_shapes(np.shape(b), np.shape(c)), bool)


def _statistic(d0: float):
    def statistic(mass: Mass, n: int) -> np.ndarray:
        nb, nc = mass.p.shape
        return _lattice_z(n, d0)[mass.b0:mass.b0 + nb, mass.c0:mass.c0 + nc]

    return statistic


def _crosses(d0: float):
    """The crossing rule of "``a - b > d0``": Newcombe's lower end at the critical value above ``d0``."""
    def crosses(mass: Mass, n: int, crit: float) -> np.ndarray:
        ka, kb = mass.coords()
        return np.broadcast_to(newcombe_lower(ka, n, kb, n, crit) > d0, mass.p.shape)

    return crosses


def _grid(d0: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pa, pb)`` along the null boundary ``pa - pb = d0``, evenly spaced in ``pb``."""
    pb = np.linspace(max(0.0, -d0), min(1.0, 1.0 - d0), size)
    return np.clip(pb + d0, 0.0, 1.0), pb


@lru_cache(maxsize=256)
def unpaired_critical(d0: float, schedule: tuple[int, ...], fractions: tuple[float, ...], alpha: float,
                      spending: str, grid: int = UNPAIRED_GRID) -> tuple[float, ...]:
    """Critical values (normal quantiles of Newcombe's lower end) of the one-sided test "``a - b > d0``", per look.

    ``schedule``: the answers per arm at the looks, ``fractions`` their information fractions.
    Calibrated so that at every ``pb`` of the null grid (``pa = pb + d0``) the probability of
    crossing by look ``j`` is within ``GRID_MARGIN * alpha_spent(t_j)``
    (:func:`mechinterp.stats.lattice.calibrate`; non-binding); ``inf`` where no state can cross.
    """
    return calibrate(_statistic(d0), _crosses(d0), _grid(d0, grid), schedule, fractions, alpha, spending,
                     _binomials, lowest=0.0)


def unpaired_error(d0: float, schedule: tuple[int, ...], crit: tuple[float, ...], pb) -> np.ndarray:
    """Exact probability that "``a - b > d0``" is shown at some look when ``pa = pb + d0`` (``pb``: an array of
    them, one probability each), with critical values ``crit``."""
    return np.array([crossing_error(_crosses(d0), min(max(q + d0, 0.0), 1.0), q, schedule, crit, _binomials)
                     for q in np.atleast_1d(np.asarray(pb, float))])


def unpaired_oc(pa: float, pb: float, schedule: tuple[int, ...], decide) -> tuple[float, float, float]:
    """``(P(holds), P(refuted), mean answers per arm)`` at true rates ``(pa, pb)``; ``decide(j, ka, kb, n)``
    gives, per state of look ``j``, +1 (holds), -1 (refuted) or 0 (go on)."""
    return operating(pa, pb, schedule, decide, _binomials, _every)


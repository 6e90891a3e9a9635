"""Exact group-sequential tests on two counts, calibrated over a nuisance parameter.

Both kinds of relation are decided on two counts that grow look by look: a *paired* relation on
the discordant pairs ``(n10, n01)`` of its tasks (a trinomial, :mod:`~mechinterp.stats.paired`),
an *unpaired* one on its two arms' successes ``(ka, kb)`` (two independent binomials,
:mod:`~mechinterp.stats.unpaired`). What they share is here:

* the exact distribution of the two counts among the paths still running, carried from look to
  look (2-D convolution with the pmf of a look's new tasks, :func:`advance`) on the box where the
  counts can be (:class:`Mass`, :func:`span`);
* the calibration of one-sided critical values (:func:`calibrate`): at every point of a grid of
  the nuisance parameter along the null boundary (each kind spaces its own), the probability of crossing
  by look ``j`` stays within ``GRID_MARGIN * alpha_spent(t_j)`` — an exact unconditional test in
  the manner of Suissa & Shuster (1991), made group-sequential;
* the exact error of given critical values at any null point (:func:`crossing_error`) and the
  probability of each decision at any true point (:func:`operating`).

A *statistic* orders the states of a look (larger: more evidence for the one-sided alternative)
and a *crossing rule* says which states cross at a critical value; the crossing set at a value is
the states whose statistic exceeds it, and the calibration books exactly the crossing rule's mass.
Both kinds round their statistic the same way (:func:`tie`), so float noise never splits a tie.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from mechinterp.stats.spending import alpha_spent

#: decimals a statistic is rounded to (:func:`tie`), far above float noise and far below any real difference
TIE_DECIMALS = 12
#: share of the spending a nuisance grid may use: the error between grid points can exceed the grid's
#: maximum by a fraction of a percent (checked on finer grids in the tests)
GRID_MARGIN = 0.98
EPS = 1e-12

#: ``step(m, p, q, bs, cs)``: pmf of the two counts' increments over ``m`` tasks on the box ``bs x cs``
Step = Callable[[int, float, float, tuple[int, int], tuple[int, int]], np.ndarray]


def tie(z):
    """A statistic rounded to ``TIE_DECIMALS`` decimals (``±inf`` kept), so that values equal in exact
    arithmetic but not in float rounding (symmetric states, equal ratios) compare equal: a critical value
    can then never fall between them and decide two states with the same statistic apart."""
    return np.round(z, TIE_DECIMALS)


@dataclass
class Mass:
    """The probability of the paths still running over the two counts, kept on the box where the
    unstopped counts can be (so large budgets cost boxes, not squares); ``(b0, c0)`` is its corner."""

    p: np.ndarray
    b0: int = 0
    c0: int = 0

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Absolute values of the two counts at every cell of the box (broadcastable)."""
        nb, nc = self.p.shape
        return np.arange(self.b0, self.b0 + nb)[:, None], np.arange(self.c0, self.c0 + nc)[None, :]

    def where(self, keep: np.ndarray) -> "Mass":
        """The same box with the mass outside ``keep`` removed (paths that stopped)."""
        return Mass(np.where(keep, self.p, 0.0), self.b0, self.c0)


def span(n: int, q: float) -> tuple[int, int]:
    """Counts a Binomial(n, q) takes outside of with negligible probability (mean ± 10 sd + 8)."""
    sd = math.sqrt(n * q * (1.0 - q))
    return max(0, math.floor(n * q - 10 * sd - 8)), min(n, math.ceil(n * q + 10 * sd + 8))


def advance(mass: Mass, m: int, p: float, q: float, n: int, step: Step) -> Mass:
    """The mass after ``m`` more tasks (``n`` in all) whose counts grow with probabilities ``p`` and ``q``,
    cropped to the box of ``n`` tasks."""
    if m == 0:
        return mass
    bs, cs = span(m, p), span(m, q)
    out = fftconvolve(mass.p, step(m, p, q, bs, cs))
    b0, c0 = mass.b0 + bs[0], mass.c0 + cs[0]
    (lb, hb), (lc, hc) = span(n, p), span(n, q)
    lb, lc = max(lb, b0), max(lc, c0)
    hb, hc = min(hb, b0 + out.shape[0] - 1), min(hc, c0 + out.shape[1] - 1)
    return Mass(np.clip(out[lb - b0:hb - b0 + 1, lc - c0:hc - c0 + 1], 0.0, None), lb, lc)


def calibrate(statistic: Callable[[Mass, int], np.ndarray], crosses: Callable[[Mass, int, float], np.ndarray],
              nulls: tuple[np.ndarray, np.ndarray], schedule: tuple[int, ...], fractions: tuple[float, ...],
              alpha: float, spending: str, step: Step, lowest: float = -math.inf) -> tuple[float, ...]:
    """Critical values, per look, of a one-sided test whose states cross when ``crosses(mass, n, crit)``
    (the states whose ``statistic(mass, n)`` exceeds ``crit``; ``-inf``: a state that never crosses).

    ``nulls``: the two counts' probabilities at each point of the null grid; ``schedule``: the
    (non-decreasing) numbers of tasks at the looks, ``fractions`` their information fractions. Each
    look's value is the smallest that keeps the error spent so far within ``GRID_MARGIN *
    alpha_spent(t_j)`` at every grid point (non-binding: only this side stops paths); ``inf`` where
    no state can cross at that look; never below ``lowest``.
    """
    ps, qs = (np.asarray(x, float) for x in nulls)
    size = len(ps)
    masses = [Mass(np.ones((1, 1))) for _ in range(size)]
    spent = np.zeros(size)
    last, out = 0, []
    for n, t in zip(schedule, fractions):
        masses = [advance(ms, n - last, p, q, n, step) for ms, p, q in zip(masses, ps, qs)]
        last = n
        if n == 0:
            out.append(math.inf)
            continue
        zs = [statistic(ms, n) for ms in masses]
        values = np.unique(np.concatenate([z[np.isfinite(z)] for z in zs]))[::-1]  # candidate cuts, descending
        mass = np.zeros((size, len(values)))
        for r, (ms, z) in enumerate(zip(masses, zs)):
            order = np.argsort(-z, axis=None, kind="stable")
            zr, pr = z.ravel()[order], np.cumsum(ms.p.ravel()[order])
            count = np.searchsorted(-zr, -values, side="right")  # states with a statistic >= each candidate
            mass[r] = np.where(count > 0, pr[np.maximum(count - 1, 0)], 0.0)
        target = GRID_MARGIN * alpha_spent(t, alpha, spending) + EPS
        fits = np.all(spent[:, None] + mass <= target, axis=0)
        bad = np.nonzero(~fits)[0]
        k = (bad[0] if len(bad) else len(values)) - 1  # the largest crossing set that fits everywhere
        while k >= 0:
            crit = float((values[k] + values[k + 1]) / 2.0) if k + 1 < len(values) else float(values[k] - 1.0)
            crit = max(crit, lowest)
            cross = [crosses(ms, n, crit) for ms in masses]
            got = np.array([float(ms.p[c].sum()) for ms, c in zip(masses, cross)])
            if np.all(spent + got <= target):  # the crossing rule's own mass (ties of the statistic merged)
                break
            k -= 1
        if k < 0:
            out.append(math.inf)
            continue
        spent = spent + got
        masses = [ms.where(~c) for ms, c in zip(masses, cross)]
        out.append(crit)
    return tuple(out)


def crossing_error(crosses: Callable[[Mass, int, float], np.ndarray], p: float, q: float,
                   schedule: tuple[int, ...], crit: tuple[float, ...], step: Step) -> float:
    """Exact probability that the test crosses at some look when the counts grow with probabilities
    ``(p, q)`` (a null point), with critical values ``crit``."""
    mass, last, total = Mass(np.ones((1, 1))), 0, 0.0
    for n, z in zip(schedule, crit):
        mass = advance(mass, n - last, p, q, n, step)
        last = n
        if n == 0:
            continue
        cross = crosses(mass, n, z)
        total += float(mass.p[cross].sum())
        mass = mass.where(~cross)
    return total


def operating(p: float, q: float, schedule: tuple[int, ...], decide, step: Step,
              valid: Callable[[np.ndarray, np.ndarray, int], np.ndarray]) -> tuple[float, float, float]:
    """``(P(holds), P(refuted), mean n)`` when the counts grow with probabilities ``(p, q)``; ``decide(j, b,
    c, n)`` gives, per state of look ``j``, +1 (holds), -1 (refuted) or 0 (go on); ``valid(b, c, n)``
    masks the states that can occur after ``n`` tasks."""
    mass, last = Mass(np.ones((1, 1))), 0
    p_hold = p_ref = mean_n = 0.0
    alive = 1.0
    for j, n in enumerate(schedule):
        mean_n += alive * (n - last)
        mass = advance(mass, n - last, p, q, n, step)
        b, c = mass.coords()
        verdict = np.where(valid(b, c, n), decide(j, b, c, n), 0)
        p_hold += float(mass.p[verdict > 0].sum())
        p_ref += float(mass.p[verdict < 0].sum())
        mass = mass.where(verdict == 0)
        alive, last = float(mass.p.sum()), n
    return p_hold, p_ref, mean_n

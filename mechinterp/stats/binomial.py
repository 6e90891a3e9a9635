"""Exact group-sequential boundaries for one rate, and their operating characteristics.

Outcomes are Bernoulli(p); at look ``j`` the count ``k`` of successes among ``n_j`` is
compared with two boundaries computed at the claim's threshold ``p0``:

* *up*: ``k >= up[j]`` shows ``p > p0``; chosen so that ``P_p0(up at some look <= j)``
  stays within ``alpha_spent(t_j)`` at the look's information fraction ``t_j``;
* *down*: ``k <= down[j]`` shows ``p < p0``, spent the same way.

Each side is computed as if the other never stopped the test (non-binding), so each error
bound holds on its own. The distribution of the count of paths still running is carried
from look to look by convolution with Binomial(m, p) — exact, no normal approximation —
and the same recursion gives the probability of each decision and the mean sample size at
any true rate (:func:`binomial_oc`).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.special import gammaln
from scipy.stats import binom

from mechinterp.stats.spending import alpha_spent

#: slack for floating-point sums compared with the spending target
EPS = 1e-12


@lru_cache(maxsize=4096)
def binomial_pmf(m: int, p: float) -> np.ndarray:
    """Binomial(m, p) probabilities of 0..m (read-only; cached: the same steps recur across budgets)."""
    k = np.arange(m + 1)
    if p <= 0.0 or p >= 1.0:
        out = (k == (m if p >= 1.0 else 0)).astype(float)
    else:
        out = np.exp(gammaln(m + 1) - gammaln(k + 1) - gammaln(m - k + 1) + k * np.log(p) + (m - k) * np.log1p(-p))
    out.setflags(write=False)
    return out


def _step(dist: np.ndarray, m: int, p: float) -> np.ndarray:
    return np.convolve(dist, binomial_pmf(m, p)) if m else dist


@lru_cache(maxsize=4096)
def binomial_bounds(p0: float, schedule: tuple[int, ...], fractions: tuple[float, ...], alpha: float,
                    spending: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(up, down)`` count boundaries per look at threshold ``p0`` (``n + 1`` / ``-1``: none at that look);
    ``schedule`` is the (non-decreasing) counts at the looks, ``fractions`` their information fractions."""
    result = []
    for side in ("up", "down"):
        dist, last, spent, out = np.array([1.0]), 0, 0.0, []
        for n, t in zip(schedule, fractions):
            dist = _step(dist, n - last, p0)
            target = alpha_spent(t, alpha, spending) + EPS
            if side == "up":
                tail = np.cumsum(dist[::-1])[::-1]  # tail[k] = P(count >= k, still running)
                ok = np.nonzero(spent + tail <= target)[0]
                b = int(ok[0]) if len(ok) else n + 1
                if b <= n:
                    spent += float(tail[b])
                    dist[b:] = 0.0
            else:
                head = np.cumsum(dist)  # head[k] = P(count <= k, still running)
                ok = np.nonzero(spent + head <= target)[0]
                b = int(ok[-1]) if len(ok) else -1
                if b >= 0:
                    spent += float(head[b])
                    dist[:b + 1] = 0.0
            out.append(b)
            last = n
        result.append(tuple(out))
    return result[0], result[1]


def binomial_oc(p: float, schedule: tuple[int, ...], up: tuple[int, ...], down: tuple[int, ...]
                ) -> tuple[float, float, float]:
    """``(P(up first), P(down first), mean n)`` of the test at true rate ``p`` (both boundaries stop it)."""
    dist, last, p_up, p_down, mean_n, alive = np.array([1.0]), 0, 0.0, 0.0, 0.0, 1.0
    for n, u, d in zip(schedule, up, down):
        mean_n += alive * (n - last)
        dist = _step(dist, n - last, p)
        if u <= n:
            p_up += float(dist[u:].sum())
            dist[u:] = 0.0
        if d >= 0:
            p_down += float(dist[:d + 1].sum())
            dist[:d + 1] = 0.0
        alive, last = float(dist.sum()), n
    return p_up, p_down, mean_n


@lru_cache(maxsize=65536)
def binomial_levels(p0: float, n: int, up: int, down: int) -> tuple[float, float]:
    """One-sided levels for the look's interval ends that reproduce the boundaries exactly.

    The Clopper–Pearson lower bound at level ``a`` exceeds ``p0`` exactly when
    ``P_p0(X >= k) < a``; choosing ``a`` strictly between ``P_p0(X >= up)`` and
    ``P_p0(X >= up - 1)`` (their geometric mean) makes "lower bound above ``p0``" the same
    event as "``k >= up``"; likewise for the upper end and ``down``. A side that cannot
    cross at this look gets level 0 (its end stays at 0 or 1).
    """
    def between(a: float, b: float) -> float:
        return float(np.sqrt(a * b)) if a > 0 else b / 2.0

    lower = 0.0 if up > n else between(float(binom.sf(up - 1, n, p0)), float(binom.sf(up - 2, n, p0)))
    upper = 0.0 if down < 0 else between(float(binom.cdf(down, n, p0)), float(binom.cdf(down + 1, n, p0)))
    return lower, upper


def hypergeometric_oc(successes: int, population: int, schedule: tuple[int, ...], up: tuple[int, ...],
                      down: tuple[int, ...]) -> tuple[float, float, float]:
    """Like :func:`binomial_oc`, for tasks drawn without replacement in a uniformly random order from
    ``population`` outcomes of which ``successes`` are successes (a replay of released verdicts)."""
    from scipy.stats import hypergeom

    if not 0 <= successes <= population or (schedule and schedule[-1] > population):
        raise ValueError(f"need 0 <= successes <= population >= the last look, got {successes}, {population}, {schedule}")
    dist, last, p_up, p_down, mean_n, alive = np.array([1.0]), 0, 0.0, 0.0, 0.0, 1.0
    for n, u, d in zip(schedule, up, down):
        mean_n += alive * (n - last)
        m = n - last
        new = np.zeros(n + 1)
        for k in np.nonzero(dist)[0]:  # k successes among the `last` drawn; m more from what is left
            draws = np.arange(m + 1)
            new[k:k + m + 1] += dist[k] * hypergeom.pmf(draws, population - last, successes - k, m)
        dist = new
        if u <= n:
            p_up += float(dist[u:].sum())
            dist[u:] = 0.0
        if d >= 0:
            p_down += float(dist[:d + 1].sum())
            dist[:d + 1] = 0.0
        alive, last = float(dist.sum()), n
    return p_up, p_down, mean_n

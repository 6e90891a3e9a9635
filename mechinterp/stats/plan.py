"""Budgets with power: how many tasks a claim needs to be decided *holds* when it is true.

:func:`plan_rate`, :func:`plan_paired` and :func:`plan_unpaired` return the :class:`Plan` of a
claim: the smallest budget (at most ``cap``) whose design decides *holds* with probability
``target`` (0.90) when the true rate — or the true difference of a relation's arms, paired by
task or drawn independently — is the *design point*, computed exactly from
the design's own boundaries (:meth:`Design.operating`). When even ``cap`` tasks fall short,
the plan takes ``cap`` and says how much power that leaves; when no outcome at all could make
the claim hold within ``cap`` (``rate <= 0.05`` needs about 75 tasks), the plan is undecidable
and :func:`smallest_decidable` says how many it would need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from scipy.stats import norm

from mechinterp.stats.hypothesis import Hypothesis
from mechinterp.stats.sequential import ALPHA, LOOKS, Design, OperatingCharacteristics

#: P(holds) a budget is designed for at the design point
POWER = 0.90


@dataclass(frozen=True)
class Plan:
    """A claim's design with the power it has at its design point."""

    design: Design
    point: float  # the design point: a true rate, or the true a - b of a relation
    q: tuple[float, float] | None  # relations: the truth assumed at the point: (q10, q01) paired, (pa, pb) unpaired
    power: OperatingCharacteristics  # at the point, with design.budget tasks
    cap: int  # the most tasks the claim may use
    target: float = POWER

    @property
    def budget(self) -> int:
        """Tasks (pairs; an unpaired relation: tasks per arm) the claim may draw."""
        return self.design.budget

    @property
    def reached(self) -> bool:
        """Whether the budget gives the target power (else the cap cut it short)."""
        return self.power.p_holds >= self.target

    @property
    def decidable(self) -> bool:
        """Whether any outcome could make the claim hold within the budget."""
        return self.design.can_hold

    def describe(self) -> str:
        """``budget 184 (power 90 % at 85.0 %)`` — what the budget buys at the design point."""
        point = f"{100 * self.point:+.1f} points" if self.design.relation else f"{100 * self.point:.1f} %"
        short = "" if self.reached else f", capped at {self.cap}"
        return f"budget {self.budget} (power {100 * self.power.p_holds:.0f} % at {point}{short})"


def _z(p: float) -> float:
    return float(norm.isf(p))


#: nuisance grid of the relations' designs tried while searching (the chosen one uses the full grid)
SEARCH_GRID = 3


def _design(h: Hypothesis, n: int, looks: int, alpha: float, spending: str, grid: int | None = None,
            unpaired: bool = False) -> Design:
    return Design(h, n, looks, alpha, spending, grid, unpaired)


@lru_cache(maxsize=1024)
def plan_rate(hypothesis: Hypothesis, point: float, cap: int, *, looks: int = LOOKS, alpha: float = ALPHA,
              spending: str = "obrien-fleming", target: float = POWER) -> Plan:
    """The smallest budget ``<= cap`` with ``P(holds) >= target`` at true rate ``point`` (else ``cap``)."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1 task, got {cap!r}")
    if not 0.0 <= point <= 1.0:
        raise ValueError(f"design point {point!r} must be a rate in [0, 1]")

    def at(n: int) -> Plan:
        d = _design(hypothesis, n, looks, alpha, spending)
        return Plan(d, point, None, d.operating(point), cap, target)

    full = at(cap)
    if full.power.p_holds < target:
        return full
    p0 = hypothesis.value
    gap = abs(point - p0)
    guess = ((_z(alpha) * math.sqrt(p0 * (1 - p0)) + _z(1 - target) * math.sqrt(point * (1 - point))) / gap) ** 2 \
        if gap > 0 else cap
    for n in range(max(1, min(cap, int(0.5 * guess))), cap):
        plan = at(n)
        if plan.power.p_holds >= target:
            return plan
    return full


@lru_cache(maxsize=256)
def plan_paired(hypothesis: Hypothesis, q10: float, q01: float, cap: int, *, looks: int = LOOKS, alpha: float = ALPHA,
                spending: str = "obrien-fleming", target: float = POWER) -> Plan:
    """The budget (pairs) of a paired relation with ``P(holds) >= target`` when the discordant cells are
    ``(q10, q01)`` (:func:`_plan_relation` says how it is searched)."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1 pair, got {cap!r}")
    point = q10 - q01

    def at(n: int, grid: int | None) -> Plan:
        d = _design(hypothesis, n, looks, alpha, spending, grid)
        return Plan(d, point, (q10, q01), d.operating(q10=q10, q01=q01), cap, target)

    return _plan_relation(hypothesis, point, math.sqrt(max(q10 + q01 - point * point, 1e-6)), cap, at, target, alpha)


@lru_cache(maxsize=256)
def plan_unpaired(hypothesis: Hypothesis, pa: float, pb: float, cap: int, *, looks: int = LOOKS,
                  alpha: float = ALPHA, spending: str = "obrien-fleming", target: float = POWER) -> Plan:
    """The budget (answers per arm) of an unpaired relation with ``P(holds) >= target`` when the arms' true
    rates are ``(pa, pb)`` (:func:`_plan_relation` says how it is searched)."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1 task per arm, got {cap!r}")
    if not (0.0 <= pa <= 1.0 and 0.0 <= pb <= 1.0):
        raise ValueError(f"the arms' design rates must lie in [0, 1], got pa={pa!r}, pb={pb!r}")

    def at(n: int, grid: int | None) -> Plan:
        d = _design(hypothesis, n, looks, alpha, spending, grid, unpaired=True)
        return Plan(d, pa - pb, (pa, pb), d.operating(pa=pa, pb=pb), cap, target)

    return _plan_relation(hypothesis, pa - pb, math.sqrt(max(pa * (1 - pa) + pb * (1 - pb), 1e-6)), cap, at, target,
                          alpha)


def _plan_relation(hypothesis: Hypothesis, point: float, sd: float, cap: int, at, target: float, alpha: float) -> Plan:
    """A relation's plan: the search starts from the normal-theory size (``sd``: the standard deviation
    of one task's, or one arm pair's, contribution to the difference) and moves in steps of 4 %, each
    step an exact design calibrated on a coarse nuisance grid (``at(n, SEARCH_GRID)``); the budget found
    is then calibrated on the design's own full grid (``at(n, None)``; grown further if that costs
    power), so it is within a few percent of the smallest."""
    found = _search_relation(hypothesis, point, sd, cap, lambda n: at(n, SEARCH_GRID), target, alpha)
    n = found.budget
    while True:
        plan = at(n, None)
        if plan.reached or n >= cap:
            return plan
        n = min(cap, max(n + 1, math.ceil(1.02 * n)))


def _search_relation(hypothesis: Hypothesis, point: float, sd: float, cap: int, at, target: float,
                     alpha: float) -> Plan:
    v = hypothesis.value
    near = (v, -v) if hypothesis.quantity == "|a - b|" else (v,)
    gaps = [abs(point - t) for t in near]
    guess = max(((_z(alpha) + _z(1 - target)) * sd / g) ** 2 if g > 0 else math.inf for g in gaps)
    n = max(1, min(cap, math.ceil(1.02 * guess)))
    plan = at(n)
    if plan.power.p_holds < target:
        while n < cap:
            n = min(cap, max(n + 1, math.ceil(1.04 * n)))
            plan = at(n)
            if plan.power.p_holds >= target:
                return plan
        return plan
    while n > 1:
        smaller = at(max(1, min(n - 1, math.floor(0.96 * n))))
        if smaller.power.p_holds < target:
            break
        plan, n = smaller, smaller.budget
    return plan


def smallest_decidable(hypothesis: Hypothesis, start: int, *, looks: int = LOOKS, alpha: float = ALPHA,
                       spending: str = "obrien-fleming", limit: int = 10_000, unpaired: bool = False) -> int | None:
    """The smallest budget ``>= start`` at which some outcome could make the claim hold (``None`` past ``limit``).

    A rate tries every budget in turn; a relation (each try a calibrated design, ``unpaired``: of
    independent arms) doubles its budget until one could hold, then bisects back, taking the best
    outcome's chance to grow with the budget — keep its ``limit`` near the budgets it could run.
    """
    def holds(n: int) -> bool:
        return _design(hypothesis, n, looks, alpha, spending, unpaired=unpaired).can_hold

    start = max(1, start)
    if not hypothesis.is_comparison:
        return next((n for n in range(start, limit + 1) if holds(n)), None)
    low, n = start - 1, start  # holds(low) is False (or low is below start)
    while not holds(n):
        if n >= limit:
            return None
        low, n = n, min(limit, 2 * n)
    while n - low > 1:
        mid = (low + n) // 2
        low, n = (low, mid) if holds(mid) else (mid, n)
    return n

"""Sequential sampling: stop judging a claim as soon as its decision is settled.

Procedure (documented error control)
------------------------------------
* Tasks are drawn in a fixed seeded order, so a rerun with the same seed judges the same
  tasks first: the suite runner draws each family's stratified order
  (``mechinterp.tasks.sample`` → ``stratified_order``); :func:`sampling_order` is a plain
  seeded hash order over task ids (used where the families' strata are not at hand, e.g.
  the cost replay).
* The budget ``N`` (tasks per arm) is split into a fixed look schedule, by default
  ``looks=5`` equally spaced looks at ``N/5, 2N/5, ..., N`` verdicts. The schedule is fixed
  before any data are seen; between looks nothing is decided.
* At a look with information fraction ``t = n / N`` the test spends
  ``alpha(t) - alpha(t_prev)`` of the total error ``alpha`` (Lan–DeMets alpha spending) and
  forms the two-sided interval (Wilson, or Newcombe for comparisons) at confidence
  ``1 - (alpha(t) - alpha(t_prev))``. The claim's hypothesis is decided on that interval; the
  test stops at the first look whose decision is *holds* or *refuted*.
* Spending functions: ``"obrien-fleming"`` (default), ``alpha(t) = 2 - 2 Phi(z_{1-alpha/2} / sqrt(t))``,
  spends almost nothing early so a claim is stopped early only when it is far from the
  threshold; ``"linear"``, ``alpha(t) = alpha * t`` (Bonferroni over equally spaced looks).
* Error control: a wrong decision needs the interval at some look to exclude the true
  value; by the union bound over looks that probability is at most
  ``sum(increments) = alpha(1) = alpha`` (0.05 by default), for any true rate, up to the
  Wilson interval's own coverage error. The bound ignores the correlation between looks,
  so the real rate is lower; ``tests/test_stats_sequential.py`` checks it by simulation.
* If the budget is used up without a decision, the final decision is *inconclusive*.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from scipy.stats import norm

from mechinterp.stats.hypothesis import Decision, Hypothesis
from mechinterp.stats.intervals import Interval, newcombe, wilson

SPENDING = ("obrien-fleming", "linear")


def alpha_spent(t: float, alpha: float, spending: str = "obrien-fleming") -> float:
    """Cumulative error allowed by information fraction ``t`` in [0, 1] (Lan–DeMets)."""
    if spending not in SPENDING:
        raise ValueError(f"unknown spending function {spending!r}; valid: {', '.join(SPENDING)}")
    t = min(max(t, 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == "linear":
        return alpha * t
    return float(2.0 * norm.sf(norm.isf(alpha / 2.0) / math.sqrt(t)))


def sampling_order(task_ids: Iterable[str], seed: int) -> list[str]:
    """Tasks in a fixed seeded order: sorted by ``sha256(f"{seed}:{task_id}")``.

    Stable across machines and Python versions, and adding tasks never reorders the
    existing ones, so a resumed or extended run judges the same prefix.
    """
    ids = set(task_ids)
    return sorted(ids, key=lambda t: hashlib.sha256(f"{seed}:{t}".encode()).hexdigest())


@dataclass
class Look:
    """One evaluated look: sample size, spent error, interval and decision."""

    n: int
    alpha: float
    interval: Interval
    decision: Decision


@dataclass
class SequentialTest:
    """Group-sequential test of one hypothesis; feed cumulative counts with :meth:`update`.

    ``budget`` is the maximum number of verdicts (per arm for comparisons); ``looks`` is the
    number of equally spaced looks or an explicit increasing list of sample sizes ending
    at ``budget``. See the module docstring for the error control.
    """

    hypothesis: Hypothesis
    budget: int
    alpha: float = 0.05
    looks: int | Sequence[int] = 5
    spending: str = "obrien-fleming"
    history: list[Look] = field(default_factory=list)
    _schedule: tuple[int, ...] = field(default=(), repr=False)

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError(f"budget must be >= 1, got {self.budget!r}")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha!r}")
        alpha_spent(1.0, self.alpha, self.spending)  # validates the spending name
        if isinstance(self.looks, int):
            if self.looks < 1:
                raise ValueError(f"looks must be >= 1, got {self.looks!r}")
            sched = sorted({max(1, math.ceil(self.budget * j / self.looks)) for j in range(1, self.looks + 1)})
        else:
            sched = list(self.looks)
            if not sched or sched != sorted(set(sched)) or sched[0] < 1 or sched[-1] != self.budget:
                raise ValueError(
                    f"looks must be increasing sample sizes >= 1 ending at budget={self.budget}, got {sched!r}"
                )
        self._schedule = tuple(sched)

    @property
    def schedule(self) -> tuple[int, ...]:
        """The planned look sample sizes."""
        return self._schedule

    @property
    def decision(self) -> Decision:
        """The decision so far (inconclusive until a look settles it)."""
        return self.history[-1].decision if self.history else Decision.INCONCLUSIVE

    @property
    def done(self) -> bool:
        """True when decided or when the budget has been used up."""
        return self.decision is not Decision.INCONCLUSIVE or (
            bool(self.history) and self.history[-1].n >= self.budget
        )

    @property
    def spent(self) -> float:
        """Error spent so far (at most ``alpha``)."""
        n = self.history[-1].n if self.history else 0
        return alpha_spent(n / self.budget, self.alpha, self.spending)

    def update(self, k: int, n: int, k2: int | None = None, n2: int | None = None) -> Decision:
        """Feed cumulative counts (``k2, n2`` for the second arm of a comparison).

        Evaluates a look when ``n`` (the smaller arm for comparisons) has reached the next
        scheduled size; once the test is done, further updates change nothing.
        """
        comparison = self.hypothesis.is_comparison
        if comparison != (k2 is not None and n2 is not None):
            need = "k, n, k2, n2" if comparison else "k, n"
            raise ValueError(f"hypothesis {self.hypothesis} needs counts ({need})")
        if self.done:
            return self.decision
        info = min(n, n2) if comparison else n
        last = self.history[-1].n if self.history else 0
        due = [s for s in self._schedule if last < s <= info]
        if not due:
            return self.decision
        t_now = min(info, self.budget) / self.budget
        step = alpha_spent(t_now, self.alpha, self.spending) - self.spent
        return self._look(k, n, k2, n2, step, cap=True)

    def finish(self, k: int, n: int, k2: int | None = None, n2: int | None = None) -> Decision:
        """Final look when the data ran out before the budget (e.g. abstentions): spend all
        remaining error on the counts there are. Does nothing once the test is done."""
        if self.done or (min(n, n2) if k2 is not None and n2 is not None else n) == 0:
            return self.decision
        return self._look(k, n, k2, n2, self.alpha - self.spent, cap=False)

    def _look(self, k: int, n: int, k2: int | None, n2: int | None, step: float, *, cap: bool) -> Decision:
        """Evaluate one look spending ``step`` of the error and record it in the history.

        The interval is Newcombe's for comparisons, Wilson's otherwise; the look's sample
        size is the smaller arm for comparisons, capped at the budget when ``cap``.
        """
        comparison = self.hypothesis.is_comparison
        info = min(n, n2) if comparison else n
        confidence = 1.0 - max(step, 1e-15)
        ci = newcombe(k, n, k2, n2, confidence) if comparison else wilson(k, n, confidence)
        self.history.append(Look(min(info, self.budget) if cap else info, step, ci, self.hypothesis.decide(ci)))
        return self.decision


def run_sequential(outcomes: Iterable[bool], test: SequentialTest) -> SequentialTest:
    """Feed per-sample outcomes (already in sampling order) one at a time until done."""
    k = n = 0
    for ok in outcomes:
        k += bool(ok)
        n += 1
        test.update(k, n)
        if test.done:
            break
    return test

"""A claim's group-sequential test: the design, its looks, and the interval each look decides on.

A :class:`Design` fixes, before any data are seen, the hypothesis, the budget (tasks, or task
pairs for a relation), the look schedule and the one-sided error ``alpha`` each wrong
direction may spend. :class:`SequentialTest` evaluates the looks: at look ``j`` it forms the
look's interval — exact Clopper–Pearson bounds for a rate, Tango score bounds for a paired
difference, each end at the one-sided level the design assigns to that look — and decides
the hypothesis on it (:meth:`Hypothesis.decide`: holds inside, refuted outside). The levels
are derived from exact boundaries (:mod:`mechinterp.stats.binomial`,
:mod:`mechinterp.stats.paired`), so "the interval lies inside the claim" is exactly "the
count crossed the boundary": the printed interval is what decided.

:func:`run_sequential` is the one loop that feeds a test look by look; the claims runner (live
generations and judges) and the released-verdict replays (``mechinterp power``, the suite-cost
bench) both call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mechinterp.stats.binomial import binomial_bounds, binomial_levels, binomial_oc, hypergeometric_oc
from mechinterp.stats.hypothesis import Decision, Hypothesis
from mechinterp.stats.intervals import Interval, cp_lower, cp_upper
from mechinterp.stats.paired import NUISANCE_GRID, PairTally, paired_critical, paired_oc, tango_interval, tango_z, z_tail
from mechinterp.stats.spending import SPENDING, look_schedule

#: one-sided error per wrong direction (the two-sided 95 % of the paper's intervals, split)
ALPHA = 0.025
#: looks per claim (judge batches)
LOOKS = 4


@dataclass(frozen=True)
class Tally:
    """Outcomes of one arm so far: ``k`` successes among ``n`` answers, and abstentions."""

    k: int = 0
    n: int = 0
    abstained: int = 0

    @classmethod
    def of(cls, outcomes: Iterable[bool | None]) -> "Tally":
        """Tally polarity-applied outcomes (``None`` = the judge abstained)."""
        k = n = a = 0
        for o in outcomes:
            if o is None:
                a += 1
            else:
                n += 1
                k += bool(o)
        return cls(k, n, a)

    @property
    def judged(self) -> int:
        """Bundles looked at (abstentions included)."""
        return self.n + self.abstained

    @property
    def answered(self) -> int:
        """Bundles the judge answered: where the planned looks fall."""
        return self.n

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(self.k + other.k, self.n + other.n, self.abstained + other.abstained)


@dataclass(frozen=True)
class OperatingCharacteristics:
    """What a design does at one true rate: the chance of each decision and the mean sample size."""

    p_holds: float
    p_refuted: float
    mean_n: float

    @property
    def p_inconclusive(self) -> float:
        """Chance that the budget runs out undecided."""
        return max(0.0, 1.0 - self.p_holds - self.p_refuted)


@dataclass(frozen=True)
class Design:
    """A sequential test fixed in advance: hypothesis, budget, looks, one-sided ``alpha``, spending
    (``grid``: discordances a paired design's critical values are calibrated over)."""

    hypothesis: Hypothesis
    budget: int
    looks: int = LOOKS
    alpha: float = ALPHA
    spending: str = "obrien-fleming"
    grid: int = NUISANCE_GRID

    def __post_init__(self) -> None:
        if not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"budget must be an integer >= 1, got {self.budget!r}")
        if not isinstance(self.looks, int) or self.looks < 1:
            raise ValueError(f"looks must be an integer >= 1, got {self.looks!r}")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha (one-sided, per direction) must be in (0, 0.5), got {self.alpha!r}")
        if self.spending not in SPENDING:
            raise ValueError(f"unknown spending function {self.spending!r}; valid: {', '.join(SPENDING)}")

    @property
    def paired(self) -> bool:
        """True for a relation (a paired difference of two arms)."""
        return self.hypothesis.is_comparison

    @cached_property
    def schedule(self) -> tuple[int, ...]:
        """The look sizes (tasks, or pairs, judged by each look)."""
        return look_schedule(self.budget, self.looks)

    # -- boundaries and levels ----------------------------------------------------------------
    def fractions(self, sizes: tuple[int, ...], final: bool = False) -> tuple[float, ...]:
        """Information fractions of looks at ``sizes`` answers; the last planned look — or a
        ``final`` one, when the tasks ran out before it — spends all that is left."""
        t = [min(1.0, m / self.budget) for m in sizes]
        if final or len(sizes) == len(self.schedule):
            t[-1] = 1.0
        return tuple(t)

    def bounds(self, sizes: tuple[int, ...] | None = None, final: bool = False
               ) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Rates: the (up, down) count boundaries of looks at ``sizes`` answers (default: the schedule)."""
        if self.paired:
            raise ValueError("a paired design has no count boundaries; see critical")
        sizes = self.schedule if sizes is None else tuple(sizes)
        return binomial_bounds(self.hypothesis.value, sizes, self.fractions(sizes, final), self.alpha, self.spending)

    def critical(self, sizes: tuple[int, ...] | None = None, final: bool = False
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Relations: critical values of the score statistic for the interval's lower and upper end,
        for looks at ``sizes`` answered pairs (default: the schedule)."""
        if not self.paired:
            raise ValueError("a rate design has no score critical values; see bounds")
        sizes = self.schedule if sizes is None else tuple(sizes)
        v, args = self.hypothesis.value, (sizes, self.fractions(sizes, final), self.alpha, self.spending, self.grid)
        up_at_v, up_at_minus_v = paired_critical(v, *args), paired_critical(-v, *args)
        if self.hypothesis.quantity == "|a - b|":  # each end serves the tests at both +v and -v
            both = tuple(max(x, y) for x, y in zip(up_at_v, up_at_minus_v))
            return both, both
        # the upper end's test at v is the mirror image (a <-> b) of the lower end's test at -v
        return up_at_v, up_at_minus_v

    def levels(self, sizes: tuple[int, ...] | None = None, final: bool = False) -> tuple[tuple[float, float], ...]:
        """Per look, the one-sided levels of the interval's lower and upper end (looks at ``sizes``)."""
        sizes = self.schedule if sizes is None else tuple(sizes)
        if self.paired:
            return tuple((z_tail(a), z_tail(b)) for a, b in zip(*self.critical(sizes, final)))
        up, down = self.bounds(sizes, final)
        return tuple(binomial_levels(self.hypothesis.value, n, u, d) for n, u, d in zip(sizes, up, down))

    def interval(self, sizes: tuple[int, ...], tally: Tally | PairTally, *, final: bool = False,
                 worst_case: bool = False) -> Interval:
        """The interval of the last of looks at ``sizes`` answers, from its tally (``final``: the
        tasks ran out, this look spends all that is left).

        ``worst_case``: the same look's interval with every abstention counted against the claim
        at the end that could make it hold and for it at the other (shown, never decided on).
        """
        sizes = tuple(sizes)
        if self.paired:
            if not isinstance(tally, PairTally):
                raise TypeError(f"hypothesis {self.hypothesis} needs paired outcomes (a PairTally), got {tally!r}")
            lo, hi = self.critical(sizes, final)
            return tango_interval(tally, lo[-1], hi[-1], worst_case=worst_case)
        if not isinstance(tally, Tally):
            raise TypeError(f"hypothesis {self.hypothesis} needs one arm's outcomes (a Tally), got {tally!r}")
        lo, hi = self.levels(sizes, final)[-1]
        est = tally.k / tally.n if tally.n else math.nan
        if worst_case:
            n, extra = tally.judged, tally.abstained
        else:
            n, extra = tally.n, 0
        return Interval(est, cp_lower(tally.k, n, lo), cp_upper(tally.k + extra, n, hi), 1.0 - lo - hi)

    # -- what the design can do ---------------------------------------------------------------
    @cached_property
    def can_hold(self) -> bool:
        """Whether any outcome at all could make the claim hold within the budget."""
        return any(self.hypothesis.decide(self.interval(self.schedule[:j + 1], self._best(n))) is Decision.HOLDS
                   for j, n in enumerate(self.schedule))

    def _best(self, n: int) -> Tally | PairTally:
        h = self.hypothesis
        if not self.paired:
            return Tally(n if h.op in (">=", ">") else 0, n)
        if h.quantity == "|a - b|":
            return PairTally(n11=n)
        return PairTally(n10=n) if h.op in (">=", ">") else PairTally(n01=n)

    def operating(self, p: float | None = None, *, q10: float | None = None, q01: float | None = None
                  ) -> OperatingCharacteristics:
        """Exact chances of each decision and the mean sample size at a true rate ``p`` (a rate
        design) or true discordant cells ``q10, q01`` (a paired design; ``a - b = q10 - q01``)."""
        if not self.paired:
            if p is None or not 0.0 <= p <= 1.0:
                raise ValueError(f"a rate design needs a true rate p in [0, 1], got {p!r}")
            return self._oriented(*binomial_oc(p, self.schedule, *self.bounds()))
        if q10 is None or q01 is None or q10 < 0 or q01 < 0 or q10 + q01 > 1 + 1e-12:
            raise ValueError(f"a paired design needs discordant cells q10, q01 >= 0 with q10 + q01 <= 1, got {q10!r}, {q01!r}")
        p_h, p_r, mean_n = paired_oc(q10, q01, self.schedule, self._state_decision)
        return OperatingCharacteristics(p_h, p_r, mean_n)

    def replayed(self, successes: int, population: int) -> OperatingCharacteristics:
        """Exact chances of each decision when the tasks are drawn in a uniformly random order,
        without replacement, from ``population`` released outcomes with ``successes`` successes."""
        if self.paired:
            raise ValueError("replays of paired designs are simulated (mechinterp.report.power), not computed")
        return self._oriented(*hypergeometric_oc(successes, population, self.schedule, *self.bounds()))

    def _oriented(self, p_up: float, p_down: float, mean_n: float) -> OperatingCharacteristics:
        holds_up = self.hypothesis.op in (">=", ">")
        return OperatingCharacteristics(p_up if holds_up else p_down, p_down if holds_up else p_up, mean_n)

    def _state_decision(self, look: int, b: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
        """+1 holds, -1 refuted, 0 continue, for every paired state (no abstentions) of a look."""
        (lo, hi), h = self.critical(), self.hypothesis
        v = h.value

        def above(d0):  # the interval's lower end exceeds d0
            return tango_z(b, c, n, d0) > lo[look]

        def below(d0):  # the interval's upper end is below d0
            return tango_z(b, c, n, d0) < -hi[look]

        if h.quantity == "|a - b|":
            holds, refuted = below(v) & above(-v), above(v) | below(-v)
        elif h.op in (">=", ">"):
            holds, refuted = above(v), below(v)
        else:
            holds, refuted = below(v), above(v)
        return np.where(holds, 1, np.where(refuted, -1, 0))


@dataclass(frozen=True)
class Look:
    """One evaluated look: number (1-based), bundles judged by then, answers, levels, interval,
    decision, and the worst-case interval (abstentions counted against the claim; equal without any)."""

    index: int
    n: int
    answered: int
    levels: tuple[float, float]
    interval: Interval
    decision: Decision
    worst_case: Interval


@dataclass
class SequentialTest:
    """Evaluates a :class:`Design`'s looks in order; feed the cumulative tally as answers come in.

    A look falls when the planned number of *answers* is in (abstentions left out and replaced
    by the next tasks, :data:`mechinterp.stats.ABSTENTIONS`), so the answers are the design's
    Bernoulli sequence; when the tasks run out first, the look at the answers there are is the
    last and spends what is left.
    """

    design: Design
    history: list[Look] = field(default_factory=list)
    exhausted: bool = False

    @property
    def decision(self) -> Decision:
        """The decision so far (inconclusive until a look settles it)."""
        return self.history[-1].decision if self.history else Decision.INCONCLUSIVE

    @property
    def done(self) -> bool:
        """True when decided, when every look has been evaluated, or when the tasks ran out."""
        return (self.decision is not Decision.INCONCLUSIVE or self.exhausted
                or len(self.history) == len(self.design.schedule))

    @property
    def last(self) -> Look | None:
        """The latest evaluated look."""
        return self.history[-1] if self.history else None

    def update(self, tally: Tally | PairTally, *, exhausted: bool = False) -> Decision:
        """Evaluate the next look once ``tally.answered`` has reached its size (before it: no look);
        ``exhausted``: no more tasks, evaluate it now on the answers there are.

        A tally past the next look's size is an error: a look cannot be skipped, or the
        boundaries' error accounting would not be the one the design computed.
        """
        if self.done:
            return self.decision
        j = len(self.history)
        size = self.design.schedule[j]
        if tally.answered < size and not exhausted:
            return self.decision
        if tally.answered > size:
            raise ValueError(f"look {j + 1} of {self.design.schedule} is at {size} answers, got a tally of "
                             f"{tally.answered}: feed every look")
        final = tally.answered < size
        sizes = (*(look.answered for look in self.history), tally.answered)
        ci = self.design.interval(sizes, tally, final=final)
        worst = self.design.interval(sizes, tally, final=final, worst_case=True) if tally.abstained else ci
        self.history.append(Look(j + 1, tally.judged, tally.answered, self.design.levels(sizes, final)[-1], ci,
                                 self.design.hypothesis.decide(ci), worst))
        self.exhausted = final
        return self.decision


def tally(outcomes: Sequence, paired: bool) -> Tally | PairTally:
    """The tally of polarity-applied outcomes (pairs ``(x, y)`` for a paired design)."""
    return PairTally.of(outcomes) if paired else Tally.of(outcomes)


def run_sequential(design: Design, draw: Callable[[int], Sequence]) -> tuple[SequentialTest, list]:
    """Run ``design`` to its decision: ``draw(m)`` gives the outcomes of the next ``m`` items in
    sampling order (fewer, or none, when the items run out), one call per batch so a judge can
    take them together; abstained items are replaced by drawing again. Returns the test and
    every outcome it drew."""
    test, seen = SequentialTest(design), []
    counts = tally((), design.paired)
    for size in design.schedule:
        while counts.answered < size:
            want = size - counts.answered
            got = list(draw(want))
            if len(got) > want:
                raise ValueError(f"draw({want}) gave {len(got)} outcomes")
            if not got:
                break
            seen += got
            counts = counts + tally(got, design.paired)
        test.update(counts, exhausted=counts.answered < size)
        if test.done:
            break
    return test, seen


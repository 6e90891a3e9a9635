"""A claim's group-sequential test: the design, its looks, and the interval each look decides on.

A :class:`Design` fixes, before any data are seen, the hypothesis, the budget (tasks, or task
pairs for a relation), the look schedule and the one-sided error ``alpha`` each wrong
direction may spend. :class:`SequentialTest` evaluates the looks: at look ``j`` it forms the
look's interval — exact Clopper–Pearson bounds for a rate, Tango score bounds for a paired
difference, Newcombe's hybrid score bounds for an unpaired one, each end at the one-sided level
the design assigns to that look — and decides the hypothesis on it (:meth:`Hypothesis.decide`:
holds inside, refuted outside). The levels are derived from exact boundaries
(:mod:`mechinterp.stats.binomial`, :mod:`mechinterp.stats.paired`,
:mod:`mechinterp.stats.unpaired`), so "the interval lies inside the claim" is exactly "the
count crossed the boundary": the printed interval is what decided.

A design's :attr:`Design.kind` is the one definition of what it counts: ``rate`` (one arm,
:class:`Tally`), ``paired`` (a relation whose arms run on the same tasks, :class:`PairTally`) or
``unpaired`` (a relation whose arms draw their own tasks, :class:`ArmsTally`).

:func:`run_sequential` is the one loop that feeds a test look by look; the claims runner (live
generations and judges) and the released-verdict replays (``mechinterp power``, the suite-cost
bench) both call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mechinterp.stats.binomial import binomial_bounds, binomial_levels, binomial_oc, hypergeometric_oc
from mechinterp.stats.counts import Tally
from mechinterp.stats.hypothesis import Decision, Hypothesis
from mechinterp.stats.intervals import Interval, cp_lower, cp_upper
from mechinterp.stats.paired import NUISANCE_GRID, PairTally, paired_critical, paired_oc, tango_interval, tango_z, z_tail
from mechinterp.stats.spending import SPENDING, look_schedule
from mechinterp.stats.unpaired import (
    UNPAIRED_GRID, ArmsTally, newcombe_interval, newcombe_lower, newcombe_upper, prefix_arms, unpaired_critical,
    unpaired_oc,
)

#: one-sided error per wrong direction (the two-sided 95 % of the paper's intervals, split)
ALPHA = 0.025
#: looks per claim (judge batches)
LOOKS = 4
#: what a design counts: one rate, a relation paired by task, a relation of independent arms
KINDS = ("rate", "paired", "unpaired")
#: the tally each kind of design decides on
TALLIES = {"rate": Tally, "paired": PairTally, "unpaired": ArmsTally}


def design_kind(relation: bool, unpaired: bool) -> str:
    """What a design counts (:data:`KINDS`), the one definition a claim and its design share: ``rate`` for one
    arm, and for a relation (a difference of two arms) ``unpaired`` when its arms draw their own tasks, else
    ``paired``."""
    if not relation:
        return "rate"
    return "unpaired" if unpaired else "paired"


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
    (``grid``: nuisance values a relation's critical values are calibrated over, default its kind's;
    ``unpaired``: a relation whose arms draw their own tasks, ``budget`` answers each, rather than
    pairs of one task)."""

    hypothesis: Hypothesis
    budget: int
    looks: int = LOOKS
    alpha: float = ALPHA
    spending: str = "obrien-fleming"
    grid: int | None = None
    unpaired: bool = False

    def __post_init__(self) -> None:
        if self.unpaired and not self.hypothesis.is_comparison:
            raise ValueError(f"unpaired applies to a relation's hypothesis on a - b, got {self.hypothesis}")
        if not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(f"budget must be an integer >= 1, got {self.budget!r}")
        if not isinstance(self.looks, int) or self.looks < 1:
            raise ValueError(f"looks must be an integer >= 1, got {self.looks!r}")
        if not 0.0 < self.alpha < 0.5:
            raise ValueError(f"alpha (one-sided, per direction) must be in (0, 0.5), got {self.alpha!r}")
        if self.spending not in SPENDING:
            raise ValueError(f"unknown spending function {self.spending!r}; valid: {', '.join(SPENDING)}")

    @property
    def kind(self) -> str:
        """What the design counts (:func:`design_kind`): ``rate``, ``paired`` or ``unpaired``."""
        return design_kind(self.hypothesis.is_comparison, self.unpaired)

    @property
    def nuisance(self) -> int:
        """Nuisance values the critical values are calibrated over: ``grid``, else the kind's own
        (:data:`~mechinterp.stats.paired.NUISANCE_GRID` discordances, :data:`UNPAIRED_GRID` rates)."""
        if self.grid is not None:
            return self.grid
        return UNPAIRED_GRID if self.unpaired else NUISANCE_GRID

    @property
    def relation(self) -> bool:
        """True for a relation (a difference of two arms, paired or not)."""
        return self.hypothesis.is_comparison

    @property
    def paired(self) -> bool:
        """True for a relation paired by task."""
        return self.kind == "paired"

    @cached_property
    def schedule(self) -> tuple[int, ...]:
        """The look sizes (answers, pairs or answers per arm, by each look)."""
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
        if self.relation:
            raise ValueError(f"a {self.kind} design has no count boundaries; see critical")
        sizes = self.schedule if sizes is None else tuple(sizes)
        return binomial_bounds(self.hypothesis.value, sizes, self.fractions(sizes, final), self.alpha, self.spending)

    def critical(self, sizes: tuple[int, ...] | None = None, final: bool = False
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Relations: critical values of the score statistic (Tango's, or Newcombe's normal quantile) for the
        interval's lower and upper end, for looks at ``sizes`` answered pairs or answers per arm (default: the
        schedule)."""
        if not self.relation:
            raise ValueError("a rate design has no score critical values; see bounds")
        sizes = self.schedule if sizes is None else tuple(sizes)
        v, args = self.hypothesis.value, (sizes, self.fractions(sizes, final), self.alpha, self.spending, self.nuisance)
        critical = unpaired_critical if self.unpaired else paired_critical
        up_at_v, up_at_minus_v = critical(v, *args), critical(-v, *args)
        if self.hypothesis.quantity == "|a - b|":  # each end serves the tests at both +v and -v
            both = tuple(max(x, y) for x, y in zip(up_at_v, up_at_minus_v))
            return both, both
        # the upper end's test at v is the mirror image (a <-> b) of the lower end's test at -v
        return up_at_v, up_at_minus_v

    def levels(self, sizes: tuple[int, ...] | None = None, final: bool = False) -> tuple[tuple[float, float], ...]:
        """Per look, the one-sided levels of the interval's lower and upper end (looks at ``sizes``)."""
        sizes = self.schedule if sizes is None else tuple(sizes)
        if self.relation:
            return tuple((z_tail(a), z_tail(b)) for a, b in zip(*self.critical(sizes, final)))
        up, down = self.bounds(sizes, final)
        return tuple(binomial_levels(self.hypothesis.value, n, u, d) for n, u, d in zip(sizes, up, down))

    def interval(self, sizes: tuple[int, ...], tally: Tally | PairTally | ArmsTally, *, final: bool = False,
                 worst_case: bool = False) -> Interval:
        """The interval of the last of looks at ``sizes`` answers, from its tally (``final``: the
        tasks ran out, this look spends all that is left).

        ``worst_case``: the same look's interval with every abstention counted against the claim
        at the end that could make it hold and for it at the other (shown, never decided on).
        """
        sizes = tuple(sizes)
        need = TALLIES[self.kind]
        if not isinstance(tally, need):
            what = {"rate": "one arm's outcomes", "paired": "paired outcomes", "unpaired": "two arms' outcomes"}
            raise TypeError(f"a {self.kind} design of {self.hypothesis} needs {what[self.kind]} (a {need.__name__}), "
                            f"got {tally!r}")
        if self.relation:
            lo, hi = self.critical(sizes, final)
            ends = newcombe_interval if self.unpaired else tango_interval
            return ends(tally, lo[-1], hi[-1], worst_case=worst_case)
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

    def _best(self, n: int) -> Tally | PairTally | ArmsTally:
        h = self.hypothesis
        up = h.op in (">=", ">")
        if self.kind == "rate":
            return Tally(n if up else 0, n)
        if self.kind == "unpaired":
            every, none = Tally(n, n), Tally(0, n)
            return ArmsTally(every, every) if h.quantity == "|a - b|" else ArmsTally(every, none) if up else \
                ArmsTally(none, every)
        if h.quantity == "|a - b|":
            return PairTally(n11=n)
        return PairTally(n10=n) if up else PairTally(n01=n)

    def operating(self, p: float | None = None, *, q10: float | None = None, q01: float | None = None,
                  pa: float | None = None, pb: float | None = None) -> OperatingCharacteristics:
        """Exact chances of each decision and the mean sample size at a true rate ``p`` (a rate
        design), true discordant cells ``q10, q01`` (a paired design; ``a - b = q10 - q01``) or true
        arm rates ``pa, pb`` (an unpaired design; ``a - b = pa - pb``, mean answers per arm)."""
        if self.kind == "rate":
            if p is None or not 0.0 <= p <= 1.0:
                raise ValueError(f"a rate design needs a true rate p in [0, 1], got {p!r}")
            return self._oriented(*binomial_oc(p, self.schedule, *self.bounds()))
        if self.kind == "unpaired":
            if pa is None or pb is None or not (0.0 <= pa <= 1.0 and 0.0 <= pb <= 1.0):
                raise ValueError(f"an unpaired design needs the arms' true rates pa, pb in [0, 1], got {pa!r}, {pb!r}")
            return OperatingCharacteristics(*unpaired_oc(pa, pb, self.schedule, self._state_decision))
        if q10 is None or q01 is None or q10 < 0 or q01 < 0 or q10 + q01 > 1 + 1e-12:
            raise ValueError(f"a paired design needs discordant cells q10, q01 >= 0 with q10 + q01 <= 1, got {q10!r}, {q01!r}")
        p_h, p_r, mean_n = paired_oc(q10, q01, self.schedule, self._state_decision)
        return OperatingCharacteristics(p_h, p_r, mean_n)

    def replayed(self, successes: int, population: int) -> OperatingCharacteristics:
        """Exact chances of each decision when the tasks are drawn in a uniformly random order,
        without replacement, from ``population`` released outcomes with ``successes`` successes."""
        if self.relation:
            raise ValueError(f"replays of {self.kind} designs are simulated (mechinterp.report.power), not computed")
        return self._oriented(*hypergeometric_oc(successes, population, self.schedule, *self.bounds()))

    def _oriented(self, p_up: float, p_down: float, mean_n: float) -> OperatingCharacteristics:
        holds_up = self.hypothesis.op in (">=", ">")
        return OperatingCharacteristics(p_up if holds_up else p_down, p_down if holds_up else p_up, mean_n)

    def _state_decision(self, look: int, b: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
        """+1 holds, -1 refuted, 0 continue, for every state (no abstentions) of a look: the discordant
        counts ``(n10, n01)`` of a paired design, the arms' successes ``(ka, kb)`` of an unpaired one."""
        (lo, hi), h = self.critical(), self.hypothesis
        v = h.value

        if self.unpaired:
            def above(d0):  # the interval's lower end exceeds d0
                return newcombe_lower(b, n, c, n, lo[look]) > d0

            def below(d0):  # the interval's upper end is below d0
                return newcombe_upper(b, n, c, n, hi[look]) < d0
        else:
            def above(d0):
                return tango_z(b, c, n, d0) > lo[look]

            def below(d0):
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

    def update(self, tally: Tally | PairTally | ArmsTally, *, exhausted: bool = False) -> Decision:
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


def tally(outcomes, kind: str) -> Tally | PairTally | ArmsTally:
    """The tally of polarity-applied outcomes for a design of ``kind`` (:data:`KINDS`): a sequence of
    outcomes (a rate), of pairs ``(x, y)`` (paired), or arm a's and arm b's sequences ``(xs, ys)`` (unpaired)."""
    if kind not in TALLIES:
        raise ValueError(f"unknown design kind {kind!r}; valid: {', '.join(KINDS)}")
    return TALLIES[kind].of(outcomes)


def _drawn(design: Design, draw: Callable, want):
    """One call of ``draw``, checked against what was asked (per arm for an unpaired design)."""
    got = draw(want)
    if design.unpaired:
        got = (list(got[0]), list(got[1]))
        sizes, asked = tuple(map(len, got)), want
    else:
        got = list(got)
        sizes, asked = (len(got),), (want,)
    if any(s > w for s, w in zip(sizes, asked)):
        raise ValueError(f"draw({want}) gave {sizes if design.unpaired else sizes[0]} outcomes")
    return got, any(sizes)


def run_sequential(design: Design, draw: Callable[..., Sequence]) -> tuple[SequentialTest, list | tuple[list, list]]:
    """Run ``design`` to its decision: ``draw(m)`` gives the outcomes of the next ``m`` items in
    sampling order (fewer, or none, when the items run out), one call per batch so a judge can
    take them together; abstained items are replaced by drawing again. Returns the test and
    every outcome it drew.

    An unpaired design draws each arm on its own: ``draw((ma, mb))`` gives ``(xs, ys)``, the next
    ``ma`` outcomes of arm a and ``mb`` of arm b, and each arm replaces its own abstentions. When one
    arm runs out first, the last look decides on as many answers of each arm as the shorter has (the
    first ones of the longer: a prefix of its sequence), and only those are returned.
    """
    test = SequentialTest(design)
    seen: list | tuple[list, list] = ([], []) if design.unpaired else []
    counts = tally(seen, design.kind)
    for size in design.schedule:
        while counts.answered < size:
            want = counts.wanted(size) if design.unpaired else size - counts.answered
            got, anything = _drawn(design, draw, want)
            if not anything:
                break
            seen = (seen[0] + got[0], seen[1] + got[1]) if design.unpaired else seen + got
            counts = counts + tally(got, design.kind)
        if design.unpaired and counts.answered < size:  # an arm ran out: the look takes both arms' first answers
            seen = prefix_arms(seen, counts.answered)
            counts = tally(seen, design.kind)
        test.update(counts, exhausted=counts.answered < size)
        if test.done:
            break
    return test, seen

"""What one claim came to in a run: the decision, the interval that decided it, the plain
95 % interval beside it, the counts, and the plan (budget and power) it ran with."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mechinterp.claims import Claim
from mechinterp.report.run import ClaimResult, VerdictRow
from mechinterp.stats import ArmsTally, Decision, Interval, PairTally, Plan


def plan_record(plan: Plan) -> dict:
    """A plan as plain data for reports: budget, looks, design point, power there, cap, alpha, and what the
    design counts (``kind``: rate, paired or unpaired)."""
    return {"budget": plan.budget, "schedule": list(plan.design.schedule), "point": plan.point,
            "power": plan.power.p_holds, "reached": plan.reached, "cap": plan.cap, "alpha": plan.design.alpha,
            "kind": plan.design.kind}


def pct(x: float) -> str:
    """``0.8125`` → ``81.2 %``."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def interval_text(ci: Interval | None, paired: bool) -> str:
    """``[80.3 %, 100.0 %]`` for a rate, ``[-4.1, +9.0] points`` for a difference."""
    if ci is None:
        return "none"
    if paired:
        return f"[{100 * ci.low:+.1f}, {100 * ci.high:+.1f}] points"
    return f"[{pct(ci.low)}, {pct(ci.high)}]"


@dataclass
class ClaimOutcome:
    """A claim's decision in this run with its evidence.

    ``k, n`` are the answered verdicts of the claim (a relation: of arm ``a`` — on the paired
    tasks, or on its own tasks for an unpaired relation; ``k2, n2`` of arm ``b``), ``abstained`` the
    bundles the judge left open; ``interval`` is the last look's interval — the one the decision was
    made on — ``worst_case`` the same look's interval with the abstentions counted against the
    claim, and ``plain`` the plain 95 % Wilson (for a relation the paired score interval, or
    Newcombe's for an unpaired one) of all answered verdicts. ``pairs`` is a paired relation's
    tally, ``arms`` an unpaired one's.
    """

    claim: Claim
    decision: Decision
    k: int
    n: int
    abstained: int
    plain: Interval
    interval: Interval | None = None
    worst_case: Interval | None = None  # the deciding look's interval with every abstention against the claim
    plan: dict | None = None
    rows: list[VerdictRow] = field(default_factory=list)
    looks: list[int] = field(default_factory=list)
    k2: int | None = None
    n2: int | None = None
    pairs: PairTally | None = None
    sweep: dict[str, dict] | None = None  # per site of a sweep claim: k, n, low, high, decision, ...
    note: str = ""
    transition: dict | None = None  # a transition claim: claimed site and window, located span (site names)
    arms: ArmsTally | None = None  # an unpaired relation: its two independent arms

    @property
    def relation(self) -> bool:
        """Whether the outcome is a relation's (a difference of two arms, paired or not)."""
        return self.pairs is not None or self.arms is not None

    @property
    def low(self) -> float:
        """Lower end of the plain 95 % interval."""
        return self.plain.low

    @property
    def high(self) -> float:
        """Upper end of the plain 95 % interval."""
        return self.plain.high

    @property
    def rate(self) -> float | None:
        """The claim's reported rate (success fraction), or the difference ``a - b`` for relations."""
        if self.relation:
            counts = self.pairs if self.pairs is not None else self.arms
            return None if not counts.decided else counts.estimate
        return None if not self.n else self.k / self.n

    def summary(self) -> str:
        """One line: decision, counts, the deciding look and its interval, the plain 95 %, the plan, the hypothesis."""
        paired = self.relation
        head = f"{self.claim.id}: {self.decision.value}"
        if self.note:
            head += f" — {self.note}"
        if self.pairs is not None:
            p = self.pairs
            counts = (f"a {self.k}/{self.n} vs b {self.k2}/{self.n2} on {p.judged} paired tasks "
                      f"(a only {p.n10}, b only {p.n01}), a - b {'n/a' if not p.decided else f'{100 * p.estimate:+.1f} points'}")
        elif self.arms is not None:
            t = self.arms
            counts = (f"a {self.k}/{self.n} ({pct(self.k / self.n if self.n else None)}) vs b {self.k2}/{self.n2} "
                      f"({pct(self.k2 / self.n2 if self.n2 else None)}) on independent tasks, a - b "
                      f"{'n/a' if not t.decided else f'{100 * t.estimate:+.1f} points'}")
        else:
            counts = f"k={self.k}/n={self.n}, rate {pct(self.k / self.n if self.n else float('nan'))}"
        parts = [counts]
        if self.interval is not None and self.looks:
            planned = len(self.plan["schedule"]) if self.plan else len(self.looks)
            parts.append(f"decided at look {len(self.looks)} of {planned} (n={self.looks[-1]}) on "
                         f"{interval_text(self.interval, paired)} at {100 * self.interval.confidence:.2f} %")
        if self.abstained:
            worst = "" if self.worst_case is None else f", worst case {interval_text(self.worst_case, paired)}"
            parts.append(f"{self.abstained} abstained (left out{worst})")
        if self.sweep:
            parts.append("per site: " + ", ".join(
                f"{site} {s['k']}/{s['n']} {s['decision']} [{pct(s['low'])}, {pct(s['high'])}]" for site, s in self.sweep.items()))
        if self.transition:
            t = self.transition
            parts.append(f"crossing claimed at {t['at']} (window {'..'.join(t['claimed'])}), "
                         f"located {'..'.join(t['located'])}")
        plain = "Newcombe" if self.arms is not None else "paired" if paired else "Wilson"
        parts.append(f"95 % {plain} {interval_text(self.plain, paired)}")
        if self.plan:
            point = f"{100 * self.plan['point']:+.1f} points" if paired else pct(self.plan["point"])
            cap = "" if self.plan["reached"] else f", capped at {self.plan['cap']}"
            parts.append(f"budget {self.plan['budget']} (power {100 * self.plan['power']:.0f} % at {point}{cap})")
        parts.append(f"hypothesis {self.claim.hypothesis}")
        return head + " — " + "; ".join(parts)

    def result(self) -> ClaimResult:
        """This outcome as a results row (what ``results.json`` and ``junit.xml`` hold for it)."""
        p = self.claim.paper
        paired = self.relation
        res = ClaimResult(self.claim.id, str(self.claim.hypothesis), self.decision.value, self.k, self.n, self.rate,
                          self.plain.low, self.plain.high, self.abstained, None if p is None else p.value / 100,
                          None if p is None else p.text, k2=self.k2, n2=self.n2, a=self.claim.a, b=self.claim.b,
                          sweep=self.sweep, looks=list(self.looks), note=self.note, transition=self.transition,
                          unpaired=self.arms is not None)
        if self.rate is not None:
            res.run_text = self.plain.as_difference_text() if paired else self.plain.as_percent_text()
        if self.pairs is not None:
            res.pairs = {k: getattr(self.pairs, k) for k in ("n11", "n10", "n01", "n00", "abstained")}
        if self.interval is not None:
            res.decision_low, res.decision_high = self.interval.low, self.interval.high
            res.decision_confidence = self.interval.confidence
        if self.worst_case is not None and self.abstained:
            res.worst_low, res.worst_high = self.worst_case.low, self.worst_case.high
        if self.plan:
            res.budget, res.power, res.design_point = self.plan["budget"], self.plan["power"], self.plan["point"]
        return res

"""``mechinterp power``: how often each claim holds at its budget, replayed on the authors' verdicts.

A *replay* draws a claim's released rows (a paired relation: the tasks both its cells' CSVs have,
paired; an unpaired one: each arm from its own cell's CSV) in the order the runner draws tasks for
that seed (:func:`mechinterp.claims.draws.draw_order`
over the claim's family, stratified as a run's; seeds ``0 .. runs-1``; the strata come from the task
lists beside the verdicts, ``<verdicts>/../tasks`` and ``../pairs``, else the rows are drawn in a
seeded shuffle) and feeds their polarity-applied outcomes to the claim's plan — the budget, looks and alpha the
claims runner gives it (:func:`mechinterp.claims.budget.claim_plan`) — through the runner's own
loop, :func:`mechinterp.stats.run_sequential`. ``--rate P`` does the same with outcomes drawn
from a true rate (``PA:PB`` for a relation: independent arms). Each row says how often the claim
held, was refuted or stayed inconclusive, the mean tasks used (per arm for an unpaired relation),
the decision on all released rows (95 %) and whether those rows clear the threshold with *room*:
the one-sided 97.5 % bound (the 95 % interval's near end; paired score interval for a relation,
Newcombe's for an unpaired one) at least one point inside.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from mechinterp.claims import Claim, claims_by_id
from mechinterp.claims.budget import claim_plan
from mechinterp.claims.draws import claim_items, draw_order, drawn_family
from mechinterp.report.released import read_released_rows, released_entity
from mechinterp.stats import Decision, Plan, run_sequential, tally
from mechinterp.tasks import TaskDataError
from mechinterp.tasks.families import FAMILIES, PAIR_FAMILIES

#: how far inside the threshold the full data's bound must be for the claim to have room
ROOM = 0.01


@dataclass
class PowerRow:
    """One claim's replayed operating characteristics (the JSON row of ``mechinterp power``)."""

    claim: str
    p_holds: float
    p_refuted: float
    p_inconclusive: float
    mean_n: float
    full_decision: str | None
    room: bool | None
    budget: int
    design_power: float  # P(holds) at the claim's design point, exact
    runs: int


def released_outcomes(claim: Claim, index: dict[str, Claim], verdicts_dir: str | Path
                      ) -> dict[str, object] | tuple[dict, dict] | None:
    """Entity → polarity-applied outcome (a paired relation: ``(a, b)`` on the entities both CSVs have;
    an unpaired one: each arm's own, as two such maps); ``None`` when a CSV the claim needs is missing."""
    root = Path(verdicts_dir)

    def cell(c: Claim) -> dict[str, bool | None] | None:
        if not c.csv or not (root / c.csv).is_file():
            return None
        return {r.entity: None if r.passed is None else c.success(r.passed) for r in read_released_rows(root / c.csv)}

    if not claim.is_relation:
        return cell(claim)
    xs, ys = cell(index[claim.a]), cell(index[claim.b])
    if xs is None or ys is None:
        return None
    if claim.unpaired:
        return (xs, ys) if xs and ys else None
    return {e: (xs[e], ys[e]) for e in xs if e in ys}


def available(claim: Claim, outcomes) -> int:
    """How many tasks a replay of ``outcomes`` can draw (per arm for an unpaired relation: the shorter's)."""
    return min(map(len, outcomes)) if claim.unpaired else len(outcomes)


def every_outcome(claim: Claim, outcomes) -> list | tuple[list, list]:
    """All released outcomes in the shape :func:`mechinterp.stats.tally` takes for the claim's kind."""
    return (list(outcomes[0].values()), list(outcomes[1].values())) if claim.unpaired else list(outcomes.values())


def room(claim: Claim, outcomes) -> tuple[str, bool]:
    """The fixed-sample decision on all ``outcomes`` (:func:`every_outcome`) and whether its near bound is
    ``ROOM`` inside."""
    decision, ci = claim.decide(tally(outcomes, claim.kind))
    h, v = claim.hypothesis, claim.hypothesis.value
    if h.quantity == "|a - b|":
        ok = ci.high <= v - ROOM and ci.low >= -v + ROOM
    elif h.op in (">=", ">"):
        ok = ci.low >= v + ROOM
    else:
        ok = ci.high <= v - ROOM
    return decision.value, bool(ok)


def task_data_dir(verdicts_dir: str | Path) -> Path | None:
    """The folder beside a released verdicts folder that holds the authors' task and pair lists
    (``tasks/*.jsonl``), which give a replay the families' strata; ``None`` when there is none."""
    parent = Path(verdicts_dir).resolve().parent
    return parent if (parent / "tasks").is_dir() else None


def released_strata(claim: Claim, index: dict[str, Claim], data_dir: str | Path | None) -> dict[str, str] | None:
    """Released entity id -> sampling stratum over the whole family the claim draws (a relation:
    its first cell's; give an unpaired relation's cells one by one), read without images; ``None``
    when the family's task list is not there."""
    cell = index[claim.a] if claim.is_relation else claim
    try:
        return {released_entity(item): item.stratum for item in claim_items(cell, data_dir, verify=False)}
    except (TaskDataError, FileNotFoundError, ValueError):
        return None


class FamilyDraws:
    """Per drawn family (:func:`~mechinterp.claims.draws.drawn_family`): its strata, read once, and
    its order per seed, computed once for every claim replayed on it."""

    def __init__(self, index: dict[str, Claim], data_dir: str | Path | None):
        self.index, self.data_dir = index, data_dir
        self._families: dict[tuple[str, bool], tuple[dict[str, str] | None, dict[int, list[str]]]] = {}

    def of(self, claim: Claim) -> tuple:
        """``(strata, seed -> order memo)`` of the family ``claim`` draws (a paired relation: its first
        cell's), as :func:`replay` takes them; for an unpaired relation each of the two per arm,
        ``((strata_a, strata_b), (memo_a, memo_b))``."""
        if claim.unpaired:
            (sa, ma), (sb, mb) = self.of(self.index[claim.a]), self.of(self.index[claim.b])
            return (sa, sb), (ma, mb)
        key = drawn_family(self.index[claim.a] if claim.is_relation else claim)
        if key not in self._families:
            self._families[key] = (released_strata(claim, self.index, self.data_dir), {})
        return self._families[key]


def replay(plan: Plan, outcomes, seed: int, strata=None, family_orders=None):
    """One replay: the plan's sequential test on the outcomes drawn in the runner's order for
    ``seed`` (``strata``: the family's, see :func:`released_strata`, with ``family_orders`` its
    memo; up to the plan's cap, as the runner draws); returns the test and the entities it judged.

    An unpaired relation's ``outcomes``, ``strata`` and ``family_orders`` are one per arm (pairs): each
    arm is drawn in its own family's order, and the entities judged come back per arm."""
    if not plan.design.unpaired:
        order = draw_order(outcomes, strata, seed, family_orders)[:plan.cap]
        drawn: list[str] = []

        def draw(m: int) -> list:
            batch = order[len(drawn):len(drawn) + m]
            drawn.extend(batch)
            return [outcomes[e] for e in batch]

        test, _ = run_sequential(plan.design, draw)
        return test, drawn
    strata, family_orders = strata or (None, None), family_orders or (None, None)
    orders = [draw_order(arm, s, seed, m)[:plan.cap] for arm, s, m in zip(outcomes, strata, family_orders)]
    arms: tuple[list[str], list[str]] = ([], [])

    def draw_arms(want: tuple[int, int]) -> tuple[list, list]:
        out = []
        for arm, order, done, m in zip(outcomes, orders, arms, want):
            batch = order[len(done):len(done) + m]
            done.extend(batch)
            out.append([arm[e] for e in batch])
        return out[0], out[1]

    test, seen = run_sequential(plan.design, draw_arms)
    return test, (arms[0][:len(seen[0])], arms[1][:len(seen[1])])


def _summarise(claim: Claim, plan: Plan, tests: list, full: tuple[str | None, bool | None]) -> PowerRow:
    runs = len(tests)
    count = {d: sum(t.decision is d for t in tests) / runs for d in Decision}
    mean_n = sum(t.last.n for t in tests) / runs
    return PowerRow(claim.id, count[Decision.HOLDS], count[Decision.REFUTED], count[Decision.INCONCLUSIVE], mean_n,
                    full[0], full[1], plan.budget, plan.power.p_holds, runs)


def replay_claims(verdicts_dir: str | Path, claims: list[Claim], *, runs: int = 2000, samples: int | None = None,
                  only: set[str] | None = None, data_dir: str | Path | None = None) -> list[PowerRow]:
    """A :class:`PowerRow` per claim with released data (relations: both cells'), replayed ``runs``
    times (``only``: just these claim ids) in the runner's orders (``data_dir``: the task lists,
    default :func:`task_data_dir`)."""
    root = Path(verdicts_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"released verdicts folder {root} does not exist")
    index = claims_by_id(claims)
    draws = FamilyDraws(index, data_dir if data_dir is not None else task_data_dir(root))
    rows = []
    for claim in claims:
        if only is not None and claim.id not in only:
            continue
        outcomes = released_outcomes(claim, index, root)
        if not outcomes:
            continue
        plan = claim_plan(claim, index, available(claim, outcomes), samples)
        if not plan.decidable:
            tests = []
        else:
            strata, memo = draws.of(claim)
            tests = [replay(plan, outcomes, seed, strata, memo)[0] for seed in range(runs)]
        full = room(claim, every_outcome(claim, outcomes))
        rows.append(_summarise(claim, plan, tests, full) if tests else
                    PowerRow(claim.id, 0.0, 0.0, 1.0, 0.0, full[0], full[1], plan.budget, plan.power.p_holds, 0))
    if not rows:
        which = "selected claims" if only is not None else "claims"
        raise FileNotFoundError(f"none of the {which}' released verdict CSVs is in {root}")
    return rows


def paper_tasks(claim: Claim, index: dict[str, Claim], unknown: int | None = None) -> int:
    """How many tasks (pairs) the paper's family of a claim has: what a run can draw at most (a relation:
    the smaller of its cells' families); a family of no known size (a user's own) counts as ``unknown``
    tasks where given, else is an error."""
    cells = [index[claim.a], index[claim.b]] if claim.is_relation else [claim]
    sizes = []
    for c in cells:
        family, pairs = drawn_family(c)
        table = PAIR_FAMILIES if pairs else FAMILIES
        if family not in table and unknown is not None:
            sizes.append(unknown)
            continue
        if family not in table:
            raise ValueError(f"claim {c.id!r}: task family {family!r} has no known size")
        sizes.append(table[family].size)
    return min(sizes)


def default_plan(claim: Claim, index: dict[str, Claim]) -> Plan:
    """The plan a suite run gives ``claim`` on the paper's task family, without a ``--samples`` cap."""
    return claim_plan(claim, index, paper_tasks(claim, index))


def simulate_claim(claim: Claim, index: dict[str, Claim], rates: tuple[float, ...], *, runs: int = 2000,
                   samples: int | None = None) -> PowerRow:
    """:class:`PowerRow` of a claim whose outcomes come from true ``rates`` (one, or two independent arms)."""
    if len(rates) != (2 if claim.is_relation else 1):
        raise ValueError(f"claim {claim.id!r} needs {'two rates PA:PB' if claim.is_relation else 'one rate'}, got {rates}")
    if any(not 0.0 <= r <= 1.0 for r in rates):
        raise ValueError(f"rates must lie in [0, 1], got {rates}")
    plan = claim_plan(claim, index, paper_tasks(claim, index), samples)
    tests: list = []
    for seed in range(runs if plan.decidable else 0):
        rng = random.Random(f"power:{claim.id}:{seed}")

        def draw(m):
            one = lambda r: rng.random() < r  # noqa: E731
            if claim.unpaired:  # each arm as many as it asks for
                return [one(rates[0]) for _ in range(m[0])], [one(rates[1]) for _ in range(m[1])]
            return [(one(rates[0]), one(rates[1])) if claim.is_relation else one(rates[0]) for _ in range(m)]

        tests.append(run_sequential(plan.design, draw)[0])
    if not tests:
        return PowerRow(claim.id, 0.0, 0.0, 1.0, 0.0, None, None, plan.budget, plan.power.p_holds, 0)
    return _summarise(claim, plan, tests, (None, None))


def format_rows(rows: list[PowerRow]) -> str:
    """The power table as aligned text."""
    head = ["claim", "P(holds)", "P(refuted)", "P(inconcl.)", "mean n", "budget", "design power", "all rows", "room"]
    body = [[r.claim, f"{100 * r.p_holds:.1f} %", f"{100 * r.p_refuted:.1f} %", f"{100 * r.p_inconclusive:.1f} %",
             f"{r.mean_n:.0f}", str(r.budget), f"{100 * r.design_power:.0f} %", r.full_decision or "-",
             "-" if r.room is None else ("yes" if r.room else "no")] for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body])

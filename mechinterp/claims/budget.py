"""A claim's budget: the design point its power is planned for, and its plan within the caps.

The design point says what "the claim is true with a margin" means for one claim:

1. ``power_at`` when the registry states one (a rate; for a relation, the difference ``a - b``);
2. else the paper's own rate, when it lies inside the claim — the nearer to the threshold of
   the printed rate and its Wilson centre ``(k + z²/2) / (n + z²)``, so a 0/450 or 320/320
   cell is planned for 0.4 % or 99.4 %, not for an outcome no sample could miss;
3. else halfway from the threshold to the claim's extreme (``rate >= 0.5`` → 0.75,
   ``rate <= 0.05`` → 0.025, ``a - b > 0`` → 0.5, ``|a - b| <= v`` → 0).

A relation's design point is the difference of its arms' paper rates (as above) when both
have one and it lies inside the relation, else ``power_at``, else the halfway default (arms at
``1/2 ± d/2``) — :func:`relation_rates`. An unpaired relation (its arms draw different tasks)
is planned at those two rates. For a paired one the paper does not say how the two arms go
together on a task, so the plan takes the least favourable joint distribution of the two rates:
the fewest tasks on which both succeed (``q11 = max(0, pa + pb - 1)``), hence the most discordant
pairs and the widest paired difference (:func:`relation_point`). Any positive correlation of the
arms — the paper's released verdicts have plenty — only makes the paired test stronger than
planned.

Caps: the tasks there are (the family, the pairs both arms share, or for an unpaired relation
the tasks of the arm with fewer), the paper's cell sizes (a replication uses no more tasks than
the paper's cell has), and ``--samples``; an unpaired relation's budget is per arm. A sweep's
sites each get ``alpha / sites`` and the power ``target ** (1 / sites)``, so the sweep as a
whole keeps both.
"""

from __future__ import annotations

from mechinterp.claims import Claim
from mechinterp.stats import Hypothesis
from mechinterp.stats.plan import POWER, Plan, plan_paired, plan_rate, plan_unpaired
from mechinterp.stats.sequential import ALPHA, LOOKS

#: the paper's interval level, for the Wilson centre of a printed rate
_Z = 1.959963984540054
#: the sites of the paper's model (FLUX.2-klein-9B: 8 double and 24 single blocks), in forward order
PAPER_SITES = ("embed", *(f"double.{i}" for i in range(8)), *(f"single.{j}" for j in range(24)))


def inside(hypothesis: Hypothesis, value: float) -> bool:
    """Whether a true rate (or difference) ``value`` satisfies the hypothesis away from its threshold."""
    edge = abs(value) if hypothesis.quantity == "|a - b|" else value
    return hypothesis.contains(value) and edge != hypothesis.value


def halfway(hypothesis: Hypothesis) -> float:
    """The default design point: halfway from the threshold to the claim's extreme."""
    v = hypothesis.value
    if hypothesis.quantity == "|a - b|":
        return 0.0
    if hypothesis.quantity == "rate":
        return (v + 1.0) / 2.0 if hypothesis.op in (">=", ">") else v / 2.0
    return (v + 1.0) / 2.0 if hypothesis.op in (">=", ">") else (v - 1.0) / 2.0


def paper_rate(claim: Claim) -> float | None:
    """The paper's rate as a design point: printed rate or Wilson centre, whichever is nearer the threshold."""
    p = claim.paper
    if p is None:
        return None
    raw = p.value / 100.0
    if not p.n:
        return raw
    k = round(raw * p.n)
    centre = (k + _Z * _Z / 2.0) / (p.n + _Z * _Z)
    return min((raw, centre), key=lambda r: abs(r - claim.hypothesis.value))


def design_point(claim: Claim) -> tuple[float, str]:
    """A cell claim's design rate and where it comes from (``stated``, ``paper`` or ``default``)."""
    if claim.is_relation:
        raise ValueError(f"claim {claim.id!r} is a relation; use relation_point")
    if claim.power_at is not None:
        return claim.power_at, "stated"
    paper = paper_rate(claim)
    if paper is not None and inside(claim.hypothesis, paper):
        return paper, "paper"
    return halfway(claim.hypothesis), "default"


def discordant(pa: float, pb: float) -> tuple[float, float]:
    """``(q10, q01)`` of two arms with rates ``pa, pb`` joined least favourably (fewest joint successes)."""
    both = max(0.0, pa + pb - 1.0)
    return pa - both, pb - both


def relation_rates(claim: Claim, registry: dict[str, Claim]) -> tuple[float, float, str]:
    """A relation's design point as its arms' rates ``(pa, pb)`` and their source (``arms``: the two
    cells' paper rates, ``stated``: ``power_at``, or ``default``; the last two at ``1/2 ± d/2``)."""
    a, b = registry[claim.a], registry[claim.b]
    if claim.power_at is None and a.paper is not None and b.paper is not None:
        (ra, sa), (rb, sb) = design_point(a), design_point(b)
        if sa == sb == "paper" and inside(claim.hypothesis, ra - rb):
            return ra, rb, "arms"
    if claim.power_at is not None:
        d, source = claim.power_at, "stated"
    else:
        d, source = halfway(claim.hypothesis), "default"
    return 0.5 + d / 2.0, 0.5 - d / 2.0, source


def relation_point(claim: Claim, registry: dict[str, Claim]) -> tuple[float, float, str]:
    """A paired relation's design: the discordant cells ``(q10, q01)`` of its arms' rates
    (:func:`relation_rates`) joined least favourably, and their source."""
    pa, pb, source = relation_rates(claim, registry)
    return (*discordant(pa, pb), source)


def max_budget(claim: Claim, registry: dict[str, Claim], available: int, cap: int | None) -> int:
    """The most tasks (pairs; per arm for an unpaired relation) a claim may draw: what is there, the paper's
    cell sizes, ``--samples``."""
    limits = [available]
    cells = [registry[claim.a], registry[claim.b]] if claim.is_relation else [claim]
    limits += [c.paper.n for c in cells if c.paper is not None and c.paper.n]
    if cap is not None:
        limits.append(cap)
    return max(1, min(limits))


def claim_plan(claim: Claim, registry: dict[str, Claim] | None, available: int, cap: int | None = None, *,
               sites: int = 1, looks: int = LOOKS, alpha: float = ALPHA) -> Plan:
    """The plan (budget, looks, power) a claim runs with, given ``available`` tasks and a ``--samples`` cap."""
    registry = registry or {claim.id: claim}
    limit = max_budget(claim, registry, available, cap)
    kw = dict(looks=looks, alpha=alpha / sites, target=POWER ** (1.0 / sites))
    if claim.unpaired:
        pa, pb, _ = relation_rates(claim, registry)
        return plan_unpaired(claim.hypothesis, pa, pb, limit, **kw)
    if claim.is_relation:
        q10, q01, _ = relation_point(claim, registry)
        return plan_paired(claim.hypothesis, q10, q01, limit, **kw)
    rate, _ = design_point(claim)
    return plan_rate(claim.hypothesis, rate, limit, **kw)


def paper_sweep_sites(claim: Claim) -> int:
    """How many sites a claim runs on the paper's model: a sweep's, from its first site to ``sweep_to`` (or the
    last block); 1 for any other claim, and for a sweep whose sites are not the paper's (its length then
    depends on the model, which a plan made before any model loads cannot know)."""
    e = claim.experiment
    if e is None or not e.get("sweep"):
        return 1
    first, last = e.get(e.get("sweep")), e.get("sweep_to") or PAPER_SITES[-1]
    if first not in PAPER_SITES or last not in PAPER_SITES:
        return 1
    return max(1, PAPER_SITES.index(last) - PAPER_SITES.index(first) + 1)

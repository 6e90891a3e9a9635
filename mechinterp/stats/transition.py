"""Where a sweep's rate crosses its threshold, located from the per-site sequential decisions.

A sweep claim runs one sequential test per site (each at ``alpha / sites``). A *transition*
claim says where along the sweep the per-site hypothesis stops holding (or starts to): e.g.
Appendix B's reference-drop sweep, whose cutoffs lose the colour (``rate >= 0.5`` destroyed)
up to the binding block and keep it after. The crossing is the index ``c`` of the first site on
the *after* side, ``0 <= c <= n`` for ``n`` sites (``c = n``: no site of the sweep is past it).

The rule. With ``B`` the sites decided on the before side and ``A`` those decided on the after
side (inconclusive sites say nothing), the decisions locate the crossing in ``[lo, hi]``:
``lo = max(B) + 1`` (``0`` when ``B`` is empty) and ``hi = min(A)`` (``n`` when ``A`` is empty). A
non-monotone sweep (an after-side site before a before-side one, ``hi < lo``) has crossings from
``hi`` to ``lo``, so the located span is ``[min(lo, hi), max(lo, hi)]``. The claim names a site
``at`` (the first site past the crossing) and a tolerance of ``within`` blocks: its window is
``[at - within, at + within]`` clipped to ``[0, n]``. The claim *holds* when the located span lies
inside the window, is *refuted* when the span and the window are disjoint, and is *inconclusive*
otherwise (the per-site intervals do not locate the crossing finely enough, or locate it partly
outside the window). Each direction is wrong only if some site's own decision is, so both keep
the sweep's error ``alpha`` (Bonferroni over the sites).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mechinterp.stats.hypothesis import Decision

SIDES = ("before", "after")


@dataclass(frozen=True)
class Crossing:
    """A crossing position as a span ``[lo, hi]`` of site indices (``n``: past the last site)."""

    lo: int
    hi: int

    def inside(self, other: "Crossing") -> bool:
        """Whether this span lies within ``other``."""
        return other.lo <= self.lo and self.hi <= other.hi

    def meets(self, other: "Crossing") -> bool:
        """Whether the two spans share a position."""
        return self.lo <= other.hi and other.lo <= self.hi


def side_of(decision: Decision, holds: str) -> str | None:
    """Which side of the crossing a site's decision puts it on: ``holds`` names the side where the
    per-site hypothesis holds (``"before"``: it holds up to the crossing); ``None`` when inconclusive."""
    if holds not in SIDES:
        raise ValueError(f"holds {holds!r} is not one of {', '.join(SIDES)}")
    if decision == Decision.INCONCLUSIVE:
        return None
    other = SIDES[1 - SIDES.index(holds)]
    return holds if decision == Decision.HOLDS else other


def locate(decisions: Sequence[Decision], holds: str = "before") -> Crossing:
    """The span of crossing positions the per-site decisions (in sweep order) allow (module docstring)."""
    sides = [side_of(Decision(d), holds) for d in decisions]
    before = [i for i, s in enumerate(sides) if s == "before"]
    after = [i for i, s in enumerate(sides) if s == "after"]
    lo = max(before) + 1 if before else 0
    hi = min(after) if after else len(sides)
    return Crossing(min(lo, hi), max(lo, hi))


def window(at: int, within: int, sites: int) -> Crossing:
    """The claimed crossing positions: ``at ± within`` clipped to ``[0, sites]``."""
    if not 0 <= at <= sites or within < 0:
        raise ValueError(f"transition at index {at} within {within} is not a crossing of a {sites}-site sweep")
    return Crossing(max(0, at - within), min(sites, at + within))


def decide_transition(located: Crossing, claimed: Crossing) -> Decision:
    """``holds`` when the located span lies inside the claimed window, ``refuted`` when they are
    disjoint, else ``inconclusive``."""
    if located.inside(claimed):
        return Decision.HOLDS
    if not located.meets(claimed):
        return Decision.REFUTED
    return Decision.INCONCLUSIVE

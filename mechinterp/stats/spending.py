"""Error spending over a fixed look schedule (Lan & DeMets 1983) and the schedule itself.

A group-sequential test spends its one-sided error ``alpha`` over the information fraction
``t = n / budget``: by the look at ``t`` at most ``alpha_spent(t)`` may have been spent.
``"obrien-fleming"`` (the default) spends almost nothing early, so a claim stops early only
when it is far from its threshold and the last look keeps nearly the fixed-sample level;
``"pocock"`` spends evenly on the log scale; ``"linear"`` is ``alpha * t``.
"""

from __future__ import annotations

import math

from scipy.special import ndtr, ndtri

SPENDING = ("obrien-fleming", "pocock", "linear")


def alpha_spent(t: float, alpha: float, spending: str = "obrien-fleming") -> float:
    """Cumulative one-sided error allowed by information fraction ``t`` in [0, 1]."""
    if spending not in SPENDING:
        raise ValueError(f"unknown spending function {spending!r}; valid: {', '.join(SPENDING)}")
    t = min(max(float(t), 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if t == 1.0:
        return alpha
    if spending == "linear":
        return alpha * t
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * t)
    return float(2.0 * ndtr(ndtri(alpha / 2.0) / math.sqrt(t)))


def look_schedule(budget: int, looks: int) -> tuple[int, ...]:
    """``looks`` equally spaced look sizes ending at ``budget`` (fewer when the budget is smaller)."""
    if budget < 1 or looks < 1:
        raise ValueError(f"budget and looks must be >= 1, got budget={budget!r}, looks={looks!r}")
    return tuple(sorted({max(1, math.ceil(budget * j / looks)) for j in range(1, looks + 1)}))

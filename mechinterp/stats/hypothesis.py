"""Hypotheses about rates and the three-valued decision.

A claim's hypothesis is a short string kept in the registry, e.g. ``rate >= 0.80``,
``rate <= 0.05``, ``a - b > 0`` or ``|a - b| <= 0.15``. The decision compares a confidence
interval with the claimed set: *holds* when the whole interval lies inside it, *refuted*
when the whole interval lies outside it, *inconclusive* otherwise. Because it only looks
at the interval, the decision is monotone in ``k`` for threshold claims (Wilson bounds
grow with ``k``).
"""

from __future__ import annotations

import enum
import operator
import re
from dataclasses import dataclass

from mechinterp.stats.intervals import Interval

QUANTITIES = ("rate", "a - b", "|a - b|")
OPERATORS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_NEGATION = {">=": "<", ">": "<=", "<=": ">", "<": ">="}

_PATTERN = re.compile(
    r"^\s*(?P<q>rate|a\s*-\s*b|\|\s*a\s*-\s*b\s*\|)\s*(?P<op>>=|<=|>|<)\s*(?P<v>[-+]?\d*\.?\d+)\s*$"
)


class Decision(str, enum.Enum):
    """Outcome of testing one claim: the interval is inside, outside, or straddles it."""

    HOLDS = "holds"
    REFUTED = "refuted"
    INCONCLUSIVE = "inconclusive"

    def __str__(self) -> str:  # so f-strings and JSON show the plain word
        return self.value


@dataclass(frozen=True)
class Hypothesis:
    """``quantity op value``: a threshold on one rate or a bound on a difference of two."""

    quantity: str
    op: str
    value: float

    def __post_init__(self) -> None:
        if self.quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity {self.quantity!r}; valid: {', '.join(QUANTITIES)}")
        if self.op not in OPERATORS:
            raise ValueError(f"unknown operator {self.op!r}; valid: {', '.join(OPERATORS)}")
        if self.quantity == "|a - b|" and self.op not in ("<=", "<"):
            raise ValueError(f"|a - b| supports only '<=' and '<', got {self.op!r}")
        lo = -1.0 if self.quantity == "a - b" else 0.0
        if not lo <= self.value <= 1.0:
            raise ValueError(f"value {self.value!r} for {self.quantity!r} must lie in [{lo}, 1]")

    @classmethod
    def parse(cls, text: str) -> "Hypothesis":
        """Parse ``rate >= 0.80``, ``a - b > 0``, ``|a - b| <= 0.15`` and the like."""
        m = _PATTERN.match(text)
        if not m:
            raise ValueError(
                f"cannot parse hypothesis {text!r}; expected '<quantity> <op> <number>' with "
                f"quantity one of {', '.join(QUANTITIES)} and op one of {', '.join(OPERATORS)}"
            )
        q = re.sub(r"\s+", "", m["q"]).replace("-", " - ")
        return cls(q, m["op"], float(m["v"]))

    @property
    def is_comparison(self) -> bool:
        """True when the hypothesis is about the difference of two rates."""
        return self.quantity != "rate"

    def __str__(self) -> str:
        return f"{self.quantity} {self.op} {self.value:g}"

    def contains(self, value: float) -> bool:
        """Whether a true rate (or difference) ``value`` satisfies the hypothesis."""
        if self.quantity == "|a - b|":
            return OPERATORS[self.op](abs(value), self.value)
        return OPERATORS[self.op](value, self.value)

    def decide(self, interval: Interval) -> Decision:
        """Three-valued decision for an interval on this hypothesis' quantity."""
        low, high = interval.low, interval.high
        inside = OPERATORS[self.op]
        if self.quantity == "|a - b|":
            v = self.value
            if inside(max(-low, high), v):
                return Decision.HOLDS
            outside = OPERATORS[_NEGATION[self.op]]
            if outside(low, v) or outside(-high, v):
                return Decision.REFUTED
            return Decision.INCONCLUSIVE
        if self.op in (">=", ">"):
            holds, refuted = inside(low, self.value), not inside(high, self.value)
        else:
            holds, refuted = inside(high, self.value), not inside(low, self.value)
        if holds:
            return Decision.HOLDS
        if refuted:
            return Decision.REFUTED
        return Decision.INCONCLUSIVE

"""One arm's tally: the answers a rate is decided on, and the abstentions kept in view.

:class:`Tally` is what a cell claim's looks count, and each arm of an unpaired relation
(:class:`~mechinterp.stats.unpaired.ArmsTally`) is one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


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

"""Agreement between two judges on the same bundles: confusion table and Cohen's κ.

Why: before the objective colour judge (or a cheaper model) stands in for Claude, its
verdicts must agree with Claude's beyond chance. κ is computed over the bundles where both
judges answered; abstentions are kept in the table and counted, never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mechinterp.judges.verdict import Verdict

LABELS: tuple[bool | None, ...] = (True, False, None)


@dataclass(frozen=True)
class Agreement:
    """``table[(a, b)]`` counts bundles judge A answered ``a`` and judge B answered ``b``
    (True, False or None = abstained). ``kappa`` is NaN when it is undefined (no bundle both
    answered, or both judges gave one constant answer)."""

    table: dict[tuple[bool | None, bool | None], int]
    n: int
    n_both: int
    observed: float
    expected: float
    kappa: float

    def format(self) -> str:
        """The table as aligned text (rows judge A, columns judge B)."""
        names = {True: "pass", False: "fail", None: "abstain"}
        lines = ["A \\ B     " + "".join(f"{names[b]:>9}" for b in LABELS)]
        for a in LABELS:
            lines.append(f"{names[a]:<10}" + "".join(f"{self.table[(a, b)]:>9}" for b in LABELS))
        lines.append(f"kappa={self.kappa:.3f} over {self.n_both} of {self.n} bundles")
        return "\n".join(lines)


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> tuple[float, float, float]:
    """``(observed, expected, kappa)`` agreement of two equally long yes/no sequences."""
    if len(a) != len(b):
        raise ValueError(f"need equally long sequences, got {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return math.nan, math.nan, math.nan
    observed = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    expected = pa * pb + (1 - pa) * (1 - pb)
    kappa = math.nan if expected == 1 else (observed - expected) / (1 - expected)
    return observed, expected, kappa


def agreement(a: Sequence[Verdict], b: Sequence[Verdict]) -> Agreement:
    """Compare two judges' verdicts on the same bundles, position by position."""
    if len(a) != len(b):
        raise ValueError(f"verdict lists differ in length: {len(a)} vs {len(b)}; "
                         "expected one verdict per bundle from each judge")
    for i, (va, vb) in enumerate(zip(a, b)):
        if va.question_id != vb.question_id:
            raise ValueError(f"bundle {i}: judge A answered {va.question_id!r} but judge B "
                             f"answered {vb.question_id!r}; expected the same question")
    table = {(x, y): 0 for x in LABELS for y in LABELS}
    for va, vb in zip(a, b):
        table[(va.passed, vb.passed)] += 1
    both = [(va.passed, vb.passed) for va, vb in zip(a, b)
            if va.passed is not None and vb.passed is not None]
    observed, expected, kappa = cohen_kappa([x for x, _ in both], [y for _, y in both])
    return Agreement(table, len(a), len(both), observed, expected, kappa)

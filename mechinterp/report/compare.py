"""Compare two runs claim by claim (e.g. two model versions).

For a cell claim the change is ``rate_B - rate_A`` with its Newcombe interval; for a
relation only the decisions are compared. A claim is *flipped* when its decision differs.
"""

from __future__ import annotations

from dataclasses import dataclass

from mechinterp.report.run import Run
from mechinterp.report.tables import align_columns
from mechinterp.stats import newcombe


@dataclass
class Change:
    """One claim in both runs: decisions, rates, and the change with its interval."""

    claim_id: str
    decision_a: str
    decision_b: str
    text_a: str
    text_b: str
    diff: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None
    diff_text: str = ""

    @property
    def flipped(self) -> bool:
        """True when the two runs reach different decisions."""
        return self.decision_a != self.decision_b


def compare_runs(run_a: Run, run_b: Run) -> list[Change]:
    """Per-claim changes for the claims present in both runs, in run A's order."""
    changes = []
    for cid, ra in run_a.results.items():
        rb = run_b.results.get(cid)
        if rb is None:
            continue
        ch = Change(cid, ra.decision, rb.decision, ra.run_text, rb.run_text)
        if ra.a is None and ra.n and rb.n:
            ci = newcombe(rb.k, rb.n, ra.k, ra.n)
            ch.diff, ch.diff_low, ch.diff_high, ch.diff_text = ci.estimate, ci.low, ci.high, ci.as_difference_text()
        changes.append(ch)
    return changes


def format_changes(changes: list[Change], name_a: str = "A", name_b: str = "B") -> str:
    """A plain-text table; flipped claims are marked ``FLIPPED``."""
    rows = [["claim", f"{name_a}", f"{name_b}", "change B-A [95% Newcombe]", "decision", ""]]
    for ch in changes:
        rows.append([ch.claim_id, ch.text_a, ch.text_b, ch.diff_text, f"{ch.decision_a} -> {ch.decision_b}",
                     "FLIPPED" if ch.flipped else ""])
    lines = align_columns(rows)
    flipped = sum(ch.flipped for ch in changes)
    return "\n".join(lines + [f"{len(changes)} claims compared, {flipped} flipped"])

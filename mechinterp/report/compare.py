"""Compare two runs claim by claim (e.g. two model versions).

Only claims *decided* in both runs (holds, refuted, inconclusive) are compared: a claim skipped or
errored in either run has no result to compare, and counting it would make a check that checked
nothing look like a pass; those, and claims of one run only, are listed as not compared. For a cell
claim the change is ``rate_B - rate_A`` with its Newcombe interval; for a relation only the
decisions are compared. A claim is *flipped* when its decision differs. The columns are named after
the runs' models (:func:`run_names`), not their folders.
"""

from __future__ import annotations

from dataclasses import dataclass

from mechinterp.report.meta import RunMeta
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
    """Per-claim changes for the claims decided in both runs (not skipped or errored in either), in run A's order."""
    changes = []
    for cid, ra in run_a.results.items():
        rb = run_b.results.get(cid)
        if rb is None or not (ra.decided and rb.decided):
            continue
        ch = Change(cid, ra.decision, rb.decision, ra.run_text, rb.run_text)
        if ra.a is None and ra.n and rb.n:
            ci = newcombe(rb.k, rb.n, ra.k, ra.n)
            ch.diff, ch.diff_low, ch.diff_high, ch.diff_text = ci.estimate, ci.low, ci.high, ci.as_difference_text()
        changes.append(ch)
    return changes


def _short(value: object) -> str:
    """A revision's or fingerprint's short form (a pooled run's list of them joined)."""
    if value in (None, "", [], {}):
        return ""
    if isinstance(value, list):
        return "|".join(_short(v) for v in value)
    return str(value)[:8]


def run_names(meta_a: RunMeta, meta_b: RunMeta) -> tuple[str, str]:
    """The two runs' column names: their models; when the models are named alike, with the revision (``@``) or
    else the fingerprint (``#``) that tells them apart, and ``(A)``/``(B)`` when nothing does."""
    a, b = (str(m.model or m.name or "run") for m in (meta_a, meta_b))
    if a != b:
        return a, b
    for field, mark in (("revision", "@"), ("fingerprint", "#")):
        x, y = _short(getattr(meta_a, field)), _short(getattr(meta_b, field))
        if x != y:
            return (f"{a}{mark}{x}" if x else a), (f"{b}{mark}{y}" if y else b)
    return f"{a} (A)", f"{b} (B)"


def not_compared(run_a: Run, run_b: Run, names: tuple[str, str] = ("A", "B")) -> list[tuple[str, list[str]]]:
    """``(why, claim ids)`` for every claim of either run that is not compared: in one run only, or skipped or
    errored in one run or both (grouped by the two decisions)."""
    a, b = run_a.results, run_b.results
    groups: dict[str, list[str]] = {f"only in {names[0]}": [c for c in a if c not in b],
                                    f"only in {names[1]}": [c for c in b if c not in a]}
    for cid, ra in a.items():
        rb = b.get(cid)
        if rb is not None and not (ra.decided and rb.decided):
            groups.setdefault(f"{ra.decision} in {names[0]}, {rb.decision} in {names[1]}", []).append(cid)
    return [(why, ids) for why, ids in groups.items() if ids]


def format_changes(changes: list[Change], name_a: str = "A", name_b: str = "B",
                   uncompared: list[tuple[str, list[str]]] = ()) -> str:
    """A plain-text table (flipped claims marked ``FLIPPED``), the count compared and flipped, and the claims
    not compared (``uncompared``, from :func:`not_compared`) counted and named."""
    rows = [["claim", f"{name_a}", f"{name_b}", "change B-A [95% Newcombe]", "decision", ""]]
    for ch in changes:
        rows.append([ch.claim_id, ch.text_a, ch.text_b, ch.diff_text, f"{ch.decision_a} -> {ch.decision_b}",
                     "FLIPPED" if ch.flipped else ""])
    lines = align_columns(rows) if changes else []
    flipped = sum(ch.flipped for ch in changes)
    skipped = sum(len(ids) for _, ids in uncompared)
    lines.append(f"{len(changes)} claims compared (decided in both runs), {flipped} flipped, {skipped} not compared")
    lines += [f"not compared: {why} ({len(ids)}): {', '.join(ids)}" for why, ids in uncompared]
    return "\n".join(lines)

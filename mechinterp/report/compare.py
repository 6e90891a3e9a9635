"""Compare two runs claim by claim (e.g. two model versions).

Only claims *decided* in both runs (holds, refuted, inconclusive) are compared: a claim skipped or
errored in either run has no result to compare, and counting it would make a check that checked
nothing look like a pass; those, and claims of one run only, are listed as not compared, and a claim
decided in A that B did not decide is *lost* (:func:`lost_claims`): a regression check that lost a
claim is no pass. The columns are named after the runs' models (:func:`run_names`), not their folders;
each run's cell shows its k/n (a relation: both arms' k/n) with its own 95 % interval.

The change of a claim between the runs and its interval (95 % unless ``--confidence`` says otherwise):

* a cell: ``rate_B - rate_A`` with Newcombe's hybrid score interval (method 10) of the two runs' counts;
* a relation: the change of its difference ``a - b``, ``d_B - d_A``. Each run's ``d`` has its own plain
  interval (the paired Tango score interval of that run's pairs, or Newcombe's for an unpaired relation),
  and the two runs are independent, so the change's interval is the MOVER of the two (Zou & Donner 2008,
  :func:`mechinterp.stats.mover`, the same square-and-add construction Newcombe's method 10 is for two
  rates), clipped to ``[-2, 2]``. The within-run pairing is used where it belongs (each run's interval);
  across runs nothing is paired, so no pairing across runs is assumed.

Runs of one seed draw the same tasks and noise, so their outcomes are positively correlated, if at all:
that narrows the true spread of the change, and the intervals for independent runs are then conservative,
never too narrow.

A claim is *flipped* when its decision differs and *changed* when its change's interval excludes 0 (a
significant change with or without a flip). Each interval is a claim's own, at 95 % unless asked otherwise:
over many claims whose true rates did not move, about one in twenty can be marked changed by chance; at
``1 - 0.05 / m`` over ``m`` claims (Bonferroni) the chance that any is marked by chance is at most 5 %.

The runs must agree on the settings that change what a claim measures (:data:`SAME_SETTINGS`: seed,
samples, judge policy, judge config, the judges' models, the data dir's task lists); the model (its
revision, fingerprint, dtype, device, sampling) is what is compared and may differ, as may the budget
(it bounds how many tasks run, not what a task measures), the git commit and the library versions.
:func:`settings_differences` names each difference; ``compare`` refuses unless asked.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from mechinterp.report.meta import RunMeta
from mechinterp.report.run import ClaimResult, Run
from mechinterp.report.tables import align_columns
from mechinterp.stats import CONFIDENCE, ArmsTally, Interval, PairTally, Tally, mover, newcombe, plain_interval


#: the run settings that change what a claim measures: runs that differ in one are not compared unless asked
SAME_SETTINGS = ("seed", "samples", "judge", "judge_config", "judge_model", "data_dir")


@dataclass
class Change:
    """One claim in both runs: decisions, each run's counts (one ``(k, n)`` per arm) and interval text, and the
    change B-A with its interval."""

    claim_id: str
    decision_a: str
    decision_b: str
    text_a: str
    text_b: str
    diff: float | None = None
    diff_low: float | None = None
    diff_high: float | None = None
    diff_text: str = ""
    counts_a: tuple[tuple[int, int], ...] = ()
    counts_b: tuple[tuple[int, int], ...] = ()

    @property
    def flipped(self) -> bool:
        """True when the two runs reach different decisions."""
        return self.decision_a != self.decision_b

    @property
    def changed(self) -> bool:
        """True when the change's interval excludes 0: a significant change, flipped or not."""
        return self.diff_low is not None and (self.diff_low > 0 or self.diff_high < 0)

    def record(self) -> dict:
        """The claim's entry in ``compare --json``: every field, ``flipped`` and ``changed``."""
        return {**asdict(self), "flipped": self.flipped, "changed": self.changed}


def _counts(r: ClaimResult) -> tuple[tuple[int, int], ...]:
    """A result's counts: ``(k, n)``, and a relation's arm b ``(k2, n2)`` after its arm a."""
    return ((r.k, r.n),) if r.a is None else ((r.k, r.n), (r.k2 or 0, r.n2 or 0))


def _difference(r: ClaimResult, confidence: float) -> Interval | None:
    """A relation's difference ``a - b`` in one run with that run's plain interval at ``confidence`` (from its
    pairs, or its two arms when unpaired; a result without them: its recorded 95 % one); ``None`` without data."""
    counts = (ArmsTally(Tally(r.k, r.n), Tally(r.k2 or 0, r.n2 or 0)) if r.unpaired else
              PairTally(**{c: r.pairs[c] for c in ("n11", "n10", "n01", "n00")}) if r.pairs else None)
    if counts is not None:
        ci = plain_interval(counts, confidence)
        return None if math.isnan(ci.estimate) else ci
    values = (r.rate, r.ci_low, r.ci_high)
    if confidence != CONFIDENCE or any(v is None or math.isnan(v) for v in values):
        return None
    return Interval(*values)


def change_interval(ra: ClaimResult, rb: ClaimResult, confidence: float = CONFIDENCE) -> Interval | None:
    """The change B-A of one claim with its interval (the module docstring says which): a cell's rate by
    Newcombe's interval, a relation's difference by the MOVER of the runs' intervals; ``None`` without data."""
    if ra.a is None:
        return newcombe(rb.k, rb.n, ra.k, ra.n, confidence) if ra.n and rb.n else None
    da, db = _difference(ra, confidence), _difference(rb, confidence)
    return None if da is None or db is None else mover(db, da, 2.0)


def compare_runs(run_a: Run, run_b: Run, confidence: float = CONFIDENCE) -> list[Change]:
    """Per-claim changes for the claims decided in both runs (not skipped or errored in either), in run A's order,
    each with its interval at ``confidence``."""
    changes = []
    for cid, ra in run_a.results.items():
        rb = run_b.results.get(cid)
        if rb is None or not (ra.decided and rb.decided):
            continue
        ch = Change(cid, ra.decision, rb.decision, ra.run_text, rb.run_text, counts_a=_counts(ra), counts_b=_counts(rb))
        ci = change_interval(ra, rb, confidence)
        if ci is not None:
            ch.diff, ch.diff_low, ch.diff_high, ch.diff_text = ci.estimate, ci.low, ci.high, ci.as_difference_text()
        changes.append(ch)
    return changes


def lost_claims(run_a: Run, run_b: Run) -> list[str]:
    """The claims run A decided that run B did not (errored, skipped or absent there), in A's order."""
    return [cid for cid, ra in run_a.results.items()
            if ra.decided and not (cid in run_b.results and run_b.results[cid].decided)]


def _setting(name: str, value: object) -> object:
    """What of a setting is compared: a data dir's task-list digest (not its path, which differs between
    machines), the judges' models per judge name (a run that used fewer judges uses no other ones)."""
    values = value if isinstance(value, list) else [value]  # a pooled run's differing values
    if name == "data_dir":
        digests = [v.get("task_lists") if isinstance(v, dict) else v for v in values]
        return digests[0] if len(digests) == 1 else digests
    if name == "judge_model":
        models: dict[str, set[str]] = {}
        for v in values:
            for entry in str(v).split(", ") if v else ():
                judge, _, model = entry.partition(":")
                models.setdefault(judge, set()).add(model)
        return models
    return value


def _show(value: object) -> str:
    """A setting's value as a refusal names it: ``unset`` or JSON."""
    return "unset" if value is None else json.dumps(value, sort_keys=True)


def settings_differences(meta_a: RunMeta, meta_b: RunMeta, names: tuple[str, str] = ("A", "B")) -> list[str]:
    """One line per :data:`SAME_SETTINGS` setting the two runs differ in, naming both values (an unset value
    differs from a set one: it cannot be checked); empty when they agree."""
    out = []
    for name in SAME_SETTINGS:
        raw_a, raw_b = getattr(meta_a, name), getattr(meta_b, name)
        a, b = _setting(name, raw_a), _setting(name, raw_b)
        if name == "judge_model":
            out += [f"judge model {j}: {_show(sorted(a[j]))} in {names[0]}, {_show(sorted(b[j]))} in {names[1]}"
                    for j in a if j in b and a[j] != b[j]]
        elif a != b:
            label = "data dir task lists" if name == "data_dir" else name.replace("_", " ")
            shown = (a, b) if name == "data_dir" else (raw_a, raw_b)
            out.append(f"{label}: {_show(shown[0])} in {names[0]}, {_show(shown[1])} in {names[1]}")
    return out


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


def _cell(counts: tuple[tuple[int, int], ...], text: str) -> str:
    """A run's column: its k/n (a relation: both arms', ``a vs b``) and its interval text."""
    return " vs ".join(f"{k}/{n}" for k, n in counts) + (f": {text}" if len(counts) > 1 else f" {text}")


def format_changes(changes: list[Change], name_a: str = "A", name_b: str = "B",
                   uncompared: list[tuple[str, list[str]]] = (), lost: list[str] = (),
                   confidence: float = CONFIDENCE) -> str:
    """A plain-text table (flipped claims marked ``FLIPPED``, significant changes ``CHANGED``), the counts
    compared, flipped and changed, the claims not compared (``uncompared``, from :func:`not_compared`) and the
    claims lost (decided in A only, from :func:`lost_claims`), counted and named. The changes' intervals are at
    ``confidence`` (the header says which); each run's own interval is its recorded 95 % one."""
    rows = [["claim", f"{name_a}", f"{name_b}", f"change B-A [{100 * confidence:g}%]", "decision", ""]]
    for ch in changes:
        marks = " ".join(m for m, on in (("FLIPPED", ch.flipped), ("CHANGED", ch.changed)) if on)
        rows.append([ch.claim_id, _cell(ch.counts_a, ch.text_a), _cell(ch.counts_b, ch.text_b), ch.diff_text,
                     f"{ch.decision_a} -> {ch.decision_b}", marks])
    lines = align_columns(rows) if changes else []
    flipped, changed = sum(ch.flipped for ch in changes), sum(ch.changed for ch in changes)
    skipped = sum(len(ids) for _, ids in uncompared)
    lines.append(f"{len(changes)} claims compared (decided in both runs), {flipped} flipped, {changed} changed, "
                 f"{skipped} not compared")
    lines += [f"not compared: {why} ({len(ids)}): {', '.join(ids)}" for why, ids in uncompared]
    if lost:
        lines.append(f"lost: decided in {name_a}, not decided in {name_b} ({len(lost)}): {', '.join(lost)}")
    if changes:
        lines.append("k/n per run (a relation: arm a vs arm b, then its difference a-b); change: a cell's rate by "
                     "Newcombe's interval, a relation's difference by the MOVER of the runs' intervals")
    return "\n".join(lines)

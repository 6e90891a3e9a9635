"""Run folders: what a claims run writes, and how results are pooled from verdicts.

A run lives in ``reports/<run>/``:

* ``run.json`` — the run's :class:`~mechinterp.report.meta.RunMeta`: model and revision,
  fingerprint, judge, seed, samples, budget, device, git commit, versions, timings,
  generations, judge tokens and cost, and the ``--mi-shard`` (``"I/N"``) of a shard's folder.
* ``verdicts.jsonl`` — one judged sample per line: ``claim_id, task_id, question_id,
  passed`` (``true``/``false``/``null`` = abstained), ``reason, judge, input_tokens,
  output_tokens, images`` (a list of
  ``{"label", "path"}`` with a PNG path relative to the run folder, or ``{"label", "png"}``
  with base64 PNG bytes). ``passed`` is the judge's raw answer; the claim's polarity is
  applied when pooling. A relation's own rows carry task ids ``<task>|a`` and ``<task>|b``
  (its two arms on one task; an unpaired relation's arms on their own tasks); without them a
  relation pairs its two cells' rows by task, and an unpaired one takes each cell's rows as its arm.
* ``results.json`` — per claim: ``k, n, abstained, rate, ci_low, ci_high`` (the plain 95 %
  Wilson; for a relation the paired score interval, or Newcombe's for an unpaired one),
  ``hypothesis, decision`` and the paper's value; relations add ``a, b, k2, n2`` and ``pairs`` (the
  2×2 table of the paired tasks) or ``unpaired: true`` (two independent arms). A suite run
  adds what its sequential test decided on: ``decision_low, decision_high,
  decision_confidence, worst_low, worst_high, looks, budget, power, design_point, note``.
* ``tests.json`` — a suite run's pytest view of each claim's test (kept out of ``results.json``, which
  compares equal across runs and shards): ``nodeid`` (pytest's test id), ``classname`` and ``name`` (what
  pytest's own ``--junitxml`` calls the test, so ``junit.xml`` names each claim alike), ``outcome`` (``passed``, ``failed``, ``error``, ``skipped``,
  ``inconclusive``: an inconclusive claim under ``--mi-strict`` is ``failed``), ``seconds`` (setup, call and
  teardown, as pytest's junit times a test), ``started`` (epoch seconds) and ``message``.

Every file is written atomically (temp file in the same folder + ``os.replace``).
"""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mechinterp.claims import Claim, claims_by_id, load_registry
from mechinterp.io import atomic_write
from mechinterp.judges.verdict import Verdict
from mechinterp.report.meta import RunMeta
from mechinterp.stats import ArmsTally, PairTally, Tally, plain_interval

RUN_FILE, VERDICTS_FILE, RESULTS_FILE, TESTS_FILE = "run.json", "verdicts.jsonl", "results.json", "tests.json"
#: the decisions of a claim that ran to no result: it raised (``error``) or was skipped
UNDECIDED = ("error", "skipped")


@dataclass
class VerdictRow:
    """One row of ``verdicts.jsonl``: a judge's :class:`~mechinterp.judges.Verdict` (the one verdict
    type: raw pass before the question's polarity, reason, ``"<judge>:<model>:<question id>"``,
    tokens) placed on one claim's task, with the bundle's thumbnails.

    The file keeps its flat layout (:meth:`to_dict`): ``claim_id, task_id, question_id, passed,
    reason, judge, images`` and the call's tokens.
    """

    claim_id: str
    task_id: str
    verdict: Verdict
    images: list[dict[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool | None:
        """The judge's raw answer (``None``: abstained)."""
        return self.verdict.passed

    @property
    def reason(self) -> str:
        """The judge's reason."""
        return self.verdict.reason

    @property
    def judge(self) -> str:
        """Who judged: ``"<judge>:<model>:<question id>"``."""
        return self.verdict.judge

    @property
    def question_id(self) -> str:
        """The question the verdict answers (the last part of :attr:`judge`)."""
        return self.verdict.question_id

    @classmethod
    def of(cls, claim_id: str, task_id: str, verdict: Verdict, images: list[dict[str, str]] | None = None) -> "VerdictRow":
        """The row of one judge verdict on one task (``verdict.cached`` is a per-read flag: dropped)."""
        return cls(claim_id, task_id, replace(verdict, cached=False), images or [])

    def to_dict(self) -> dict[str, Any]:
        """The flat ``verdicts.jsonl`` record."""
        v = self.verdict
        return dict(claim_id=self.claim_id, task_id=self.task_id, question_id=v.question_id, passed=v.passed,
                    reason=v.reason, judge=v.judge, input_tokens=v.input_tokens, output_tokens=v.output_tokens,
                    images=self.images)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VerdictRow":
        """Build from a ``verdicts.jsonl`` record; unknown or missing keys are an error (rows written
        before tokens were kept have none: 0; a ``judge`` without the question id gets it appended)."""
        required = {"claim_id", "task_id", "question_id", "passed"}
        valid = required | {"reason", "judge", "images", "input_tokens", "output_tokens"}
        unknown, missing = set(d) - valid, required - set(d)
        if unknown or missing:
            raise ValueError(f"verdict record: unknown fields {sorted(unknown)}, missing {sorted(missing)}; "
                             f"valid: {sorted(valid)}")
        qid, judge = str(d["question_id"] or ""), str(d.get("judge") or "")
        if qid and judge.rsplit(":", 1)[-1] != qid:
            judge = f"{judge}:{qid}" if judge else f"unknown:unknown:{qid}"
        verdict = Verdict(d["passed"], d.get("reason") or "", judge, int(d.get("input_tokens") or 0),
                          int(d.get("output_tokens") or 0))
        return cls(d["claim_id"], d["task_id"], verdict, list(d.get("images") or []))


@dataclass
class ClaimResult:
    """Pooled outcome of one claim in one run (the schema of ``results.json``)."""

    claim_id: str
    hypothesis: str
    decision: str
    k: int
    n: int
    rate: float | None
    ci_low: float
    ci_high: float
    abstained: int = 0
    paper_rate: float | None = None
    paper_text: str | None = None
    run_text: str = "n/a"
    k2: int | None = None
    n2: int | None = None
    a: str | None = None
    b: str | None = None
    sweep: dict[str, dict] | None = None  # sweep claims: per site k, n, low, high, decision
    transition: dict | None = None  # transition claims: claimed site and window, located span, per site names
    pairs: dict[str, int] | None = None  # relations: n11, n10, n01, n00, abstained of the paired tasks
    unpaired: bool = False  # a relation of two independent arms (k/n and k2/n2 on their own tasks)
    decision_low: float | None = None  # the interval the sequential decision was made on
    decision_high: float | None = None
    decision_confidence: float | None = None
    worst_low: float | None = None  # the deciding look's interval with every abstention against the claim
    worst_high: float | None = None
    looks: list[int] | None = None  # sizes of the looks evaluated
    budget: int | None = None  # tasks (pairs) the claim's plan allowed
    power: float | None = None  # P(holds) at the design point with that budget
    design_point: float | None = None  # the rate (relations: a - b) the budget is planned for
    note: str = ""

    @property
    def decided(self) -> bool:
        """True when the claim reached a decision (holds, refuted, inconclusive), not ``error``/``skipped``."""
        return self.decision not in UNDECIDED

    def record(self) -> dict[str, Any]:
        """The claim's ``results.json`` entry (non-finite numbers as ``null``): what a run wrote of it."""
        return {k: _finite(v) for k, v in asdict(self).items()}


@dataclass
class Run:
    """A loaded run folder."""

    path: Path
    metadata: RunMeta
    verdicts: list[VerdictRow]
    results: dict[str, ClaimResult]
    tests: dict[str, dict] = field(default_factory=dict)  # claim id -> pytest's view of its test (``tests.json``)


def git_commit() -> str | None:
    """The current git commit of the working directory (``None`` outside a repository)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_image_path(run_dir: Path, relative: str) -> Path | None:
    """The file an image's ``path`` names inside ``run_dir``, or ``None`` when it escapes the
    run folder or is not a file (so a run folder can never make a report read outside it)."""
    path = (run_dir / relative).resolve()
    if not path.is_relative_to(run_dir.resolve()) or not path.is_file():
        return None
    return path


def _outcomes(claim: Claim, verdicts: list[VerdictRow]) -> dict[str, bool | None]:
    """Polarity-applied outcome per task id."""
    return {v.task_id: None if v.passed is None else claim.success(v.passed) for v in verdicts}


def relation_arms(relation: Claim, index: dict[str, Claim], grouped: dict[str, list[VerdictRow]]
                  ) -> tuple[dict[str, bool | None], dict[str, bool | None]] | None:
    """A relation's two arms as task id -> polarity-applied outcome: its own ``|a``/``|b`` rows, else its
    two cells' rows; ``None`` when an arm has no rows."""
    own = grouped.get(relation.id)
    if own:
        arms: tuple[dict, dict] = ({}, {})
        for v in own:
            for i, (cell, suffix) in enumerate(((relation.a, "|a"), (relation.b, "|b"))):
                if v.task_id.endswith(suffix):
                    arms[i][v.task_id[:-len(suffix)]] = None if v.passed is None else index[cell].success(v.passed)
    elif relation.a in grouped and relation.b in grouped:
        arms = _outcomes(index[relation.a], grouped[relation.a]), _outcomes(index[relation.b], grouped[relation.b])
    else:
        return None
    return arms if all(arms) else None


def relation_pairs(relation: Claim, index: dict[str, Claim], grouped: dict[str, list[VerdictRow]]
                   ) -> list[tuple[bool | None, bool | None]] | None:
    """A paired relation's outcomes: its arms (:func:`relation_arms`) paired by task (in the first arm's
    order); ``None`` when there is nothing to pair."""
    arms = relation_arms(relation, index, grouped)
    if arms is None:
        return None
    xs, ys = arms
    pairs = [(xs[t], ys[t]) for t in xs if t in ys]
    return pairs or None


def relation_counts(relation: Claim, index: dict[str, Claim], grouped: dict[str, list[VerdictRow]]
                    ) -> tuple[PairTally | ArmsTally, Tally, Tally] | None:
    """A relation's tally (paired by task, or two independent arms) and each arm's :class:`Tally` on it;
    ``None`` without data."""
    if relation.unpaired:
        arms = relation_arms(relation, index, grouped)
        if arms is None:
            return None
        counts = ArmsTally.of((list(arms[0].values()), list(arms[1].values())))
        return counts, counts.a, counts.b
    pairs = relation_pairs(relation, index, grouped)
    if pairs is None:
        return None
    return PairTally.of(pairs), Tally.of(x for x, _ in pairs), Tally.of(y for _, y in pairs)


def evaluate(verdicts: list[VerdictRow], claims: list[Claim]) -> dict[str, ClaimResult]:
    """Pool verdicts per claim (polarity applied) and decide every claim that has data.

    Relations are decided when both of their cells have data. A duplicated
    ``(claim_id, task_id)`` is an error: one sample must count once.
    """
    index = claims_by_id(claims)
    grouped: dict[str, list[VerdictRow]] = {}
    seen: set[tuple[str, str]] = set()
    for v in verdicts:
        if v.claim_id not in index:
            raise ValueError(f"verdict for unknown claim {v.claim_id!r}; known: {', '.join(index)}")
        key = (v.claim_id, v.task_id)
        if key in seen:
            raise ValueError(f"duplicate verdict for claim {v.claim_id!r}, task {v.task_id!r}")
        seen.add(key)
        grouped.setdefault(v.claim_id, []).append(v)
    results: dict[str, ClaimResult] = {}
    for claim in claims:
        if claim.is_relation:
            found = relation_counts(claim, index, grouped)
            if found is None:
                continue
            counts, ta, tb = found
            decision, _ = claim.decide(counts)
            ci = plain_interval(counts)
            pa, pb = index[claim.a].paper, index[claim.b].paper
            paper = (pa.value - pb.value) / 100 if pa and pb else None
            res = ClaimResult(claim.id, str(claim.hypothesis), decision.value, ta.k, ta.n, None, ci.low, ci.high,
                              counts.abstained, paper, None if paper is None else f"{100 * paper:+.1f}",
                              k2=tb.k, n2=tb.n, a=claim.a, b=claim.b, unpaired=claim.unpaired,
                              pairs=None if claim.unpaired else
                              {k: getattr(counts, k) for k in ("n11", "n10", "n01", "n00", "abstained")})
            if counts.decided:
                res.rate, res.run_text = ci.estimate, ci.as_difference_text()
        elif claim.id in grouped:
            counts = Tally.of(_outcomes(claim, grouped[claim.id]).values())
            decision, _ = claim.decide(counts)
            ci = plain_interval(counts)
            p = claim.paper
            res = ClaimResult(claim.id, str(claim.hypothesis), decision.value, counts.k, counts.n, None, ci.low,
                              ci.high, counts.abstained, None if p is None else p.value / 100,
                              None if p is None else p.text)
            if counts.n:
                res.rate, res.run_text = ci.estimate, ci.as_percent_text()
        else:
            continue
        results[claim.id] = res
    return results


def sequential_fields(d: dict) -> dict[str, Any]:
    """The :class:`ClaimResult` fields a suite run's record of a sequential decision fills in."""
    ci, plan, worst = d.get("interval") or {}, d.get("plan") or {}, d.get("worst_case") or {}
    return {"decision": d["decision"], "decision_low": ci.get("low"), "decision_high": ci.get("high"),
            "decision_confidence": ci.get("confidence"), "worst_low": worst.get("low"), "worst_high": worst.get("high"),
            "looks": d.get("looks"), "budget": plan.get("budget"),
            "power": plan.get("power"), "design_point": plan.get("point"), "note": d.get("note") or ""}


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write_run(run_dir: str | Path, metadata: RunMeta, verdicts: list[VerdictRow],
              registry: str | Path | list | None = None, decisions: dict[str, dict] | None = None,
              outcomes: dict[str, dict] | None = None) -> Run:
    """Write ``run.json``, ``verdicts.jsonl`` and ``results.json`` into ``run_dir``.

    ``git_commit`` and ``registry`` are filled in when missing; results are pooled with the
    registry at ``registry`` (default: the paper's). ``decisions`` (claim id → ``decision``
    and optional ``sweep``) replace the pooled decision of those claims: a suite run records
    what each claim's sequential test decided, not what the pooled interval says. ``outcomes``
    (claim id → pytest's ``outcome`` and ``message``) add every collected claim that reached no
    decision: decision ``error`` (it raised) or ``skipped`` (with the reason as its note), so no
    claim that ran is missing from ``results.json`` and ``junit.xml``; they are kept as ``tests.json``.
    """
    run_dir = Path(run_dir)
    claims = load_registry(registry)
    results = evaluate(verdicts, claims)
    index = claims_by_id(claims)
    for cid, d in (decisions or {}).items():
        if cid not in results and cid in index:  # decided without verdicts: a claim its cap made undecidable
            results[cid] = ClaimResult(cid, str(index[cid].hypothesis), d["decision"], 0, 0, None, 0.0, 1.0)
        if cid in results:
            results[cid] = replace(results[cid], **sequential_fields(d), sweep=d.get("sweep") or results[cid].sweep,
                                   transition=d.get("transition") or results[cid].transition)
    for cid, o in (outcomes or {}).items():
        if cid in results:
            continue
        decision = "skipped" if o.get("outcome") == "skipped" else "error" if o.get("outcome") in ("failed", "error") else None
        if decision is not None:
            hyp = str(index[cid].hypothesis) if cid in index else ""
            results[cid] = ClaimResult(cid, hyp, decision, 0, 0, None, 0.0, 1.0, note=o.get("message") or "")
    return save_run(run_dir, metadata, verdicts, results, registry, outcomes)


def save_run(run_dir: str | Path, metadata: RunMeta, verdicts: list[VerdictRow], results: dict[str, ClaimResult],
             registry: str | Path | list | None = None, tests: dict[str, dict] | None = None) -> Run:
    """Write a run folder's ``run.json``, ``verdicts.jsonl`` and ``results.json`` with ``results`` as given
    (``write_run`` pools them from the verdicts; ``merge`` keeps each claim's entry as its own run wrote it),
    and ``tests.json`` when ``tests`` (pytest's view of each claim's test) is given.

    ``git_commit`` and ``registry`` are filled in when missing.
    """
    run_dir = Path(run_dir)
    meta = replace(metadata)
    if not meta.git_commit:
        meta.git_commit = git_commit()
    if not meta.registry and registry:
        meta.registry = [str(r) for r in registry] if isinstance(registry, (list, tuple)) else [str(registry)]
    atomic_write(run_dir / VERDICTS_FILE, "".join(json.dumps(v.to_dict(), ensure_ascii=False) + "\n" for v in verdicts))
    rows = {cid: r.record() for cid, r in results.items()}
    atomic_write(run_dir / RESULTS_FILE, json.dumps(rows, indent=1, ensure_ascii=False))
    atomic_write(run_dir / RUN_FILE, json.dumps(meta.to_dict(), indent=1, ensure_ascii=False, default=str))
    if tests:
        atomic_write(run_dir / TESTS_FILE, json.dumps(tests, indent=1, ensure_ascii=False))
    return Run(run_dir, meta, list(verdicts), results, dict(tests or {}))


def load_run(run_dir: str | Path, registry: str | Path | None = None) -> Run:
    """Read a run folder; results are taken from ``results.json`` or pooled from verdicts."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {RUN_FILE} is missing")
    meta = RunMeta.from_dict(json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8")), str(run_dir / RUN_FILE))
    vpath = run_dir / VERDICTS_FILE
    lines = vpath.read_text(encoding="utf-8").splitlines() if vpath.is_file() else []
    verdicts = [VerdictRow.from_dict(json.loads(line)) for line in lines if line.strip()]
    rpath = run_dir / RESULTS_FILE
    if rpath.is_file():
        raw = json.loads(rpath.read_text(encoding="utf-8"))
        results = {cid: ClaimResult(**{k: (math.nan if v is None and k in ("ci_low", "ci_high") else v)
                                       for k, v in row.items()}) for cid, row in raw.items()}
    else:
        results = evaluate(verdicts, load_registry(registry or meta.registry or None))
    tpath = run_dir / TESTS_FILE
    tests = json.loads(tpath.read_text(encoding="utf-8")) if tpath.is_file() else {}
    return Run(run_dir, meta, verdicts, results, tests)


def decision_counts(results: dict[str, ClaimResult]) -> Counter:
    """How many claims hold, are refuted, or are inconclusive."""
    return Counter(r.decision for r in results.values())

"""Run folders: what a claims run writes, and how results are pooled from verdicts.

A run lives in ``reports/<run>/``:

* ``run.json`` — the run's :class:`~mechinterp.report.meta.RunMeta`: model and revision,
  fingerprint, judge, seed, samples, budget, device, git commit, versions, timings,
  generations, judge tokens and cost.
* ``verdicts.jsonl`` — one judged sample per line: ``claim_id, task_id, question_id,
  passed`` (``true``/``false``/``null`` = abstained), ``reason, judge, images`` (a list of
  ``{"label", "path"}`` with a PNG path relative to the run folder, or ``{"label", "png"}``
  with base64 PNG bytes). ``passed`` is the judge's raw answer; the claim's polarity is
  applied when pooling.
* ``results.json`` — per claim: ``k, n, abstained, rate, ci_low, ci_high, hypothesis,
  decision`` and the paper's value; relations add ``a, b, k2, n2``.

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
from mechinterp.report.meta import RunMeta

RUN_FILE, VERDICTS_FILE, RESULTS_FILE = "run.json", "verdicts.jsonl", "results.json"


@dataclass
class Verdict:
    """One judged sample (the judge's raw pass, before the claim's polarity)."""

    claim_id: str
    task_id: str
    question_id: str | None
    passed: bool | None
    reason: str = ""
    judge: str = ""
    images: list[dict[str, str]] = field(default_factory=list)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Verdict":
        """Build from a ``verdicts.jsonl`` row; unknown keys are an error."""
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown verdict fields {sorted(unknown)}; valid: {sorted(cls.__dataclass_fields__)}")
        return cls(**d)


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


@dataclass
class Run:
    """A loaded run folder."""

    path: Path
    metadata: RunMeta
    verdicts: list[Verdict]
    results: dict[str, ClaimResult]


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


def _counts(claim: Claim, verdicts: list[Verdict]) -> tuple[int, int, int]:
    k = n = abstained = 0
    for v in verdicts:
        if v.passed is None:
            abstained += 1
        else:
            n += 1
            k += claim.success(v.passed)
    return k, n, abstained


def evaluate(verdicts: list[Verdict], claims: list[Claim]) -> dict[str, ClaimResult]:
    """Pool verdicts per claim (polarity applied) and decide every claim that has data.

    Relations are decided when both of their cells have data. A duplicated
    ``(claim_id, task_id)`` is an error: one sample must count once.
    """
    index = claims_by_id(claims)
    grouped: dict[str, list[Verdict]] = {}
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
    counts = {cid: _counts(index[cid], vs) for cid, vs in grouped.items()}
    for claim in claims:
        if claim.is_relation:
            if claim.a not in counts or claim.b not in counts:
                continue
            (k, n, ab), (k2, n2, ab2) = counts[claim.a], counts[claim.b]
            decision, ci = claim.decide(k, n, k2, n2)
            pa, pb = index[claim.a].paper, index[claim.b].paper
            paper = (pa.value - pb.value) / 100 if pa and pb else None
            res = ClaimResult(claim.id, str(claim.hypothesis), decision.value, k, n, None, ci.low, ci.high,
                              ab + ab2, paper, None if paper is None else f"{100 * paper:+.1f}",
                              k2=k2, n2=n2, a=claim.a, b=claim.b)
            if n and n2:
                res.rate, res.run_text = ci.estimate, ci.as_difference_text()
        elif claim.id in counts:
            k, n, ab = counts[claim.id]
            decision, ci = claim.decide(k, n)
            p = claim.paper
            res = ClaimResult(claim.id, str(claim.hypothesis), decision.value, k, n, None, ci.low, ci.high, ab,
                              None if p is None else p.value / 100, None if p is None else p.text)
            if n:
                res.rate, res.run_text = ci.estimate, ci.as_percent_text()
        else:
            continue
        results[claim.id] = res
    return results


def _finite(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write_run(run_dir: str | Path, metadata: RunMeta, verdicts: list[Verdict],
              registry: str | Path | list | None = None, decisions: dict[str, dict] | None = None) -> Run:
    """Write ``run.json``, ``verdicts.jsonl`` and ``results.json`` into ``run_dir``.

    ``git_commit`` and ``registry`` are filled in when missing; results are pooled with the
    registry at ``registry`` (default: the paper's). ``decisions`` (claim id → ``decision``
    and optional ``sweep``) replace the pooled decision of those claims: a suite run records
    what each claim's sequential test decided, not what the pooled interval says.
    """
    run_dir = Path(run_dir)
    claims = load_registry(registry)
    results = evaluate(verdicts, claims)
    for cid, d in (decisions or {}).items():
        if cid in results:
            results[cid] = replace(results[cid], decision=d["decision"], sweep=d.get("sweep") or results[cid].sweep)
    meta = replace(metadata)
    if not meta.git_commit:
        meta.git_commit = git_commit()
    if not meta.registry and registry:
        meta.registry = [str(r) for r in registry] if isinstance(registry, (list, tuple)) else [str(registry)]
    atomic_write(run_dir / VERDICTS_FILE, "".join(json.dumps(asdict(v), ensure_ascii=False) + "\n" for v in verdicts))
    rows = {cid: {k: _finite(v) for k, v in asdict(r).items()} for cid, r in results.items()}
    atomic_write(run_dir / RESULTS_FILE, json.dumps(rows, indent=1, ensure_ascii=False))
    atomic_write(run_dir / RUN_FILE, json.dumps(meta.to_dict(), indent=1, ensure_ascii=False, default=str))
    return Run(run_dir, meta, list(verdicts), results)


def load_run(run_dir: str | Path, registry: str | Path | None = None) -> Run:
    """Read a run folder; results are taken from ``results.json`` or pooled from verdicts."""
    run_dir = Path(run_dir)
    if not (run_dir / RUN_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run folder: {RUN_FILE} is missing")
    meta = RunMeta.from_dict(json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8")), str(run_dir / RUN_FILE))
    vpath = run_dir / VERDICTS_FILE
    lines = vpath.read_text(encoding="utf-8").splitlines() if vpath.is_file() else []
    verdicts = [Verdict.from_dict(json.loads(line)) for line in lines if line.strip()]
    rpath = run_dir / RESULTS_FILE
    if rpath.is_file():
        raw = json.loads(rpath.read_text(encoding="utf-8"))
        results = {cid: ClaimResult(**{k: (math.nan if v is None and k in ("ci_low", "ci_high") else v)
                                       for k, v in row.items()}) for cid, row in raw.items()}
    else:
        results = evaluate(verdicts, load_registry(registry or meta.registry or None))
    return Run(run_dir, meta, verdicts, results)


def decision_counts(results: dict[str, ClaimResult]) -> Counter:
    """How many claims hold, are refuted, or are inconclusive."""
    return Counter(r.decision for r in results.values())

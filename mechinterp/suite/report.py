"""Turn a finished (possibly multi-worker) run folder into ``run.json``, ``junit.xml`` and ``report.html``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from dataclasses import replace

from mechinterp.report.meta import RunMeta
from mechinterp.suite.runfolder import recorded_shard
from mechinterp.suite.session import PARTS, merge_outcomes, merge_parts


def _one_run(metas: list[RunMeta]) -> list[RunMeta]:
    """The workers of one run may have loaded different models without ``--mi-model`` (each claim
    family's default organism): name the run's models as their union on every worker, and keep a
    revision only when one model ran (the fingerprints are listed, as pooling keeps them)."""
    names = sorted({n for m in metas if m.model for n in m.model.split(", ")})
    if len(names) <= 1:
        return metas
    joined = ", ".join(names)
    return [replace(m, model=joined, revision=None) for m in metas]


def _merged_metadata(run_dir: Path) -> RunMeta:
    """The workers' metadata pooled into the run's (``RunMeta.pool``: sums, or the workers' values)."""
    metas = []
    for p in sorted((run_dir / PARTS).glob("*.meta.json")):
        try:
            metas.append(RunMeta.from_dict(json.loads(p.read_text()), str(p)))
        except (OSError, json.JSONDecodeError):
            continue  # a worker killed while writing: its verdict rows still count
    return RunMeta.pool(_one_run(metas), name=run_dir.name) if metas else RunMeta(name=run_dir.name)


def finish_run(run_dir: Path) -> dict:
    """Pool the workers' verdicts into the run folder and write both reports.

    The decision of each claim is its sequential test's (what the claim test asserted), with
    the interval it was made on; the interval shown beside it is the plain 95 % Wilson (paired
    score interval for a relation) of all its answered verdicts. ``run.json`` names the run's
    ``--mi-shard`` (from the folder's settings record), so ``merge`` can check a sharded run is whole.
    """
    from mechinterp.report import write_report, write_run

    rows, decisions = merge_parts(run_dir)
    meta = replace(_merged_metadata(run_dir), shard=recorded_shard(run_dir))
    registry = meta.registry or None
    run = write_run(run_dir, meta, rows, registry, decisions, merge_outcomes(run_dir))
    junit, html = write_report(run, registry)
    return {"run_dir": str(run_dir), "junit": str(junit), "html": str(html),
            "decisions": dict(Counter(r.decision for r in run.results.values())),
            "damaged": list(meta.cache_damage)}

"""Turn a finished (possibly multi-worker) run folder into ``run.json``, ``junit.xml`` and ``report.html``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mechinterp.suite.session import PARTS, merge_parts


def _merged_metadata(run_dir: Path) -> dict:
    metas = []
    for p in sorted((run_dir / PARTS).glob("*.meta.json")):
        try:
            metas.append(json.loads(p.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    if not metas:
        return {}
    meta = dict(metas[0])
    meta["workers"] = len(metas)
    meta["judge_cost_usd"] = round(sum(m.get("judge_cost_usd", 0.0) for m in metas), 4)
    files = {f for m in metas for f in (m.get("registry") or [])}
    meta["registry"] = sorted(files, key=lambda f: (not f.endswith("registry.toml"), f)) or None
    gens = [m.get("generations", {}) for m in metas]
    meta["generations"] = {k: sum(g.get(k, 0) for g in gens) for k in ("generated", "cache_hits")}
    return meta


def finish_run(run_dir: Path) -> dict:
    """Pool the workers' verdicts into the run folder and write both reports.

    The decision of each claim is its sequential test's (what the claim test asserted), with
    the interval it was made on; the interval shown beside it is the plain 95 % Wilson (paired
    score interval for a relation) of all its answered verdicts.
    """
    from mechinterp.report import write_report, write_run

    rows, decisions = merge_parts(run_dir)
    meta = _merged_metadata(run_dir)
    registry = meta.get("registry")
    run = write_run(run_dir, meta, rows, registry, decisions)
    junit, html = write_report(run, registry)
    return {"run_dir": str(run_dir), "junit": str(junit), "html": str(html),
            "decisions": dict(Counter(r.decision for r in run.results.values()))}

"""Combine several run folders into one: the shards of a sharded run, or runs of disjoint claims.

A claim is decided once, by its own sequential test, in the run that ran it (``--mi-shard`` keeps a
relation with its cells); deciding it again on verdicts pooled over its sites would lose the sweep,
the transition, the looks, the deciding interval, the budget and the power, and could reach another
decision than the one its test made (a transition claim's crossing is not a pooled rate). So the
merged ``results.json`` keeps each claim's entry exactly as its run wrote it, and the verdict rows
are pooled (never the rates) for the report's pages: a sample judged in two runs counts once, the
first run's row is kept, and duplicates and conflicting duplicates are counted in the metadata,
which is pooled too (``RunMeta.pool``: sums, or the list of the runs' values). Refused, with one
error naming the runs: runs of different models; a claim decided differently in two runs (two
separate runs of the same claim are two results, not one: compare them instead); a sharded run with
a shard missing, a shard given twice, or shards of different splits (``I/N`` with another ``N``).
A claim decided in one run and skipped or errored in another keeps its decision.
"""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

from mechinterp.claims import load_registry
from mechinterp.report.meta import RunMeta
from mechinterp.report.run import ClaimResult, Run, VerdictRow, load_run, run_image_path, save_run


def _embed_images(v: VerdictRow, src: Path) -> VerdictRow:
    images = []
    for img in v.images:
        img = dict(img)
        if "path" in img:
            source = run_image_path(src, img.pop("path"))
            if source is not None:
                img["png"] = base64.b64encode(source.read_bytes()).decode("ascii")
        images.append(img)
    return replace(v, images=images)


def _shard(run: Run) -> tuple[int, int] | None:
    """The ``(I, N)`` of a run folder that holds one shard (``run.json``'s ``shard``); ``None``: a whole run."""
    text = run.metadata.shard
    if text is None:
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        i = n = 0
    if not 1 <= i <= n:
        raise ValueError(f"{run.path}: run.json's shard {text!r} is not I/N with 1 <= I <= N")
    return i, n


def check_shards(runs: list[Run]) -> None:
    """``ValueError`` unless the sharded runs among ``runs`` are every shard ``1/N .. N/N`` of one split,
    each once (runs that are no shard may join them): a merge of a sharded run with a shard missing
    would publish a report that silently lacks that shard's claims."""
    shards = {run.path: s for run in runs if (s := _shard(run)) is not None}
    if not shards:
        return
    splits = {n for _, n in shards.values()}
    if len(splits) > 1:
        raise ValueError("cannot merge shards of different splits: "
                         + ", ".join(f"{path} is shard {i}/{n}" for path, (i, n) in shards.items()))
    (n,) = splits
    seen: dict[int, Path] = {}
    for path, (i, _) in shards.items():
        if i in seen:
            raise ValueError(f"shard {i}/{n} given twice: {seen[i]} and {path}")
        seen[i] = path
    missing = [f"{i}/{n}" for i in range(1, n + 1) if i not in seen]
    if missing:
        raise ValueError(f"missing shard{'s' if len(missing) > 1 else ''} {', '.join(missing)} of the {n}: given "
                         + ", ".join(f"{i}/{n} ({seen[i]})" for i in sorted(seen)))


def kept_results(runs: list[Run], registry: str | Path | list | None = None) -> dict[str, ClaimResult]:
    """Each claim's result as the run that decided it wrote it, in the registry's order (claims that reached
    no decision anywhere after them, as their first run wrote them); ``ValueError`` naming the claim and
    both runs when two runs decided one claim differently."""
    decided: dict[str, tuple[ClaimResult, Path]] = {}
    undecided: dict[str, ClaimResult] = {}
    for run in runs:
        for cid, res in run.results.items():
            if not res.decided:
                undecided.setdefault(cid, res)
                continue
            if cid not in decided:
                decided[cid] = res, run.path
                continue
            first, where = decided[cid]
            if json.dumps(first.record(), sort_keys=True) != json.dumps(res.record(), sort_keys=True):
                raise ValueError(f"claim {cid!r} was decided in two runs with different results: {where} "
                                 f"({first.decision}, {first.run_text}, k={first.k}, n={first.n}) and {run.path} "
                                 f"({res.decision}, {res.run_text}, k={res.k}, n={res.n}); a claim's result is its "
                                 "own run's: merge runs of disjoint claims (or shards), compare runs of the same claims")
    order = {c.id: i for i, c in enumerate(load_registry(registry))}
    def place(cid: str) -> int:
        return order.get(cid, len(order))

    out = {cid: decided[cid][0] for cid in sorted(decided, key=place)}
    for cid in sorted(undecided, key=place):
        out.setdefault(cid, undecided[cid])
    return out


def merge_runs(run_dirs: list[str | Path], out_dir: str | Path, registry: str | Path | None = None) -> Run:
    """Combine ``run_dirs`` into a new run at ``out_dir``: each claim's result as its own run decided it
    (complete: intervals, worst case, looks, budget, power, sweep, transition, note) and every run's verdict
    rows pooled; refused as the module docstring says.

    Images given as paths are embedded (base64) so the merged folder stands alone.
    """
    if not run_dirs:
        raise ValueError("merge needs at least one run folder")
    runs = [load_run(d, registry) for d in run_dirs]
    check_shards(runs)
    meta = RunMeta.pool([r.metadata for r in runs], name="merged", merged_from=[str(r.path) for r in runs], shard=None)
    registry = registry or meta.registry or None
    results = kept_results(runs, registry)
    pooled: dict[tuple[str, str], VerdictRow] = {}
    duplicates = conflicts = 0
    for run in runs:
        for v in run.verdicts:
            key = (v.claim_id, v.task_id)
            if key in pooled:
                duplicates += 1
                conflicts += pooled[key].passed != v.passed
                continue
            pooled[key] = _embed_images(v, run.path)
    meta.duplicates, meta.conflicts = duplicates, conflicts
    # each claim's test as the run whose result is kept ran it (its pytest name, outcome and time)
    tests = {cid: run.tests[cid] for run in runs for cid in run.tests if cid in results and results[cid] is run.results.get(cid)}
    return save_run(out_dir, meta, list(pooled.values()), results, registry, tests)

"""Pool several run folders' verdicts (not their rates) into one run folder.

Sharded or resumed runs each hold part of the samples; pooling the verdicts and deciding
again is the only honest way to combine them (averaging rates would weight shards
wrongly and intervals cannot be added). A sample judged in two runs counts once: the
first run's verdict is kept and conflicting duplicates are counted in the metadata, which is
pooled too (``RunMeta.pool``: sums, or the list of the runs' values). Runs of different models
cannot be pooled.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from pathlib import Path

from mechinterp.report.meta import RunMeta
from mechinterp.report.run import Run, VerdictRow, load_run, run_image_path, write_run


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


def merge_runs(run_dirs: list[str | Path], out_dir: str | Path, registry: str | Path | None = None) -> Run:
    """Pool the verdicts of ``run_dirs`` into a new run at ``out_dir`` and decide again.

    Images given as paths are embedded (base64) so the merged folder stands alone.
    """
    if not run_dirs:
        raise ValueError("merge needs at least one run folder")
    runs = [load_run(d, registry) for d in run_dirs]
    meta = RunMeta.pool([r.metadata for r in runs], name="merged", merged_from=[str(r.path) for r in runs])
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
    # claims a shard ran without reaching a decision (they raised, or were skipped) stay listed
    undecided = {cid: {"outcome": r.decision, "message": r.note} for run in runs for cid, r in run.results.items()
                 if r.decision in ("error", "skipped")}
    return write_run(out_dir, meta, list(pooled.values()), registry, outcomes=undecided)

"""Readers for the authors' task lists (``<bucket>.jsonl``) and pair lists (``<name>.txt``).

One JSON object per line with at least ``task_id``, ``instruction``, ``noise_seed``,
``height``, ``width`` and a reference: ``source_image_path`` (a file) or
``real_ref_dir`` + ``real_ref_name`` (a file stem). Reference paths are relative to the
data directory. A pair list has one ``<source_task_id>\\t<target_task_id>`` per line.
Every malformed line raises ``TaskDataError`` naming the file, the line and the fix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path

from mechinterp.tasks.manifest import resolve_reference
from mechinterp.tasks.records import Pair, Task, TaskDataError

#: the authors' bucket name -> our family name
BUCKETS: dict[str, str] = {
    "solid_color": "color",
    "style": "style",
    "manual": "style_real",
    "dreambench_humans": "human",
    "dreambench_humans_shared": "human_shared",
    "add": "add",
    "remove": "remove",
}

REQUIRED_FIELDS = ("task_id", "instruction", "noise_seed", "height", "width")
_REPLICATE_SUFFIX = re.compile(r"_s\d+$")


def _first_existing(data_dir: Path, what: str, candidates: list[Path]) -> Path:
    """The first candidate that is a file, or an error naming ``what`` and every place looked."""
    for path in candidates:
        if path.is_file():
            return path
    looked = " and ".join(repr(str(p)) for p in candidates)
    raise TaskDataError(f"{what} not found in data dir {str(data_dir)!r}; looked for {looked}")


def find_bucket_file(data_dir: Path, bucket: str) -> Path:
    """Where a bucket's jsonl lives in a data dir: ``tasks/<bucket>.jsonl`` or the
    authors' repository layout ``data/tasks/<bucket>/tasks.jsonl``."""
    return _first_existing(data_dir, f"task list for bucket {bucket!r}",
                           [data_dir / "tasks" / f"{bucket}.jsonl", data_dir / "data" / "tasks" / bucket / "tasks.jsonl"])


def find_pairs_file(data_dir: Path, name: str) -> Path:
    """Where a pair list lives: ``pairs/<name>.txt`` or the authors' repository layout
    ``experiments/i2i_to_i2i_patching/pairs/<name>.txt``."""
    return _first_existing(data_dir, f"pair list {name!r}", [
        data_dir / "pairs" / f"{name}.txt",
        data_dir / "experiments" / "i2i_to_i2i_patching" / "pairs" / f"{name}.txt",
    ])


def task_lists_digest(data_dir: Path) -> str:
    """SHA-256 over every task list and pair list the readers would take from ``data_dir`` (by bucket or
    list name and content; ``"none"`` for one that is missing): what tells one data dir's tasks from
    another's, cheaply (the lists are small; the images are pinned by the manifest's digests)."""
    from mechinterp.io import file_sha256
    from mechinterp.vocabulary import PAIR_FAMILIES

    wanted = [(f"tasks/{b}", lambda b=b: find_bucket_file(data_dir, b)) for b in BUCKETS]
    wanted += [(f"pairs/{f.pairs_file}", lambda f=f: find_pairs_file(data_dir, f.pairs_file))
               for f in PAIR_FAMILIES.values()]
    h = hashlib.sha256()
    for name, find in wanted:
        try:
            h.update(f"{name}\0{file_sha256(find())}\0".encode())
        except TaskDataError:
            h.update(f"{name}\0none\0".encode())
    return h.hexdigest()


def _stratum(bucket: str, row: dict) -> str:
    """The sampling stratum of an authors' row: person, scene category or concept."""
    meta = row.get("metadata") or {}
    if bucket == "dreambench_humans" and "subject_index" in meta:
        return f"person {int(meta['subject_index']):02d}"
    if bucket == "dreambench_humans_shared" and "human_idx" in meta:
        return f"person {int(meta['human_idx']):02d}"
    if "sun397_category" in meta:
        return str(meta["sun397_category"])
    return _REPLICATE_SUFFIX.sub("", row["task_id"])


def parse_task_row(row: object, bucket: str, data_dir: Path, where: str) -> Task:
    """One authors' row as a ``Task`` (``where`` is ``file:line`` for error messages)."""
    if bucket not in BUCKETS:
        raise TaskDataError(f"unknown bucket {bucket!r}; valid buckets: {', '.join(BUCKETS)}")
    if not isinstance(row, dict):
        raise TaskDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [name for name in REQUIRED_FIELDS if row.get(name) is None]
    if missing:
        raise TaskDataError(
            f"{where}: missing field {missing[0]!r}" + (f" (and {missing[1:]})" if missing[1:] else "")
            + f"; every task line needs {', '.join(REQUIRED_FIELDS)} and a reference"
        )
    named = not row.get("source_image_path")
    if not named:
        rel = str(row["source_image_path"])
    elif row.get("real_ref_name") and row.get("real_ref_dir"):
        rel = f"{row['real_ref_dir']}/{row['real_ref_name']}"
    else:
        raise TaskDataError(
            f"{where}: task {row['task_id']!r} has no reference; set 'source_image_path' "
            "or both 'real_ref_dir' and 'real_ref_name'"
        )
    try:
        return Task(
            task_id=row["task_id"],
            family=BUCKETS[bucket],
            instruction=row["instruction"],
            reference=resolve_reference(data_dir, rel),
            seed=row["noise_seed"],
            height=row["height"],
            width=row["width"],
            stratum=_stratum(bucket, row),
            metadata={**(row.get("metadata") or {}), "bucket": bucket, "reference_path": rel},
            named_reference=named,
        )
    except TaskDataError as err:
        raise TaskDataError(f"{where}: {err}") from err


def read_tasks_jsonl(path: Path, bucket: str, data_dir: Path) -> list[Task]:
    """All tasks of one authors' jsonl, in file order; duplicate ids are an error."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise TaskDataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from err
            task = parse_task_row(row, bucket, data_dir, where)
            if task.task_id in seen:
                raise TaskDataError(f"{where}: duplicate task id {task.task_id!r} (first on line {seen[task.task_id]})")
            seen[task.task_id] = lineno
            tasks.append(task)
    return tasks


def read_pairs_txt(path: Path, sources: Mapping[str, Task], targets: Mapping[str, Task], families: str) -> list[Pair]:
    """All pairs of an authors' pair list, resolved against the given task tables.

    ``families`` names where sources and targets were looked up, for the error message
    when a line names a task that does not exist.
    """
    pairs: list[Pair] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 2 or not all(fields):
                raise TaskDataError(f"{path}:{lineno}: expected '<source_task_id>\\t<target_task_id>', got {line.rstrip()!r}")
            for task_id, table, role in ((fields[0], sources, "source"), (fields[1], targets, "target")):
                if task_id not in table:
                    raise TaskDataError(f"{path}:{lineno}: {role} task {task_id!r} does not exist in {families}")
            try:
                pairs.append(Pair(sources[fields[0]], targets[fields[1]]))
            except TaskDataError as err:
                raise TaskDataError(f"{path}:{lineno}: {err}") from err
    return pairs

"""The registry of task families and pair families, and the two loaders over it.

``FAMILIES`` says for each family how many tasks the paper ran and what it needs: the
colour family is generated in code, every other family is read from the authors' task
lists in a user's data directory (``--data-dir`` or ``$MECHINTERP_DATA_DIR``; layout in
docs/data-dir.md) and its reference images are checked against the shipped manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from mechinterp.tasks.authors import find_bucket_file, find_pairs_file, read_pairs_txt, read_tasks_jsonl
from mechinterp.tasks.color import color_pairs, color_tasks
from mechinterp.tasks.glyph import glyph_pairs, glyph_tasks
from mechinterp.tasks.manifest import verify_references
from mechinterp.tasks.records import Pair, Task, TaskDataError
from mechinterp.vocabulary import DATA_DIR_ENV, PAIR_FAMILIES
from mechinterp.vocabulary import TASK_FAMILIES as FAMILIES


def _lookup(table: dict, name: object, kind: str):
    """The registry entry for ``name``, or an error listing the valid names."""
    if name not in table:
        raise TaskDataError(f"unknown {kind} {name!r}; valid {kind} names: {', '.join(table)}")
    return table[name]


def data_dir_or_env(data_dir: str | Path | None = None) -> Path | None:
    """The one data-dir accessor: ``data_dir`` when given, else ``$MECHINTERP_DATA_DIR``, else ``None``
    (``~`` expanded; existence is the caller's to check, with its own message)."""
    value = data_dir if data_dir not in (None, "") else os.environ.get(DATA_DIR_ENV)
    return Path(value).expanduser() if value else None


def resolve_data_dir(data_dir: str | Path | None, family: str) -> Path:
    """The data directory to read ``family`` from: the argument, else ``$MECHINTERP_DATA_DIR``."""
    value = data_dir_or_env(data_dir)
    if not value:
        raise TaskDataError(
            f"family {family!r} needs a data directory ({FAMILIES[family].needs}); pass data_dir= / "
            f"--data-dir or set ${DATA_DIR_ENV}. Only the in-project families "
            f"({', '.join(n for n, i in FAMILIES.items() if i.needs == 'in-project')}) need none."
        )
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise TaskDataError(f"data dir {str(path)!r} for family {family!r} does not exist or is not a directory")
    return path


#: the families generated in code (no buckets, no data dir)
_IN_PROJECT_TASKS: dict[str, Callable[[], list[Task]]] = {"color": color_tasks, "glyph": glyph_tasks}


def load_family(name: str, data_dir: str | Path | None = None, verify: bool = True) -> list[Task]:
    """All tasks of a family, in the authors' order.

    ``color`` and ``glyph`` are generated in code and ignore ``data_dir``. Other families are read from
    the data directory; with ``verify`` (the default) every reference image is checked
    to exist and match the manifest before any task is returned, so a long run cannot
    fail half-way on a missing or wrong file.
    """
    info = _lookup(FAMILIES, name, "family")
    if not info.buckets:
        return _IN_PROJECT_TASKS[name]()
    root = resolve_data_dir(data_dir, name)
    tasks: list[Task] = []
    for bucket in info.buckets:
        tasks.extend(read_tasks_jsonl(find_bucket_file(root, bucket), bucket, root))
    if verify:
        verify_references(tasks, root, name)
    return tasks


_IN_PROJECT_PAIRS: dict[str, Callable[[], list[Pair]]] = {"color": color_pairs, "glyph": glyph_pairs}


def load_pairs(name: str, data_dir: str | Path | None = None, verify: bool = True) -> list[Pair]:
    """All I2I→I2I patching pairs of a pair family, in the authors' order.

    Colour pairs are generated in code; style and human pairs are read from the authors'
    pair list in the data directory and resolved against the families they pair.
    """
    info = _lookup(PAIR_FAMILIES, name, "pair family")
    if name in _IN_PROJECT_PAIRS:
        return _IN_PROJECT_PAIRS[name]()
    sources = {t.task_id: t for t in load_family(info.source_family, data_dir, verify)}
    targets = sources if info.target_family == info.source_family else {
        t.task_id: t for t in load_family(info.target_family, data_dir, verify)
    }
    where = " and ".join(dict.fromkeys(f"family {f!r}" for f in (info.source_family, info.target_family)))
    path = find_pairs_file(resolve_data_dir(data_dir, info.source_family), info.pairs_file)
    return read_pairs_txt(path, sources, targets, where)

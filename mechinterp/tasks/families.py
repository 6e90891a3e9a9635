"""The registry of task families and pair families, and the two loaders over it.

``FAMILIES`` says for each family how many tasks the paper ran and what it needs: the
colour family is generated in code, every other family is read from the authors' task
lists in a user's data directory (``--data-dir`` or ``$MECHINTERP_DATA_DIR``; layout in
docs/data-dir.md) and its reference images are checked against the shipped manifest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mechinterp.tasks.authors import find_bucket_file, find_pairs_file, read_pairs_txt, read_tasks_jsonl
from mechinterp.tasks.color import color_pairs, color_tasks
from mechinterp.tasks.manifest import verify_references
from mechinterp.tasks.records import Pair, Task, TaskDataError

DATA_DIR_ENV = "MECHINTERP_DATA_DIR"


@dataclass(frozen=True)
class FamilyInfo:
    """What a task family is, how big the paper's version is, and what it needs."""

    name: str
    size: int
    description: str
    strata: str
    buckets: tuple[str, ...] = ()
    needs: str = "in-project"


@dataclass(frozen=True)
class PairFamilyInfo:
    """An I2I→I2I pair family: which task families its sources and targets come from."""

    name: str
    size: int
    description: str
    source_family: str
    target_family: str
    pairs_file: str
    needs: str = "in-project"


_STYLE_NEEDS = "data dir: tasks/{bucket}.jsonl + data/style_references/{sub}/ (18 images, manifest)"
FAMILIES: dict[str, FamilyInfo] = {
    info.name: info
    for info in (
        FamilyInfo("color", 320, "8 solid colours x 8 objects x 5 seeds", "colour x object"),
        FamilyInfo("style", 450, "18 illustrated subjects x 5 instructions x 5 seeds", "subject x prompt",
                   ("style",), _STYLE_NEEDS.format(bucket="style", sub="fictional")),
        FamilyInfo("style_real", 450, "the real-photo twins of the style tasks", "subject x prompt",
                   ("manual",), _STYLE_NEEDS.format(bucket="manual", sub="real")),
        # the paper's human lens and knockout cells are the 90 individual tasks (n = 90); the
        # 50 shared-instruction tasks are the people that the I2I->I2I pairs swap
        FamilyInfo("human", 90, "10 DreamBench++ people x 9 individual instructions", "person",
                   ("dreambench_humans",),
                   "data dir: tasks/dreambench_humans.jsonl + data/tasks/customize/images/ (10 images, manifest)"),
        FamilyInfo("human_shared", 50, "10 DreamBench++ people x 5 shared instructions (the patching pairs' tasks)",
                   "person", ("dreambench_humans_shared",),
                   "data dir: tasks/dreambench_humans_shared.jsonl + data/tasks/customize/images/ (10 images, manifest)"),
        FamilyInfo("add", 789, "SUN397 object addition, 2 images per category", "scene category",
                   ("add",), "data dir: tasks/add.jsonl + data/tasks/add/images/ (SUN397)"),
        FamilyInfo("remove", 726, "SUN397 object removal, 2 images per category", "scene category",
                   ("remove",), "data dir: tasks/remove.jsonl + data/tasks/remove/images/ (SUN397)"),
    )
}

PAIR_FAMILIES: dict[str, PairFamilyInfo] = {
    info.name: info
    for info in (
        PairFamilyInfo("color", 448, "8x7 ordered colour pairs x 8 objects, different seeds", "color", "color",
                       "single9_4step_color"),
        PairFamilyInfo("style", 450, "illustration source -> real-photo target, same subject and prompt",
                       "style", "style_real", "mm7_4step_style_to_real", "data dir: pairs/mm7_4step_style_to_real.txt + style, style_real"),
        PairFamilyInfo("human", 450, "person i -> person j on a shared instruction (10x9x5)", "human_shared",
                       "human_shared", "mm7_4step_dreambench_humans",
                       "data dir: pairs/mm7_4step_dreambench_humans.txt + human_shared"),
    )
}


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


def load_family(name: str, data_dir: str | Path | None = None, verify: bool = True) -> list[Task]:
    """All tasks of a family, in the authors' order.

    ``color`` is generated in code and ignores ``data_dir``. Other families are read from
    the data directory; with ``verify`` (the default) every reference image is checked
    to exist and match the manifest before any task is returned, so a long run cannot
    fail half-way on a missing or wrong file.
    """
    info = _lookup(FAMILIES, name, "family")
    if not info.buckets:
        return color_tasks()
    root = resolve_data_dir(data_dir, name)
    tasks: list[Task] = []
    for bucket in info.buckets:
        tasks.extend(read_tasks_jsonl(find_bucket_file(root, bucket), bucket, root))
    if verify:
        verify_references(tasks, root, name)
    return tasks


_IN_PROJECT_PAIRS: dict[str, Callable[[], list[Pair]]] = {"color": color_pairs}


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

"""Deterministic, stratified, prefix-stable subsets of a task family.

``stratified_order`` arranges all tasks so that every prefix keeps each stratum's share
within one task of its proportional quota (|count - n·size/N| < 1); ``sample`` takes a
prefix. Growing ``n`` therefore only adds tasks, which sequential stopping needs: a run
of n tasks is the start of a run of 2n tasks, and its cached results stay valid.

The order is an earliest-deadline schedule: the j-th task of a stratum of size m may
come once the prefix has passed position j·N/m and must come before (j+1)·N/m + 1;
among the strata whose next task is due, the earliest deadline goes first, ties broken
by a seeded shuffle of the strata. Within a stratum the order is a seeded shuffle.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from mechinterp.tasks.families import load_family
from mechinterp.tasks.records import Pair, Task, TaskDataError

T = TypeVar("T", Task, Pair)


def _rng(seed: int, salt: str) -> random.Random:
    """A generator seeded from (seed, salt); string seeds hash with SHA-512, so it is stable."""
    return random.Random(f"{seed}\x1f{salt}")


def _ident(item: Task | Pair) -> str:
    return item.pair_id if isinstance(item, Pair) else item.task_id


def stratified_order(items: Sequence[T], seed: int) -> list[T]:
    """All tasks (or pairs) in a seeded order whose every prefix is proportionally stratified."""
    strata: dict[str, list[T]] = {}
    for item in sorted(items, key=_ident):
        strata.setdefault(item.stratum, []).append(item)
    if len({_ident(t) for t in items}) != len(items):
        raise TaskDataError("cannot sample: the ids of the items are not unique")
    for key, members in strata.items():
        _rng(seed, key).shuffle(members)
    keys = sorted(strata)
    _rng(seed, "strata").shuffle(keys)
    rank = {key: i for i, key in enumerate(keys)}
    total = len(items)
    taken = dict.fromkeys(keys, 0)
    order: list[T] = []
    for position in range(1, total + 1):
        # stratum s may place its next task j at this position once j*N < position*m_s
        due = [k for k in keys if taken[k] < len(strata[k]) and taken[k] * total < position * len(strata[k])]
        best = min(due, key=lambda k: ((taken[k] + 1) / len(strata[k]), rank[k]))
        order.append(strata[best][taken[best]])
        taken[best] += 1
    return order


def sample(family_or_tasks: str | Sequence[T], n: int, seed: int = 0, data_dir: str | Path | None = None) -> list[T]:
    """The first ``n`` tasks of the family's stratified order for ``seed``.

    ``family_or_tasks`` is a family name (loaded with ``load_family(name, data_dir)``)
    or a list of tasks or of pairs. ``sample(f, n, s)`` is always a prefix of
    ``sample(f, n + k, s)``.
    """
    tasks = load_family(family_or_tasks, data_dir) if isinstance(family_or_tasks, str) else list(family_or_tasks)
    if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= len(tasks):
        raise TaskDataError(f"n must be an integer in 0..{len(tasks)} (the family's size), got {n!r}")
    return stratified_order(tasks, seed)[:n]

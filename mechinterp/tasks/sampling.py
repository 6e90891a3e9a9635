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

import heapq
import random
from collections.abc import Mapping, Sequence
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


def stratified_ids(strata: Mapping[str, str], seed: int) -> list[str]:
    """The one sampling order: ids (``id -> stratum``) in a seeded order whose every prefix is
    proportionally stratified (the module's earliest-deadline schedule).

    The runner draws a claim's tasks in this order (:func:`stratified_order`), and the replays of
    the authors' released verdicts draw their rows in it too (``mechinterp.report.power``), so a
    replay simulates the draws the runner makes. With one stratum it is a seeded shuffle. It runs
    in O(N log S) (two heaps: strata waiting for their next slot, strata due), so thousands of
    replays of a 450-task family stay cheap.
    """
    members: dict[str, list[str]] = {}
    for ident in sorted(strata):
        members.setdefault(strata[ident], []).append(ident)
    for key, ids in members.items():
        _rng(seed, key).shuffle(ids)
    keys = sorted(members)
    _rng(seed, "strata").shuffle(keys)
    total = len(strata)
    # stratum k may place its j-th task (0-based) at 1-based position p once j*N < p*m_k, i.e. from
    # position j*N // m_k + 1; among the due strata the smallest (j+1)/m_k goes first, then the rank
    waiting = [(0 * total // len(members[k]) + 1, rank, k) for rank, k in enumerate(keys)]
    heapq.heapify(waiting)
    due: list[tuple[float, int, str]] = []
    taken = dict.fromkeys(keys, 0)
    order: list[str] = []
    for position in range(1, total + 1):
        while waiting and waiting[0][0] <= position:
            _, rank, k = heapq.heappop(waiting)
            heapq.heappush(due, ((taken[k] + 1) / len(members[k]), rank, k))
        _, rank, k = heapq.heappop(due)
        order.append(members[k][taken[k]])
        taken[k] += 1
        m = len(members[k])
        if taken[k] < m:
            heapq.heappush(waiting, (taken[k] * total // m + 1, rank, k))
    return order


def stratified_order(items: Sequence[T], seed: int) -> list[T]:
    """All tasks (or pairs) in the seeded order of :func:`stratified_ids` over their strata."""
    by_id = {_ident(item): item for item in items}
    if len(by_id) != len(items):
        raise TaskDataError("cannot sample: the ids of the items are not unique")
    return [by_id[i] for i in stratified_ids({i: item.stratum for i, item in by_id.items()}, seed)]


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

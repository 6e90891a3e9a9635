"""Stratified, prefix-stable sampling: properties over arbitrary strata, and on the real families."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import random

from mechinterp.tasks import Task, TaskDataError, color_pairs, color_tasks, sample, stratified_ids, stratified_order


def _tasks(sizes: list[int]) -> list[Task]:
    """Tasks in ``len(sizes)`` strata, stratum i holding sizes[i] tasks."""
    return [
        Task(task_id=f"t{i}_{j}", family="test", instruction="x", reference=Path("ref.png"), seed=j, stratum=f"s{i}")
        for i, size in enumerate(sizes) for j in range(size)
    ]


strata_sizes = st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=12)


def _quadratic_schedule(strata: dict[str, str], seed: int) -> list[str]:
    """The schedule as the module's docstring states it, position by position over every stratum (the
    first implementation's O(N * S) loop): the oracle for the heap version."""
    members: dict[str, list[str]] = {}
    for ident in sorted(strata):
        members.setdefault(strata[ident], []).append(ident)
    for key, ids in members.items():
        random.Random(f"{seed}\x1f{key}").shuffle(ids)
    keys = sorted(members)
    random.Random(f"{seed}\x1fstrata").shuffle(keys)
    rank = {k: i for i, k in enumerate(keys)}
    total, taken, order = len(strata), dict.fromkeys(keys, 0), []
    for position in range(1, total + 1):
        due = [k for k in keys if taken[k] < len(members[k]) and taken[k] * total < position * len(members[k])]
        best = min(due, key=lambda k: ((taken[k] + 1) / len(members[k]), rank[k]))
        order.append(members[best][taken[best]])
        taken[best] += 1
    return order


@given(sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30), seed=st.integers(0, 2**32))
def test_the_heap_schedule_is_the_stated_schedule(sizes, seed):
    strata = {t.task_id: t.stratum for t in _tasks(sizes)}
    assert stratified_ids(strata, seed) == _quadratic_schedule(strata, seed)


def test_the_schedule_on_the_colour_family_is_the_stated_schedule():
    for items in (color_tasks(), color_pairs()):
        strata = {getattr(i, "pair_id", None) or i.task_id: i.stratum for i in items}
        for seed in (0, 1, 7):
            assert stratified_ids(strata, seed) == _quadratic_schedule(strata, seed)


@given(sizes=strata_sizes, seed=st.integers(0, 2**32), data=st.data())
def test_sampling_is_prefix_stable(sizes, seed, data):
    tasks = _tasks(sizes)
    n = data.draw(st.integers(0, len(tasks)))
    k = data.draw(st.integers(0, len(tasks) - n))
    small, large = sample(tasks, n, seed), sample(tasks, n + k, seed)
    assert large[:n] == small
    assert len({t.task_id for t in large}) == n + k  # no repeats


@given(sizes=strata_sizes, seed=st.integers(0, 2**32))
def test_every_prefix_keeps_each_stratum_within_one_of_its_quota(sizes, seed):
    tasks = _tasks(sizes)
    total = len(tasks)
    order = stratified_order(tasks, seed)
    assert sorted(t.task_id for t in order) == sorted(t.task_id for t in tasks)
    counts: Counter[str] = Counter()
    for n, task in enumerate(order, 1):
        counts[task.stratum] += 1
        for i, size in enumerate(sizes):
            # |count - n * size / N| < 1, in integers
            assert abs(counts[f"s{i}"] * total - n * size) < total


@given(seed=st.integers(0, 2**32), shuffle_seed=st.randoms(use_true_random=False))
def test_sampling_is_deterministic_and_independent_of_input_order(seed, shuffle_seed):
    tasks = _tasks([3, 5, 2])
    shuffled = list(tasks)
    shuffle_seed.shuffle(shuffled)
    assert sample(tasks, 7, seed) == sample(shuffled, 7, seed)


def test_colour_prefix_covers_every_colour_object_combination_once():
    first = sample("color", 64, seed=11)
    assert Counter(t.stratum for t in first) == Counter({s: 1 for s in {t.stratum for t in color_tasks()}})
    assert sample("color", 128, seed=11)[:64] == first
    assert sample("color", 64, seed=12) != first  # the seed matters


def test_pairs_sample_too():
    pairs = color_pairs()
    chosen = sample(pairs, 10, seed=0)
    assert len({p.pair_id for p in chosen}) == 10 and sample(pairs, 20, seed=0)[:10] == chosen


@pytest.mark.parametrize("n", [-1, 321, 2.5, True])
def test_bad_sample_size_names_the_valid_range(n):
    with pytest.raises(TaskDataError, match=r"n must be an integer in 0\.\.320"):
        sample("color", n, seed=0)


def test_duplicate_ids_cannot_be_sampled():
    tasks = _tasks([2])
    with pytest.raises(TaskDataError, match="not unique"):
        sample(tasks + tasks[:1], 1, seed=0)

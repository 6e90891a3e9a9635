"""``--mi-shard I/N``: the selected claims split into N shards of about equal planned generations.

A shard runs whole *claim groups*: a claim with every claim a relation among them names, so a relation
runs in the shard that computes its cells and no cell runs twice. A family's other claims may go to other
shards (each shard then makes the clean baselines its own tasks need: one per task, few beside the
intervened runs), so one family's long sweeps do not make one shard the whole job; within a shard, xdist
still keeps a family on one worker (:mod:`mechinterp.suite.scheduling`).

A group costs its *planned generations*: for each cell claim it runs, the most tasks (pairs) anything in
the group may draw on it — the cell's own budget times its sweep's sites, or a relation's budget (per
arm), whichever is larger — with budgets from :func:`mechinterp.claims.budget.claim_plan` on the paper's
task families (capped by ``--samples``) and the paper's sites. Sequential stopping usually stops short of
the budget; the budget is what a shard must be ready to pay, and it is known before any model or data
is loaded. Groups go largest first onto the lightest shard (ties: the lower shard), so the split is the
same on every machine and in every xdist worker, given the same selection (``-m``, ``-k``, files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mechinterp.claims import Claim
from mechinterp.claims.budget import claim_plan, paper_sweep_sites
from mechinterp.report.power import paper_tasks
from mechinterp.vocabulary import TASK_FAMILIES

#: tasks a family of no known size (a user's own) is planned with: the paper's largest family
UNKNOWN_FAMILY_TASKS = max(f.size for f in TASK_FAMILIES.values())


def claim_demand(claim: Claim, index: Mapping[str, Claim], samples: int | None) -> dict[str, int]:
    """The tasks (pairs) a claim may draw on each cell it runs: ``{cell id: tasks}`` — a cell's budget
    times its sites; a relation's budget (per arm) on each of its two cells; ``{}`` for a relation naming
    a claim not in ``index`` (it skips without generating)."""
    if claim.is_relation and not (claim.a in index and claim.b in index):
        return {}
    sites = paper_sweep_sites(claim)
    plan = claim_plan(claim, dict(index), paper_tasks(claim, index, UNKNOWN_FAMILY_TASKS), samples, sites=sites)
    if claim.is_relation:
        return {claim.a: plan.budget, claim.b: plan.budget}
    return {claim.id: plan.budget * sites}


def claim_groups(members: Iterable[tuple[str, Claim | None]]) -> dict[str, list[str]]:
    """``(key, claim)`` per selected item → ``{group label: [keys]}``: a relation and its cells (by claim
    id, selected or not) end in one group, labelled by its least key; an item without a claim is its own."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(x: str, y: str) -> None:
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)

    keys = []
    for key, claim in members:
        keys.append(key)
        find(f"key:{key}")
        if claim is not None:
            union(f"key:{key}", f"claim:{claim.id}")
            if claim.is_relation:
                union(f"claim:{claim.id}", f"claim:{claim.a}")
                union(f"claim:{claim.id}", f"claim:{claim.b}")
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(find(f"key:{key}"), []).append(key)
    return {min(ks): ks for ks in groups.values()}


def group_cost(claims: Iterable[Claim], index: Mapping[str, Claim], samples: int | None) -> int:
    """A group's planned generations: per cell, the most any of ``claims`` (with the cells the relations run
    of their own accord) may draw on it, summed over the cells."""
    demand: dict[str, int] = {}
    todo, seen = list(claims), set()
    while todo:
        claim = todo.pop()
        if claim.id in seen:
            continue
        seen.add(claim.id)
        for cell, tasks in claim_demand(claim, index, samples).items():
            demand[cell] = max(demand.get(cell, 0), tasks)
        if claim.is_relation:  # a relation runs its cells whether or not they were selected
            todo += [index[c] for c in (claim.a, claim.b) if c in index]
    return sum(demand.values())


def balance(costs: Mapping[str, int], n: int) -> dict[str, int]:
    """``{group: shard}`` (1-based): largest group first (ties by name) onto the shard with the least
    planned cost so far (ties: the lower shard). Deterministic; the fullest shard exceeds the mean by at
    most the largest group (the last group it took went onto the then lightest shard)."""
    if n < 1:
        raise ValueError(f"shard count must be >= 1, got {n!r}")
    load = [0] * n
    out = {}
    for group in sorted(costs, key=lambda g: (-costs[g], g)):
        shard = min(range(n), key=lambda s: (load[s], s))
        load[shard] += costs[group]
        out[group] = shard + 1
    return out


def split(members: list[tuple[str, Claim | None]], index: Mapping[str, Claim], samples: int | None,
          n: int) -> tuple[dict[str, int], list[int]]:
    """``(key, claim)`` per selected claim item → ``({key: shard}, planned generations per shard)``:
    :func:`claim_groups` costed by :func:`group_cost` and spread by :func:`balance`; ``index``: every
    claim a relation may name (the registry and the collected claims)."""
    claim_of = dict(members)
    groups = claim_groups(members)
    costs = {label: group_cost([c for k in keys if (c := claim_of[k]) is not None], index, samples)
             for label, keys in groups.items()}
    shard = balance(costs, n)
    return {k: shard[label] for label, keys in groups.items() for k in keys}, shard_loads(costs, shard, n)


def shard_loads(costs: Mapping[str, int], assignment: Mapping[str, int], n: int) -> list[int]:
    """Each shard's planned generations under ``assignment`` (for reports and tests)."""
    load = [0] * n
    for group, shard in assignment.items():
        load[shard - 1] += costs[group]
    return load

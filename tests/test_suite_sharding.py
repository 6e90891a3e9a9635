"""``--mi-shard``'s split (issue 30): claim groups that keep relations with their cells, costed by planned
generations, spread largest first onto the lightest shard."""

from __future__ import annotations

import pytest

from mechinterp.claims import claims_by_id, load_registry
from mechinterp.claims.budget import PAPER_SITES, claim_plan, paper_sweep_sites
from mechinterp.report.power import paper_tasks
from mechinterp.suite.sharding import balance, claim_demand, claim_groups, group_cost, split

REGISTRY = claims_by_id(load_registry())


def test_largest_first_onto_the_lightest_shard_ties_to_the_lower_shard():
    """5, 4, 3, 3 over two shards: 5→1, 4→2, 3→2 (4 < 5), then 3→1 (5 < 7); equal costs go by name."""
    assert balance({"d": 3, "a": 5, "c": 3, "b": 4}, 2) == {"a": 1, "b": 2, "c": 2, "d": 1}
    assert balance({"y": 1, "x": 1}, 3) == {"x": 1, "y": 2}  # a shard may get nothing
    with pytest.raises(ValueError, match="shard count must be >= 1, got 0"):
        balance({"a": 1}, 0)


def test_relations_join_their_cells_selected_or_not():
    """Two relations sharing a cell that is not selected form one group with the cells that are."""
    ko = ["rel[ko.text>ko.image]-color", "knockout[ref->text]-color", "knockout[ref->image]-color"]
    groups = claim_groups([(cid, REGISTRY[cid]) for cid in [*ko, "lens[single.9]-color", "knockout[ref->text]-style"]]
                          + [("no-claim", None)])
    assert sorted(map(sorted, groups.values())) == sorted([sorted(ko), ["lens[single.9]-color"], ["knockout[ref->text]-style"],
                                              ["no-claim"]])
    a, b = REGISTRY["rel[lens.color>lens.style]-cross"], REGISTRY["rel[lens.color>lens.human]-cross"]
    assert a.a == b.a  # both relate lens[single.9]-color, not selected here
    assert list(claim_groups([(a.id, a), (b.id, b)]).values()) == [[a.id, b.id]]


def test_a_groups_cost_is_each_cells_largest_demand():
    """A cell costs its budget times its sweep's sites on the paper's model; a relation demands its budget on
    each cell, and a cell both its own claim and a relation draw on costs the larger, once."""
    sweep = REGISTRY["refdrop[embed+:crosses.single.9]-color"]
    assert paper_sweep_sites(sweep) == len(PAPER_SITES)  # a cutoff sweep from embed to the last block
    plan = claim_plan(sweep, REGISTRY, paper_tasks(sweep, REGISTRY), None, sites=len(PAPER_SITES))
    assert claim_demand(sweep, REGISTRY, None) == {sweep.id: plan.budget * len(PAPER_SITES)}
    rel = REGISTRY["rel[ko.text>ko.image]-color"]
    cells = [REGISTRY[rel.a], REGISTRY[rel.b]]
    own = {c.id: claim_demand(c, REGISTRY, None)[c.id] for c in cells}
    budget = claim_plan(rel, REGISTRY, paper_tasks(rel, REGISTRY), None).budget
    assert claim_demand(rel, REGISTRY, None) == {rel.a: budget, rel.b: budget}
    expected = sum(max(own[c.id], budget) for c in cells)
    assert group_cost([rel, *cells], REGISTRY, None) == group_cost([rel], REGISTRY, None) == expected
    assert group_cost([rel], REGISTRY, 6) < expected  # --samples caps every budget


def test_the_split_is_every_claim_once_and_the_loads_add_up():
    """The whole registry over 4 shards: each claim in one shard, a relation with both its cells, the
    loads the shards' own group costs, and the same split from a reversed collection."""
    members = [(cid, c) for cid, c in sorted(REGISTRY.items())]
    shard, loads = split(members, REGISTRY, None, 4)
    assert sorted(shard) == sorted(REGISTRY) and set(shard.values()) == {1, 2, 3, 4}
    for cid, c in REGISTRY.items():
        if c.is_relation:
            assert shard[c.a] == shard[c.b] == shard[cid], cid
    assert loads == [group_cost([REGISTRY[cid] for cid, s in shard.items() if s == i], REGISTRY, None)
                     for i in (1, 2, 3, 4)]
    assert split(members[::-1], REGISTRY, None, 4) == (shard, loads)

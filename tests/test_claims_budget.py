"""A claim's budget: design points, caps, planned power, and the error at every threshold the suite uses."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mechinterp.claims import PaperValue, claims_by_id, load_registry
from mechinterp.claims.budget import (
    claim_plan, design_point, discordant, halfway, max_budget, paper_rate, relation_point, relation_rates,
)
from mechinterp.report.power import default_plan, paper_tasks
from mechinterp.stats import ALPHA, POWER, Hypothesis
from mechinterp.stats.paired import paired_error
from mechinterp.stats.unpaired import unpaired_error
from mechinterp.stats.plan import plan_rate, smallest_decidable

CLAIMS = load_registry()
INDEX = claims_by_id(CLAIMS)
H = Hypothesis.parse


def test_the_design_point_is_the_paper_rate_nearer_the_threshold_or_its_wilson_centre():
    empty = INDEX["patching[double.7:text.padding]-human"]  # 0/450 (rate <= 0.05): the centre, not an exact 0
    assert paper_rate(empty) == pytest.approx((0 + 1.96 ** 2 / 2) / (450 + 1.96 ** 2), rel=1e-3)
    style = INDEX["patching[double.7:text.padding]-style"]  # 369/450 against 0.75: the centre is nearer
    assert 0.75 < paper_rate(style) < 0.82 and design_point(style) == (paper_rate(style), "paper")


def test_claims_without_a_usable_paper_rate_plan_for_halfway_or_a_stated_effect():
    assert halfway(H("rate >= 0.5")) == 0.75 and halfway(H("rate <= 0.05")) == 0.025
    assert halfway(H("a - b > 0")) == 0.5 and halfway(H("|a - b| <= 0.15")) == 0.0
    content = INDEX["lens[double.7:text.content]-style"]  # no printed rate
    assert design_point(content) == (0.025, "default")
    wrong_side = replace(INDEX["knockout[ref->text]-human"], paper=PaperValue(55.0, 5, 5, 90))  # outside "< 0.5"
    assert design_point(wrong_side)[1] == "default"
    assert design_point(replace(content, power_at=0.01)) == (0.01, "stated")


def test_a_relation_plans_for_its_arms_joined_least_favourably():
    assert discordant(0.9, 0.8) == pytest.approx((0.2, 0.1)) and discordant(0.3, 0.2) == (0.3, 0.2)
    rel = INDEX["rel[patch.padding~patch.all]-color"]
    q10, q01, source = relation_point(rel, INDEX)
    ra, rb = design_point(INDEX[rel.a])[0], design_point(INDEX[rel.b])[0]
    assert source == "arms" and q10 - q01 == pytest.approx(ra - rb) and q01 == pytest.approx(rb - (ra + rb - 1))
    assert relation_point(INDEX["rel[lens.padding>lens.content]-style"], INDEX)[2] == "default"  # Fig. 5 prints no rate


def test_an_unpaired_relation_plans_for_its_arms_rates_per_arm():
    """Table 1's colour > human: planned at the two lens cells' design rates, its budget per arm capped by
    the smaller paper cell (90 human tasks), and its plan an unpaired design."""
    rel = INDEX["rel[lens.color>lens.human]-cross"]
    pa, pb, source = relation_rates(rel, INDEX)
    assert source == "arms" and (pa, pb) == (design_point(INDEX[rel.a])[0], design_point(INDEX[rel.b])[0])
    assert max_budget(rel, INDEX, 320, None) == 90
    plan = claim_plan(rel, INDEX, 320)
    assert plan.design.unpaired and plan.design.kind == "unpaired" and plan.q == (pa, pb)
    assert plan.reached and plan.power == plan.design.operating(pa=pa, pb=pb)
    assert plan.point == pytest.approx(pa - pb) and "points" in plan.describe()


def test_the_budget_is_capped_by_the_tasks_the_paper_cell_and_samples():
    cell = INDEX["knockout[ref->text]-human"]  # paper n = 90 of the 140-task human family
    assert max_budget(cell, INDEX, 140, None) == 90 and max_budget(cell, INDEX, 60, None) == 60
    assert max_budget(cell, INDEX, 140, 32) == 32


def test_the_plan_is_the_smallest_budget_with_the_target_power():
    plan = plan_rate(H("rate >= 0.75"), 0.82, 450)
    assert plan.reached and plan.power.p_holds >= POWER
    assert plan_rate(H("rate >= 0.75"), 0.82, plan.budget - 1).power.p_holds < POWER
    short = plan_rate(H("rate >= 0.75"), 0.82, 200)
    assert short.budget == 200 and not short.reached and "capped at 200" in short.describe()


def test_low_rate_claims_are_passable_at_their_default_budget_and_undecidable_under_a_small_cap():
    for cid in ("patching[double.7:text]-human", "patching[single.9:text.content]-color",
                "patching[double.7:text.padding]-human", "patching[double.7:text.content]-human"):
        plan = default_plan(INDEX[cid], INDEX)
        assert plan.decidable and plan.reached, (cid, plan.describe())
    need = smallest_decidable(H("rate <= 0.05"), 1)
    assert claim_plan(INDEX["patching[single.9:text.content]-color"], INDEX, 448, cap=need - 1).decidable is False
    assert claim_plan(INDEX["patching[single.9:text.content]-color"], INDEX, 448, cap=need).decidable is True
    assert 70 <= need <= 80  # 0 of n at 2.5 %: 0.95 ** 72 < 0.025


def test_a_sweep_splits_alpha_and_power_over_its_sites():
    sweep = INDEX["refdrop[single.9+]-color"]
    one, six = claim_plan(sweep, INDEX, 320), claim_plan(sweep, INDEX, 320, sites=6)
    assert six.design.alpha == pytest.approx(ALPHA / 6) and six.power.p_holds ** 6 >= POWER
    assert six.budget > one.budget


def test_power_at_is_validated_when_the_registry_is_read(tmp_path):
    from mechinterp.claims import load_registry as load

    base = ('schema = 1\n[[claim]]\nid = "knockout[ref->text.x]-color"\nstatement = "s"\nfamily = "color"\n'
            'tasks = ["color"]\nexperiment = { name = "knockout", source = "ref", dest = "text", blocks = "all" }\n'
            'question = "ko_text.color"\nmarkers = ["color", "knockout"]\nhypothesis = "rate >= 0.5"\n')
    good = tmp_path / "good.claims.toml"
    good.write_text(base + "power_at = 0.7\n")
    assert load(good)[0].power_at == 0.7
    for bad, match in (("0.4", "must satisfy its hypothesis"), ("1.5", r"in \[0, 1\]"), ('"x"', "must be a number")):
        path = tmp_path / f"bad{len(bad)}.claims.toml"
        path.write_text(base + f"power_at = {bad}\n")
        with pytest.raises(ValueError, match=match):
            load(path)


@pytest.fixture(scope="module")
def suite_plans():
    """Every claim's plan as a suite run on the paper's families makes it (sweeps: per site, two sites)."""
    plans = {}
    for c in CLAIMS:
        sites = 2 if c.experiment is not None and c.experiment.get("sweep") else 1
        plans[c.id] = claim_plan(c, INDEX, paper_tasks(c, INDEX), sites=sites)
    return plans


def test_every_cell_and_sweep_site_keeps_each_wrong_decision_within_alpha_at_its_threshold(suite_plans):
    """Exact, for the budgets, looks and alpha the suite runs (rate <= 0.05 claims included)."""
    for cid, plan in suite_plans.items():
        if plan.design.relation:
            continue
        oc = plan.design.operating(plan.design.hypothesis.value)
        assert oc.p_holds <= plan.design.alpha and oc.p_refuted <= plan.design.alpha, (cid, oc)
        assert plan.budget <= (INDEX[cid].paper.n if INDEX[cid].paper and INDEX[cid].paper.n else 10**6)


def test_every_relation_keeps_each_wrong_decision_within_alpha_at_its_thresholds(suite_plans):
    """Exact over 21 nuisance values of each null boundary (discordances of a paired relation, arm b's
    rate of an unpaired one), for every relation's own design."""
    kinds = set()
    for cid, plan in suite_plans.items():
        d = plan.design
        if not d.relation:
            continue
        kinds.add(d.kind)
        assert d.unpaired == INDEX[cid].unpaired, cid
        v = d.hypothesis.value
        low, high = d.critical()
        for d0, crit in ((v, low), (-v, high)) if d.hypothesis.quantity != "|a - b|" else ((v, low), (-v, low)):
            if d.unpaired:
                pb = np.linspace(max(0.0, -d0), min(1.0, 1 - d0), 21)
                assert unpaired_error(d0, d.schedule, crit, pb).max() <= ALPHA, (cid, d0)
            else:
                q01 = np.linspace(max(0.0, -d0), (1 - d0) / 2, 21)
                assert paired_error(d0, d.schedule, crit, q01).max() <= ALPHA, (cid, d0)
    assert kinds == {"paired", "unpaired"}

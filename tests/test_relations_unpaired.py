"""Table 1's ordering as unpaired relations, decided end to end on the shipped organisms: each arm draws its own
tasks on its own family's default model (colour on ``padding-routed``, human on ``identity-image``), and the
relation is decided on the two independent rates; a reversed order is refuted and a margin no budget can show
is inconclusive before anything runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import mechinterp.claims  # noqa: F401  (numpy/scipy loaded here, before pytester's in-process runs)
from mechinterp.claims import load_registry
from mechinterp.stats import ArmsTally, Decision, Hypothesis, plain_interval
from mechinterp.suite.ids import test_id
from mechinterp.suite.runner import ARM_SUFFIX

pytest_plugins = ["pytester"]

CLAIMS = Path(__file__).resolve().parents[1] / "claims"
REL = "rel[lens.color>lens.human]-cross"
#: a cap above the colour lens cell's budget (17) that leaves the human lens cell undecidable (rate <= 0.05
#: needs >= 72 tasks): it runs nothing, so the human arm's few tasks are all that is generated on identity-image
SAMPLES = 24


@pytest.fixture(scope="module")
def registry():
    return {c.id: c for c in load_registry()}


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    """Runners on the families' shipped default models, as a session makes them (``runner_for``), sharing caches."""
    import mechinterp
    from mechinterp.judges import ColorJudge, GlyphJudge
    from mechinterp.resources import default_model
    from mechinterp.suite.gencache import CachingModel, GenerationCache
    from mechinterp.suite.models import resolve_model
    from mechinterp.suite.runner import ClaimRunner

    cache = tmp_path_factory.mktemp("cache")
    made: dict[str, ClaimRunner] = {}

    def runner_for(family):
        name = default_model(family)
        if name not in made:
            model = CachingModel(mechinterp.load(resolve_model(name), device="cpu"), GenerationCache(cache))
            judge = GlyphJudge() if dict(model.meta.tasks).get("human") == "glyph" else ColorJudge()
            made[name] = ClaimRunner(model, lambda q, judge=judge: judge, samples=SAMPLES, batch=8,
                                     runner_for=runner_for)
        return made[name]

    return runner_for


def test_colour_is_carried_more_reliably_than_identity_on_the_default_models(runners, registry):
    rel = registry[REL]
    assert rel.unpaired and rel.family is None
    outcome = runners(None).run(rel, registry)
    assert outcome.decision is Decision.HOLDS, outcome.summary()
    assert rel.hypothesis.decide(outcome.interval) is Decision.HOLDS  # what is printed is what decided
    # each arm on its own tasks and model: colour tasks on padding-routed, glyphs (identity-image's human) there
    a_tasks = [r.task_id[:-2] for r in outcome.rows if r.task_id.endswith(ARM_SUFFIX[0])]
    b_tasks = [r.task_id[:-2] for r in outcome.rows if r.task_id.endswith(ARM_SUFFIX[1])]
    assert all(t.startswith("solid_") for t in a_tasks) and all(t.startswith("glyph_") for t in b_tasks)
    assert {r.claim_id for r in outcome.rows} == {REL}
    arms = outcome.arms
    assert isinstance(arms, ArmsTally) and outcome.pairs is None
    assert (outcome.k, outcome.n, outcome.k2, outcome.n2) == (arms.a.k, arms.a.n, arms.b.k, arms.b.n)
    assert arms.a.n == arms.b.n == outcome.looks[-1] or arms.abstained  # a look falls at its answers per arm
    assert len(a_tasks) == arms.a.judged and len(b_tasks) == arms.b.judged
    assert outcome.plan["kind"] == "unpaired" and outcome.plain == plain_interval(arms)
    # the arms read the cells' own runs on their own runners (the caches make shared tasks free)
    colour, human = runners("color"), runners("human")
    assert colour is runners(None) and human is not colour
    a = colour.run(registry[rel.a], registry)
    assert a.decision is Decision.HOLDS and colour._done[rel.a] is a
    cell_a = {row.task_id: row.passed for row in a.rows}
    assert all(cell_a[t] == r.passed for t, r in zip(a_tasks, outcome.rows) if t in cell_a)
    assert human._done[rel.b].decision is Decision.INCONCLUSIVE  # capped below what rate <= 0.05 needs
    result = outcome.result()
    assert result.unpaired and result.pairs is None and result.decision_low == outcome.interval.low
    assert "independent tasks" in outcome.summary() and "95 % Newcombe" in outcome.summary()


def test_the_reversed_order_is_refuted_and_an_unreachable_margin_is_inconclusive(runners, registry):
    rel = registry[REL]
    reversed_ = replace(rel, id="rel[lens.human>lens.color]-cross", a=rel.b, b=rel.a)
    far = replace(rel, id="rel[lens.color>>lens.human]-cross", hypothesis=Hypothesis.parse("a - b >= 0.99"))
    both = {**registry, reversed_.id: reversed_, far.id: far}
    outcome = runners(None).run(reversed_, both)
    assert outcome.decision is Decision.REFUTED, outcome.summary()
    assert outcome.k2 > 0 and outcome.k == 0 and outcome.interval.high < 0
    inconclusive = runners(None).run(far, both)
    assert inconclusive.decision is Decision.INCONCLUSIVE and not inconclusive.rows
    assert "undecidable" in inconclusive.note and "nothing was run" in inconclusive.note


def test_an_unpaired_relation_whose_arms_share_tasks_on_a_model_is_skipped(runners, registry):
    """Two cells that draw the same tasks on some model are not independent arms: the runner says so."""
    from mechinterp.suite.runner import ClaimSkipped

    rel = registry[REL]
    same = replace(rel, id="rel[lens.color>lens.color2]-cross", b="lens[single.9]-color", a="lens[single.9]-color")
    with pytest.raises(ClaimSkipped, match="draw the same tasks"):
        runners(None).run(same, {**registry, same.id: same})


def test_pytest_claims_runs_the_relation_with_the_human_claims(pytester, monkeypatch, tmp_path):
    """``pytest claims/ -m human -k <relation>`` with no model flags: the relation runs in the human job, its
    colour arm on the default colour organism, and the run's results, junit and report show both arms."""
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "MECHINTERP_DATA_DIR", "MECHINTERP_MODEL"):
        monkeypatch.delenv(var, raising=False)
    for f in CLAIMS.glob("test_*.py"):
        pytester.path.joinpath(f.name).write_text(f.read_text())
    report = tmp_path / "run"
    color = pytester.runpytest("--collect-only", "-q", "-m", "color", "-k", test_id(REL))
    assert test_id(REL) not in color.stdout.str()  # a relation between families runs in the one job it names
    result = pytester.runpytest("-m", "human", "-k", test_id(REL), "--mi-samples", str(SAMPLES),
                                "--mi-cache-dir", str(tmp_path / "cache"), "--mi-report", str(report),
                                "--mi-progress", "0", "-p", "no:randomly")
    assert result.ret == 0, result.stdout.str()[-3000:]
    assert result.parseoutcomes().get("passed") == 1
    results = json.loads((report / "results.json").read_text())
    row = results[REL]
    assert row["decision"] == "holds" and row["unpaired"] is True and row["pairs"] is None
    assert row["n"] >= 1 and row["n2"] >= 1 and row["k"] == row["n"] and row["k2"] == 0
    assert row["decision_low"] > 0 and row["run_text"].startswith("+100.0")
    junit = (report / "junit.xml").read_text()
    assert "\narms: unpaired<" in junit
    from mechinterp.report.html import claim_slug

    page = (report / "claims" / claim_slug(REL)).read_text()
    assert "a: k / n (rate)" in page and "b: k / n (rate)" in page and "Newcombe, unpaired" in page
    meta = json.loads((report / "run.json").read_text())
    assert set(meta["model"].split(", ")) == {"padding-routed", "identity-image"}


def test_the_relation_has_a_k_safe_id_and_runs_with_its_human_cell_under_xdist(registry):
    from mechinterp.pytest_plugin import claim_marks, xdist_group
    from mechinterp.suite.ids import claim_ids_of_node_ids
    from mechinterp.suite.scheduling import GROUP_PREFIX

    assert test_id(REL) == "rel[lens.color-gt-lens.human]-cross"
    node = f"claims/test_relations.py::test_relation[{test_id(REL)}]"
    assert claim_ids_of_node_ids([node], registry) == [REL]

    class Item:  # what xdist_group reads of a collected item
        def __init__(self, marks):
            self.marks = marks

        def get_closest_marker(self, name):
            return next((m.mark for m in self.marks if m.mark.name == name), None)

    group = xdist_group(Item(claim_marks(registry[REL])))
    assert group == xdist_group(Item(claim_marks(registry["lens[double.7]-human"]))) == f"{GROUP_PREFIX}human-lens"

"""The claims suite on the shipped organisms: each colour claim comes out as the organism's card expects.

This drives the same machinery as ``pytest claims/`` (registry → tasks → engine → ColorJudge →
sequential decision) on the organisms whose answers are known by construction. To stay within CI
time it runs the claims a 32-task look can settle (majority thresholds: knockouts and reference
drops); the default organism's full colour suite runs in CI as ``pytest claims/ -m color``.
"""

from __future__ import annotations

import pytest

from mechinterp.claims import load_registry
from mechinterp.suite.models import organisms_dir, resolve_model

ORGANISMS = ("padding-routed", "text-routed", "direct")
MAJORITY_CLAIMS = ("knockout[ref->text]-color", "knockout[ref->image]-color", "refdrop[single.9]-color", "refdrop[embed]-color")


def _expected():
    from mechinterp.organisms.expected import expected_decisions

    return expected_decisions()


@pytest.fixture(scope="module")
def registry():
    return {c.id: c for c in load_registry()}


def colour_runner(organism: str, cache_dir, samples: int = 32):
    """A ClaimRunner on a shipped organism with the colour judge, one look, its own generation cache."""
    import mechinterp
    from mechinterp.judges import ColorJudge
    from mechinterp.suite.gencache import CachingModel, GenerationCache
    from mechinterp.suite.runner import ClaimRunner

    if not (organisms_dir() / organism / "model_index.json").exists():
        pytest.fail(f"organism {organism!r} is not shipped in {organisms_dir()}")
    model = CachingModel(mechinterp.load(resolve_model(organism), device="cpu"), GenerationCache(cache_dir))
    judge = ColorJudge()
    return ClaimRunner(model, lambda q: judge, samples=samples, looks=1)


@pytest.mark.parametrize("organism", ORGANISMS)
def test_majority_colour_claims_match_the_expected_decisions(organism, registry, tmp_path):
    runner = colour_runner(organism, tmp_path)
    expected = _expected()[organism]
    checked = 0
    for cid in MAJORITY_CLAIMS:
        if expected.get(cid, "open") == "open":
            continue
        outcome = runner.run(registry[cid], registry)
        assert outcome.decision.value == expected[cid], outcome.summary()
        checked += 1
    assert checked >= 3


def test_organisms_claims_command_prints_the_table(capsys, tmp_path, monkeypatch):
    import tempfile

    from mechinterp.cli import main

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the command's temporary cache goes
    rc = main(["organisms", "claims", "direct", "--samples", "8"])
    assert not list(tmp_path.glob("mechinterp-*"))  # the generations' temporary folder is gone afterwards
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| claim | hypothesis | direct |"
    rows = [line for line in out if line.startswith("| `")]
    colour = [c for c in load_registry() if "color" in c.markers]
    assert len(rows) == len(colour) and any("knockout[ref->image]-color" in r for r in rows)
    assert rc in (0, 1)  # 8 tasks may leave claims inconclusive, which the command reports as unexpected


def test_ref_drop_sweep_claim_holds_at_every_cutoff_and_is_plotted(registry, tmp_path):
    """The cutoff sweep is a claim: one sequential test per site (Bonferroni), all must hold."""
    import base64

    from mechinterp.report.plots import sweep_plot

    runner = colour_runner("padding-routed", tmp_path, samples=16)
    model = runner.model
    claim = registry["refdrop[single.9+]-color"]
    sites = runner.sweep_sites(claim)
    # the organism binds at double.0: the first cutoff that keeps the reference reachable there is double.1
    assert sites == [s.name for s in model.table.blocks[1:]]
    outcome = runner.run(claim, registry)
    assert list(outcome.sweep) == sites and outcome.decision.value == "holds", outcome.summary()
    assert all(s["decision"] == "holds" and s["n"] > 0 for s in outcome.sweep.values())
    assert {r.task_id.rsplit("@", 1)[1] for r in outcome.rows} == set(sites)
    assert {r.claim_id for r in outcome.rows} == {claim.id}
    uri = sweep_plot(outcome.sweep, claim.id, 0.5)
    assert uri.startswith("data:image/svg+xml;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]).decode().count('class="dot"') == len(sites)


def test_sweep_must_name_a_site_parameter(tmp_path):
    bad = tmp_path / "bad.claims.toml"
    bad.write_text('''schema = 1
[[claim]]
id = "refdrop[x]-color"
statement = "s"
family = "color"
tasks = ["color"]
experiment = { name = "refdrop", cutoff = "single.9", sweep = "site" }
question = "ko_image.color"
markers = ["color", "refdrop"]
hypothesis = "rate < 0.50"
''')
    with pytest.raises(ValueError, match="sweep 'site' must name the experiment's own site parameter"):
        load_registry(bad)


def test_sweep_can_stop_before_the_last_block(tmp_path):
    """``sweep_to`` bounds a sweep (a layer sweep must stop where text can still reach the image)."""
    import mechinterp
    from mechinterp.suite.runner import ClaimRunner

    path = tmp_path / "lens.claims.toml"
    path.write_text('''schema = 1
[[claim]]
id = "lens[double.1..single.1]-color"
statement = "s"
family = "color"
tasks = ["color"]
experiment = { name = "t2i_lens", site = "double.1", same_layer = true, steps = 1, tokens = "text", sweep = "site", sweep_to = "single.1" }
question = "lens.color"
markers = ["color", "lens"]
hypothesis = "rate >= 0.8"
''')
    claim = load_registry(path)[0]
    model = mechinterp.load(resolve_model("padding-routed"), device="cpu")
    runner = ClaimRunner(model, lambda q: None)
    runner.family_sites = {}  # use the claim's sites as written (no organism mapping)
    assert runner.sweep_sites(claim) == ["double.1", "single.0", "single.1"]
    path.write_text(path.read_text().replace('sweep = "site", ', ""))
    with pytest.raises(ValueError, match="sweep_to 'single.1' must be a site and needs a sweep"):
        load_registry(path)


LAYER_SWEEPS = ("lens[single.9..single.10]-color", "patching[single.9..single.10:text.padding]-color")


@pytest.mark.parametrize("organism", ORGANISMS)
def test_layer_sweep_claims_match_the_expected_decisions(organism, registry, tmp_path):
    """The lens and patching layer sweeps run from the organism's binding block for as many blocks
    as the paper's window, and come out as the organism's wiring says (the ``direct`` organism's
    text never holds the colour, so both are refuted there at every block)."""
    # 64 tasks a block: the colour judge abstains on a quarter of the second block's lens outputs
    # (faint colour against the instruction-prompt baseline), and each block is tested at alpha / 2
    runner = colour_runner(organism, tmp_path, samples=64)
    expected = _expected()[organism]
    checked = 0
    for cid in LAYER_SWEEPS:
        assert runner.sweep_sites(registry[cid]) == ["double.0", "double.1"]
        if expected[cid] == "open":
            continue
        outcome = runner.run(registry[cid], registry)
        assert list(outcome.sweep) == ["double.0", "double.1"]
        assert outcome.decision.value == expected[cid], outcome.summary()
        if expected[cid] == "refuted":  # no block carries it, not just one
            assert all(s["decision"] == "refuted" for s in outcome.sweep.values()), outcome.sweep
        checked += 1
    assert checked >= 1


def test_sweep_length_is_kept_from_an_organisms_binding_site(registry, tmp_path):
    """On a model that names one binding site per family, ``sweep_to`` keeps the paper's window length
    in blocks, clipped to the last block; ``site_map`` entries still map a sweep's end directly."""
    from dataclasses import replace

    import mechinterp
    from mechinterp.claims import Experiment
    from mechinterp.suite.runner import ClaimRunner, ClaimSkipped

    model = mechinterp.load(resolve_model("padding-routed"), device="cpu")
    runner = ClaimRunner(model, lambda q: None)
    base = registry["lens[single.9..single.10]-color"]

    def ending(last, first="single.9"):
        params = {**dict(base.experiment.params), "site": first, "sweep_to": last}
        return replace(base, experiment=Experiment("t2i_lens", tuple(sorted(params.items()))))

    assert runner.sweep_sites(ending("single.13")) == ["double.0", "double.1", "single.0", "single.1", "single.2"]
    assert runner.sweep_sites(ending("single.23")) == [s.name for s in model.table.blocks]  # clipped
    runner.site_map = {"single.13": "single.1"}
    assert runner.sweep_sites(ending("single.13")) == ["double.0", "double.1", "single.0", "single.1"]
    runner.site_map = {}
    with pytest.raises(ClaimSkipped, match="not on the paper's model"):
        runner.sweep_sites(ending("single.40"))


LATE = ("late-double.1", "late-single.0")
#: what a late organism's wiring fixes, beyond the majority claims: patching the text at its binding block,
#: and the reference-drop sweep (every cutoff after the binding block is the wiring itself)
LATE_CLAIMS = (*MAJORITY_CLAIMS, "patching[single.9:text]-color", "refdrop[single.9+]-color")


@pytest.fixture(scope="module")
def late_cache(tmp_path_factory):
    """One generation cache per late organism, shared by this module's tests (the transition sweep reuses
    the reference drops the other claims generated)."""
    return {organism: tmp_path_factory.mktemp(organism) for organism in LATE}


@pytest.mark.parametrize("organism", LATE)
def test_late_binding_organisms_are_found_binding_at_their_block(organism, registry, late_cache):
    """Wired so the reference writes into the text only at block B (issue 17): the suite maps the paper's
    binding site to B, sweeps reference drops from the block after B, and every claim the wiring fixes comes
    out as ``organisms.toml`` derives it."""
    from mechinterp.organisms.spec import BLOCKS, get_spec

    block = get_spec(organism).binding
    assert block != "double.0"  # late: not the first block
    runner = colour_runner(organism, late_cache[organism], samples=48)  # one look: 48/48 clears 0.8 with room (Wilson low 0.93)
    assert runner.sweep_sites(registry["refdrop[single.9+]-color"]) == list(BLOCKS[BLOCKS.index(block) + 1:])
    assert runner.sweep_sites(registry["lens[single.9..single.10]-color"])[0] == block
    expected = _expected()[organism]
    for cid in LATE_CLAIMS:
        assert expected[cid] != "open", cid  # the wiring fixes each of these
        outcome = runner.run(registry[cid], registry)
        assert outcome.decision.value == expected[cid], (cid, outcome.summary())


EARLY, CROSSING = "refdrop[embed..single.8]-color", "refdrop[embed+:crosses.single.9]-color"


@pytest.fixture(scope="module")
def late_transitions(registry, late_cache):
    """Each late organism's runner and its two transition claims' outcomes: 16 tasks a cutoff, one look
    (16/16 clears 0.5 at alpha / 7 with room: Clopper-Pearson low 0.70, even with a quarter abstaining)."""
    out = {}
    for organism in LATE:
        runner = colour_runner(organism, late_cache[organism], samples=16)
        out[organism] = runner, {cid: runner.run(registry[cid], registry) for cid in (EARLY, CROSSING)}
    return out


@pytest.mark.parametrize("organism", LATE)
def test_late_binding_organisms_turn_at_their_block(organism, late_transitions):
    """Appendix B on the late organisms: every cutoff up to the binding block B loses the colour, and the
    crossing the per-cutoff decisions locate is exactly B+1 (the first cutoff that keeps it), as
    organisms.toml derives from the wiring."""
    from mechinterp.organisms.spec import BLOCKS, get_spec

    block = get_spec(organism).binding
    after = BLOCKS[BLOCKS.index(block) + 1]
    runner, outcomes = late_transitions[organism]
    expected = _expected()[organism]
    early, crossing = outcomes[EARLY], outcomes[CROSSING]
    assert list(early.sweep) == ["embed", *BLOCKS[:BLOCKS.index(block) + 1]]
    assert early.decision.value == expected[EARLY] == "holds", early.summary()
    assert crossing.decision.value == expected[CROSSING] == "holds", crossing.summary()
    assert list(crossing.sweep) == ["embed", *BLOCKS]
    assert {site: s["decision"] for site, s in crossing.sweep.items()} == {
        site: "holds" if i <= BLOCKS.index(block) + 1 else "refuted" for i, site in enumerate(crossing.sweep)}
    assert crossing.transition["at"] == after and crossing.transition["located"] == [after, after]
    assert crossing.result().transition == crossing.transition  # what results.json and the report get


def test_a_transition_claimed_at_another_block_is_refuted(late_transitions):
    """The done-when of issue 17: the suite finds late-single.0's crossing at single.1 (it binds at single.0),
    so the crossing claim as it maps on an organism wired elsewhere is refuted by that measurement: on the
    double.0 organisms (claimed double.1 ± 1, two blocks off), and, with no tolerance, on late-double.1
    (claimed single.0); and late-double.1's measured crossing refutes the exact claim as late-single.0 maps it.
    With the registry's one-block tolerance the two late organisms (bound at adjacent blocks, double.1 and
    single.0) cannot be told apart: the window of one holds the other's crossing."""
    from dataclasses import replace

    import mechinterp
    from mechinterp.stats import Decision
    from mechinterp.suite.runner import ClaimRunner

    def measured(organism):
        return {site: Decision(s["decision"]) for site, s in late_transitions[organism][1][CROSSING].sweep.items()}

    claim = late_transitions["late-single.0"][1][CROSSING].claim
    exact = replace(claim, transition=replace(claim.transition, within=0))
    at_double_0 = ClaimRunner(mechinterp.load(resolve_model("padding-routed"), device="cpu"), lambda q: None)
    late_double, late_single = (late_transitions[o][0] for o in LATE)
    single = measured("late-single.0")
    record = at_double_0.transition(claim, single)
    assert record["claimed"] == ["double.0", "single.0"] and record["located"] == ["single.1", "single.1"]
    assert record["decision"] == "refuted"
    assert late_double.transition(exact, single)["decision"] == "refuted"
    assert late_double.transition(claim, single)["decision"] == "holds"  # adjacent blocks: inside ± 1
    assert late_single.transition(exact, measured("late-double.1"))["decision"] == "refuted"
    assert late_single.transition(exact, single)["decision"] == "holds"

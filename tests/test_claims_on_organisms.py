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


@pytest.mark.parametrize("organism", ORGANISMS)
def test_majority_colour_claims_match_the_expected_decisions(organism, registry, tmp_path):
    if not (organisms_dir() / organism / "model_index.json").exists():
        pytest.fail(f"organism {organism!r} is not shipped in {organisms_dir()}")
    import mechinterp
    from mechinterp.judges import ColorJudge
    from mechinterp.suite.gencache import CachingModel, GenerationCache
    from mechinterp.suite.runner import ClaimRunner

    model = CachingModel(mechinterp.load(resolve_model(organism), device="cpu"), GenerationCache(tmp_path))
    judge = ColorJudge()
    runner = ClaimRunner(model, lambda q: judge, samples=32, looks=1)
    expected = _expected()[organism]
    checked = 0
    for cid in MAJORITY_CLAIMS:
        if expected.get(cid, "open") == "open":
            continue
        outcome = runner.run(registry[cid], registry)
        assert outcome.decision.value == expected[cid], outcome.summary()
        checked += 1
    assert checked >= 3


def test_organisms_claims_command_prints_the_table(capsys):
    from mechinterp.cli import main

    rc = main(["organisms", "claims", "direct", "--samples", "8"])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| claim | hypothesis | direct |"
    rows = [line for line in out if line.startswith("| `")]
    assert len(rows) == 14 and any("knockout[ref->image]-color" in r for r in rows)
    assert rc in (0, 1)  # 8 tasks may leave claims inconclusive, which the command reports as unexpected

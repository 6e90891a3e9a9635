"""The identity organisms (issue 17): the glyph family stands for ``human`` on them, the glyph judge answers the
identity questions with no API key, ``pytest claims/ -m human`` with no flags decides every human claim on
``identity-image`` (and Table 1's colour > human, its colour arm on the default colour organism), and
``identity-text`` refutes the human claims its wiring fixes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mechinterp.claims  # noqa: F401  (numpy/scipy loaded here, as in tests/test_plugin.py, before pytester's in-process runs)
from mechinterp.claims import load_registry
from mechinterp.resources import DEFAULT_ORGANISM, default_model
from mechinterp.suite.models import organisms_dir, resolve_model
from mechinterp.suite.settings import judge_kind

pytest_plugins = ["pytester"]

CLAIMS = Path(__file__).resolve().parents[1] / "claims"
IDENTITY = ("identity-image", "identity-text")


@pytest.fixture(scope="module")
def registry():
    return {c.id: c for c in load_registry()}


@pytest.fixture(scope="module")
def human(registry):
    return [c for c in registry.values() if c.family == "human"]


@pytest.fixture(scope="module")
def human_job(registry):
    """What ``-m human`` selects: the human claims and the relations between families that run with them."""
    return [c for c in registry.values() if "human" in c.markers]


def _expected():
    from mechinterp.organisms.expected import expected_decisions

    return expected_decisions()


def glyph_runner(organism: str, cache_dir, samples: int | None = None):
    """A ClaimRunner on a shipped identity organism with the glyph judge and its own generation cache."""
    import mechinterp
    from mechinterp.judges import GlyphJudge
    from mechinterp.suite.gencache import CachingModel, GenerationCache
    from mechinterp.suite.runner import ClaimRunner

    if not (organisms_dir() / organism / "model_index.json").exists():
        pytest.fail(f"organism {organism!r} is not shipped in {organisms_dir()}")
    model = CachingModel(mechinterp.load(resolve_model(organism), device="cpu"), GenerationCache(cache_dir))
    judge = GlyphJudge()
    return ClaimRunner(model, lambda q: judge, samples=samples)


def test_the_human_family_runs_on_identity_image_by_default_and_colour_on_the_default():
    assert default_model("human") == "identity-image"
    assert default_model("color") == default_model(None) == DEFAULT_ORGANISM == "padding-routed"


def test_the_glyph_judge_answers_identity_only_where_the_glyph_family_stands_for_human():
    assert judge_kind("auto", "lens.identity", glyph=True) == "glyph"
    assert judge_kind("color", "patching_padding.identity", glyph=True) == "glyph"
    assert judge_kind("auto", "lens.identity") == "anthropic"  # a real model: the paper's judge
    assert judge_kind("color", "lens.identity") is None
    assert judge_kind("auto", "lens.color", glyph=True) == "color"
    assert judge_kind("anthropic", "lens.identity", glyph=True) == "anthropic"  # asked for by name


@pytest.mark.parametrize("organism", IDENTITY)
def test_human_claims_read_the_glyph_family_and_the_binding_site(organism, registry, tmp_path):
    runner = glyph_runner(organism, tmp_path)
    lens, patch = registry["lens[double.7]-human"], registry["patching[double.7:text]-human"]
    tasks = runner.items(lens)
    assert len(tasks) == 320 and {t.family for t in tasks} == {"glyph"}
    pairs = runner.items(patch)
    assert len(pairs) == 320 and all(p.source.family == "glyph" for p in pairs)
    assert runner.site("double.7", "human") == "double.0"


def test_no_prerequisite_is_missing_for_the_human_claims_with_no_flags(human_job, registry, monkeypatch, tmp_path):
    from mechinterp.suite.prereqs import missing_prerequisites
    from mechinterp.suite.settings import Settings

    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "MECHINTERP_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    plain = Settings(model=None, judge="auto", samples=None, budget_generations=None, budget_dollars=None, seed=0,
                     cache_dir=tmp_path, data_dir=None, device=None, dtype=None, generator="device", report=None,
                     shard=None)
    assert missing_prerequisites(human_job, registry, plain) == []
    # on padding-routed (named) the human claims are the paper's again: data dir and key are missing
    named = Settings(**{**plain.__dict__, "model": "padding-routed"})
    missing = missing_prerequisites(human_job, registry, named)
    assert any("data dir" in m for m in missing) and any("ANTHROPIC_API_KEY" in m for m in missing)


def test_pytest_claims_m_human_decides_every_human_claim_with_no_flags(pytester, human, human_job, monkeypatch,
                                                                      tmp_path):
    for var in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "MECHINTERP_DATA_DIR", "MECHINTERP_MODEL"):
        monkeypatch.delenv(var, raising=False)
    for f in CLAIMS.glob("test_*.py"):
        pytester.path.joinpath(f.name).write_text(f.read_text())
    report = tmp_path / "run"
    result = pytester.runpytest("-m", "human", "--cache-dir", str(tmp_path / "cache"), "--report", str(report),
                                "--progress", "0", "-p", "no:randomly")
    results = json.loads((report / "results.json").read_text())
    assert set(results) == {c.id for c in human_job} > {c.id for c in human}
    expected = _expected()["identity-image"]
    assert {cid: results[cid]["decision"] for cid in expected} == expected  # every one pinned "holds" by the wiring
    assert set(expected.values()) == {"holds"} and set(expected) == {c.id for c in human}
    # Table 1's colour > human identity: the colour arm on the default colour organism, the human arm here
    cross = results["rel[lens.color>lens.human]-cross"]
    assert cross["decision"] == "holds" and cross["unpaired"] and cross["k"] == cross["n"] and cross["k2"] == 0
    assert result.ret == 0, result.stdout.str()[-3000:]
    meta = json.loads((report / "run.json").read_text())
    assert set(meta["model"].split(", ")) == {"identity-image", "padding-routed"}
    assert {j.split(":")[0] for j in meta["judge_model"].split(", ")} == {"glyph", "color"}


def test_identity_text_refutes_the_human_claims_its_wiring_fixes(registry, tmp_path):
    runner = glyph_runner("identity-text", tmp_path)
    expected = {cid: d for cid, d in _expected()["identity-text"].items() if d != "open"}
    assert set(expected.values()) == {"refuted"} and len(expected) == 4
    got = {cid: runner.run(registry[cid], registry).decision.value for cid in expected}
    assert got == expected

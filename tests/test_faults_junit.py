"""Fault: a run whose claims error or skip must not look green in its own junit.xml / results.json."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

import mechinterp.claims  # noqa: F401  (numpy/scipy/torch imported once, outside pytester's in-process runs,
import mechinterp.report.power  # noqa: F401  which drop the modules they import: torch cannot be imported twice)

from mechinterp.report import merge_runs, write_junit
from mechinterp.report.junit import read_junit

pytest_plugins = ["pytester"]

FAILING_CLAIMS = """
import pytest

@pytest.fixture
def broken():
    raise RuntimeError("setup broke")

@pytest.mark.claims(experiment="knockout")
def test_knockout(claim):
    if claim.family == "color":
        raise RuntimeError(f"boom in {claim.id}")
    pytest.skip("no data for " + claim.id)

@pytest.mark.claims(experiment="refdrop")
def test_refdrop(claim, broken):
    pass
"""


def test_errored_and_skipped_claims_are_in_junit_and_results(pytester, tmp_path):
    pytester.makepyfile(test_claims=FAILING_CLAIMS)
    report = tmp_path / "run"
    result = pytester.runpytest("--report", str(report), "--cache-dir", str(tmp_path / "cache"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    collected = [line.split("::")[1] for line in pytester.runpytest("--collect-only", "-q").stdout.lines if "::" in line]
    ko_color = [c for c in collected if c.startswith("test_knockout") and c.endswith("-color]")]
    ko_other = [c for c in collected if c.startswith("test_knockout") and not c.endswith("-color]")]
    refdrop = [c for c in collected if c.startswith("test_refdrop")]
    assert ko_color and ko_other and refdrop

    suite = ET.parse(report / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) == len(collected)
    assert int(suite.get("errors")) == len(ko_color) + len(refdrop)
    assert int(suite.get("skipped")) == len(ko_other) and suite.get("failures") == "0"
    cases = read_junit(report / "junit.xml")
    boom = next(cid for cid in cases if cid.startswith("knockout[") and cid.endswith("-color"))
    assert cases[boom].find("error") is not None and f"boom in {boom}" in cases[boom].find("error").get("message")
    assert any("setup broke" in (c.find("error").get("message") if c.find("error") is not None else "")
               for cid, c in cases.items() if cid.startswith("refdrop"))
    skipped = next(cid for cid in cases if cid.startswith("knockout[") and not cid.endswith("-color"))
    assert "no data for " + skipped in cases[skipped].find("skipped").get("message")

    results = json.loads((report / "results.json").read_text())
    assert len(results) == len(collected)
    assert results[boom]["decision"] == "error" and f"boom in {boom}" in results[boom]["note"]
    assert results[skipped]["decision"] == "skipped"

    merged = merge_runs([report], tmp_path / "merged")  # merging shards keeps them listed too
    assert {cid: r.decision for cid, r in merged.results.items()} == {cid: r["decision"] for cid, r in results.items()}
    suite = ET.parse(write_junit(merged)).getroot().find("testsuite")
    assert int(suite.get("tests")) == len(collected) and int(suite.get("errors")) == len(ko_color) + len(refdrop)


def _names(path) -> list[tuple[str, str]]:
    """Every testcase's ``(classname, name)`` of a junit file, sorted."""
    return sorted((c.get("classname"), c.get("name")) for c in ET.parse(path).getroot().iter("testcase"))


def test_the_run_junit_and_pytests_own_name_each_claim_alike_and_both_validate(pytester, tmp_path, junit_schema):
    """A CI reader ingesting pytest's ``--junitxml`` and the run's ``junit.xml`` counts each claim once: both name
    it pytest's way (before, the run's used the claim id, doubling every claim), both validate against the common
    JUnit schema (before, the plugin's testcase properties broke pytest's own file too), and the run's testcases
    and testsuite carry pytest's times and the run's timestamp."""
    pytester.makepyfile(test_claims=FAILING_CLAIMS)
    report, own = tmp_path / "run", tmp_path / "pytest.xml"
    result = pytester.runpytest("--report", str(report), "--cache-dir", str(tmp_path / "cache"), f"--junitxml={own}",
                                "-o", "junit_family=xunit2")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for path in (own, report / "junit.xml"):
        junit_schema.validate(str(path))
    names = _names(own)
    assert names == _names(report / "junit.xml") and len(names) == len(read_junit(report / "junit.xml"))
    assert ("test_claims", "test_knockout[knockout[ref-to-text]-color]") in names
    times = {(c.get("classname"), c.get("name")): float(c.get("time")) for c in ET.parse(own).getroot().iter("testcase")}
    ours = {(c.get("classname"), c.get("name")): float(c.get("time"))
            for c in ET.parse(report / "junit.xml").getroot().iter("testcase")}
    assert ours == pytest.approx(times, abs=2e-3)  # pytest's seconds (setup + call + teardown), to its 3 decimals
    suite = ET.parse(report / "junit.xml").getroot().find("testsuite")
    assert float(suite.get("time")) > 0 and suite.get("timestamp")[:2] == "20"


def test_errored_and_skipped_claims_are_listed_under_xdist_too(pytester, tmp_path, junit_schema):
    """Workers tag claim node ids with their group (scheduling); outcomes are still matched to claims, and the
    run's junit names each claim as pytest's own does there too (the tag included)."""
    pytester.makepyfile(test_claims=FAILING_CLAIMS)
    report = tmp_path / "run"
    result = pytester.runpytest_subprocess("--report", str(report), "--cache-dir", str(tmp_path / "cache"), "-n", "2",
                                           f"--junitxml={tmp_path / 'pytest.xml'}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _names(tmp_path / "pytest.xml") == _names(report / "junit.xml")
    junit_schema.validate(str(tmp_path / "pytest.xml"))
    collected = [line for line in pytester.runpytest("--collect-only", "-q").stdout.lines if "::" in line]
    suite = ET.parse(report / "junit.xml").getroot().find("testsuite")
    results = json.loads((report / "results.json").read_text())
    assert int(suite.get("tests")) == len(collected) == len(results)
    assert int(suite.get("errors")) + int(suite.get("skipped")) == len(collected)
    assert {r["decision"] for r in results.values()} == {"error", "skipped"}


CRASHING_CLAIMS = """
import os
import pytest

@pytest.mark.claims(experiment="knockout")
def test_knockout(claim):
    if claim.family == "color" and not os.path.exists("crashed-once"):
        open("crashed-once", "w").close()
        os._exit(3)  # the worker dies inside the claim: no report, no sessionfinish
    pytest.skip("no data for " + claim.id)
"""


def test_a_claim_whose_worker_crashed_is_an_error_in_junit(pytester, tmp_path):
    """pytest counts the claim a dead worker was running as failed; the run's own junit.xml and results.json count
    it as an error, beside the outcomes that worker saved before it died. (No worker restart: xdist 3.8's group
    scheduler can die replacing a worker, pytest-dev/pytest-xdist#1189, #1362.)"""
    pytester.makepyfile(test_claims=CRASHING_CLAIMS)
    report = tmp_path / "run"
    result = pytester.runpytest_subprocess("--report", str(report), "--cache-dir", str(tmp_path / "cache"), "-n", "2",
                                           "--max-worker-restart", "0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    counts = result.parseoutcomes()
    assert counts["failed"] == 1
    suite = ET.parse(report / "junit.xml").getroot().find("testsuite")
    errors = {cid: c.find("error").get("message") for cid, c in read_junit(report / "junit.xml").items()
              if c.find("error") is not None}
    ((crashed, message),) = errors.items()
    assert re.fullmatch(re.escape(crashed) + r": error: worker gw\d crashed while running this claim", message), message
    assert (int(suite.get("tests")), suite.get("errors"), int(suite.get("skipped"))) == \
        (1 + counts.get("skipped", 0), "1", counts.get("skipped", 0))
    results = json.loads((report / "results.json").read_text())
    assert results[crashed]["decision"] == "error" and crashed.endswith("-color")

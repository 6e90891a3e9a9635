"""The pytest plugin through pytester: options, markers, sharding, claim files, run folders, xdist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import mechinterp.claims  # noqa: F401  (loads numpy/scipy here: pytester's in-process runs drop
#                          modules they import, and numpy cannot be imported twice in one process)
import mechinterp.judges.anthropic_judge  # noqa: F401  (the anthropic SDK too: a second import's sentinels
#                                           are not the first one's, and its requests fail)
from mechinterp.engine.meta import ModelMeta
from mechinterp.testing.tiny import save_pipeline, tiny_pipeline
from mechinterp.testing.claims import knockout_claim_toml

pytest_plugins = ["pytester"]
CLAIMS = Path(__file__).resolve().parents[1] / "claims"

USER_CLAIMS = knockout_claim_toml()


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A saved tiny random model whose site map sends the paper's sites to its own blocks."""
    path = tmp_path_factory.mktemp("tinymodel")
    pipe = tiny_pipeline()
    ModelMeta.of(pipe).replace(site_map={"single.9": "single.1", "double.7": "double.1"}, default_size=64).attach(pipe)
    save_pipeline(pipe, path)
    return path


def _copy_claims(pytester) -> None:
    for f in CLAIMS.glob("test_*.py"):
        pytester.path.joinpath(f.name).write_text(f.read_text())


def test_marker_selection_and_strict_markers(pytester):
    _copy_claims(pytester)
    result = pytester.runpytest("--collect-only", "-q", "-m", "color", "--strict-markers")
    out = result.stdout.str()
    assert result.ret == 0
    assert "test_knockout[knockout[ref-to-text.padding]-color]" in out
    assert "test_patching[patching[single.9:text.padding]-color]" in out
    assert "-style]" not in out and "-human]" not in out
    everything = pytester.runpytest("--collect-only", "-q").stdout.str()
    assert "test_knockout[knockout[ref-to-image]-human]" in everything and "test_lens[lens[double.7]-add]" in everything


def _claim_markers() -> str:
    """The markers the paper's claims carry, as the typo error lists them."""
    return ", ".join(sorted({m for c in mechinterp.claims.load_registry() for m in c.markers}))


@pytest.mark.parametrize("markexpr,word,near", [("colour", "colour", "color"),
                                                 ("color and knockotu", "knockotu", "knockout")])
def test_a_marker_typo_is_one_usage_error_naming_the_markers(pytester, markexpr, word, near):
    """pytest's -m takes any word: a typo would deselect every claim (or, strict, not say which names exist);
    no prerequisites block is printed for claims that will not run."""
    _copy_claims(pytester)
    result = pytester.runpytest("--collect-only", "-q", "-m", markexpr)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().strip() == (f"ERROR: -m {markexpr!r}: {word!r} (did you mean {near!r}?) is no marker "
                                           f"of the claims and no registered marker; the claims' markers are: "
                                           f"{_claim_markers()} (all markers: pytest --markers)")
    assert "prerequisites" not in result.stdout.str()
    valid = pytester.runpytest("--collect-only", "-q", "-m", "color and not (xfail or knockout(x='y'))")
    assert valid.ret == 0 and "test_patching[patching[single.9:text.padding]-color]" in valid.stdout.str()


@pytest.mark.parametrize("workers", [None, "2"])
def test_a_marker_typo_in_the_installed_suite(pytester, workers):
    """The wheel's path (``--pyargs mechinterp.claims.paper``: no project ini, no --strict-markers), also under
    xdist, where the workers collect: the same one error and exit code, no worker crash."""
    result = pytester.runpytest_subprocess("--pyargs", "mechinterp.claims.paper", "-m", "colour", "-p", "no:cacheprovider",
                                           *(["-n", workers] if workers else []))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    out = result.stdout.str() + result.stderr.str()
    assert f"ERROR: -m 'colour': 'colour' (did you mean 'color'?) is no marker of the claims and no registered " \
           f"marker; the claims' markers are: {_claim_markers()}" in out
    assert "INTERNALERROR" not in out and "prerequisites" not in out and "deselected" not in out


def test_shards_partition_the_claims(pytester):
    _copy_claims(pytester)
    ids = []
    for i in (1, 2, 3):
        out = pytester.runpytest("--collect-only", "-q", "--shard", f"{i}/3").stdout.lines
        ids.append({line for line in out if "::" in line})
    full = {line for line in pytester.runpytest("--collect-only", "-q").stdout.lines if "::" in line}
    assert set().union(*ids) == full and sum(map(len, ids)) == len(full) and all(ids)


def test_bad_option_is_a_usage_error(pytester):
    _copy_claims(pytester)
    result = pytester.runpytest("--judge", "gpt")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mi-judge 'gpt': expected one of auto, color, anthropic, anthropic-batch*"])


def test_unknown_model_is_named(pytester, tmp_path):
    _copy_claims(pytester)
    result = pytester.runpytest("-m", "color", "--model", "no-such-organism", "--cache-dir", str(tmp_path))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown model 'no-such-organism': not a shipped organism*"])


def test_strict_inconclusive_claim_is_a_failure_in_both_junit_files(pytester, tiny_dir, tmp_path, junit_schema):
    """Under ``--mi-strict`` pytest fails an inconclusive claim; the run's junit.xml said ``<skipped>`` (a green
    check in a CI reader): now a ``<failure>`` there too, with k/n in its message and in pytest's ``<system-out>``
    (``junit_logging = system-out``). One sample cannot decide ``rate >= 0.5``: inconclusive, nothing run."""
    import xml.etree.ElementTree as ET

    from mechinterp.report.junit import read_junit

    pytester.path.joinpath("mine.claims.toml").write_text(USER_CLAIMS)
    report, own = tmp_path / "run", tmp_path / "pytest.xml"
    result = pytester.runpytest("mine.claims.toml", "--model", str(tiny_dir), "--samples", "1", "--mi-strict",
                                "--cache-dir", str(tmp_path / "cache"), "--report", str(report), f"--junitxml={own}",
                                "-o", "junit_family=xunit2", "-o", "junit_logging=system-out")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    for path in (own, report / "junit.xml"):
        junit_schema.validate(str(path))
    case = read_junit(report / "junit.xml")["knockout[ref->text.template]-color"]
    (theirs,) = ET.parse(own).getroot().iter("testcase")
    assert theirs.find("failure") is not None and case.find("skipped") is None
    failure = case.find("failure")
    assert failure.get("type") == "ClaimInconclusive" and ": inconclusive: k=0/n=0" in failure.get("message")
    assert case.findtext("system-out") in theirs.findtext("system-out")  # one text, both files
    assert (theirs.get("classname"), theirs.get("name")) == (case.get("classname"), case.get("name"))


def test_user_claim_file_runs_and_lands_in_the_report(pytester, tiny_dir, tmp_path, junit_schema):
    pytester.path.joinpath("mine.claims.toml").write_text(USER_CLAIMS)
    report = tmp_path / "run"
    result = pytester.runpytest("mine.claims.toml", "--model", str(tiny_dir), "--samples", "8",
                                "--cache-dir", str(tmp_path / "cache"), "--report", str(report), "-rA", "--progress", "0",
                                f"--junitxml={tmp_path / 'pytest.xml'}")
    assert "mine.claims.toml::knockout[ref-to-text.template]-color" in result.stdout.str()  # the -k-safe test id
    # one progress line per look of the sequential test (samples done / budget, k/n so far)
    result.stdout.fnmatch_lines(["mechinterp [[]claim 1/1[]] knockout[[]ref->text.template[]]-color: */* samples, k/n */*"])
    results = json.loads((report / "results.json").read_text())
    assert "knockout[ref->text.template]-color" in results
    assert (report / "report.html").exists() and (report / "junit.xml").exists()
    # pytest's --junitxml (xunit2) and the run's junit.xml: valid, one name for the claim, its evidence as text
    import xml.etree.ElementTree as ET

    from mechinterp.report.junit import read_junit

    def names(path):
        return [(c.get("classname"), c.get("name")) for c in ET.parse(path).getroot().iter("testcase")]

    for path in (tmp_path / "pytest.xml", report / "junit.xml"):
        junit_schema.validate(str(path))
    assert names(tmp_path / "pytest.xml") == names(report / "junit.xml") and len(names(report / "junit.xml")) == 1
    case = read_junit(report / "junit.xml")["knockout[ref->text.template]-color"]
    assert f"k={results['knockout[ref->text.template]-color']['k']}/n=" in case.findtext("system-out")
    header = (report / "report.html").read_text().split("<h2>Paper tables")[0]  # what reproduces the run
    for row in ("<th>seed</th><td>0</td>", "<th>samples per claim</th><td>8</td>", "<th>judge cost</th><td>$0.0000</td>",
                f"<th>model</th><td>{tiny_dir}</td>", "<th>device</th><td>cpu</td>"):
        assert row in header, row
    meta = json.loads((report / "run.json").read_text())
    assert meta["generations"] > 0 and meta["generation_seconds"] > 0 and meta["versions"]["torch"]
    assert meta["judge_model"].startswith("color:cielab") and len(meta["fingerprint"]) == 32


def test_xdist_gives_the_same_decisions_and_one_report(pytester, tiny_dir, tmp_path):
    _copy_claims(pytester)
    args = ["-m", "color and (knockout or refdrop)", "-k", "not single.9+", "--model", str(tiny_dir), "--samples", "6",
            "--cache-dir", str(tmp_path / "cache")]
    serial = pytester.runpytest_subprocess(*args, "--report", str(tmp_path / "serial"), "-p", "no:randomly")
    parallel = pytester.runpytest_subprocess(*args, "--report", str(tmp_path / "parallel"), "-n", "2", "-v")
    a = json.loads((tmp_path / "serial" / "results.json").read_text())
    b = json.loads((tmp_path / "parallel" / "results.json").read_text())
    assert a.keys() == b.keys() and len(a) >= 5
    assert {c: (r["decision"], r["k"], r["n"]) for c, r in a.items()} == {c: (r["decision"], r["k"], r["n"]) for c, r in b.items()}
    outcomes = lambda r: {k: v for k, v in r.parseoutcomes().items() if k != "deselected"}  # noqa: E731
    assert outcomes(serial) == outcomes(parallel)
    out = parallel.stdout.str()
    assert "scheduling tests via LoadGroupScheduling" in out
    workers = _workers_per_group(out)
    assert len(workers) == 2 and all(len(w) == 1 for w in workers.values()), workers
    meta = json.loads((tmp_path / "parallel" / "run.json").read_text())
    assert meta["workers"] == len(set().union(*workers.values())) and (tmp_path / "parallel" / "junit.xml").exists()
    # an explicit --dist loadgroup keeps each family-experiment group (relations included) on one worker too
    grouped = pytester.runpytest_subprocess(*args, "--report", str(tmp_path / "loadgroup"), "-n", "2", "-v",
                                            "--dist", "loadgroup")
    c = json.loads((tmp_path / "loadgroup" / "results.json").read_text())
    assert {k: r["decision"] for k, r in c.items()} == {k: r["decision"] for k, r in a.items()}
    groups = _workers_per_group(grouped.stdout.str())
    assert groups.keys() == workers.keys() and all(len(w) == 1 for w in groups.values()), groups
    relations = re.findall(r"\[gw\d+\] \[ *\d+%\] \w+ \S+\[(rel\[[^@]*)@(mechinterp-[\w-]+)", grouped.stdout.str())
    cell_kind = {"ko": "knockout", "refdrop": "refdrop"}  # each relation runs where its cells run
    assert relations and all(g.endswith(cell_kind[rid[4:].split(".")[0]]) for rid, g in relations), relations


def _workers_per_group(out: str) -> dict[str, set[str]]:
    """From ``-v`` xdist output: claim group -> the workers that ran its claims."""
    workers: dict[str, set[str]] = {}
    for worker, group in re.findall(r"\[(gw\d+)\] \[ *\d+%\] \w+ \S+@(mechinterp-[\w-]+)", out):
        workers.setdefault(group, set()).add(worker)
    return workers


ANTHROPIC_CLAIMS = """
schema = 1

[[claim]]
id = "knockout[ref->text]-color-holds"
statement = "Every bundle is judged 'lost' by the fake judge, so a majority claim holds."
family = "color"
tasks = ["color"]
experiment = { name = "knockout", source = "ref", dest = "text", blocks = "all" }
question = "ko_text.color"
markers = ["color", "knockout"]
hypothesis = "rate >= 0.5"

[[claim]]
id = "knockout[ref->image]-color-refuted"
statement = "'Kept' (pass) inverts to not destroyed, so a majority-destroyed claim is refuted."
family = "color"
tasks = ["color"]
experiment = { name = "knockout", source = "ref", dest = "image", blocks = "all" }
question = "ko_image.color"
markers = ["color", "knockout"]
hypothesis = "rate >= 0.5"
"""


def test_anthropic_judge_end_to_end_against_the_fake_server(pytester, tiny_dir, tmp_path, fake_anthropic, monkeypatch):
    """The real SDK, through the plugin, against a loopback server: holds passes, refuted fails with numbers."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-SECRET")
    pytester.path.joinpath("fake.claims.toml").write_text(ANTHROPIC_CLAIMS)
    report = tmp_path / "run"
    result = pytester.runpytest("fake.claims.toml", "--judge", "anthropic", "--model", str(tiny_dir), "--samples", "8",
                                "--cache-dir", str(tmp_path / "cache"), "--report", str(report))
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "refuted: knockout[ref->image]-color-refuted: refuted — k=0/n=" in out and "hypothesis rate >= 0.5" in out
    sent = fake_anthropic.message_requests()
    assert sent and all(len([b for b in r.json["messages"][0]["content"] if b["type"] == "image"]) == 3 for r in sent)
    assert all("sk-ant-test-SECRET" in (r.headers.get("x-api-key", "") + r.headers.get("authorization", "")) for r in sent)
    assert all(b"sk-ant-test-SECRET" not in r.raw for r in sent)  # a header, never the body
    for path in report.rglob("*"):
        if path.is_file():
            assert b"sk-ant-test-SECRET" not in path.read_bytes(), path
    results = json.loads((report / "results.json").read_text())
    assert results["knockout[ref->text]-color-holds"]["decision"] == "holds"
    assert results["knockout[ref->image]-color-refuted"]["decision"] == "refuted"
    # a rerun is answered from the verdict and generation caches: no new API call
    before = len(fake_anthropic.message_requests())
    again = pytester.runpytest("fake.claims.toml", "--judge", "anthropic", "--model", str(tiny_dir), "--samples", "8",
                               "--cache-dir", str(tmp_path / "cache"), "--report", str(tmp_path / "again"))
    again.assert_outcomes(passed=1, failed=1)
    assert len(fake_anthropic.message_requests()) == before
    assert " samples, k/n " not in again.stdout.str()  # a quick run in a log prints no progress lines
    meta = json.loads((tmp_path / "again" / "run.json").read_text())
    assert (meta["judge_calls"], meta["seed"], meta["samples"], meta["judge_cost_usd"]) == (0, 0, 8, 0.0)  # all cached
    first = json.loads((report / "run.json").read_text())
    assert first["judge_calls"] == len(sent) and first["judge_input_tokens"] > 0 and first["judge_cost_usd"] > 0



def test_judge_replies_cut_short_leave_every_claim_decided_as_in_a_clean_run(pytester, tiny_dir, tmp_path, fake_anthropic,
                                                                            monkeypatch):
    """Three 200 replies with a truncated body (the SDK raises JSONDecodeError outside its own errors) are retried:
    the same verdicts and decisions as a clean run, each answer paid for once, and run.json counts the three."""
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_anthropic.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test-SECRET")
    fake_anthropic.responder = lambda body: json.dumps(  # an answer that depends on the bundle's last image
        {"pass": int(body["messages"][0]["content"][-2]["source"]["data"][-8] < "a"), "reason": "by the last image"})
    pytester.path.joinpath("fake.claims.toml").write_text(ANTHROPIC_CLAIMS)

    def run(name: str):
        fake_anthropic.paid.clear()
        pytester.runpytest("fake.claims.toml", "--judge", "anthropic", "--judge-config", "backoff_base=0.001",
                           "--model", str(tiny_dir), "--samples", "8", "--cache-dir", str(tmp_path / name / "cache"), "--report", str(tmp_path / name / "run"))
        folder = tmp_path / name / "run"
        verdicts = sorted((folder / "verdicts.jsonl").read_text().splitlines())
        return (json.loads((folder / "results.json").read_text()), verdicts,
                json.loads((folder / "run.json").read_text()), dict(fake_anthropic.paid))

    fake_anthropic.faults.extend(["truncated"] * 3)
    results, verdicts, meta, paid = run("faulty")
    assert not fake_anthropic.faults  # all three were served
    assert len(results) == 2 and "error" not in {r["decision"] for r in results.values()}  # every claim decided
    assert meta["judge_reasked"] == 3 and meta["judge_calls"] == len(paid) and set(paid.values()) == {1}
    clean_results, clean_verdicts, clean_meta, clean_paid = run("clean")
    assert (results, verdicts) == (clean_results, clean_verdicts)
    assert paid.keys() == clean_paid.keys() and clean_meta["judge_reasked"] == 0


UNRELATED_TESTS = """
import os, sys
import pytest

@pytest.mark.parametrize("i", range(6))
def test_nothing_of_mechinterp_here(i):
    assert "torch" not in sys.modules  # in every xdist worker
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == "0,1"  # no GPU pinned per worker
"""

UNRELATED_CONFTEST = """
import sys

HEAVY = {"torch", "scipy", "numpy", "PIL", "diffusers", "transformers", "jinja2"}

def pytest_sessionfinish(session):
    process = getattr(session.config, "workerinput", {}).get("workerid", "controller")
    heavy = sorted({m.split(".")[0] for m in sys.modules} & HEAVY)
    open(f"modules-{process}.txt", "w").write(str(heavy))
"""


@pytest.mark.parametrize("workers", [None, "2"])
def test_an_unrelated_session_is_left_alone(pytester, monkeypatch, workers):
    """mechinterp installed must not change another project's pytest run: no torch, scipy, numpy (...) import in
    the controller or a worker, no GPU pinning, and plain ``-n 2`` keeps xdist's ``load`` scheduling (no
    ``--dist`` override)."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    pytester.makepyfile(test_unrelated=UNRELATED_TESTS)
    pytester.makeconftest(UNRELATED_CONFTEST)
    result = pytester.runpytest_subprocess("-v", *(["-n", workers] if workers else []))
    result.assert_outcomes(passed=6)
    assert re.search(r"^plugins: .*mechinterp", result.stdout.str(), re.M)  # installed and loaded, yet inert
    written = {p.name: p.read_text() for p in pytester.path.glob("modules-*.txt")}  # the heavy modules each imported
    processes = ["controller", *(f"gw{i}" for i in range(int(workers or 0)))]
    assert written == {f"modules-{p}.txt": "[]" for p in processes}
    if workers:
        assert "scheduling tests via LoadScheduling" in result.stdout.str()
    assert not (pytester.path / "reports").exists()

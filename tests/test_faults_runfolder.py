"""Faults: a reused ``--report`` folder never pools rows of other settings, and a ``--report``
that cannot be a run folder is one usage error before any claim runs."""

from __future__ import annotations

import json

import pytest

import mechinterp.claims  # noqa: F401  (numpy/scipy/torch imported once, outside pytester's in-process runs,
import mechinterp.report.power  # noqa: F401  which drop the modules they import: torch cannot be imported twice)

pytest_plugins = ["pytester"]

CLAIMS = """
import pathlib, pytest

@pytest.mark.claims(experiment="knockout", family="color")
def test_knockout(claim):
    pathlib.Path("ran").write_text(claim.id)
    pytest.skip("nothing to run here")
"""


def test_a_folder_made_with_other_settings_is_refused_before_anything_runs(pytester, tmp_path):
    pytester.makepyfile(test_claims=CLAIMS)
    report = tmp_path / "run"
    args = ["--report", str(report), "--cache-dir", str(tmp_path / "cache")]
    assert pytester.runpytest(*args, "--samples", "6").ret == pytest.ExitCode.OK
    assert json.loads((report / "parts" / "settings.json").read_text())["samples"] == 6
    results = (report / "results.json").read_text()
    (pytester.path / "ran").unlink()

    refused = pytester.runpytest(*args, "--samples", "11")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines([f"*--mi-report {report}: holds a run made with other settings (--mi-samples 6 there, "
                                  "11 now)*use a new --mi-report folder*"])
    assert not (pytester.path / "ran").exists() and (report / "results.json").read_text() == results
    refused = pytester.runpytest(*args, "--samples", "6", "--seed", "3")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR and "--mi-seed 0 there, 3 now" in refused.stderr.str()

    assert pytester.runpytest(*args, "--samples", "6").ret == pytest.ExitCode.OK  # same settings: resumes


def test_rows_without_a_settings_record_are_refused(pytester, tmp_path):
    pytester.makepyfile(test_claims=CLAIMS)
    (tmp_path / "run" / "parts").mkdir(parents=True)
    (tmp_path / "run" / "parts" / "gw0.jsonl").write_text('{"claim": "x", "rows": []}\n')
    result = pytester.runpytest("--report", str(tmp_path / "run"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "settings are not recorded" in result.stderr.str()


def test_report_pointing_at_a_file_is_a_usage_error_before_any_claim_runs(pytester, tmp_path):
    pytester.makepyfile(test_claims=CLAIMS)
    target = tmp_path / "report.html"
    target.write_text("not a folder")
    result = pytester.runpytest("--report", str(target))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--mi-report {target}: is a file; expected a run folder*"])
    assert not (pytester.path / "ran").exists() and target.read_text() == "not a folder"


def test_workers_of_one_run_on_different_default_organisms_pool_into_one_record(tmp_path):
    """Without --mi-model each family runs on its own default organism, so two workers may have
    loaded different models: the run names both, and sums their counts (it used to refuse to pool)."""
    from mechinterp.report.meta import RunMeta
    from mechinterp.suite.report import _merged_metadata
    from mechinterp.suite.session import PARTS

    parts = tmp_path / PARTS
    parts.mkdir()
    for worker, model, gens in (("gw0", "padding-routed", 30), ("gw1", "identity-image", 12)):
        meta = RunMeta(model=model, revision=f"rev-{model}", judge="auto", generations=gens)
        (parts / f"{worker}.meta.json").write_text(json.dumps(meta.to_dict()))
    pooled = _merged_metadata(tmp_path)
    assert pooled.model == "identity-image, padding-routed" and pooled.revision is None and pooled.generations == 42
    with pytest.raises(ValueError, match="different judges"):  # what must agree still must
        RunMeta.pool([RunMeta(model="a", judge="auto"), RunMeta(model="a", judge="color")])


def test_a_shard_names_itself_an_empty_shard_leaves_its_folder_and_merge_wants_them_all(pytester, tmp_path, capsys):
    """Issue 26: each shard's run.json names its ``--mi-shard`` (so ``merge`` can check the run is whole), a
    shard that the split leaves without a claim still writes its (empty) run folder, and a shard's folder
    refuses another shard's rows."""
    from mechinterp.cli import main
    from mechinterp.report import load_run

    pytester.makepyfile(test_claims=CLAIMS)  # the four colour knockouts: one claim group, so one shard gets none
    shards = [tmp_path / "shard-1", tmp_path / "shard-2"]
    for i, run in enumerate(shards, 1):
        result = pytester.runpytest("--mi-shard", f"{i}/2", "--report", str(run), "--cache-dir", str(tmp_path / "cache"))
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    runs = [load_run(run) for run in shards]
    assert [r.metadata.shard for r in runs] == ["1/2", "2/2"]
    assert sorted(len(r.results) for r in runs) == [0, 4]  # every knockout in one shard, skipped, none in the other
    assert main(["merge", str(shards[0]), "--out", str(tmp_path / "part")]) == 2
    assert capsys.readouterr().err == f"mechinterp merge: missing shard 2/2 of the 2: given 1/2 ({shards[0]})\n"
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "all")]) == 0
    merged = load_run(tmp_path / "all")
    assert {r.decision for r in merged.results.values()} == {"skipped"} and len(merged.results) == 4
    refused = pytester.runpytest("--mi-shard", "2/2", "--report", str(shards[0]))
    assert refused.ret == pytest.ExitCode.USAGE_ERROR and "--mi-shard '1/2' there, '2/2' now" in refused.stderr.str()
    empty = next(i for i, r in enumerate(runs, 1) if not r.results)
    assert pytester.runpytest("--collect-only", "--mi-shard", f"{empty}/2").ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert not (pytester.path / "reports").exists()  # collecting an empty shard writes no run folder

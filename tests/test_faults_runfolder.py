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

    pytester.makepyfile(test_claims=CLAIMS)
    one = ["-k", "ref-to-image"]  # one colour knockout: one claim group, so one shard gets none
    shards = [tmp_path / "shard-1", tmp_path / "shard-2"]
    for i, run in enumerate(shards, 1):
        result = pytester.runpytest(*one, "--mi-shard", f"{i}/2", "--report", str(run), "--cache-dir", str(tmp_path / "cache"))
        assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED)
    runs = [load_run(run) for run in shards]
    assert [r.metadata.shard for r in runs] == ["1/2", "2/2"]
    assert sorted(len(r.results) for r in runs) == [0, 1]  # the knockout in one shard, skipped, none in the other
    assert main(["merge", str(shards[0]), "--out", str(tmp_path / "part")]) == 2
    assert capsys.readouterr().err == f"mechinterp merge: missing shard 2/2 of the 2: given 1/2 ({shards[0]})\n"
    assert main(["merge", *map(str, shards), "--out", str(tmp_path / "all")]) == 0
    merged = load_run(tmp_path / "all")
    assert {r.decision for r in merged.results.values()} == {"skipped"} and len(merged.results) == 1
    refused = pytester.runpytest("--mi-shard", "2/2", "--report", str(shards[0]))
    assert refused.ret == pytest.ExitCode.USAGE_ERROR and "--mi-shard '1/2' there, '2/2' now" in refused.stderr.str()
    empty = next(i for i, r in enumerate(runs, 1) if not r.results)
    assert pytester.runpytest("--collect-only", *one, "--mi-shard", f"{empty}/2").ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert not (pytester.path / "reports").exists()  # collecting an empty shard writes no run folder


RUNS = """
import pytest

@pytest.mark.claims(experiment="knockout", family="color")
def test_knockout(claim, check_claim):
    check_claim(claim)
"""


def test_a_model_replaced_at_the_same_path_is_refused_and_the_same_model_resumes(pytester, tmp_path):
    """The bug: weights replaced at the path a folder recorded, rerun into it, pooled rows of two models
    into one decision. The folder records each model's fingerprint; the other model stops the run with one
    error before any of its claims runs, and the same model again resumes (all from the caches)."""
    import shutil

    from mechinterp.suite.models import resolve_model

    pytester.makepyfile(test_claims=RUNS)
    model, report = tmp_path / "model", tmp_path / "run"
    shutil.copytree(resolve_model("padding-routed"), model)
    (tmp_path / "data").mkdir()
    args = ["-k", "knockout[ref-to-image]-color", "--mi-model", str(model), "--mi-cache-dir", str(tmp_path / "cache"),
            "--mi-report", str(report), "--mi-data-dir", str(tmp_path / "data")]
    first = pytester.runpytest(*args)
    first.assert_outcomes(passed=1)
    record = json.loads((report / "parts" / "settings.json").read_text())
    meta = json.loads((report / "run.json").read_text())
    assert record["fingerprints"] == {str(model): meta["fingerprint"]} and len(meta["fingerprint"]) == 32
    assert meta["judge_config"] == record["judge_config"] == {"model": "claude-opus-4-7", "max_tokens": 200, "reask": 2}
    assert meta["data_dir"] == record["data_dir"] and meta["data_dir"]["path"] == str((tmp_path / "data").resolve())
    rows = (report / "parts" / "main.jsonl").read_text()

    shutil.rmtree(model)
    shutil.copytree(resolve_model("text-routed"), model)  # another organism's weights at the same path
    refused = pytester.runpytest(*args)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    out = refused.stdout.str() + refused.stderr.str()
    assert out.count(f"--mi-report {report}: holds rows of another model at --mi-model {str(model)!r} (model "
                     f"fingerprint {meta['fingerprint']} there, ") == 1, out[-3000:]
    assert "use a new --mi-report folder (or the same model)" in out and "Traceback" not in out
    assert (report / "parts" / "main.jsonl").read_text() == rows  # nothing of the other model was recorded

    shutil.rmtree(model)
    shutil.copytree(resolve_model("padding-routed"), model)
    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=1)
    assert json.loads((report / "run.json").read_text())["generations"] == 0  # resumed: every image cached


def test_a_folder_made_with_another_judge_config_or_data_dir_is_refused_and_run_json_shows_them(pytester, tmp_path):
    pytester.makepyfile(test_claims=CLAIMS)
    data = tmp_path / "data"
    (data / "tasks").mkdir(parents=True)
    (data / "tasks" / "style.jsonl").write_text('{"task_id": "a"}\n')
    report = tmp_path / "run"
    args = ["--report", str(report), "--cache-dir", str(tmp_path / "cache")]
    judged = ["--mi-judge-config", "model=claude-a,max_concurrency=2", "--mi-data-dir", str(data)]
    assert pytester.runpytest(*args, *judged).ret == pytest.ExitCode.OK
    record = json.loads((report / "parts" / "settings.json").read_text())
    assert record["judge_config"] == {"model": "claude-a", "max_tokens": 200, "reask": 2}
    assert record["data_dir"]["path"] == str(data.resolve()) and len(record["data_dir"]["task_lists"]) == 64

    # how fast verdicts come is not recorded: another concurrency resumes
    assert pytester.runpytest(*args, "--mi-judge-config", "model=claude-a,max_concurrency=8",
                              "--mi-data-dir", str(data)).ret == pytest.ExitCode.OK
    refused = pytester.runpytest(*args, "--mi-judge-config", "model=claude-b", "--mi-data-dir", str(data))
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert ('(--mi-judge-config {"max_tokens": 200, "model": "claude-a", "reask": 2} there, '
            '{"max_tokens": 200, "model": "claude-b", "reask": 2} now)') in refused.stderr.str()
    refused = pytester.runpytest(*args, "--mi-judge-config", "model=claude-a")  # no data dir now
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert f"(--mi-data-dir {json.dumps(record['data_dir'], sort_keys=True)} there, unset now)" in refused.stderr.str()
    (data / "tasks" / "style.jsonl").write_text('{"task_id": "b"}\n')  # same path, other tasks
    refused = pytester.runpytest(*args, *judged)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert f'(--mi-data-dir {{"path": "{data.resolve()}", "task_lists": "' in refused.stderr.str()
    assert "--mi-judge-config" not in refused.stderr.str()  # only what differs is named
    (data / "tasks" / "style.jsonl").write_text('{"task_id": "a"}\n')
    assert pytester.runpytest(*args, *judged).ret == pytest.ExitCode.OK  # the same again: resumes


@pytest.mark.parametrize("rows", [True, False])
def test_a_folder_of_an_older_mechinterp_is_refused_only_when_it_holds_rows(pytester, tmp_path, rows):
    """A record without fingerprints, judge config and data dir cannot vouch for its rows: refused when there
    are rows, taken over (and completed) when there are none."""
    pytester.makepyfile(test_claims=CLAIMS)
    parts = tmp_path / "run" / "parts"
    parts.mkdir(parents=True)
    old = {"model": "padding-routed", "judge": "auto", "seed": 0, "samples": None, "generator": "device",
           "dtype": None, "device": None}
    (parts / "settings.json").write_text(json.dumps(old))
    if rows:
        (parts / "main.jsonl").write_text('{"claim": "x", "rows": []}\n')
    result = pytester.runpytest("--report", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"))
    if rows:
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines([f"*--mi-report {tmp_path / 'run'}: holds verdict rows recorded by an older "
                                     "mechinterp without their judge config, data dir, fingerprints, which cannot be "
                                     "checked against this run's; use a new --mi-report folder*"])
    else:
        assert result.ret == pytest.ExitCode.OK
        assert set(json.loads((parts / "settings.json").read_text())) == {*old, "judge_config", "data_dir", "fingerprints", "shard"}

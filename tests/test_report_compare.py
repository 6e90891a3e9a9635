"""``mechinterp compare`` as a regression check: significant changes, k/n and relation intervals, settings
that must agree, lost claims (issue 30). Real run folders written by ``write_run`` (no model, no network)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from mechinterp.cli import main
from mechinterp.judges import Verdict
from mechinterp.report import VerdictRow, compare_runs, load_run, write_run
from mechinterp.stats import PairTally, newcombe, paired_interval

from test_report import KO_IMAGE, KO_TEXT, LENS_HUMAN, META, REL, _verdicts

RC2 = dict(model="tiny/klein-rc2")  # B is another model; every setting that shapes a claim is A's


def _run(tmp_path: Path, name: str, ko_text_pass: int, n: int = 80, keep=None, outcomes=None, **meta):
    """A run folder: ``_verdicts``' claims on ``n`` tasks (``keep``: only those claims' rows)."""
    rows = _verdicts(tmp_path / name, ko_text_pass, n)
    rows = [v for v in rows if keep is None or v.claim_id in keep]
    return write_run(tmp_path / name, replace(META, **meta), rows, outcomes=outcomes)


def _line(out: str, claim_id: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(claim_id + " "))


def test_fail_on_change_fails_on_a_significant_change_that_is_no_flip(tmp_path, capsys):
    """80/80 -> 62/80 knocked out: both runs hold, so --fail-on-flip passes; the change's Newcombe interval
    excludes 0, so the claim is marked CHANGED and --fail-on-change fails (the relation moves with it)."""
    a, b = _run(tmp_path, "a", 80), _run(tmp_path, "b", 62, **RC2)
    changes = {c.claim_id: c for c in compare_runs(load_run(a.path), load_run(b.path))}
    assert {cid for cid, c in changes.items() if c.flipped} == set()
    assert {cid for cid, c in changes.items() if c.changed} == {KO_TEXT, REL}
    ref = newcombe(62, 80, 80, 80)
    assert (changes[KO_TEXT].diff, changes[KO_TEXT].diff_low, changes[KO_TEXT].diff_high) == (ref.estimate, ref.low, ref.high)
    assert ref.high < 0
    assert main(["compare", str(a.path), str(b.path), "--fail-on-flip"]) == 0
    out = capsys.readouterr().out
    assert "4 claims compared (decided in both runs), 0 flipped, 2 changed, 0 not compared" in out
    assert _line(out, KO_TEXT).split()[-4:] == ["holds", "->", "holds", "CHANGED"]
    assert _line(out, KO_IMAGE).split()[-3:] == ["holds", "->", "holds"]  # no change: unmarked
    json_path = tmp_path / "changes.json"
    assert main(["compare", str(a.path), str(b.path), "--fail-on-change", "--json", str(json_path)]) == 1
    captured = capsys.readouterr()
    assert (f"compare FAILED (--fail-on-change): 2 changed (interval at 95% excludes 0): {KO_TEXT}, {REL}"
            in captured.err.splitlines())
    rows = {row["claim_id"]: row for row in json.loads(json_path.read_text())}
    assert {cid for cid, row in rows.items() if row["changed"]} == {KO_TEXT, REL}
    assert rows[KO_TEXT]["counts_a"] == [[80, 80]] and rows[KO_TEXT]["counts_b"] == [[62, 80]]
    assert rows[REL]["counts_b"] == [[62, 80], [8, 80]]
    # the same model twice: nothing changed, --fail-on-change passes
    assert main(["compare", str(a.path), str(a.path), "--fail-on-change"]) == 0


def test_a_flip_is_marked_changed_too_when_its_interval_excludes_0(tmp_path, capsys):
    a, b = _run(tmp_path, "a", 34, n=40), _run(tmp_path, "b", 8, n=40, **RC2)
    assert main(["compare", str(a.path), str(b.path)]) == 0
    line = _line(capsys.readouterr().out, KO_TEXT)
    assert line.split()[-5:] == ["holds", "->", "refuted", "FLIPPED", "CHANGED"]


def test_compare_shows_k_n_and_each_runs_relation_interval(tmp_path, capsys):
    """Every cell shows k/n; a relation shows both arms' k/n and its difference with its interval in each
    run, and its change is the MOVER of the two runs' intervals (the runs are independent)."""
    a, b = _run(tmp_path, "a", 80), _run(tmp_path, "b", 62, **RC2)
    ra, rb = a.results[REL], b.results[REL]
    assert (ra.k, ra.n, ra.k2, ra.n2, rb.k, rb.n, rb.k2, rb.n2) == (80, 80, 8, 80, 62, 80, 8, 80)
    assert main(["compare", str(a.path), str(b.path)]) == 0
    out = capsys.readouterr().out
    rel = _line(out, REL)
    assert f"80/80 vs 8/80: {ra.run_text}" in rel and f"62/80 vs 8/80: {rb.run_text}" in rel
    assert ra.run_text == "+90.0 [+81.3, +94.8]" and rb.run_text == "+67.5 [+50.5, +79.1]"
    ko = _line(out, KO_TEXT)
    assert f"80/80 {a.results[KO_TEXT].run_text}" in ko and f"62/80 {b.results[KO_TEXT].run_text}" in ko
    assert f"0/20 {a.results[LENS_HUMAN].run_text}" in _line(out, LENS_HUMAN)
    # MOVER (Zou & Donner 2008) of d_B - d_A from each run's own paired interval
    da, db = ra.rate, rb.rate
    low = (db - da) - math.sqrt((db - rb.ci_low) ** 2 + (ra.ci_high - da) ** 2)
    high = (db - da) + math.sqrt((rb.ci_high - db) ** 2 + (da - ra.ci_low) ** 2)
    change = {c.claim_id: c for c in compare_runs(a, b)}[REL]
    assert change.diff == pytest.approx(db - da, abs=1e-12) and change.diff == pytest.approx(-0.225, abs=1e-12)
    assert (change.diff_low, change.diff_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert high < 0 and change.diff_text in rel and change.diff_text == "-22.5 [-40.1, -8.0]"


def test_confidence_sets_the_level_of_the_changes_intervals(tmp_path, capsys):
    """--confidence 0.999 (Bonferroni over 50 claims): the intervals widen; the relation's change (-22.5 points,
    95 % interval [-40.1, -8.0]) is no longer significant, the cell's (-22.5, [-32.8, -13.5]) still is."""
    a, b = _run(tmp_path, "a", 80), _run(tmp_path, "b", 62, **RC2)
    changes = {c.claim_id: c for c in compare_runs(a, b, 0.999)}
    ref = newcombe(62, 80, 80, 80, 0.999)
    assert (changes[KO_TEXT].diff_low, changes[KO_TEXT].diff_high) == (ref.low, ref.high) and ref.high < 0
    ia, ib = (paired_interval(PairTally(**{c: r.pairs[c] for c in ("n11", "n10", "n01", "n00")}), 0.999)
              for r in (a.results[REL], b.results[REL]))
    low = (ib.estimate - ia.estimate) - math.sqrt((ib.estimate - ib.low) ** 2 + (ia.high - ia.estimate) ** 2)
    high = (ib.estimate - ia.estimate) + math.sqrt((ib.high - ib.estimate) ** 2 + (ia.estimate - ia.low) ** 2)
    assert (changes[REL].diff_low, changes[REL].diff_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert high > 0 and {cid for cid, c in changes.items() if c.changed} == {KO_TEXT}
    assert main(["compare", str(a.path), str(b.path), "--confidence", "0.999", "--fail-on-change"]) == 1
    captured = capsys.readouterr()
    assert "change B-A [99.9%]" in captured.out.splitlines()[0]
    assert f"compare FAILED (--fail-on-change): 1 changed (interval at 99.9% excludes 0): {KO_TEXT}" in captured.err
    for bad in ("1.5", "0", "high"):
        with pytest.raises(SystemExit) as exit_:
            main(["compare", str(a.path), str(b.path), "--confidence", bad])
        assert exit_.value.code == 2
        assert f"argument --confidence: {bad!r}: expected a confidence level between 0 and 1" in capsys.readouterr().err


def test_compare_refuses_runs_whose_settings_differ_naming_each(tmp_path, capsys):
    """Seed, samples, judge, judge config, the judges' models and the data dir's task lists change what a
    claim measures: compare refuses (exit 2) naming each, unless --allow-settings-change."""
    a = _run(tmp_path, "a", 80, judge_model="color:cielab-v1, fake:judge", judge_config={"model": "m1", "reask": 1},
             data_dir={"path": "/runner/a/data", "task_lists": "d1"})
    b = _run(tmp_path, "b", 62, seed=1, samples=50, judge="anthropic", judge_model="color:cielab-v2, fake:judge",
             judge_config={"model": "m2", "reask": 1}, data_dir={"path": "/runner/b/data", "task_lists": "d2"}, **RC2)
    assert main(["compare", str(a.path), str(b.path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert err[0].startswith(f"compare: refused: {a.path} and {b.path} were run with different settings")
    assert err[1:] == ['  seed: 0 in tiny/klein, 1 in tiny/klein-rc2', '  samples: 40 in tiny/klein, 50 in tiny/klein-rc2',
                       '  judge: "fake" in tiny/klein, "anthropic" in tiny/klein-rc2',
                       '  judge config: {"model": "m1", "reask": 1} in tiny/klein, {"model": "m2", "reask": 1} in tiny/klein-rc2',
                       '  judge model color: ["cielab-v1"] in tiny/klein, ["cielab-v2"] in tiny/klein-rc2',
                       '  data dir task lists: "d1" in tiny/klein, "d2" in tiny/klein-rc2',
                       "(pass --allow-settings-change to compare them anyway)"]
    assert main(["compare", str(a.path), str(b.path), "--allow-settings-change"]) == 0
    out = capsys.readouterr().out
    assert "4 claims compared (decided in both runs), 0 flipped, 2 changed, 0 not compared" in out
    assert out.splitlines()[-1].startswith('settings differ (--allow-settings-change): seed: 0 in tiny/klein, 1 in')
    # what is compared (model, revision, fingerprint, device, dtype, sampling), the budget, the git commit, the
    # data dir's path, and a judge one run did not use, may differ
    c = _run(tmp_path, "c", 62, model="tiny/klein-rc2", revision="fff", fingerprint="beef", device="cuda:0", dtype="float16",
             sampling={"guidance": 4}, budget="$5", git_commit="0123", judge_model="color:cielab-v1, glyph:grid-v1",
             judge_config={"model": "m1", "reask": 1}, data_dir={"path": "/elsewhere", "task_lists": "d1"})
    assert main(["compare", str(a.path), str(c.path)]) == 0
    assert "settings differ" not in capsys.readouterr().out


def test_fail_on_flip_fails_when_a_claim_decided_in_a_is_lost_in_b(tmp_path, capsys):
    """A claim decided in A that errored, was skipped or is absent in B is no pass of a regression check:
    --fail-on-flip (and --fail-on-change) fail and the summary names it; a claim new in B is no loss."""
    a = _run(tmp_path, "a", 80)
    errored = {KO_IMAGE: {"outcome": "failed", "message": "CUDA out of memory"}}
    b = _run(tmp_path, "b", 80, keep={KO_TEXT, LENS_HUMAN}, outcomes=errored, **RC2)  # no KO_IMAGE rows: no relation
    assert (b.results[KO_IMAGE].decision, REL in b.results) == ("error", False)
    assert main(["compare", str(a.path), str(b.path)]) == 0  # no flag: shown, not failed
    out = capsys.readouterr().out
    assert "2 claims compared (decided in both runs), 0 flipped, 0 changed, 2 not compared" in out
    assert f"lost: decided in tiny/klein, not decided in tiny/klein-rc2 (2): {KO_IMAGE}, {REL}" in out.splitlines()
    for flag in ("--fail-on-flip", "--fail-on-change"):
        assert main(["compare", str(a.path), str(b.path), flag]) == 1
        err = capsys.readouterr().err
        assert f"compare FAILED (--fail-on-flip/--fail-on-change): 2 lost in tiny/klein-rc2: {KO_IMAGE}, {REL}" in err
    # the other way round nothing is lost: B's claims are all decided in A
    assert main(["compare", str(b.path), str(a.path), "--fail-on-flip", "--fail-on-change"]) == 0
    assert "lost:" not in capsys.readouterr().out


LENS_COLOR, CROSS = "lens[single.9]-color", "rel[lens.color>lens.human]-cross"


def test_an_unpaired_relations_change_is_the_mover_of_its_runs_newcombe_intervals(tmp_path, capsys):
    """Table 1's orderings are unpaired (each arm its own tasks): each run's difference has Newcombe's
    interval of its two arms, and the change between runs is the MOVER of those two."""
    def run(name: str, colour_pass: int, **meta):
        rows = [v for v in _verdicts(tmp_path / name, 30, 40) if v.claim_id == LENS_HUMAN]  # 0/20, 1 abstained
        rows += [VerdictRow(LENS_COLOR, f"c{i}", Verdict(i < colour_pass, "", "fake:judge:lens.color")) for i in range(30)]
        return write_run(tmp_path / name, replace(META, **meta), rows)

    a, b = run("a", 30), run("b", 18, **RC2)
    ra, rb = a.results[CROSS], b.results[CROSS]
    assert (ra.unpaired, ra.k, ra.n, ra.k2, ra.n2, rb.k, rb.n) == (True, 30, 30, 0, 20, 18, 30)
    ia, ib = newcombe(30, 30, 0, 20), newcombe(18, 30, 0, 20)
    assert (ra.rate, ra.ci_low, ra.ci_high) == (ia.estimate, ia.low, ia.high)
    low = (ib.estimate - ia.estimate) - math.sqrt((ib.estimate - ib.low) ** 2 + (ia.high - ia.estimate) ** 2)
    high = (ib.estimate - ia.estimate) + math.sqrt((ib.high - ib.estimate) ** 2 + (ia.estimate - ia.low) ** 2)
    change = {c.claim_id: c for c in compare_runs(a, b)}[CROSS]
    assert change.diff == pytest.approx(-0.4, abs=1e-12)
    assert (change.diff_low, change.diff_high) == (pytest.approx(low, abs=1e-12), pytest.approx(high, abs=1e-12))
    assert high < 0 and change.changed and not change.flipped  # a - b > 0 holds in both runs
    assert main(["compare", str(a.path), str(b.path), "--fail-on-change"]) == 1
    line = _line(capsys.readouterr().out, CROSS)
    assert f"30/30 vs 0/20: {ra.run_text}" in line and f"18/30 vs 0/20: {rb.run_text}" in line and "CHANGED" in line

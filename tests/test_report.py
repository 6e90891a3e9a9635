"""Run folders, JUnit, HTML, compare and merge on synthetic runs (no model, no network)."""

from __future__ import annotations

import base64
from html import escape
import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from mechinterp.cli import main
from mechinterp.report import (
    RunMeta, VerdictRow, compare_runs, evaluate, junit_properties, load_run, merge_runs, write_html, write_junit,
    write_report, write_run,
)
from mechinterp.judges import Verdict
from mechinterp.report.html import claim_slug
from mechinterp.claims import load_registry
from mechinterp.stats import newcombe

KO_TEXT, KO_IMAGE, LENS_HUMAN = "knockout[ref->text]-color", "knockout[ref->image]-color", "lens[double.7]-human"
REL = "rel[ko.text>ko.image]-color"
XSS = "<script>document.body.setAttribute('data-pwned','1')</script> & \"quotes\""


def _png(rgb, size=32) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), rgb).save(buf, format="PNG")
    return buf.getvalue()


def _verdicts(run_dir: Path, ko_text_pass: int, n: int = 40, start: int = 0) -> list[VerdictRow]:
    """``n`` tasks: KO ref->text passes ``ko_text_pass`` times; KO ref->image keeps colour in 36 of 40."""
    (run_dir / "images").mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(start, start + n):
        ref = run_dir / "images" / f"ref_{i}.png"
        ref.write_bytes(_png((200, 20 + i % 200, 30)))
        images = [{"label": "reference", "path": f"images/ref_{i}.png"},
                  {"label": "knockout <b>", "png": base64.b64encode(_png((90, 90, 90))).decode()}]
        reason = XSS if i == start else f"sample {i}"
        out.append(VerdictRow(KO_TEXT, f"t{i}", Verdict(i - start < ko_text_pass, reason, "fake:judge:ko_text.color"),
                              images))
        out.append(VerdictRow(KO_IMAGE, f"t{i}", Verdict(i - start < 36 * n // 40, "kept", "fake:judge:ko_image.color")))
    out += [VerdictRow(LENS_HUMAN, f"h{i}", Verdict(True, "different person", "fake:judge:lens.identity")) for i in range(start, start + 20)]
    out.append(VerdictRow(LENS_HUMAN, f"h_abstain{start}", Verdict(None, "cannot determine", "fake:judge:lens.identity")))
    return out


META = RunMeta(name="synthetic", model="tiny/klein", revision="abc123", fingerprint="f00d", judge="fake", seed=0,
               samples=40, device="cpu", generations=80, cache_hits=3, judge_calls=81, judge_input_tokens=358_000,
               judge_output_tokens=4_200, judge_cost_usd=0.5, started=1_735_689_600.0, finished=1_735_693_200.0)


@pytest.fixture
def make_run(tmp_path: Path):
    def make(name: str, ko_text_pass: int, n: int = 40, start: int = 0, **meta):
        run_dir = tmp_path / name
        return write_run(run_dir, replace(META, **meta), _verdicts(run_dir, ko_text_pass, n, start))
    return make


def test_write_and_load_round_trip(make_run):
    run = make_run("a", ko_text_pass=34)
    assert sorted(p.name for p in run.path.iterdir()) == ["images", "results.json", "run.json", "verdicts.jsonl"]
    loaded = load_run(run.path)
    assert loaded.verdicts == run.verdicts and loaded.metadata == run.metadata
    assert loaded.metadata.revision == "abc123" and loaded.metadata.format == 2
    r = loaded.results
    assert (r[KO_TEXT].k, r[KO_TEXT].n, r[KO_TEXT].decision) == (34, 40, "holds")
    assert (r[KO_IMAGE].k, r[KO_IMAGE].n) == (4, 40)  # inverted: 36 kept -> 4 destroyed
    assert (r[LENS_HUMAN].k, r[LENS_HUMAN].n, r[LENS_HUMAN].abstained) == (0, 20, 1)
    # the relation's margin (a - b >= 0.50): a gap of 0.75 over 40 paired tasks has its bound at 0.49
    assert (r[REL].k, r[REL].n, r[REL].k2, r[REL].n2, r[REL].decision) == (34, 40, 4, 40, "inconclusive")
    assert round(r[REL].ci_low, 3) == 0.491
    assert r[KO_TEXT].paper_text == "86.2 +3.3 \u22124.2" and r[KO_TEXT].paper_rate == pytest.approx(0.862)
    assert set(r) == {KO_TEXT, KO_IMAGE, LENS_HUMAN, REL}  # claims without data are not reported
    # results.json is what the run reported; dropping it recomputes the same values
    (run.path / "results.json").unlink()
    assert load_run(run.path).results == r


def test_evaluate_rejects_unknown_claims_and_duplicates():
    claims = load_registry()
    with pytest.raises(ValueError, match="unknown claim 'nope'"):
        evaluate([VerdictRow("nope", "t", Verdict(True, "", "fake:judge:ko_text.color"))], claims)
    twice = [VerdictRow(KO_TEXT, "t1", Verdict(True, "", "fake:judge:ko_text.color"))] * 2
    with pytest.raises(ValueError, match="duplicate verdict.*'t1'"):
        evaluate(twice, claims)


def test_writes_are_atomic(make_run, monkeypatch):
    run = make_run("a", ko_text_pass=34)
    before = (run.path / "results.json").read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_run(run.path, META, [])
    assert (run.path / "results.json").read_bytes() == before
    assert not [p for p in run.path.iterdir() if p.name.endswith(".tmp")]


def test_junit_parses_and_carries_the_evidence(make_run):
    run = make_run("a", ko_text_pass=22)  # 55% destroyed: inconclusive against >= 0.5
    root = ET.parse(write_junit(run)).getroot()
    suite = root.find("testsuite")
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == set(run.results) and suite.get("tests") == "4"
    props = {p.get("name"): p.get("value") for p in cases[KO_TEXT].iter("property")}
    assert {k: props[k] for k in ("k", "n", "decision", "hypothesis", "paper_text")} == {
        "k": "22", "n": "40", "decision": "inconclusive", "hypothesis": "rate >= 0.5", "paper_text": "86.2 +3.3 \u22124.2"}
    assert float(props["ci_low"]) < float(props["rate"]) == 0.55 < float(props["ci_high"])
    assert cases[KO_TEXT].find("skipped") is not None and cases[KO_IMAGE].find("failure") is None
    rel = {p.get("name"): p.get("value") for p in cases[REL].iter("property")}
    assert (rel["a"], rel["b"], rel["k2"], rel["n2"]) == (KO_TEXT, KO_IMAGE, "4", "40")


def test_junit_properties_survive_pytest_xdist(tmp_path: Path, make_run):
    pytest.importorskip("xdist")
    run = make_run("a", ko_text_pass=34)
    props = {cid: junit_properties(res) for cid, res in run.results.items()}
    (tmp_path / "props.json").write_text(json.dumps(props))
    (tmp_path / "test_claims.py").write_text(textwrap.dedent("""
        import json, pathlib, pytest
        PROPS = json.loads((pathlib.Path(__file__).parent / "props.json").read_text())
        @pytest.mark.parametrize("cid", sorted(PROPS))
        def test_claim(cid, record_property):
            for name, value in PROPS[cid]:
                record_property(name, value)
    """))
    xml = tmp_path / "junit.xml"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # only xdist: workers stay light (no torch)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "xdist", "-n", "2", "-p", "no:cacheprovider",
                           "-o", "addopts=",
                           f"--junitxml={xml}", "--rootdir", str(tmp_path), str(tmp_path / "test_claims.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = list(ET.parse(xml).getroot().iter("testcase"))
    assert len(cases) == 4
    for case in cases:
        got = [(p.get("name"), p.get("value")) for p in case.iter("property")]
        cid = dict(got)["claim_id"]
        assert cid in case.get("name") and got == [tuple(pair) for pair in props[cid]]
        assert {"k", "n", "rate", "ci_low", "ci_high", "hypothesis", "decision", "paper_text"} <= dict(got).keys()


def test_html_report_shows_paper_vs_run_and_escapes_judge_text(make_run):
    run = make_run("a", ko_text_pass=34)
    index = write_html(run).read_text()
    assert "Table 2: Attention knockout" in index and "paper 86.2 +3.3 \u22124.2" in index
    assert "run 85.0 +" in index and 'class="badge holds"' in index
    assert "Content-Security-Policy" in index and "tiny/klein" in index and "abc123" in index
    header = dict(re.findall(r"<tr><th>([^<]+)</th><td>([^<]*)</td></tr>", index.split("<h2>Paper tables")[0]))
    assert (header["seed"], header["samples per claim"], header["judge cost"]) == ("0", "40", "$0.5000")
    assert header["judge calls"] == "81 calls, 358,000 in / 4,200 out tokens" and header["fingerprint"] == "f00d"
    assert header["time"] == "3600.0 s wall" and header["generations"] == "80 generated, 3 from the cache"
    page = (run.path / "claims" / claim_slug(KO_TEXT)).read_text()
    assert "<script" not in page and "&lt;script&gt;document.body.setAttribute(&#39;data-pwned&#39;" in page
    assert "&amp; &#34;quotes&#34;" in page and "knockout &lt;b&gt;" in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) >= 2 * 40
    assert not re.search(r'(src|href)="(https?:|file:|//)', index + page)  # self-contained


def test_claim_pages_show_every_bundle_labelled_and_every_sweep_site(tmp_path: Path):
    """Rows store image roles: a card's captions are the question's labels for them; no bundle is cut
    (100 bundles, folded 48 at a time), and a sweep's bundles are grouped under each of its sites."""
    from mechinterp.judges.questions import QUESTIONS
    from mechinterp.report.html import bundle_groups, image_label

    png = base64.b64encode(_png((200, 30, 30))).decode()
    roles = QUESTIONS["refdrop.color"].roles
    rows = [VerdictRow("refdrop[single.9+]-color", f"t{i}@{site}", Verdict(True, f"r{i}", "fake:judge:refdrop.color"),
                       [{"role": r, "png": png} for r in roles])
            for site in ("double.1", "single.0") for i in range(50)]
    run = write_run(tmp_path / "sweep", META, rows)
    write_html(run)
    page = (run.path / "claims" / claim_slug("refdrop[single.9+]-color")).read_text()
    labels = [image_label({"role": r}, "refdrop.color") for r in roles]
    assert labels == [label.rstrip(":") for label in QUESTIONS["refdrop.color"].labels] and all(labels)
    for label in labels:
        assert page.count(f"<br>{escape(label)}</span>") == 100  # every card, every image captioned
    assert all(f"<b>t{i}@{site}</b>" in page for site in ("double.1", "single.0") for i in range(50))
    summaries = re.findall(r"<summary>([^<]+)</summary>", page)
    assert summaries == ["site double.1: bundles 1-48 of 50", "site double.1: bundles 49-50 of 50",
                         "site single.0: bundles 1-48 of 50", "site single.0: bundles 49-50 of 50"]
    assert page.count("<details open>") == 1
    assert [len(g["rows"]) for g in bundle_groups(rows[:5], 2)] == [2, 2, 1]
    assert image_label({"role": "mystery"}, "refdrop.color") == "mystery"  # an unknown role names itself


def test_html_embeds_only_png_from_inside_the_run(make_run, tmp_path: Path):
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png((1, 2, 3)))
    run = make_run("a", ko_text_pass=34)
    run.verdicts[0].images[:] = [{"label": "escape", "path": "../secret.png"},
                                 {"label": "not png", "png": base64.b64encode(b"GIF89a....").decode()},
                                 {"label": "bad b64", "png": "%%%"}]
    write_html(run)
    page = (run.path / "claims" / claim_slug(KO_TEXT)).read_text()
    first = page[page.index("<b>t0</b>"):page.index("<b>t1</b>")]
    assert "data:image" not in first and first.count("(no image)") == 3


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["/usr/bin/chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", f"--user-data-dir={tmp / 'chromium-profile'}", *args],
                          capture_output=True, text=True, timeout=90)


chromium = pytest.mark.skipif(not Path("/usr/bin/chromium").exists(),
                              reason="/usr/bin/chromium is absent (apt-get install chromium to run this test)")


@chromium
def test_report_opens_in_headless_chromium_and_shows_the_table(make_run, tmp_path: Path):
    run = make_run("a", ko_text_pass=34)
    index = write_html(run)
    shot = tmp_path / "shot.png"
    proc = _chromium(f"--screenshot={shot}", "--window-size=1200,900", index.as_uri(), tmp=tmp_path)
    assert shot.is_file(), proc.stderr[-2000:]
    with Image.open(shot) as im:
        px = im.convert("RGB")
        assert px.size == (1200, 900)
        colours = px.getcolors(maxcolors=1 << 20)
    counts = {rgb: c for c, rgb in colours}
    # the holds badge (#1a7f37) and the table header background (#f6f8fa) are rendered
    assert counts.get((0x1A, 0x7F, 0x37), 0) > 50 and counts.get((0xF6, 0xF8, 0xFA), 0) > 1000


@chromium
def test_script_in_a_judge_reason_is_rendered_as_text_in_chromium(make_run, tmp_path: Path):
    run = make_run("a", ko_text_pass=34)
    write_html(run)
    page = run.path / "claims" / claim_slug(KO_TEXT)
    dom = _chromium("--dump-dom", page.as_uri(), tmp=tmp_path).stdout
    assert "data-pwned" in dom  # the text is there ...
    assert "<script>" not in dom and 'data-pwned="1"' not in dom  # ... but never ran
    assert "&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;" in dom


def test_compare_flags_flipped_claims_with_a_newcombe_interval(make_run, capsys):
    a, b = make_run("a", ko_text_pass=34), make_run("b", ko_text_pass=8)
    changes = {c.claim_id: c for c in compare_runs(load_run(a.path), load_run(b.path))}
    ko = changes[KO_TEXT]
    assert (ko.decision_a, ko.decision_b, ko.flipped) == ("holds", "refuted", True)
    ref = newcombe(8, 40, 34, 40)
    assert (ko.diff, ko.diff_low, ko.diff_high) == (ref.estimate, ref.low, ref.high)
    assert not changes[LENS_HUMAN].flipped
    assert main(["compare", str(a.path), str(b.path)]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith(KO_TEXT))
    assert "holds -> refuted" in line and "FLIPPED" in line and "-65.0 [" in line
    assert "4 claims compared (decided in both runs), 2 flipped, 2 changed, 0 not compared" in out  # the relation flips with it
    json_path = a.path.parent / "changes.json"
    assert main(["compare", str(a.path), str(b.path), "--fail-on-flip", "--json", str(json_path)]) == 1
    assert {row["claim_id"] for row in json.loads(json_path.read_text()) if row["flipped"]} == {KO_TEXT, REL}


def test_compare_fails_when_nothing_was_compared(make_run, tmp_path, capsys):
    a = make_run("a", ko_text_pass=34)
    empty = write_run(tmp_path / "skipped", META, [])  # e.g. every claim skipped: no results
    for args in (["compare", str(a.path), str(empty.path)], ["compare", str(empty.path), str(a.path), "--fail-on-flip"]):
        assert main(args) == 1
        err = capsys.readouterr().err
        assert "nothing compared" in err and "(0 claims, 0 decided)" in err and "(4 claims, 4 decided)" in err
    # a claim present in one run only is named, not silently dropped
    partial = write_run(tmp_path / "partial", META, [v for v in load_run(a.path).verdicts if v.claim_id == KO_TEXT])
    assert main(["compare", str(a.path), str(partial.path)]) == 0
    out = capsys.readouterr().out
    assert "1 claims compared (decided in both runs), 0 flipped, 0 changed, 3 not compared" in out
    assert "not compared: only in tiny/klein (A) (3): " in out and KO_IMAGE in out


SKIPPED_CLAIMS = ("knockout[ref->text.padding]-color", "knockout[ref->text.content]-color")


def test_compare_counts_only_claims_decided_in_both_runs(make_run, tmp_path, capsys):
    """Issue 26: a claim skipped (or errored) in either run has no result to compare; a run whose claims all
    skipped compared with itself compared nothing, and says so with exit 1 (also under --fail-on-flip)."""
    skips = {cid: {"outcome": "skipped", "message": "needs --mi-data-dir"} for cid in SKIPPED_CLAIMS}
    a = write_run(tmp_path / "run", META, _verdicts(tmp_path / "run", 34), outcomes=skips)
    assert len(a.results) == 6 and sum(r.decided for r in a.results.values()) == 4
    assert main(["compare", str(a.path), str(a.path), "--fail-on-flip"]) == 0
    out = capsys.readouterr().out
    assert "4 claims compared (decided in both runs), 0 flipped, 0 changed, 2 not compared" in out
    assert (f"not compared: skipped in tiny/klein (A), skipped in tiny/klein (B) (2): {', '.join(SKIPPED_CLAIMS)}"
            in out.splitlines())
    errored = write_run(tmp_path / "errored", META, [v for v in a.verdicts if v.claim_id != KO_IMAGE],
                        outcomes={**skips, KO_IMAGE: {"outcome": "failed", "message": "CUDA out of memory"}})
    assert main(["compare", str(a.path), str(errored.path)]) == 0
    out = capsys.readouterr().out
    assert f"not compared: holds in tiny/klein (A), error in tiny/klein (B) (1): {KO_IMAGE}" in out.splitlines()
    assert KO_IMAGE not in [line.split()[0] for line in out.splitlines()[1:] if line]  # not in the table
    all_skipped = write_run(tmp_path / "all-skipped", META, [], outcomes=skips)
    for args in ([str(all_skipped.path)] * 2, [str(all_skipped.path)] * 2 + ["--fail-on-flip"]):
        assert main(["compare", *args]) == 1
        err = capsys.readouterr().err
        assert "nothing compared: no claim was decided in both" in err and "(2 claims, 0 decided)" in err
        assert "0 claims compared (decided in both runs), 0 flipped, 0 changed, 2 not compared" in err


def test_compare_names_its_columns_after_the_runs_models(make_run, tmp_path, capsys):
    a = make_run("run", ko_text_pass=34)
    (tmp_path / "other").mkdir()
    cases = [(dict(model="tiny/klein-rc2"), ("tiny/klein", "tiny/klein-rc2")),
             (dict(revision="def4567890"), ("tiny/klein@abc123", "tiny/klein@def45678")),
             (dict(fingerprint="beefcafe1234"), ("tiny/klein#f00d", "tiny/klein#beefcafe")),
             (dict(), ("tiny/klein (A)", "tiny/klein (B)"))]
    for i, (meta, names) in enumerate(cases):
        run_dir = tmp_path / "other" / "run" if i == 0 else tmp_path / f"b{i}" / "run"  # same last part as A's
        b = write_run(run_dir, replace(META, **meta), _verdicts(run_dir, 34))
        assert main(["compare", str(a.path), str(b.path)]) == 0
        header = capsys.readouterr().out.splitlines()[0]
        assert re.match(rf"claim +{re.escape(names[0])} +{re.escape(names[1])} +change B-A", header), (header, names)


def test_version_flag_prints_the_package_version(capsys):
    import mechinterp

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"mechinterp {mechinterp.__version__}"


def _claims_of(verdicts: list[VerdictRow], *claim_ids: str) -> list[VerdictRow]:
    return [v for v in verdicts if v.claim_id in claim_ids]


def test_merge_pools_verdicts_and_keeps_each_claims_result(make_run, tmp_path: Path, capsys):
    s1 = write_run(tmp_path / "s1", META, _claims_of(_verdicts(tmp_path / "s1", 34), KO_TEXT, KO_IMAGE))
    s2 = write_run(tmp_path / "s2", replace(META, seed=1, judge_cost_usd=0.25, started=1_735_690_000.0,
                                            finished=1_735_700_000.0),
                   _claims_of(_verdicts(tmp_path / "s2", 0, start=40), LENS_HUMAN))
    merged = merge_runs([s1.path, s2.path], tmp_path / "merged")
    m = merged.metadata  # sums, or the list of the shards' values
    assert (m.seed, m.samples, m.judge_cost_usd, m.generations, m.judge_calls) == ([0, 1], 40, 0.75, 160, 162)
    assert (m.started, m.finished, m.model, m.revision) == (1_735_689_600.0, 1_735_700_000.0, "tiny/klein", "abc123")
    assert m.merged_from == [str(s1.path), str(s2.path)] and m.workers == 2
    assert merged.results == {**s1.results, **s2.results} and len(merged.results) == 4  # the relation with its cells
    assert list(merged.results) == list(write_run(tmp_path / "whole", META, merged.verdicts).results)  # registry order
    assert (merged.metadata.duplicates, merged.metadata.conflicts) == (0, 0)
    assert all("path" not in img for v in merged.verdicts for img in v.images)  # images embedded
    shutil.rmtree(s1.path / "images")  # the merged folder stands alone
    assert main(["report", str(tmp_path / "merged")]) == 0
    assert "data:image/png" in (tmp_path / "merged" / "claims" / claim_slug(KO_TEXT)).read_text()
    again = merge_runs([s1.path, s1.path, s2.path], tmp_path / "m2")  # a claim decided alike twice: kept once
    assert again.metadata.duplicates == len(s1.verdicts) and again.results == merged.results
    capsys.readouterr()
    assert main(["merge", str(s1.path), str(s2.path), "--out", str(tmp_path / "m3")]) == 0
    assert (tmp_path / "m3" / "report.html").is_file() and (tmp_path / "m3" / "junit.xml").is_file()
    header = (tmp_path / "m3" / "report.html").read_text().split("<h2>Paper tables")[0]
    assert "<th>seed</th><td>0 | 1</td>" in header and "<th>judge cost</th><td>$0.7500</td>" in header
    assert "<th>samples per claim</th><td>40</td>" in header and load_run(tmp_path / "m3").metadata == load_run(tmp_path / "m3").metadata


SUITE_DECISION = {"decision": "inconclusive", "looks": [18, 36], "note": "stopped at the budget",
                  "interval": {"low": 0.70, "high": 0.93, "confidence": 0.9969},
                  "worst_case": {"low": 0.66, "high": 0.94, "confidence": 0.9969},
                  "plan": {"budget": 40, "power": 0.91, "point": 0.858},
                  "sweep": {"single.9": {"k": 34, "n": 40, "low": 0.70, "high": 0.93, "decision": "inconclusive"}}}


def test_merge_keeps_each_claims_sequential_decision_as_its_shard_made_it(tmp_path: Path):
    """Issue 26: merge decided every claim again on the pooled verdicts, losing the shards' sequential
    decisions, intervals, looks, budgets, power and sweeps (and turning a transition claim that held into
    refuted); each claim's results.json entry is now its shard's, complete, in results, junit and HTML."""
    s1 = write_run(tmp_path / "s1", replace(META, shard="1/2"), _claims_of(_verdicts(tmp_path / "s1", 34), KO_TEXT),
                   decisions={KO_TEXT: SUITE_DECISION})
    s2 = write_run(tmp_path / "s2", replace(META, shard="2/2"), _claims_of(_verdicts(tmp_path / "s2", 0), LENS_HUMAN))
    assert s1.results[KO_TEXT].decision == "inconclusive" and evaluate(s1.verdicts, load_registry())[KO_TEXT].decision == "holds"
    assert main(["merge", str(s2.path), str(s1.path), "--out", str(tmp_path / "merged")]) == 0
    merged = load_run(tmp_path / "merged")
    assert merged.results[KO_TEXT] == s1.results[KO_TEXT] and merged.results[LENS_HUMAN] == s2.results[LENS_HUMAN]
    r = merged.results[KO_TEXT]
    assert (r.decision, r.decision_low, r.worst_high, r.looks, r.budget, r.power, r.note) == (
        "inconclusive", 0.70, 0.94, [18, 36], 40, 0.91, "stopped at the budget")
    assert r.sweep == SUITE_DECISION["sweep"] and merged.metadata.shard is None
    def cases(run_dir):
        return {case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")}
                for case in ET.parse(run_dir / "junit.xml").getroot().iter("testcase")}

    write_junit(s1)
    assert cases(merged.path)[KO_TEXT] == cases(s1.path)[KO_TEXT] and cases(merged.path)[KO_TEXT]["looks"] == "18,36"
    assert "[70.0, 93.0] % at 99.69 %" in (merged.path / "report.html").read_text()


def test_merge_refuses_a_claim_decided_differently_in_two_runs(make_run, tmp_path: Path, capsys):
    a, b = make_run("a", ko_text_pass=34), make_run("b", ko_text_pass=8, start=100)
    with pytest.raises(ValueError, match=re.escape(f"claim {KO_TEXT!r} was decided in two runs with different results: "
                                                   f"{a.path} (holds, 85.0")) as err:
        merge_runs([a.path, b.path], tmp_path / "m")
    assert f"and {b.path} (refuted, 20.0" in str(err.value) and not (tmp_path / "m").exists()
    assert main(["merge", str(a.path), str(b.path), "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err.startswith(f"mechinterp merge: claim {KO_TEXT!r} was decided in two runs")
    # decided in one run, skipped in the other: the decision stays
    skipped = write_run(tmp_path / "skipped", META, [], outcomes={KO_TEXT: {"outcome": "skipped", "message": "no data"}})
    assert merge_runs([skipped.path, a.path], tmp_path / "m4").results[KO_TEXT] == a.results[KO_TEXT]


@pytest.mark.parametrize("shards, error", [
    (["1/3", "3/3"], "missing shard 2/3 of the 3: given 1/3 ({s0}), 3/3 ({s1})"),
    (["2/4"], "missing shards 1/4, 3/4, 4/4 of the 4: given 2/4 ({s0})"),
    (["1/2", "1/2", "2/2"], "shard 1/2 given twice: {s0} and {s1}"),
    (["1/2", "2/2", "1/3"], "cannot merge shards of different splits: {s0} is shard 1/2, {s1} is shard 2/2, {s2} is shard 1/3"),
    (["1/2", "0/2"], "{s1}: run.json's shard '0/2' is not I/N with 1 <= I <= N"),
])
def test_merge_refuses_an_incomplete_or_mixed_set_of_shards(tmp_path: Path, capsys, shards, error):
    """Issue 26: a merged report of a sharded run must not silently lack a shard's claims."""
    ids = [KO_TEXT, KO_IMAGE, LENS_HUMAN]
    runs = [write_run(tmp_path / f"s{i}", replace(META, shard=shard), _claims_of(_verdicts(tmp_path / f"s{i}", 34), ids[i % 3]))
            for i, shard in enumerate(shards)]
    message = error.format(**{f"s{i}": run.path for i, run in enumerate(runs)})
    with pytest.raises(ValueError, match=re.escape(message)):
        merge_runs([r.path for r in runs], tmp_path / "m")
    assert main(["merge", *(str(r.path) for r in runs), "--out", str(tmp_path / "m")]) == 2
    assert capsys.readouterr().err == f"mechinterp merge: {message}\n" and not (tmp_path / "m").exists()


def test_merge_refuses_to_pool_different_models(make_run, tmp_path: Path):
    a = make_run("a", ko_text_pass=30)
    b = make_run("b", ko_text_pass=30, start=100, revision="def456")
    with pytest.raises(ValueError, match="different revisions.*abc123.*def456"):
        merge_runs([a.path, b.path], tmp_path / "m")


def test_tables_from_a_run_folder(make_run, capsys):
    run = make_run("a", ko_text_pass=34)
    assert main(["tables", "--run", str(run.path)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("KO ref→text "))
    assert "85.0 +" in row and "\u2014" in row
    assert main(["tables", "--run", str(run.path), "--check"]) == 1


def test_write_report_writes_both(make_run):
    junit, index = write_report(make_run("a", ko_text_pass=34))
    assert junit.is_file() and index.is_file() and junit.parent == index.parent


def test_a_suite_run_reports_the_interval_that_decided_the_plan_and_the_policy(tmp_path: Path):
    """What a suite run records of a sequential decision reaches results.json, junit.xml and the HTML."""
    from mechinterp.stats import ABSTENTIONS

    run_dir = tmp_path / "suite"
    verdicts = _verdicts(run_dir, ko_text_pass=34)
    decided = {"decision": "holds", "looks": [10, 20], "note": "",
               "interval": {"low": 0.61, "high": 0.97, "confidence": 0.9969},
               "worst_case": {"low": 0.55, "high": 0.98, "confidence": 0.9969},
               "plan": {"budget": 18, "power": 0.903, "point": 0.858, "schedule": [5, 9, 14, 18]}}
    undecidable = {"decision": "inconclusive", "looks": [], "interval": None,
                   "note": "undecidable with at most 40 tasks (--samples): ...; nothing was run",
                   "plan": {"budget": 40, "power": 0.0, "point": 0.0087}}
    run = write_run(run_dir, META, verdicts, decisions={KO_TEXT: decided, "patching[single.9:text.content]-color": undecidable})
    r = load_run(run_dir).results
    assert (r[KO_TEXT].decision_low, r[KO_TEXT].decision_high, r[KO_TEXT].budget, r[KO_TEXT].looks) == (0.61, 0.97, 18, [10, 20])
    assert (r[KO_TEXT].worst_low, r[KO_TEXT].ci_low < r[KO_TEXT].rate) == (0.55, True)  # the plain 95 % stays beside it
    assert r["patching[single.9:text.content]-color"].n == 0 and "undecidable" in r["patching[single.9:text.content]-color"].note
    props = {p.get("name"): p.get("value") for case in ET.parse(write_junit(run)).getroot().iter("testcase")
             if case.get("name") == KO_TEXT for p in case.iter("property")}
    assert (props["decision_low"], props["decision_high"], props["budget"], props["power"], props["looks"]) == (
        "0.61", "0.97", "18", "0.903", "10,20")
    index = write_html(run).read_text()
    assert "How claims are decided" in index and ABSTENTIONS.split(":")[0] in index
    assert "[61.0, 97.0] % at 99.69 %" in index and "budget 18: 90 % at 85.8 %" in index
    assert "budget 40: 0 % at 0.9 %" in index and "undecidable with at most 40 tasks" in index
    # a claim without a suite plan (released-style pooling) shows the plan the suite would give it
    assert re.search(r"budget \d+: \d+ % at ", (run.path / "claims" / claim_slug(KO_IMAGE)).read_text())


def test_a_sweeps_counts_are_escaped_like_every_run_value(make_run, monkeypatch):
    """The sweep table's k/n (once written raw) comes from results.json, so a tampered file cannot inject markup
    (the plot, which needs numbers, is replaced by a fixed image here)."""
    import dataclasses

    from mechinterp.report import plots

    monkeypatch.setattr(plots, "sweep_plot", lambda *a, **k: "data:image/png;base64,AAAA")
    run = make_run("a", ko_text_pass=34)
    evil = {"k": "<script>1</script>", "n": 8, "low": 0.1, "high": 0.9, "decision": "holds", "budget": 8, "power": 0.9}
    run.results[KO_TEXT] = dataclasses.replace(run.results[KO_TEXT], sweep={"double.0": evil})
    write_html(run)
    page = (run.path / "claims" / claim_slug(KO_TEXT)).read_text()
    assert "<script" not in page and "<td>&lt;script&gt;1&lt;/script&gt; / 8</td>" in page
    assert '<h2>Sweep</h2><img class="sweep" alt="rate per site" src="data:image/png;base64,AAAA' in page


def test_a_verdict_row_holds_the_judges_verdict_and_round_trips_flat():
    """One verdict type: a row is the judge's Verdict placed on a claim's task; the file stays flat."""
    v = Verdict(False, "blue, not red", "color:objective:ko_text.color", input_tokens=12, output_tokens=3, cached=True)
    row = VerdictRow.of(KO_TEXT, "t1", v, [{"role": "reference", "png": "AA=="}])
    assert row.verdict == Verdict(False, "blue, not red", "color:objective:ko_text.color", 12, 3)  # cached: per read
    assert (row.passed, row.reason, row.question_id) == (False, "blue, not red", "ko_text.color")
    flat = row.to_dict()
    assert flat["question_id"] == "ko_text.color" and flat["input_tokens"] == 12
    assert VerdictRow.from_dict(json.loads(json.dumps(flat))) == row
    # a row written before tokens were kept, with a bare judge name, still loads
    old = VerdictRow.from_dict({"claim_id": KO_TEXT, "task_id": "t2", "question_id": "ko_text.color", "passed": True,
                                "reason": "", "judge": "fake-judge", "images": []})
    assert old.question_id == "ko_text.color" and old.judge == "fake-judge:ko_text.color" and old.verdict.input_tokens == 0
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        VerdictRow.from_dict({**flat, "colour": 1})


def test_a_transition_claims_sweep_marks_the_claimed_and_the_measured_crossing(tmp_path: Path):
    """The claim page names the claimed crossing (with its window) and the measured one in marked elements,
    its sweep table flags those sites' rows, and the plot draws them (it differs from the unmarked plot)."""
    from html.parser import HTMLParser

    from mechinterp.report.plots import sweep_plot

    cid = "refdrop[embed+:crosses.single.9]-color"
    sites = ["embed", "double.0", "double.1", "single.0", "single.1", "single.2", "single.3"]
    sweep = {s: {"k": 16 if i < 2 else 0, "n": 16, "low": 0.8 if i < 2 else 0.0, "high": 1.0 if i < 2 else 0.2,
                 "decision": "holds" if i < 2 else "refuted", "budget": 16, "power": 0.5} for i, s in enumerate(sites)}
    transition = {"at": "double.1", "claimed": ["double.0", "single.0"], "located": ["double.1", "double.1"],
                  "within": 1, "holds": "before", "decision": "holds"}
    rows = [VerdictRow(cid, f"t{i}@{s}", Verdict(i >= 2, "r", "fake:judge:refdrop.color")) for i, s in enumerate(sites)]
    run = write_run(tmp_path / "crossing", META, rows,
                    decisions={cid: {"decision": "holds", "sweep": sweep, "transition": transition}})
    assert json.loads((run.path / "results.json").read_text())[cid]["transition"] == transition
    write_html(run)
    page = (run.path / "claims" / claim_slug(cid)).read_text()

    class Marks(HTMLParser):
        def __init__(self):
            super().__init__()
            self.spans, self.rows, self._row, self._cells = {}, {}, None, []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag == "span" and a.get("class", "").startswith("transition-"):
                self.spans[a["class"]] = a
            if tag == "tr":
                self._row, self._cells = a.get("class", ""), []

        def handle_data(self, data):
            if self._row is not None:
                self._cells.append(data)

        def handle_endtag(self, tag):
            if tag == "tr" and self._row is not None:
                if self._cells and self._cells[0] in sites:
                    self.rows[self._cells[0]] = set(self._row.split())
                self._row = None

    marks = Marks()
    marks.feed(page)
    assert marks.spans["transition-claimed"]["data-at"] == "double.1"
    assert marks.spans["transition-claimed"]["data-window"] == "double.0..single.0"
    assert marks.spans["transition-measured"]["data-located"] == "double.1..double.1"
    assert marks.rows == {"embed": set(), "double.0": {"window"}, "double.1": {"claimed", "window", "measured"},
                          "single.0": {"window"}, "single.1": set(), "single.2": set(), "single.3": set()}
    plain, marked = sweep_plot(sweep, cid, 0.5), sweep_plot(sweep, cid, 0.5, transition)
    assert marked != plain and marked.startswith("data:image/svg+xml;base64,")
    # a sweep with no transition keeps its plain page: no crossing element, no extra column
    other = write_run(tmp_path / "plain", META, [replace(r, claim_id="refdrop[single.9+]-color") for r in rows],
                      decisions={"refdrop[single.9+]-color": {"decision": "holds", "sweep": sweep}})
    write_html(other)
    assert "transition-" not in (other.path / "claims" / claim_slug("refdrop[single.9+]-color")).read_text()


def test_the_sweep_plot_is_an_svg_that_draws_each_site_its_band_bound_and_crossings():
    """The plot is parsed back: one dot per site with answers (at its rate), the band through every interval,
    the threshold at its height, the claimed crossing between the right sites; text is escaped."""
    import base64
    import xml.etree.ElementTree as ET

    from mechinterp.report.plots import STEP, LEFT, crossing_x, sweep_plot

    sites = ["embed", "double.0", "double.1", "single.0"]
    sweep = {s: {"k": k, "n": n, "low": lo, "high": hi} for s, k, n, lo, hi in
             zip(sites, (16, 12, 0, 0), (16, 16, 0, 16), (0.8, 0.5, 0.0, 0.0), (1.0, 0.9, 1.0, 0.2))}
    transition = {"at": "double.1", "claimed": ["double.0", "single.0"], "located": ["double.1", "double.1"]}
    uri = sweep_plot(sweep, "<script>alert(1)</script> & rate", 0.5, transition)
    svg = base64.b64decode(uri.split(",", 1)[1]).decode()
    assert "<script" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)
    ns = {"s": "http://www.w3.org/2000/svg"}
    by_class = lambda c: root.findall(f".//*[@class='{c}']", ns)  # noqa: E731
    top, bottom = float(by_class("claimed")[0].get("y1")), float(by_class("claimed")[0].get("y2"))
    y_of = lambda rate: top + (1 - rate) * (bottom - top)  # noqa: E731
    x_of = lambda i: LEFT + (i + 0.5) * STEP  # noqa: E731
    dots = by_class("dot")
    assert [d.find("s:title", ns).text for d in dots] == ["embed: 16 / 16", "double.0: 12 / 16", "single.0: 0 / 16"]
    assert [float(c) for d in dots for c in (d.get("cx"), d.get("cy"))] == pytest.approx(
        [x_of(0), y_of(1.0), x_of(1), y_of(0.75), x_of(3), y_of(0.0)], abs=0.06)
    band = [tuple(map(float, p.split(","))) for p in by_class("band")[0].get("points").split()]
    assert [y for _, y in band] == pytest.approx([y_of(v) for v in (1.0, 0.9, 0.2, 0.0, 0.5, 0.8)], abs=0.06)
    assert float(by_class("threshold")[0].get("y1")) == pytest.approx(y_of(0.5), abs=0.06)
    assert float(by_class("claimed")[0].get("x1")) == pytest.approx(x_of(crossing_x(sites, "double.1")), abs=0.06)
    assert [t.text for t in by_class("site")] == sites
    assert {g.get("data-kind") for g in by_class("legend")} == {"band", "rate", "threshold", "claimed", "measured"}
    plain = ET.fromstring(base64.b64decode(sweep_plot(sweep).split(",", 1)[1]))
    assert not plain.findall(".//*[@class='claimed']", ns) and not plain.findall(".//*[@class='threshold']", ns)

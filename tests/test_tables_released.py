"""The authors' released verdicts, pooled with the registry's polarity, give the paper's tables.

This is the external ground truth of the statistics and report layer. It reads
``../shared/reference/i2i-interp/verdicts`` beside the repository and skips cleanly when
that folder is absent; when it is present every check here is hard.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mechinterp.claims import Claim, claims_by_id, load_registry, load_tables
from mechinterp.cli import main
from mechinterp.report import check_tables, evaluate, load_released

VERDICTS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp" / "verdicts"
pytestmark = pytest.mark.skipif(not VERDICTS.is_dir(), reason=f"released verdicts not found at {VERDICTS}")

CLAIMS = load_registry()
TABLES = load_tables()


@pytest.fixture(scope="module")
def results():
    verdicts, _ = load_released(VERDICTS, CLAIMS)
    return evaluate(verdicts, CLAIMS)


def _cells():
    return [(t.id, key, cid) for t in TABLES for key, cid in sorted(t.cells.items())]


@pytest.mark.parametrize("table,key,claim_id", _cells(), ids=[f"{t}:{r}:{c}" for t, (r, c), _ in _cells()])
def test_cell_equals_the_printed_value(results, table, key, claim_id):
    paper = claims_by_id(CLAIMS)[claim_id].paper
    assert results[claim_id].run_text == paper.text
    assert results[claim_id].n == paper.n and results[claim_id].abstained == 0


def test_readme_examples(results):
    assert (results["knockout[ref->text]-color"].k, results["knockout[ref->text]-color"].n) == (276, 320)
    assert (results["patching[single.9:text.padding]-color"].k, results["patching[single.9:text.padding]-color"].n) == (381, 448)
    assert (results["lens[double.7]-human"].k, results["lens[double.7]-human"].n) == (0, 90)


def test_check_passes_and_ignoring_polarity_would_fail(results, monkeypatch):
    assert check_tables(TABLES, results, CLAIMS) == []
    verdicts, _ = load_released(VERDICTS, CLAIMS)
    # every question read as "pass" (polarity lives on the question): the inverted cells come out wrong
    monkeypatch.setattr(Claim, "polarity", property(lambda c: None if c.question is None else "pass"))
    problems = check_tables(TABLES, evaluate(verdicts, CLAIMS), CLAIMS)
    assert len(problems) == 2 * 3 + 1  # KO ref->image (in T2 and D1) and lens identity


def test_decisions_on_the_papers_own_data(results):
    decisions = {cid: r.decision for cid, r in results.items()}
    assert decisions["knockout[ref->text]-human"] == "inconclusive"  # "barely changes it" vs 45.6 (+10.3 -9.9)
    assert decisions["lens[double.7:text.content]-style"] == "refuted"  # Fig. 5 text vs 198/450 observed
    others = {cid: d for cid, d in decisions.items()
              if cid not in ("knockout[ref->text]-human", "lens[double.7:text.content]-style")}
    assert set(others.values()) == {"holds"}
    assert not any(cid.startswith(("refdrop", "rel[refdrop")) for cid in decisions)  # no released data


def test_table_1s_ordering_holds_on_the_released_cells_each_arm_its_own_csv(results):
    """Unpaired: each arm is its whole released cell (no task is shared across families), Newcombe's interval."""
    from mechinterp.stats import newcombe

    index = claims_by_id(CLAIMS)
    ordering = [cid for cid, c in index.items() if c.unpaired]
    assert len(ordering) == 6
    for cid in ordering:
        r, a, b = results[cid], results[index[cid].a], results[index[cid].b]
        assert r.unpaired and r.pairs is None and r.decision == "holds", cid
        assert (r.k, r.n, r.k2, r.n2) == (a.k, a.n, b.k, b.n), cid
        ci = newcombe(r.k, r.n, r.k2, r.n2)
        assert (r.ci_low, r.ci_high) == (ci.low, ci.high) and r.run_text == ci.as_difference_text()
    colour_human = results["rel[lens.color>lens.human]-cross"]
    assert (colour_human.k, colour_human.n, colour_human.k2, colour_human.n2) == (320, 320, 0, 90)
    assert colour_human.paper_text == "+100.0"


def test_cli_prints_the_four_tables_and_check_exits_zero(capsys):
    assert main(["tables", "--verdicts", str(VERDICTS), "--check"]) == 0
    out = capsys.readouterr().out
    for title in ("Table 1", "Table 2", "Table 3", "Table D1"):
        assert title in out
    assert "86.2 +3.3 \u22124.2" in out and "check: 32/32 cells match" in out


def test_cli_check_fails_when_a_paper_value_differs(tmp_path: Path, capsys):
    from mechinterp.claims import default_registry_path

    src = default_registry_path()
    text = src.read_text(encoding="utf-8").replace("value = 86.2, plus = 3.3", "value = 86.3, plus = 3.3")
    (tmp_path / "registry.toml").write_text(text, encoding="utf-8")
    assert main(["tables", "--verdicts", str(VERDICTS), "--check", "--registry", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH T2:ko_text:color (knockout[ref->text]-color): paper 86.3 +3.3 \u22124.2, data 86.2 +3.3 \u22124.2" in out


def test_cli_check_fails_when_a_csv_is_missing(tmp_path: Path, capsys):
    partial = tmp_path / "verdicts"
    shutil.copytree(VERDICTS, partial)
    (partial / "i2i2i_style.csv").unlink()
    assert main(["tables", "--verdicts", str(partial), "--check"]) == 1
    assert "T3:all:style (patching[double.7:text]-style): paper 87.6 +2.7 \u22123.4, data \u2014" in capsys.readouterr().out

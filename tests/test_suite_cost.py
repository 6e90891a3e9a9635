"""The claims suite's own cost: planned budgets and sequential stopping replayed on released verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from mechinterp.bench import cost, suite_cost
from mechinterp.claims import claims_by_id, load_registry
from mechinterp.claims.budget import claim_plan
from mechinterp.report.power import FamilyDraws, released_outcomes, replay, task_data_dir
from mechinterp.report.released import read_released_rows

VERDICTS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp" / "verdicts"
CLAIMS = load_registry()
INDEX = claims_by_id(CLAIMS)
LENS = INDEX["lens[single.9]-color"]  # rate >= 0.80, pass polarity


def test_judged_entities_are_the_prefix_the_replay_stops_at():
    outcomes = {f"t{i}": True for i in range(320)}
    used = suite_cost.judged_entities(LENS, INDEX, outcomes, samples=None, seed=0)
    plan = claim_plan(LENS, INDEX, 320)
    test, expected = replay(plan, outcomes, 0)
    assert used == expected and len(used) == test.last.n <= plan.budget
    # a cap that leaves no way to hold judges nothing
    assert suite_cost.judged_entities(LENS, INDEX, outcomes, samples=4, seed=0) == []


def test_released_rows_reject_a_bad_pass_value(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("entity_id,pass,reason,model,input_tokens,output_tokens\na,yes,r,m,1,1\n")
    with pytest.raises(ValueError, match=r"x.csv: pass value 'yes' for 'a' is not 1, 0 or empty"):
        read_released_rows(bad)


def test_simulate_needs_the_verdicts_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        suite_cost.simulate(tmp_path / "nope", CLAIMS)
    with pytest.raises(FileNotFoundError, match="none of the claims' released verdict CSVs"):
        suite_cost.simulate(tmp_path, CLAIMS)


@pytest.mark.skipif(not VERDICTS.is_dir(), reason=f"released verdicts not found at {VERDICTS}")
def test_the_suite_on_the_released_verdicts_costs_a_fraction_of_a_full_reproduction():
    result = suite_cost.simulate(VERDICTS, CLAIMS, seeds=range(3))
    # the colour lens passed on all 320 released rows: every seed stops the cell at the same look
    outcomes = released_outcomes(LENS, INDEX, VERDICTS)
    cell = len(replay(claim_plan(LENS, INDEX, len(outcomes)), outcomes, 0)[1])
    paired_only = suite_cost.simulate(VERDICTS, [c for c in CLAIMS if not c.unpaired], seeds=range(3))
    assert paired_only.generations["lens1"] == cell
    # Table 1's colour > style draws its colour arm further along the same order: the runs are the longer prefix
    draws = FamilyDraws(INDEX, task_data_dir(VERDICTS))
    longest = []
    for seed in range(3):
        arms = [suite_cost.judged_entities(INDEX[r], INDEX, released_outcomes(INDEX[r], INDEX, VERDICTS),
                                           samples=None, seed=seed, draws=draws)[0]
                for r in ("rel[lens.color>lens.style]-cross", "rel[lens.color>lens.human]-cross")]
        longest.append(max(cell, *map(len, arms)))
    assert result.generations["lens1"] == pytest.approx(sum(longest) / 3) and max(longest) > cell
    assert result.judge_calls == pytest.approx(sum(v for k, v in result.generations.items() if k != "clean"))
    assert result.claims == 42  # 28 cells, the 8 paired relations whose cells both have a CSV, Table 1's 6 unpaired
    # relations pair their cells' tasks: the patching runs exceed what the cells judge on their own
    alone = suite_cost.simulate(VERDICTS, [c for c in CLAIMS if not c.is_relation], seeds=range(3))
    assert result.generations["patch"] > alone.generations["patch"]
    full = cost.reproduction()
    lines = suite_cost.suite_lines(result)
    assert sum(line.generations for line in lines) < sum(line.generations for line in full) / 2
    assert sum(line.hours for line in lines) < sum(line.hours for line in full) / 2
    assert result.judge_usd is not None and 0 < result.judge_usd
    assert "claims (cells and relations) replayed" in suite_cost.describe(result)


@pytest.mark.skipif(not VERDICTS.is_dir(), reason=f"released verdicts not found at {VERDICTS}")
def test_bench_cost_prints_the_suite_section(capsys):
    from mechinterp.bench.cli import _suite_cost
    import argparse

    _suite_cost(argparse.Namespace(verdicts=str(VERDICTS), samples=96, mfu=0.45), {})
    out = capsys.readouterr().out
    assert "--samples 96" in out and "| **total** |" in out
    _suite_cost(argparse.Namespace(verdicts=str(VERDICTS / "missing"), samples=None, mfu=0.45), {})
    assert "claims-suite cost skipped" in capsys.readouterr().out

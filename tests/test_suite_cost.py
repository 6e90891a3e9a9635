"""The claims suite's own cost: sequential stopping replayed on released verdicts (mechinterp.bench.suite_cost)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mechinterp.bench import cost, suite_cost
from mechinterp.bench.suite_cost import replay
from mechinterp.claims import claims_by_id, load_registry
from mechinterp.report.released import ReleasedRow, read_released_rows
from mechinterp.stats import SequentialTest
from mechinterp.stats.sequential import run_sequential, sampling_order

VERDICTS = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "i2i-interp" / "verdicts"
CLAIMS = load_registry()
LENS = claims_by_id(CLAIMS)["lens[single.9]-color"]  # rate >= 0.80, pass polarity
KO_IMAGE = claims_by_id(CLAIMS)["knockout[ref->image]-color"]  # inverted polarity


def rows(outcomes) -> list[ReleasedRow]:
    return [ReleasedRow(f"t{i}", ok, "", "claude-opus-4-7", 1000, 50) for i, ok in enumerate(outcomes)]


@given(st.lists(st.booleans(), min_size=1, max_size=200), st.integers(1, 6), st.integers(0, 3))
def test_replay_stops_where_the_sequential_test_stops(outcomes, looks, seed):
    """With no abstentions the replay judges exactly the prefix ``run_sequential`` needs, in seeded order."""
    data = rows(outcomes)
    judged = replay(LENS, data, samples=128, looks=looks, alpha=0.05, seed=seed)
    by_id = {r.entity: r for r in data}
    order = [by_id[t] for t in sampling_order(by_id, seed)][:128]
    test = run_sequential([r.passed for r in order],
                          SequentialTest(LENS.hypothesis, budget=len(order), alpha=0.05, looks=min(looks, len(order))))
    assert judged == order[:test.history[-1].n]


def test_polarity_is_applied_and_abstentions_are_paid_for_but_not_counted():
    all_fail = rows([False] * 128)
    # the knockout claim counts a failed "still preserved?" as a success: the same early stop as all-pass
    assert len(replay(KO_IMAGE, all_fail, samples=128, looks=4, alpha=0.05, seed=0)) == \
        len(replay(replace(KO_IMAGE, polarity="pass"), rows([True] * 128), samples=128, looks=4, alpha=0.05, seed=0))
    # every row abstaining: nothing can be decided, every drawn row is judged (and paid for)
    assert len(replay(LENS, rows([None] * 50), samples=128, looks=4, alpha=0.05, seed=0)) == 50


def test_a_claim_far_from_its_threshold_stops_before_its_budget():
    judged = replay(LENS, rows([True] * 320), samples=128, looks=4, alpha=0.05, seed=0)
    assert len(judged) in (32, 64, 96) and all(r.passed for r in judged)


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
    # the colour lens passed on all 320 released rows: every seed stops at the same look
    assert result.generations["lens1"] == len(replay(LENS, read_released_rows(VERDICTS / LENS.csv),
                                                      samples=128, looks=4, alpha=0.05, seed=0))
    assert result.judge_calls == sum(v for k, v in result.generations.items() if k != "clean")
    assert result.claims == sum(1 for c in CLAIMS if c.csv and (VERDICTS / c.csv).is_file())
    full = cost.reproduction()
    lines = suite_cost.suite_lines(result)
    assert sum(line.generations for line in lines) < sum(line.generations for line in full) / 2
    assert sum(line.hours for line in lines) < sum(line.hours for line in full) / 2
    assert result.judge_usd is not None and 0 < result.judge_usd
    assert "cell claims replayed" in suite_cost.describe(result)


@pytest.mark.skipif(not VERDICTS.is_dir(), reason=f"released verdicts not found at {VERDICTS}")
def test_bench_cost_prints_the_suite_section(capsys):
    from mechinterp.bench.cli import _suite_cost
    import argparse

    _suite_cost(argparse.Namespace(verdicts=str(VERDICTS), samples=32, mfu=0.45), {})
    out = capsys.readouterr().out
    assert "--samples 32" in out and "| **total** |" in out
    _suite_cost(argparse.Namespace(verdicts=str(VERDICTS / "missing"), samples=32, mfu=0.45), {})
    assert "claims-suite cost skipped" in capsys.readouterr().out

"""Suite settings: precedence (command line > environment > ini > default) and parsers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mechinterp.suite.settings import OPTIONS, parse_budget, parse_shard, raw_value, resolve


class _Config:
    """The two methods of ``pytest.Config`` that settings read."""

    def __init__(self, cli=None, ini=None):
        self.cli, self.ini = cli or {}, ini or {}

    def getoption(self, name, default=None):
        return self.cli.get(name.removeprefix("mechinterp_"), default)

    def getini(self, name):
        return self.ini.get(name)


SAMPLES = next(o for o in OPTIONS if o.name == "samples")


def test_precedence(monkeypatch):
    monkeypatch.delenv("MECHINTERP_SAMPLES", raising=False)
    assert raw_value(_Config(), SAMPLES) is None  # no cap: each claim runs its planned budget
    assert raw_value(_Config(ini={"mechinterp_samples": "32"}), SAMPLES) == "32"
    monkeypatch.setenv("MECHINTERP_SAMPLES", "16")
    assert raw_value(_Config(ini={"mechinterp_samples": "32"}), SAMPLES) == "16"
    assert raw_value(_Config(cli={"samples": "8"}, ini={"mechinterp_samples": "32"}), SAMPLES) == "8"


def test_resolve_validates(monkeypatch):
    for o in OPTIONS:
        monkeypatch.delenv(o.env, raising=False)
    s = resolve(_Config(cli={"budget": "$2.5", "shard": "2/3", "model": "direct"}))
    assert s.samples is None and resolve(_Config(cli={"samples": "64"})).samples == 64
    assert (s.budget_dollars, s.budget_generations, s.shard, s.model, s.judge) == (2.5, None, (2, 3), "direct", "auto")
    with pytest.raises(ValueError, match="--mi-judge 'gpt': expected one of auto, color, anthropic, anthropic-batch"):
        resolve(_Config(cli={"judge": "gpt"}))
    with pytest.raises(ValueError, match="--mi-samples '0': must be >= 1"):
        resolve(_Config(cli={"samples": "0"}))


@given(st.integers(1, 10**9))
def test_generation_budgets(n):
    assert parse_budget(str(n)) == (n, None)
    assert parse_budget(f"${n}") == (None, float(n))


@pytest.mark.parametrize("text", ["0", "$0", "0.0$", "-5", "$-2"])
def test_a_budget_of_nothing_is_an_error_not_a_run_that_skips_everything(text):
    with pytest.raises(ValueError) as err:
        parse_budget(text)
    assert str(err.value) == (f"--mi-budget {text!r}: expected a positive number of generations ('2000') "
                              "or dollars ('$25')")


@given(st.text(max_size=8))
def test_budget_parser_never_crashes_unexpectedly(text):
    try:
        gens, dollars = parse_budget(text)
    except ValueError as err:
        assert "--mi-budget" in str(err)
    else:
        assert (gens is None) != (dollars is None)


@given(st.integers(1, 50), st.integers(0, 60))
def test_shards(n, i):
    if 1 <= i <= n:
        assert parse_shard(f"{i}/{n}") == (i, n)
    else:
        with pytest.raises(ValueError, match="--mi-shard"):
            parse_shard(f"{i}/{n}")


def test_the_suite_builds_the_judge_config_from_its_option(monkeypatch):
    """``--judge-config`` reaches every setting of the Claude judge; bad keys and values are named."""
    from mechinterp.judges import AnthropicJudge, JudgeConfig

    for o in OPTIONS:
        monkeypatch.delenv(o.env, raising=False)
    assert resolve(_Config()).judge_config is None
    cfg = resolve(_Config(cli={"judge_config": "model=claude-x, max_concurrency=3,timeout=7.5"})).judge_config
    assert cfg == JudgeConfig(model="claude-x", max_concurrency=3, timeout=7.5)
    judge = AnthropicJudge(cfg, api_key="k", batch=True, batch_max_rounds=2)
    assert (judge.model, judge.max_concurrency, judge.client.timeout, judge.batch_max_rounds) == ("claude-x", 3, 7.5, 2)
    assert AnthropicJudge().config == JudgeConfig()
    with pytest.raises(ValueError, match="'colour=1' is not key=value with a key among model, base_url"):
        resolve(_Config(cli={"judge_config": "colour=1"}))
    with pytest.raises(ValueError, match="max_concurrency must be an integer, got 'many'"):
        JudgeConfig.parse("max_concurrency=many")
    with pytest.raises(ValueError, match="max_concurrency must be >= 1, got 0"):
        JudgeConfig.parse("max_concurrency=0")
    with pytest.raises(ValueError, match=r"unknown judge settings \['speed'\]"):
        AnthropicJudge(speed=2)

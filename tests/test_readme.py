"""The README's Python examples run as written (keeps the README true)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no python examples"
    namespace: dict = {}
    exec(compile("\n".join(blocks), str(README), "exec"), namespace)
    assert (tmp_path / "patched.png").exists()


BENCH_README = README.parent / "bench" / "README.md"
VERDICTS = README.parents[1] / "shared" / "reference" / "i2i-interp" / "verdicts"
FIGURES = re.compile(r"the one place that states them;.*?:\*\* (\d+) claims, ([\d,]+) generations,\s+([\d.]+) "
                     r"H200-hours \(projected\), ([\d,]+) judge calls", re.S)


def test_the_suite_cost_figures_are_stated_once_and_match_the_replay():
    """bench/README.md states the claims suite's replayed cost in one line; it equals the replay of the
    released verdicts, its table's total agrees, and README.md points there instead of quoting them."""
    from mechinterp.bench import suite_cost
    from mechinterp.claims import load_registry

    bench = BENCH_README.read_text()
    found = FIGURES.findall(bench)
    assert len(found) == 1, "bench/README.md must state the suite's figures in exactly one marked line"
    claims, generations, hours, calls = found[0]
    result = suite_cost.simulate(VERDICTS, load_registry())
    lines = suite_cost.suite_lines(result)
    total_gens, total_hours = sum(line.generations for line in lines), sum(line.hours for line in lines)
    assert (int(claims), int(generations.replace(",", "")), hours, int(calls.replace(",", ""))) == \
        (result.claims, total_gens, f"{total_hours:.1f}", round(result.judge_calls))
    assert f"| **total** | {total_gens} | | **{total_hours:.2f}** |" in bench
    readme = README.read_text()
    assert generations not in readme and f"{hours} H200-hours" not in readme and f"{claims} claims" not in readme

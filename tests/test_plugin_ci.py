"""The plugin as a CI user meets it (issue 20): prefixed options that coexist with a project's own,
strict mode, claim families and relations kept together, ``-k``-friendly ids."""

from __future__ import annotations

from pathlib import Path

import pytest

import mechinterp.claims  # noqa: F401  (numpy/scipy loaded once, before pytester's in-process runs)

pytest_plugins = ["pytester"]
CLAIMS = Path(__file__).resolve().parents[1] / "claims"

OWN_OPTIONS = """
def pytest_addoption(parser):
    parser.addoption("--model", default="mine")       # implicit dest 'model', as other projects do
    parser.addoption("--seed", dest="seed", default="7")

def pytest_configure(config):
    from mechinterp.suite.settings import resolve
    s = resolve(config)
    print(f"\\nOWN model={config.getoption('model')} seed={config.getoption('seed')} MI model={s.model} seed={s.seed}")
"""


def _copy_claims(pytester) -> None:
    for f in CLAIMS.glob("test_*.py"):
        pytester.path.joinpath(f.name).write_text(f.read_text())


def test_own_model_option_coexists_with_the_plugin(pytester):
    """A conftest that registers ``--model``/``--seed`` itself keeps them; the plugin's are ``--mi-model``/``--mi-seed``
    and its other aliases (``--samples``) still work."""
    pytester.makeconftest(OWN_OPTIONS)
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("-s", "--model", "theirs", "--seed", "9", "--mi-model", "direct", "--mi-seed", "3",
                                "--samples", "4")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(["*OWN model=theirs seed=9 MI model=direct seed=3*"])
    default = pytester.runpytest("-s")
    default.stdout.fnmatch_lines(["*OWN model=mine seed=7 MI model=None seed=0*"])


def test_unprefixed_aliases_where_free(pytester):
    """Without a clashing conftest the old flags are aliases of the prefixed ones (same destination)."""
    pytester.makeconftest("def pytest_configure(config):\n    from mechinterp.suite.settings import resolve\n"
                          "    s = resolve(config)\n    print(f'\\nMI model={s.model} samples={s.samples}')\n")
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("-s", "--model", "direct", "--samples", "5")
    result.stdout.fnmatch_lines(["*MI model=direct samples=5*"])
    assert "--mi-model" in pytester.runpytest("--help").stdout.str()

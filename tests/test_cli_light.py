"""``mechinterp --version`` and every ``mechinterp ... --help`` import nothing heavy (torch, scipy, ...).

A module-set assertion, not a timing one (timings: bench/README.md): each command runs in a fresh
interpreter, which prints the heavy top-level modules it imported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mechinterp import __version__
from mechinterp.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "scipy", "numpy", "PIL", "diffusers", "transformers", "jinja2", "anthropic")

RUN = """
import contextlib, io, json, sys
import mechinterp.cli
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = mechinterp.cli.main(json.loads(sys.argv[1]))
    except SystemExit as exit:
        code = exit.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[2])))
print(json.dumps({"code": code, "heavy": heavy, "out": out.getvalue()}))
"""


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path of ``parser`` (``("tasks",)``, ``("tasks", "show")``, ...), subcommands included."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(*path, name), *_commands(sub, (*path, name))]
    return found


COMMANDS = _commands(build_parser())


def _run(argv: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", RUN, json.dumps(argv), json.dumps(HEAVY)], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_every_subcommand_is_walked():
    """The walk below sees the nested commands too (so no ``--help`` escapes the check)."""
    assert {("compare",), ("power",), ("bench",), ("tasks", "show"), ("organisms", "train")} <= set(COMMANDS)


def test_version_imports_nothing_heavy():
    result = _run(["--version"])
    assert result == {"code": 0, "heavy": [], "out": f"mechinterp {__version__}\n"}


@pytest.mark.parametrize("command", [(), *COMMANDS], ids=lambda c: " ".join(c) or "top-level")
def test_help_imports_nothing_heavy(command):
    result = _run([*command, "--help"])
    assert (result["code"], result["heavy"]) == (0, [])
    assert result["out"].startswith(f"usage: mechinterp {' '.join(command)}".rstrip())

"""The ``mechinterp`` console script: one entry point, one subcommand per concern.

Each subcommand lives in the module that owns the concern and exposes
``register(subparsers)``, which adds its parser and sets ``func`` on it. The table
below is the single place that lists them, so ``mechinterp --help`` shows everything
the project can do.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand name -> module exposing ``register(subparsers)``
COMMANDS: dict[str, str] = {
    "tables": "mechinterp.report.cli",
    "compare": "mechinterp.report.cli",
    "merge": "mechinterp.report.cli",
    "power": "mechinterp.report.power_cli",
    "tasks": "mechinterp.tasks.cli",
    "organisms": "mechinterp.organisms.cli",
    "bench": "mechinterp.bench.cli",
}


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand registered."""
    from mechinterp import __version__

    parser = argparse.ArgumentParser(prog="mechinterp", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"mechinterp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in dict.fromkeys(COMMANDS.values()):  # each module once, in order
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:  # a concern not installed in this build
            if err.name and module_name.startswith(err.name):
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the console script; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

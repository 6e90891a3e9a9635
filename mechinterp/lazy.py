"""Lazy package exports (PEP 562): a package names what it offers without importing it.

Why: the console script's ``--help``, a pytest session without claims and a reader of one light module
(``mechinterp.tasks.cli``) import a package's ``__init__``; if that imported every submodule, each of
them would pay for torch and diffusers (seconds) before doing anything.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The ``(__getattr__, __dir__)`` pair of ``package``: ``exports`` maps each public name to the module
    that defines it; a name is imported on first use and kept in the package's namespace, so
    ``from package import name`` works as if the package had imported it."""

    def __getattr__(name: str) -> object:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__

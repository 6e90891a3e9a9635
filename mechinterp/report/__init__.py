"""Run folders, paper tables, JUnit/HTML reports and run comparison.

* :func:`write_run` / :func:`load_run` — the ``reports/<run>/`` format (see :mod:`.run`);
  :class:`RunMeta` — its ``run.json``: what reproduces the run and what it cost.
* :func:`load_released` — the authors' released verdict CSVs as a run.
* :func:`format_tables` / :func:`check_tables` — Tables 1, 2, 3, D1 as the paper prints them.
* :func:`write_junit` / :func:`junit_properties`, :func:`write_html` — reports.
* :func:`compare_runs`, :func:`merge_runs` — two runs side by side; a sharded run's shards combined
  (each claim as its own shard decided it).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mechinterp.lazy import lazy_exports

if TYPE_CHECKING:
    from mechinterp.report.run import Run

#: public name -> the module defining it, imported on first use (:mod:`mechinterp.lazy`): the console script's
#: ``--help`` reads ``mechinterp.report.cli``, which must not pay for scipy and jinja2
_EXPORTS = {
    **dict.fromkeys(["Change", "compare_runs", "format_changes"], "mechinterp.report.compare"),
    "write_html": "mechinterp.report.html",
    **dict.fromkeys(["junit_properties", "write_junit"], "mechinterp.report.junit"),
    "merge_runs": "mechinterp.report.merge",
    "RunMeta": "mechinterp.report.meta",
    "load_released": "mechinterp.report.released",
    **dict.fromkeys(["ClaimResult", "Run", "VerdictRow", "atomic_write", "evaluate", "load_run", "write_run"],
                    "mechinterp.report.run"),
    **dict.fromkeys(["check_tables", "format_tables"], "mechinterp.report.tables"),
}


def write_report(run: Run, registry: str | Path | None = None) -> tuple[Path, Path]:
    """Write both reports of a run into its folder: ``junit.xml`` and ``report.html``."""
    from mechinterp.report.html import write_html
    from mechinterp.report.junit import write_junit

    return write_junit(run), write_html(run, registry)


__all__ = sorted([*_EXPORTS, "write_report"])
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

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

from mechinterp.report.compare import Change, compare_runs, format_changes
from mechinterp.report.html import write_html
from mechinterp.report.junit import junit_properties, write_junit
from mechinterp.report.merge import merge_runs
from mechinterp.report.meta import RunMeta
from mechinterp.report.released import load_released
from mechinterp.report.run import ClaimResult, Run, VerdictRow, atomic_write, evaluate, load_run, write_run
from mechinterp.report.tables import check_tables, format_tables


def write_report(run: Run, registry: str | Path | None = None) -> tuple[Path, Path]:
    """Write both reports of a run into its folder: ``junit.xml`` and ``report.html``."""
    return write_junit(run), write_html(run, registry)


__all__ = [
    "Change", "ClaimResult", "Run", "RunMeta", "VerdictRow", "atomic_write", "check_tables", "compare_runs", "evaluate",
    "format_changes", "format_tables", "junit_properties", "load_released", "load_run", "merge_runs",
    "write_html", "write_junit", "write_report", "write_run",
]

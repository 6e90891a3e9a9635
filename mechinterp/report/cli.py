"""``mechinterp tables | compare | merge | report``: the report subcommands.

Each imports the claims and reports (scipy, jinja2) when it runs, so that ``mechinterp --help`` does not.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict


def _tables(args: argparse.Namespace) -> int:
    from mechinterp.claims import load_registry, load_tables
    from mechinterp.report import check_tables, evaluate, format_tables, load_released, load_run, write_report, write_run
    from mechinterp.report.tables import table_cell_count

    claims, tables = load_registry(args.registry), load_tables(args.registry)
    if args.verdicts:
        verdicts, meta = load_released(args.verdicts, claims)
        if args.out:
            run = write_run(args.out, meta, verdicts, args.registry)
            junit, html_path = write_report(run, args.registry)
            print(f"wrote {args.out} ({junit.name}, {html_path.name})", file=sys.stderr)
            results = run.results
        else:
            results = evaluate(verdicts, claims)
    else:
        results = load_run(args.run, args.registry).results
    print(format_tables(tables, results))
    if not args.check:
        return 0
    problems = check_tables(tables, results, claims)
    for p in problems:
        print(f"MISMATCH {p}")
    total = table_cell_count(tables)
    print(f"\ncheck: {total - len(problems)}/{total} cells match the paper" if not problems
          else f"\ncheck FAILED: {len(problems)} of {total} cells differ from the paper")
    return 1 if problems else 0


def _compare(args: argparse.Namespace) -> int:
    from mechinterp.io import atomic_write
    from mechinterp.report import compare_runs, format_changes, load_run
    from mechinterp.report.compare import not_compared, run_names

    a, b = load_run(args.run_a, args.registry), load_run(args.run_b, args.registry)
    names = run_names(a.metadata, b.metadata)
    changes, uncompared = compare_runs(a, b), not_compared(a, b, names)
    text = format_changes(changes, *names, uncompared)
    if not changes:  # e.g. a run whose claims were all skipped: a regression check that checked nothing
        def decided(run):
            return f"{len(run.results)} claims, {sum(r.decided for r in run.results.values())} decided"

        print(f"compare: nothing compared: no claim was decided in both {a.path} ({decided(a)}) "
              f"and {b.path} ({decided(b)})\n{text}", file=sys.stderr)
        return 1
    print(text)
    if args.json:
        rows = [{**asdict(ch), "flipped": ch.flipped} for ch in changes]
        atomic_write(args.json, json.dumps(rows, indent=1) + "\n")
    return 1 if args.fail_on_flip and any(ch.flipped for ch in changes) else 0


def _merge(args: argparse.Namespace) -> int:
    from mechinterp.report import merge_runs, write_report

    try:
        run = merge_runs(args.runs, args.out, args.registry)
    except (ValueError, FileNotFoundError) as err:  # a refusal (see mechinterp.report.merge): one message, no traceback
        print(f"mechinterp merge: {err}", file=sys.stderr)
        return 2
    write_report(run, args.registry)
    meta = run.metadata
    print(f"merged {len(args.runs)} runs into {args.out}: {len(run.results)} claims (each as its own run decided it), "
          f"{len(run.verdicts)} verdicts, {meta.duplicates} duplicates dropped ({meta.conflicts} conflicting)")
    return 0


def _report(args: argparse.Namespace) -> int:
    from mechinterp.report import load_run, write_report

    junit, index = write_report(load_run(args.run, args.registry), args.registry)
    print(f"wrote {junit} and {index}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tables``, ``compare``, ``merge`` and ``report`` subcommands."""
    reg = dict(metavar="PATH", default=None, help="claim registry (TOML file or claims/ folder; default: the project's)")
    p = subparsers.add_parser("tables", help="print Tables 1, 2, 3, D1 from verdicts; --check against the paper")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--verdicts", metavar="DIR", help="folder of released verdict CSVs (i2i-interp/verdicts)")
    src.add_argument("--run", metavar="RUN_DIR", help="a run folder (reports/<run>)")
    p.add_argument("--check", action="store_true", help="exit 1 if any cell differs from the paper's printed value")
    p.add_argument("--out", metavar="RUN_DIR", help="with --verdicts: also save them as a run folder with reports")
    p.add_argument("--registry", **reg)
    p.set_defaults(func=_tables)

    p = subparsers.add_parser("compare", help="per-claim change between two runs, flags flipped decisions "
                                              "(exit 1 when no claim was decided in both)")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--json", metavar="PATH", help="also write the changes as JSON")
    p.add_argument("--fail-on-flip", action="store_true", help="exit 1 when any decision flipped")
    p.add_argument("--registry", **reg)
    p.set_defaults(func=_compare)

    p = subparsers.add_parser("merge", help="combine the shards of a run (or runs of disjoint claims) into one run "
                                            "folder, each claim as its own run decided it")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", required=True, metavar="RUN_DIR")
    p.add_argument("--registry", **reg)
    p.set_defaults(func=_merge)

    p = subparsers.add_parser("report", help="(re)write junit.xml and report.html of a run folder")
    p.add_argument("run", metavar="RUN_DIR")
    p.add_argument("--registry", **reg)
    p.set_defaults(func=_report)

"""``mechinterp tables | compare | merge | report``: the report subcommands.

Each imports the claims and reports (scipy, jinja2) when it runs, so that ``mechinterp --help`` does not.
"""

from __future__ import annotations

import argparse
import json
import math
import sys


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
    from mechinterp.report.compare import lost_claims, not_compared, run_names, settings_differences

    a, b = load_run(args.run_a, args.registry), load_run(args.run_b, args.registry)
    names = run_names(a.metadata, b.metadata)
    differences = settings_differences(a.metadata, b.metadata, names)
    if differences and not args.allow_settings_change:
        print(f"compare: refused: {a.path} and {b.path} were run with different settings, so a change would not be "
              f"the model's:\n" + "\n".join(f"  {d}" for d in differences)
              + "\n(pass --allow-settings-change to compare them anyway)", file=sys.stderr)
        return 2
    changes, uncompared, lost = compare_runs(a, b, args.confidence), not_compared(a, b, names), lost_claims(a, b)
    text = format_changes(changes, *names, uncompared, lost, args.confidence)
    if differences:
        text += "\nsettings differ (--allow-settings-change): " + "; ".join(differences)
    if not changes:  # e.g. a run whose claims were all skipped: a regression check that checked nothing
        def decided(run):
            return f"{len(run.results)} claims, {sum(r.decided for r in run.results.values())} decided"

        print(f"compare: nothing compared: no claim was decided in both {a.path} ({decided(a)}) "
              f"and {b.path} ({decided(b)})\n{text}", file=sys.stderr)
        return 1
    print(text)
    if args.json:
        atomic_write(args.json, json.dumps([ch.record() for ch in changes], indent=1) + "\n")
    failures = [(flag, what, ids) for flag, on, what, ids in (
        ("--fail-on-flip", args.fail_on_flip, "flipped", [ch.claim_id for ch in changes if ch.flipped]),
        ("--fail-on-change", args.fail_on_change, f"changed (interval at {100 * args.confidence:g}% excludes 0)", [ch.claim_id for ch in changes if ch.changed]),
        ("--fail-on-flip/--fail-on-change", args.fail_on_flip or args.fail_on_change, f"lost in {names[1]}", lost),
    ) if on and ids]
    for flag, what, ids in failures:
        print(f"compare FAILED ({flag}): {len(ids)} {what}: {', '.join(ids)}", file=sys.stderr)
    return 1 if failures else 0


def _confidence(text: str) -> float:
    """``--confidence``: a level strictly between 0 and 1 (argparse shows the error naming the value)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a confidence level between 0 and 1, e.g. 0.95 or 0.999")
    return value


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

    p = subparsers.add_parser("compare", help="per-claim change between two runs, flags flipped decisions and "
                                              "significant changes (exit 1 when no claim was decided in both, 2 when "
                                              "the runs' settings differ)")
    p.add_argument("run_a", metavar="RUN_A")
    p.add_argument("run_b", metavar="RUN_B")
    p.add_argument("--json", metavar="PATH", help="also write the changes as JSON")
    p.add_argument("--fail-on-flip", action="store_true",
                   help="exit 1 when any decision flipped or a claim decided in RUN_A is not decided in RUN_B")
    p.add_argument("--fail-on-change", action="store_true",
                   help="exit 1 when any claim changed significantly (its change's interval, at --confidence, excludes "
                        "0) or a claim decided in RUN_A is not decided in RUN_B")
    p.add_argument("--confidence", type=_confidence, default=0.95, metavar="C",
                   help="level of the changes' intervals (default 0.95; over m claims 1-0.05/m bounds the chance "
                        "that any unchanged claim is marked CHANGED at 5%%)")
    p.add_argument("--allow-settings-change", action="store_true",
                   help="compare runs whose seed, samples, judge, judge config, judge models or data dir differ "
                        "(refused otherwise)")
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

"""``mechinterp tasks``: list the task families and show tasks or pairs from one of them.

Loading tasks imports the engine (torch): the subcommands import it when they run, so that
``mechinterp tasks --help`` does not.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from mechinterp.vocabulary import DATA_DIR_ENV, PAIR_FAMILIES
from mechinterp.vocabulary import TASK_FAMILIES as FAMILIES

if TYPE_CHECKING:
    from mechinterp.tasks.records import Pair, Task


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``tasks`` subcommand (``list`` and ``show``) to the top-level parser."""
    parser = subparsers.add_parser("tasks", help="list task families and show their tasks",
                                   description="Task families of the paper (§4.1) and their I2I→I2I pairs.")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    sub = parser.add_subparsers(dest="tasks_command", metavar="ACTION")
    data_help = f"directory with the authors' task lists and images (default: ${DATA_DIR_ENV}); see docs/data-dir.md"

    p_list = sub.add_parser("list", help="every family with its size and what it needs")
    p_list.add_argument("--data-dir", default=None, help=data_help + "; when set, each family's status is checked")
    p_list.set_defaults(func=_cmd_list)

    p_show = sub.add_parser("show", help="print tasks (or pairs) of one family")
    p_show.add_argument("family", help=f"one of: {', '.join(FAMILIES)}")
    p_show.add_argument("--samples", "--n", dest="samples", type=int, default=10,
                        help="how many (a stratified, prefix-stable sample, as pytest's --samples; --n: old name)")
    p_show.add_argument("--seed", type=int, default=0, help="sampling seed")
    p_show.add_argument("--pairs", action="store_true", help=f"show patching pairs ({', '.join(PAIR_FAMILIES)})")
    p_show.add_argument("--data-dir", default=None, help=data_help)
    p_show.add_argument("--no-verify", action="store_true", help="do not check that reference images exist")
    p_show.set_defaults(func=_cmd_show)


def _status(name: str, data_dir: str | None, pairs: bool) -> str:
    """'ready' or the first line of why a family cannot be loaded from ``data_dir``."""
    from mechinterp.tasks.families import load_family, load_pairs
    from mechinterp.tasks.records import TaskDataError

    try:
        (load_pairs if pairs else load_family)(name, data_dir)
    except TaskDataError as err:
        return "not ready: " + str(err).splitlines()[0].removeprefix(f"family {name!r}: ").rstrip(":")
    return "ready"


def _cmd_list(args: argparse.Namespace) -> int:
    from mechinterp.tasks.families import data_dir_or_env

    rows = [("family", "size", "strata", "needs")]
    rows += [(i.name, str(i.size), i.strata, i.needs) for i in FAMILIES.values()]
    rows += [(f"pairs:{i.name}", str(i.size), f"{i.source_family} -> {i.target_family}", i.needs) for i in PAIR_FAMILIES.values()]
    data_dir = data_dir_or_env(args.data_dir)
    if data_dir:
        rows[0] += ("status",)
        for i, row in enumerate(rows[1:], 1):
            name, pairs = row[0].removeprefix("pairs:"), row[0].startswith("pairs:")
            rows[i] = row + (_status(name, data_dir, pairs),)
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    return 0


def _describe(task: Task) -> str:
    return f"{task.task_id}  seed={task.seed}  {task.width}x{task.height}  ref={task.reference_name}  {task.instruction!r}"


def _describe_pair(pair: Pair) -> str:
    src, tgt = pair.source, pair.target
    return (f"{src.task_id} (ref={src.reference_name}, seed={src.seed}) -> "
            f"{tgt.task_id} (ref={tgt.reference_name}, seed={tgt.seed})  {src.instruction!r}")


def _cmd_show(args: argparse.Namespace) -> int:
    from mechinterp.tasks.families import load_family, load_pairs
    from mechinterp.tasks.records import TaskDataError
    from mechinterp.tasks.sampling import sample

    try:
        if args.pairs:
            items = load_pairs(args.family, args.data_dir, verify=not args.no_verify)
        else:
            items = load_family(args.family, args.data_dir, verify=not args.no_verify)
        chosen = sample(items, args.samples, args.seed)
    except TaskDataError as err:
        print(f"mechinterp tasks: {err}", file=sys.stderr)
        return 1
    kind = "pair family" if args.pairs else "family"
    print(f"# {kind} {args.family!r}: {len(chosen)} of {len(items)} (stratified sample, seed {args.seed})")
    for item in chosen:
        print(_describe_pair(item) if args.pairs else _describe(item))
    return 0

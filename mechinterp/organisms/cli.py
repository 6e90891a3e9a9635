"""``mechinterp organisms``: train the model organisms and evaluate them.

``mechinterp organisms train NAME`` trains one organism (resumable from its work folder),
saves it to ``mechinterp/organisms/shipped/NAME`` and writes its model card;
``mechinterp organisms eval`` prints every organism's I2I baseline accuracy and the colour
claims table (exit code 1 when an organism misses the 90 % bar or a claim its expected decision).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    """Add the ``organisms`` subcommand (``train``, ``eval``, ``claims``) to the console script. The help names
    the shipped organisms from their folders: the specs import the engine (torch), which ``--help`` must not."""
    from mechinterp.resources import organisms_dir

    shipped = sorted(p.name for p in organisms_dir().iterdir() if p.is_dir())
    p = subparsers.add_parser("organisms", help="train and evaluate the tiny model organisms", description=__doc__)
    sub = p.add_subparsers(dest="organisms_command", metavar="ACTION")
    t = sub.add_parser("train", help="train one organism and save it with its model card")
    t.add_argument("name", help=f"organism name ({', '.join(shipped)})")
    t.add_argument("--steps", type=int, default=None, help="transformer training steps (default: the shipped recipe)")
    t.add_argument("--batch", type=int, default=None, help="batch size")
    t.add_argument("--out", default=None, help="output folder (default mechinterp/organisms/shipped/NAME)")
    t.add_argument("--workdir", default=None, help="checkpoint folder (default ~/.cache/mechinterp/organisms/NAME)")
    t.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint and start afresh")
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    t.add_argument("--baseline-tasks", "--eval-n", dest="baseline_tasks", type=int, default=64,
                   help="tasks for the baseline accuracy on the card (--eval-n: old name)")
    t.set_defaults(func=_train)
    e = sub.add_parser("eval", help="baseline accuracy and colour-claim table of the shipped organisms")
    e.add_argument("names", nargs="*", help="organisms (default: all shipped)")
    e.add_argument("--root", default=None, help="folder holding organism folders (default: the organisms shipped in the package)")
    e.add_argument("--baseline-tasks", "--n", dest="baseline_tasks", type=int, default=64,
                   help="tasks for the baseline accuracy (--n: old name)")
    e.add_argument("--samples", "--claims-n", dest="samples", type=int, default=None,
                   help="cap on each claim's planned budget, as pytest's --samples (default: none; 0: skip the "
                        "claims; --claims-n: old name)")
    e.add_argument("--json", default=None, help="also write the results as JSON here")
    e.add_argument("--update-cards", action="store_true", help="rewrite each organism's MODEL_CARD.md with the results")
    e.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: fastest for these tiny models)")
    e.set_defaults(func=_eval)
    c = sub.add_parser("claims", help="decide every colour claim on the organisms with the claims suite (engine + ColorJudge)")
    c.add_argument("names", nargs="*", help=f"organisms (default: {', '.join(shipped)})")
    c.add_argument("--samples", type=int, default=None,
                   help="cap on each claim's planned budget, as pytest's --samples (default: none)")
    c.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: fastest for these tiny models)")
    c.set_defaults(func=_claims)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _claims(args) -> int:
    """Print the suite's decisions per organism; exit 1 when one differs from ``mechinterp/claims/organisms.toml``."""
    import torch

    from mechinterp.organisms.expected import as_expected, expected_decisions
    from mechinterp.organisms.spec import ORGANISMS
    from mechinterp.suite.organism_table import suite_decisions, suite_table

    torch.set_num_threads(args.threads)
    names = args.names or list(ORGANISMS)
    results = suite_decisions(names, samples=args.samples)
    expected = expected_decisions()
    print(suite_table(results, expected))
    wrong = [(n, cid) for n, res in results.items() for cid, o in res.items()
             if as_expected(expected, n, cid, o.decision.value) is False]
    for n, cid in wrong:
        print(f"unexpected decision: {n} {cid}", file=sys.stderr)
    return 1 if wrong else 0


def _train(args) -> int:
    import shutil

    import torch

    from mechinterp.organisms.measure import BASELINE_BAR, organism_baseline
    from mechinterp.organisms.spec import get_spec, organism_path
    from mechinterp.organisms.store import (
        folder_size,
        load_organism,
        save_organism,
        write_card,
    )
    from mechinterp.organisms.trainer import TrainConfig, train

    torch.set_num_threads(args.threads)
    spec = get_spec(args.name)
    cfg = TrainConfig()
    if args.steps:
        cfg.steps = args.steps
    if args.batch:
        cfg.batch = args.batch
    workdir = Path(args.workdir or Path.home() / ".cache" / "mechinterp" / "organisms" / spec.name)
    if args.fresh and workdir.exists():
        shutil.rmtree(workdir)
    result = train(spec, cfg, workdir=workdir)
    out = Path(args.out) if args.out else organism_path(spec.name)
    save_organism(result.pipe, out)
    acc = organism_baseline(load_organism(out), args.baseline_tasks)
    write_card(out, acc)
    print(f"{spec.name}: final loss {result.final_loss:.4f}, {result.seconds:.0f} s; saved {out} "
          f"({folder_size(out) / 1e6:.2f} MB); baseline accuracy {acc['correct']}/{acc['n']} = {acc['accuracy']:.1%}")
    return 0 if acc["accuracy"] >= BASELINE_BAR else 1


def _eval(args) -> int:
    import torch

    from mechinterp.io import atomic_write
    from mechinterp.organisms.expected import as_expected, expected_decisions
    from mechinterp.organisms.measure import BASELINE_BAR, organism_baseline
    from mechinterp.organisms.spec import FIXTURES, ORGANISMS
    from mechinterp.organisms.store import folder_size, load_organism, write_card
    from mechinterp.suite.organism_table import suite_decisions, suite_table

    torch.set_num_threads(args.threads)
    root = Path(args.root) if args.root else FIXTURES
    names = args.names or [n for n in ORGANISMS if (root / n).is_dir()]
    if not names:
        print(f"no organisms found under {root}; train one with `mechinterp organisms train NAME`", file=sys.stderr)
        return 1
    expected = expected_decisions()
    status, record = 0, {}
    print("| organism | baseline accuracy | held-out combos | size |\n|---|---|---|---|")
    for name in names:
        acc = organism_baseline(load_organism(root / name), args.baseline_tasks)
        held = acc["held_out_accuracy"]
        print(f"| {name} | {acc['correct']}/{acc['n']} = {acc['accuracy']:.1%} | "
              f"{'–' if held is None else f'{held:.1%}'} | {folder_size(root / name) / 1e6:.2f} MB |", flush=True)
        status |= acc["accuracy"] < BASELINE_BAR
        record[name] = {"baseline": {k: v for k, v in acc.items() if k != "rows"}, "claims": {}}
    tables: dict[str, str] = {}
    if args.samples != 0:
        results = suite_decisions([str(root / n) for n in names], samples=args.samples)
        results = dict(zip(names, results.values()))
        for name, res in results.items():
            for cid, o in res.items():
                status |= as_expected(expected, name, cid, o.decision.value) is False
                record[name]["claims"][cid] = {"k": o.k, "n": o.n, "decision": o.decision.value}
            tables[name] = suite_table({name: res}, expected)
        print("\n" + suite_table(results, expected))
    if args.update_cards:
        for name in names:
            write_card(root / name, record[name]["baseline"], tables.get(name))
    if args.json:
        atomic_write(args.json, json.dumps(record, indent=2))
    return int(status)


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="mechinterp")
    register(parser.add_subparsers(dest="command"))
    a = parser.parse_args()
    sys.exit(a.func(a))

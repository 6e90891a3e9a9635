"""``mechinterp power``: how often each claim holds at its budget, replayed on the authors' verdicts.

The subcommand of :mod:`mechinterp.report.power` (what it replays and prints is documented there). Its
parser is light: the replay (the claims, the statistics: scipy) is imported when it runs, so that
``mechinterp --help`` does not pay for it.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict

from mechinterp.io import atomic_write


def _parse_rates(text: str) -> tuple[float, ...]:
    try:
        rates = tuple(float(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--rate {text!r}: expected a rate P or two rates PA:PB") from None
    if not rates or len(rates) > 2 or any(not (0 <= r <= 1) or math.isnan(r) for r in rates):
        raise argparse.ArgumentTypeError(f"--rate {text!r}: expected a rate P or PA:PB with each in [0, 1]")
    return rates


def _power(args: argparse.Namespace) -> int:
    from mechinterp.claims import claims_by_id, load_registry
    from mechinterp.report.power import format_rows, replay_claims, simulate_claim

    claims = load_registry(args.registry)
    index = claims_by_id(claims)
    if args.runs < 1:
        raise SystemExit(f"--runs {args.runs}: must be >= 1")
    if args.rate is not None:
        if not args.claim:
            raise SystemExit("mechinterp power --rate needs --claim ID")
        missing = [c for c in args.claim if c not in index]
        if missing:
            raise SystemExit(f"unknown claim ids {missing}; see mechinterp/claims/registry.toml")
        rows = [simulate_claim(index[c], index, args.rate, runs=args.runs, samples=args.samples) for c in args.claim]
    else:
        rows = replay_claims(args.verdicts, claims, runs=args.runs, samples=args.samples,
                             only=set(args.claim) if args.claim else None)
    print(format_rows(rows))
    if args.json:
        atomic_write(args.json, json.dumps({"claims": [asdict(r) for r in rows]}, indent=1) + "\n")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``power`` subcommand."""
    p = subparsers.add_parser("power", help="P(holds/refuted/inconclusive) of each claim at its budget, replayed on "
                                            "the released verdicts (--verdicts) or at a true rate (--rate)",
                              description=__doc__.splitlines()[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--verdicts", metavar="DIR", help="folder of the authors' released verdict CSVs")
    src.add_argument("--rate", type=_parse_rates, metavar="P", help="a true rate (PA:PB for a relation), with --claim")
    p.add_argument("--claim", action="append", metavar="ID", help="claim id (repeatable); --verdicts: only these")
    p.add_argument("--runs", type=int, default=2000, help="replays (seeds 0..runs-1) per claim (default 2000)")
    p.add_argument("--samples", type=int, default=None, help="cap on each claim's budget, as pytest's --samples")
    p.add_argument("--json", metavar="FILE", help="also write {\"claims\": [...]} as JSON")
    p.add_argument("--registry", metavar="PATH", default=None, help="claim registry (default: the project's)")
    p.set_defaults(func=_power)


"""``mechinterp bench`` / ``python -m mechinterp.bench``: run the benches, print and save the tables.

Models (``--model``, repeatable):

- ``tiny``: the tiny pipeline, whole 64x64 generations (runs anywhere);
- ``small``: a CPU-sized random transformer (2+4 blocks, 2,176 tokens), four forwards per run;
- ``klein-9b``: a random-weight transformer of the FLUX.2-klein-9B shape at 1024² with one
  reference (8,704 tokens, bf16), four forwards per run — CUDA only, skipped with a message
  elsewhere.

Results go to ``reports/bench/<model>-<device>.json`` (git-ignored); the tracked figures in
``bench/results/`` change only when asked for (``--out bench/results``).

``--cost`` prints the projected GPU-hours of a full reproduction (measured on a GPU when a 9B
bench ran in this invocation or was saved by an earlier one, FLOP-projected otherwise; ``--cost``
alone runs no bench) and, given the authors' released
verdicts (``--verdicts DIR``, default ``$MECHINTERP_DATA_DIR/verdicts``), what the claims suite
itself costs with sequential stopping (``mechinterp.bench.suite_cost``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

MODELS = ("tiny", "small", "klein-9b")
#: where results go unless asked otherwise (git-ignored), and the tracked figures' folder
DEFAULT_OUT, TRACKED = "reports/bench", "bench/results"


def register(subparsers) -> None:
    """Add the ``bench`` subcommand to the ``mechinterp`` console script."""
    p = subparsers.add_parser("bench", help="time interventions against clean generation; GPU cost of a reproduction",
                              description=__doc__.splitlines()[0])
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench options (shared by the subcommand and ``python -m mechinterp.bench``)."""
    p.add_argument("--model", action="append", choices=MODELS, help="model(s) to bench (default: tiny, and klein-9b on CUDA)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per setting (after one warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--device", default=None, help="device (default: cuda when available, else cpu)")
    p.add_argument("--no-dense", action="store_true", help="skip the dense-mask reference knockouts")
    p.add_argument("--flex", action=argparse.BooleanOptionalAction, default=None,
                   help="bench flex_attention knockouts (default: on CUDA only)")
    p.add_argument("--no-peers", action="store_true",
                   help="skip the peers (plain hooks, nnsight, the authors' additive-mask knockouts)")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"folder for the JSON results (default: {DEFAULT_OUT}, git-ignored; '' to not save; "
                        f"{TRACKED} to update the tracked figures)")
    p.add_argument("--cost", action="store_true",
                   help="print the projected GPU-hours of a full reproduction (alone: no bench runs, the timings "
                        "of a saved klein-9b bench are used when there is one)")
    p.add_argument("--mfu", type=float, default=0.45, help="model-FLOPs utilisation assumed by projections")
    p.add_argument("--verdicts", default=None,
                   help="the authors' released verdicts folder, for the claims-suite cost "
                        "(default: $MECHINTERP_DATA_DIR/verdicts)")
    p.add_argument("--samples", type=int, default=None,
                   help="cap on each claim's budget for the claims-suite cost (as pytest's --samples; default: none)")
    p.add_argument("--load", type=int, default=None, metavar="N",
                   help="time the cold main job (pytest claims/ -m color) quiet and beside N busy processes and "
                        "print the ratio (mechinterp.bench.load); runs no other bench unless --model is given")
    p.add_argument("--load-args", default="", metavar="ARGS",
                   help="extra pytest arguments for the --load job, e.g. \"-k 'ref-to-text-color'\"")


def _include(args, device):
    """What the options ask to bench: knockout modes split, flex (on CUDA or with ``--flex``) and dense
    (unless ``--no-dense``); the peers unless ``--no-peers``."""
    from mechinterp.bench.harness import HOOKS, NNSIGHT
    from mechinterp.bench.settings import Include
    from mechinterp.engine.fast_attention import flex_available

    flex = flex_available() and (args.flex if args.flex is not None else device.type == "cuda")
    modes = ("split",) + (("flex",) if flex else ()) + (() if args.no_dense else ("dense",))
    return Include(modes=modes, authors=not args.no_peers, capture_peers=() if args.no_peers else (HOOKS, NNSIGHT))


def _tiny(args, device):
    """Config and settings of the ``tiny`` pipeline bench (whole 64x64 generations)."""
    import mechinterp as mi
    from PIL import Image

    from mechinterp.bench.settings import pipeline_settings
    from mechinterp.engine.tiny import tiny_pipeline

    model = mi.Model(tiny_pipeline(seed=0).to(device))
    edit = mi.Edit("draw a ball in this color", reference=Image.new("RGB", (64, 64), (220, 30, 30)), seed=3,
                   height=64, width=64)
    config = {"model": "tiny pipeline (2 double + 2 single blocks, 64x64, text 48)", "tokens": model.layout(edit).seq_len,
              "steps": edit.steps}
    return config, pipeline_settings(model, edit, _include(args, device))


def _transformer(args, device, name):
    """Config and settings of a random-weight transformer bench (``small`` or ``klein-9b``)."""
    from mechinterp.bench.settings import transformer_settings
    from mechinterp.bench.shapes import TRANSFORMERS, build_transformer, synthetic_inputs, synthetic_layout

    cfg, tokens, dtype = TRANSFORMERS[name]
    transformer = build_transformer(cfg, device, dtype)
    layout = synthetic_layout(tokens["text"], tokens["image"], tokens["ref"])
    inputs = synthetic_inputs(cfg, layout, device, dtype)
    config = {"model": f"random-weight Flux2Transformer2DModel ({name})",
              "transformer_config": {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()},
              "tokens": tokens, "dtype": str(dtype), "steps": 4}
    return config, transformer_settings(transformer, layout, inputs, include=_include(args, device))


def run(args) -> int:
    """Run the selected benches; print each ratio table and save it as JSON."""
    import torch

    from mechinterp.bench import cost, harness

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.model:
        models = args.model
    elif args.cost or args.load:  # the cost or load row alone: no bench run (--cost: a saved 9B measurement)
        models = []
    else:
        models = ["tiny", "klein-9b"] if device.type == "cuda" else ["tiny"]
    if args.load is not None:
        _load_row(args)
    measured_9b = None
    for name in models:
        if name == "klein-9b" and device.type != "cuda":
            print(f"[bench] skipping klein-9b: it needs a CUDA GPU (~20 GB in bf16); this run is on {device}")
            continue
        print(f"[bench] {name} on {device} ({args.repeats} repeats)")
        config, settings = _tiny(args, device) if name == "tiny" else _transformer(args, device, name)
        results = harness.run_bench(settings, device, args.repeats)
        env = harness.environment(device)
        print(f"\n{name}: {env['device_name']}, torch {env['torch']}, diffusers {env['diffusers']}, {env['date']}\n")
        print(harness.table(results) + "\n")
        print(harness.peer_table(results) + "\n")
        if args.out:
            path = harness.save(Path(args.out) / f"{name}-{device.type}.json", name, config, results, env)
            print(f"[bench] saved {path}")
        if name == "klein-9b":
            measured_9b = results
    if args.cost:
        timing, where = {}, f"on {env['device_name']}" if measured_9b else ""
        if measured_9b is None and not args.model:
            measured_9b, where = saved_9b([args.out, TRACKED])
        if measured_9b:
            clean = next(m for m in measured_9b if m.name == "clean")
            timing = {"clean_s": clean.median_s + 0.25, "ratios": {m.name: m.ratio for m in measured_9b}}
            print(f"Reproduction cost (transformer time measured {where}, +0.25 s/gen text encoder and VAE):")
        else:
            print(f"Reproduction cost (PROJECTED from FLOPs; no GPU measurement in this run; MFU {args.mfu}):")
        label = dict(gpu=cost.gpu_label(where), kind="measured") if measured_9b else {}  # hours of the GPU that measured
        print(cost.report(cost.reproduction(**timing, mfu=args.mfu), **label))
        print(f"Break-even MFU for 3 H200-hours (FLOP projection): {cost.break_even_mfu(3.0):.2f}\n")
        _suite_cost(args, timing, label)
    return 0


def _load_row(args) -> None:
    """``--load N``: the main job's quiet and loaded times and their ratio, printed and saved as ``load-cpu.json``."""
    import json
    import shlex

    from mechinterp.bench.load import measure
    from mechinterp.io import atomic_write

    print(f"[bench] main job cold, quiet then beside {args.load} busy processes (minutes)")
    result = measure(args.load, pytest_args=shlex.split(args.load_args),
                     threads=str(args.threads) if args.threads else None)
    print(result.line())
    if args.out:
        path = atomic_write(Path(args.out) / "load-cpu.json", json.dumps(result.to_dict(), indent=2) + "\n")
        print(f"[bench] saved {path}")


def saved_9b(folders) -> tuple[list | None, str]:
    """The newest saved ``klein-9b-cuda.json`` among ``folders`` (its measurements and where/when it was
    measured), or ``(None, "")``: ``--cost`` reuses a GPU measurement instead of rerunning the bench."""
    import json

    from mechinterp.bench.harness import Measurement

    found = [Path(f) / "klein-9b-cuda.json" for f in folders if f]
    found = sorted((p for p in found if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in found:
        try:
            doc = json.loads(path.read_text())
            results = [Measurement(**m) for m in doc["results"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            print(f"[bench] ignoring {path}: not a bench result ({err})")
            continue
        env = doc.get("environment", {})
        return results, f"on {env.get('device_name', 'a GPU')} {env.get('date', '')} ({path})".replace("  ", " ")
    return None, ""


def _suite_cost(args, timing: dict, label: dict | None = None) -> None:
    """Print the claims suite's own cost, replayed on the released verdicts, or say why not."""
    from mechinterp.bench import cost, suite_cost
    from mechinterp.claims import load_registry
    from mechinterp.tasks.families import data_dir_or_env

    data_dir = data_dir_or_env()
    folder = args.verdicts or (data_dir / "verdicts" if data_dir else None)
    if folder is None or not Path(folder).is_dir():
        print(f"[bench] claims-suite cost skipped: the authors' released verdicts folder "
              f"{'was not given' if folder is None else f'{str(folder)!r} does not exist'} "
              f"(--verdicts DIR or $MECHINTERP_DATA_DIR/verdicts)")
        return
    result = suite_cost.simulate(folder, load_registry(), samples=args.samples)
    print(suite_cost.describe(result))
    print(cost.report(suite_cost.suite_lines(result, **timing, mfu=args.mfu), **(label or {})))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m mechinterp.bench``."""
    parser = argparse.ArgumentParser(prog="python -m mechinterp.bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv if argv is not None else sys.argv[1:]))

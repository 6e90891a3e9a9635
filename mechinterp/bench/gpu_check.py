"""``bench/gpu-check``: the GPU acceptance run in one command, writing one JSON (issue 18).

Phases, in one process (the tests in a child pytest):

1. ``cuda-tests``: ``pytest tests/test_cuda.py -m cuda`` (pinned captures, compiled flex, bf16, ...);
2. ``transformer``: the random-weight FLUX.2-klein-9B transformer in bf16 at 1024² with one 1024²
   reference (8,704 tokens), four forwards per run: clean, capture and patch (engine, plain
   hooks, nnsight), every knockout in every mode (split, flex, dense) and the authors'
   additive mask, reference drops at four cutoffs, the T2I lens run, a batch of two;
3. ``pipeline``: whole generations of a random-weight pipeline at real shapes (Qwen3-8B text
   encoder, FLUX.2 VAE, the same transformer): clean, capture/patch by the engine and its peers
   (nnsight through its diffusers support), a knockout in each mode, a reference drop, a batch;
   with the CUDA peak memory of each;
4. ``cost``: the reproduction's GPU-hours projected from the measured times (``mechinterp.bench.cost``),
   labelled with the GPU that measured them.

Each phase has a time budget (``BUDGETS_S``; the whole fits 6 minutes on an H100 with the install) and
is stopped past it; after each phase the JSON is rewritten, and copied into ``--results-dir`` (default:
``$OUT`` when set: the device machine's folder that comes back), so a later failure keeps the earlier
figures.

``--dry-run`` does the same on the tiny pipeline on the CPU (the transformer bench on its
transformer), in well under a minute: it proves the script, not the GPU. A phase that fails is
recorded with its error and the others still run; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import datetime as _dt
import gc
import json
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path

import torch

from mechinterp.bench import cost, harness
from mechinterp.io import atomic_write

PIPELINE_KNOCKOUT = "ref->text.padding"  # the pipeline bench's one knockout (the paper's headline setting)
#: each phase's time limit on the GPU, from estimates (no GPU run yet): CUDA tests ~40 s + flex compiles;
#: transformer ~30 settings x 2 rounds (warm-up + 1 timed) x ~1.5 s + a flex compile ~30 s; pipeline
#: ~13 settings x 2 x ~2.5 s + building the random Qwen3-8B and VAE; with ~20 s of install and start,
#: 20 + 75 + 140 + 105 + 10 = 350 s <= 6 min
BUDGETS_S = {"cuda-tests": 75, "transformer": 140, "pipeline": 105, "cost": 10}


class PhaseTimeout(BaseException):
    """A phase ran past its budget (``BUDGETS_S``). A ``BaseException``, as ``KeyboardInterrupt``: the
    libraries a phase runs (lazy imports, model builders) catch ``Exception`` and would swallow it."""


@contextlib.contextmanager
def _time_limit(seconds: float, name: str):
    """Raise ``PhaseTimeout`` in this (main) thread when the block runs past ``seconds`` (SIGALRM)."""
    def stop(signum, frame):
        raise PhaseTimeout(f"{name} ran past its budget of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench/gpu-check", description=__doc__.splitlines()[0])
    p.add_argument("--dry-run", action="store_true", help="the same run on the tiny pipeline on the CPU (< 1 min)")
    p.add_argument("--out", default=None, help="the JSON to write (default: bench/results/gpu-check-<device>-<time>.json)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per bench after a warm-up (default: 1)")
    p.add_argument("--results-dir", default=os.environ.get("OUT"),
                   help="also write the JSON and the printed tables here after every phase (default: $OUT when set)")
    p.add_argument("--budget-scale", type=float, default=1.0,
                   help="multiply every phase's time budget (BUDGETS_S) by this (a slower GPU, a first look)")
    p.add_argument("--tests", default="tests/test_cuda.py", help="the CUDA tests to run ('' to skip)")
    p.add_argument("--mfu", type=float, default=0.45, help="MFU for the FLOP projections the cost table compares with")
    p.add_argument("--verdicts", default=None,
                   help="the authors' released verdicts folder: adds the claims suite's cost (sequential stopping) "
                        "from the measured times (default: $MECHINTERP_DATA_DIR/verdicts when it exists)")
    return p


def _cuda_tests(path: str) -> dict:
    """Run ``pytest PATH -m cuda`` in a child process; counts, skip reasons and failures from its JUnit XML."""
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", path, "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
               "-p", "no:randomly", "-p", "no:xdist", "-p", "no:mechinterp", f"--junitxml={xml}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="")
        out = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "passed": 0, "failed": 0, "skipped": 0,
               "skip_reasons": [], "failures": []}
        if not xml.exists():
            out["failures"].append(f"pytest wrote no report (exit {proc.returncode})")
            return out
        for case in ET.parse(xml).getroot().iter("testcase"):
            name = f"{case.get('classname')}.{case.get('name')}"
            skipped = case.find("skipped")
            bad = case.find("failure") if case.find("failure") is not None else case.find("error")
            if skipped is not None:
                out["skipped"] += 1
                out["skip_reasons"] = sorted(set(out["skip_reasons"]) | {skipped.get("message", "")})
            elif bad is not None:
                out["failed"] += 1
                out["failures"].append(f"{name}: {(bad.get('message') or '')[:300]}")
            else:
                out["passed"] += 1
    return out


def _tiny_edit(reference_rgb=(220, 30, 30)):
    import mechinterp as mi
    from PIL import Image

    ref = Image.new("RGB", (64, 64), reference_rgb)
    return mi.Edit("draw a ball in this color", reference=ref, seed=3, height=64, width=64)


class _Models:
    """The benches' models, built on first use inside a phase (so a failed build is that phase's failure):
    the transformer bench's transformer and tokens, and the pipeline bench's model and edit around it."""

    def __init__(self, dry: bool, device):
        self.dry, self.device, self._transformer, self._tiny = dry, device, None, None

    def _tiny_model(self):
        import mechinterp as mi
        from mechinterp.engine.tiny import tiny_pipeline

        if self._tiny is None:
            self._tiny = mi.Model(tiny_pipeline(seed=0))
        return self._tiny

    def transformer(self):
        """``(transformer, config, tokens)`` of the transformer bench."""
        from mechinterp.bench.shapes import KLEIN_9B, TOKENS_1024, build_transformer

        if self.dry:
            model = self._tiny_model()
            lay = model.layout(_tiny_edit())
            tokens = {"text": lay.text_len, "image": lay.n_image, "ref": lay.n_ref}
            return model.transformer, dict(model.transformer.config), tokens
        if self._transformer is None:
            self._transformer = build_transformer(KLEIN_9B, self.device, torch.bfloat16)
        return self._transformer, KLEIN_9B, TOKENS_1024

    def pipeline(self):
        """``(model, edit)`` of the pipeline bench: 1024² with a 1024² reference at klein-9b shapes."""
        import mechinterp as mi
        from PIL import Image

        from mechinterp.bench.shapes import klein_9b_pipeline

        if self.dry:
            return self._tiny_model(), _tiny_edit()
        model = mi.Model(klein_9b_pipeline(self.transformer()[0], self.device))
        ref = Image.new("RGB", (1024, 1024), (220, 30, 30))
        return model, mi.Edit("draw a ball in this color", reference=ref, seed=3, height=1024, width=1024)


def _environment(device) -> dict:
    """``harness.environment`` plus what a GPU run needs to be read later: CUDA, GPU memory, nnsight."""
    env = harness.environment(device)
    try:
        import nnsight

        env["nnsight"] = nnsight.__version__
    except ImportError:
        env["nnsight"] = None
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu_memory_mib"] = torch.cuda.get_device_properties(device).total_memory // 2**20
    return env


def _modes(device) -> tuple[str, ...]:
    from mechinterp.engine.fast_attention import flex_available

    return ("split",) + (("flex",) if flex_available() else ()) + ("dense",)


def _bench(settings, device, repeats: int) -> dict:
    results = harness.run_bench(settings, device, repeats)
    return {"results": [asdict(m) for m in results], "measurements": results}


def _free(device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _cost(pipeline: list, transformer: list, mfu: float, verdicts: str | None, gpu: str = "H200",
          kind: str = "measured") -> dict:
    """Reproduction cost from the measured whole-generation clean time and the transformer ratios
    (and the claims suite's, replayed on ``verdicts``, when that folder exists), in ``gpu``-hours;
    ``kind`` is ``"dry-run"`` for the tiny model's CPU times (no verdict on the goal)."""
    p_clean = next(m for m in pipeline if m.name == "clean").median_s
    t_clean = next(m for m in transformer if m.name == "clean").median_s
    ratios = cost.generation_ratios(p_clean, t_clean, {m.name: m.ratio for m in transformer})
    lines = cost.reproduction(p_clean, ratios, mfu=mfu)
    projected = cost.reproduction(mfu=mfu)
    out = {"clean_generation_s": p_clean, "transformer_clean_s": t_clean, "generation_ratios": ratios,
           "lines": [dict(asdict(line), hours=line.hours) for line in lines],
           "total_hours": sum(line.hours for line in lines), "projected_total_hours": sum(line.hours for line in projected),
           "hours_of": gpu, "kind": kind, "table": cost.report(lines, gpu=gpu, kind=kind)}
    from mechinterp.tasks.families import data_dir_or_env

    data_dir = data_dir_or_env()
    folder = verdicts or (data_dir / "verdicts" if data_dir else None)
    if folder and Path(folder).is_dir():
        from mechinterp.bench import suite_cost
        from mechinterp.claims import load_registry

        suite = suite_cost.suite_lines(suite_cost.simulate(folder, load_registry()), p_clean, ratios, mfu=mfu)
        out["suite_total_hours"] = sum(line.hours for line in suite)
        out["table"] += ("\n\nThe claims suite (sequential stopping, replayed on the released verdicts):\n\n"
                         + cost.report(suite, gpu=gpu, kind=kind))
    return out


def run(args) -> int:
    """Run every phase within its budget, rewrite the JSON after each, print the tables; 0 when every phase passed."""
    started = time.perf_counter()
    if not args.dry_run and not torch.cuda.is_available():
        print("bench/gpu-check: torch sees no CUDA GPU here; use --dry-run to check the script on the CPU", file=sys.stderr)
        return 2
    device = torch.device("cpu" if args.dry_run else "cuda")
    if args.dry_run:
        torch.set_num_threads(1)
    repeats = args.repeats or 1
    env = _environment(device)
    gpu = "CPU" if args.dry_run else cost.gpu_label(env["device_name"])
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out or f"bench/results/gpu-check-{'dry-run-cpu' if args.dry_run else 'cuda'}-{stamp}.json")
    copies = Path(args.results_dir) if args.results_dir else None
    doc = {"check": "bench/gpu-check", "dry_run": args.dry_run, "environment": env, "gpu": gpu, "repeats": repeats,
           "budgets_s": {k: v * args.budget_scale for k, v in BUDGETS_S.items()}, "phases": {}}
    measured: dict[str, list] = {}

    def save() -> None:
        """The JSON as it stands, here and in ``--results-dir`` (rewritten after every phase)."""
        doc["seconds"] = round(time.perf_counter() - started, 1)
        text = json.dumps(doc, indent=2) + "\n"
        atomic_write(out, text)
        if copies is not None:
            atomic_write(copies / out.name, text)

    def phase(name: str, fn) -> None:
        from mechinterp.engine.fast_attention import flex_stats

        t0, flex0 = time.perf_counter(), flex_stats()
        budget = doc["budgets_s"][name]
        print(f"[gpu-check] {name} (budget {budget:g} s) ...", flush=True)
        try:
            with _time_limit(budget, name):
                result = fn() or {}
            measured[name] = result.pop("measurements", None)
            entry = {"ok": not result.get("failed") and result.get("returncode", 0) in (0, 5), **result}
        except (Exception, PhaseTimeout) as err:  # a phase's failure or timeout is recorded; the others still run
            traceback.print_exc()
            entry = {"ok": False, "error": f"{type(err).__name__}: {err}"}
        entry["seconds"], entry["budget_s"] = round(time.perf_counter() - t0, 1), budget
        entry["flex"] = {k: v - flex0[k] for k, v in flex_stats().items()}  # compiles and silent-no-more fall-backs
        if entry["flex"]["fallbacks"]:
            entry["ok"] = False
            entry.setdefault("error", f"flex_attention fell back to its uncompiled kernel {entry['flex']['fallbacks']} times")
        doc["phases"][name] = entry
        save()
        print(f"[gpu-check] {name}: {'ok' if entry['ok'] else 'FAILED'} in {entry['seconds']} s", flush=True)

    if args.tests:
        phase("cuda-tests", lambda: _cuda_tests(args.tests))
    models = _Models(args.dry_run, device)

    def transformer_phase():
        from mechinterp.bench.settings import Include, transformer_settings
        from mechinterp.bench.shapes import synthetic_inputs, synthetic_layout

        transformer, cfg, tokens = models.transformer()
        layout = synthetic_layout(tokens["text"], tokens["image"], tokens["ref"])
        inputs = synthetic_inputs(cfg, layout, device, next(transformer.parameters()).dtype)
        # on the CPU flex_attention runs its unfused reference kernel (no compile): not worth a dry run's
        # time; the pipeline bench keeps its one flex row
        modes = _modes(device) if device.type == "cuda" else ("split", "dense")
        settings = transformer_settings(transformer, layout, inputs, include=Include(modes=modes))
        return {"config": {"tokens": tokens, "dtype": str(next(transformer.parameters()).dtype)},
                **_bench(settings, device, repeats)}

    def pipeline_phase():
        from mechinterp.bench.settings import Include, bench_sites, pipeline_settings

        model, edit = models.pipeline()
        colour, _ = bench_sites(model.table)
        include = Include(modes=_modes(device), knockouts=(PIPELINE_KNOCKOUT,), cutoffs=(colour,))
        settings = pipeline_settings(model, edit, include, batch=2, extras=False)
        result = _bench(settings, device, repeats)
        result["config"] = {"tokens": model.layout(edit).seq_len, "size": [edit.height, edit.width], "steps": edit.steps}
        result["peak_mb"] = max(m.peak_mb for m in result["measurements"])
        del model
        return result

    phase("transformer", transformer_phase)
    _free(device)
    phase("pipeline", pipeline_phase)
    if measured.get("pipeline") and measured.get("transformer"):
        phase("cost", lambda: _cost(measured["pipeline"], measured["transformer"], args.mfu, args.verdicts, gpu=gpu,
                                    kind="dry-run" if args.dry_run else "measured"))
    doc["ok"] = all(p["ok"] for p in doc["phases"].values()) and {"transformer", "pipeline", "cost"} <= set(doc["phases"])
    save()
    text = _summary(doc, measured, out)
    print(text)
    if copies is not None:
        atomic_write(copies / (out.stem + ".md"), text + "\n")
    return 0 if doc["ok"] else 1


def _summary(doc: dict, measured: dict, out: Path) -> str:
    """The printed report: versions, ratio tables, cost table, phase times against their budgets."""
    env = doc["environment"]
    lines = [f"\n# bench/gpu-check{' --dry-run' if doc['dry_run'] else ''}: {env['device_name']}, torch {env['torch']}, "
             f"diffusers {env['diffusers']}, {env['date']}\n"]
    if doc["dry_run"]:
        lines.append("Dry run: the tiny model on the CPU. It checks the script; no figure here is a GPU figure.\n")
    for name in ("transformer", "pipeline"):
        if measured.get(name):
            lines.append(f"## {name} (× one clean generation, same process, on {doc['gpu']})\n\n"
                         f"{harness.peer_table(measured[name])}\n\n{harness.table(measured[name])}\n")
    if "pipeline" in doc["phases"] and "peak_mb" in doc["phases"]["pipeline"]:
        lines.append(f"Pipeline peak memory: {doc['phases']['pipeline']['peak_mb']:.0f} MiB\n")
    if doc["phases"].get("cost", {}).get("table"):
        what = "dry run, tiny-model CPU times" if doc["dry_run"] else f"projected from times measured on the {doc['gpu']}"
        lines.append(f"## cost of a full reproduction ({what})\n\n{doc['phases']['cost']['table']}\n")
    for name, p in doc["phases"].items():
        lines.append(f"- {name}: {'ok' if p['ok'] else 'FAILED'}, {p['seconds']} s of {p['budget_s']:g} s; flex "
                     f"compiles {p['flex']['compiles']}, fall-backs {p['flex']['fallbacks']}"
                     + (f" — {p['error']}" if "error" in p else ""))
    lines.append(f"\n[gpu-check] {'ok' if doc['ok'] else 'FAILED'} in {doc['seconds']} s; wrote {out}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m mechinterp.bench.gpu_check`` (``bench/gpu-check`` calls it)."""
    return run(_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

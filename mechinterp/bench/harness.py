"""The benchmark harness: every intervention timed as a ratio against a clean generation.

Two benches, one result format:

- ``bench_pipeline``: whole generations (text encoder, 4 transformer steps, VAE) of one edit on
  a ``Model`` — the tiny pipeline on CPU, or real weights where they exist;
- ``bench_transformer``: four transformer forwards (one generation's denoising) of a
  random-weight transformer on synthetic inputs — the FLUX.2-klein-9B shape on a GPU.

Each setting is timed ``repeats`` times after a warm-up, in one process, in rounds that run
every setting once; the ratio is median time / median clean time (the median resists other load on
a shared machine; mean, std and min are saved too). Peak memory is the CUDA allocator's
high-water mark on GPU and the process RSS high-water mark (sampled) on CPU.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import mechinterp as mi
from mechinterp.bench.cost import KO_SETTINGS
from mechinterp.engine.hooks import Intervene
from mechinterp.io import atomic_write


@dataclass
class Setting:
    """One benchmarked configuration: a name, what it measures, and the call that runs it once.

    ``per_call`` is how many generations one call makes (a batch); its times are divided by it.
    """

    name: str
    group: str
    run: Callable[[], object] = field(repr=False)
    note: str = ""
    per_call: int = 1


@dataclass
class Measurement:
    """Timing and memory of one setting."""

    name: str
    group: str
    mean_s: float
    std_s: float
    times_s: list[float]
    median_s: float = 0.0
    min_s: float = 0.0
    ratio: float = 1.0
    peak_mb: float = 0.0
    note: str = ""


class _PeakRSS:
    """Samples the process RSS in a thread; ``peak_mb`` after the ``with`` block."""

    def __enter__(self):
        import psutil

        self._proc, self._stop, self.peak = psutil.Process(), threading.Event(), 0
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(0.005)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)
        self.peak_mb = self.peak / 2**20


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_once(setting: Setting, device: torch.device) -> tuple[float, float]:
    """Seconds and peak memory (MiB) of one call of ``setting.run``."""
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        setting.run()
        _sync(device)
        return time.perf_counter() - t0, torch.cuda.max_memory_allocated(device) / 2**20
    with _PeakRSS() as peak:
        t0 = time.perf_counter()
        setting.run()
        elapsed = time.perf_counter() - t0
    return elapsed, peak.peak_mb


def _measurement(setting: Setting, times: list[float], peak_mb: float) -> Measurement:
    std = statistics.stdev(times) if len(times) > 1 else 0.0
    return Measurement(setting.name, setting.group, statistics.fmean(times), std, times, statistics.median(times),
                       min(times), peak_mb=peak_mb, note=setting.note)


def _sites(table) -> tuple[str, str, list[str]]:
    """The paper's sites where they exist (``single.9``, ``double.7``), proportional ones otherwise,
    and the reference-drop cutoffs: first block, last double block, the colour site, last block."""
    blocks = [s.name for s in table.blocks]
    colour = "single.9" if "single.9" in blocks else blocks[min(len(blocks) - 1, round(17 / 32 * len(blocks)))]
    last_double = f"double.{table.n_double - 1}" if table.n_double else blocks[0]
    cutoffs = list(dict.fromkeys([blocks[0], last_double, colour, blocks[-1]]))
    return colour, last_double, cutoffs


def _knockouts() -> dict[str, mi.Knockout]:
    """The knockouts of Table 2 and D1, named as the cost model names them (``ko:ref->text``, ...)."""
    return {f"ko:{ko}": mi.Knockout(*ko.split("->")) for ko in KO_SETTINGS}


def pipeline_settings(model: mi.Model, edit: mi.Edit, *, batch: int = 4, dense: bool = True) -> list[Setting]:
    """The settings of the pipeline bench for ``edit`` on ``model``."""
    from mechinterp.experiments import lens_edit

    colour, _, cutoffs = _sites(model.table)
    source = model.generate(edit, capture=[mi.Capture(colour, "text")])

    def gen(items=(), capture=(), ko="auto", rd="truncate", e=edit):
        def run():
            saved = model.knockout_mode, model.ref_drop_mode
            model.knockout_mode, model.ref_drop_mode = ko, rd
            try:
                return model.generate(e, items, capture)
            finally:
                model.knockout_mode, model.ref_drop_mode = saved

        return run

    out = [Setting("clean", "clean", gen()),
           Setting("capture", "capture", gen(capture=[mi.Capture(colour, "text")]), f"text at {colour}, every step"),
           Setting("patch", "patch", gen([mi.Patch(colour, source.captures, "text")]), f"text at {colour}, every step")]
    for name, ko in _knockouts().items():
        out.append(Setting(name, "knockout", gen([ko]), "split (default)"))
        if dense:
            out.append(Setting(name + " [dense]", "knockout", gen([ko], ko="dense"), "dense-mask reference"))
    for cut in cutoffs:
        out.append(Setting(f"ref_drop@{cut}", "ref_drop", gen([mi.RefDrop(cut)]), "truncating"))
    out.append(Setting(f"ref_drop@{cutoffs[1]} [mask]", "ref_drop", gen([mi.RefDrop(cutoffs[1])], rd="mask", ko="dense"),
                       "masking reference"))
    text = source.captures[(colour, 0)]
    out.append(Setting("lens", "lens", gen([mi.Patch("embed", text, "text")], e=lens_edit(edit)),
                       "T2I lens run (no reference), embed overwritten"))
    if batch > 1:
        edits = [edit.replace(seed=edit.seed + i) for i in range(batch)]
        out.append(Setting(f"batch x{batch} (per edit)", "batch", lambda: model.generate_many(edits),
                           f"{batch} seeds in one call; time divided by {batch}", per_call=batch))
    return out


def transformer_settings(transformer, layout, inputs: dict, steps: int = 4, *, dense: bool = True,
                         flex: bool = False) -> list[Setting]:
    """The settings of the transformer bench: ``steps`` forwards of ``transformer`` per run."""
    table = mi.SiteTable.for_transformer(transformer)
    colour, _, cutoffs = _sites(table)
    dim = transformer.inner_dim
    values = torch.zeros(layout.text_len, dim, device=inputs["hidden_states"].device, dtype=inputs["hidden_states"].dtype)

    def gen(items=(), ko="auto", rd="truncate", kw=inputs):
        @torch.inference_mode()
        def run():
            with Intervene(transformer, layout, items, table=table, n_steps=steps, knockout_mode=ko, ref_drop_mode=rd) as ctx:
                for _ in range(steps):
                    transformer(**kw)
            return ctx

        return run

    out = [Setting("clean", "clean", gen()),
           Setting("capture", "capture", gen([mi.Capture(colour, "text")]), f"text at {colour}, every step"),
           Setting("patch", "patch", gen([mi.Patch(colour, values, "text")]), f"text at {colour}, every step")]
    for name, ko in _knockouts().items():
        out.append(Setting(name, "knockout", gen([ko]), "split (default)"))
        if flex:
            out.append(Setting(name + " [flex]", "knockout", gen([ko], ko="flex"), "flex_attention BlockMask"))
        if dense:
            out.append(Setting(name + " [dense]", "knockout", gen([ko], ko="dense"), "dense-mask reference"))
    for cut in cutoffs:
        out.append(Setting(f"ref_drop@{cut}", "ref_drop", gen([mi.RefDrop(cut)]), "truncating"))
    n = layout.n_image
    lens_kw = dict(inputs, hidden_states=inputs["hidden_states"][:, :n], img_ids=inputs["img_ids"][:, :n])
    lens_layout = type(layout)(layout.text_len, layout.n_image, 0, groups={**layout.groups, "ref": layout.groups["ref"][:0]})

    @torch.inference_mode()
    def lens():
        with Intervene(transformer, lens_layout, [mi.Patch("embed", values, "text")], table=table, n_steps=steps):
            for _ in range(steps):
                transformer(**lens_kw)

    out.append(Setting("lens", "lens", lens, "T2I lens forwards (no reference), embed overwritten"))
    return out


def run_bench(settings: list[Setting], device, repeats: int, log=print) -> list[Measurement]:
    """Measure every setting (one warm-up each, then ``repeats`` rounds that run every setting once,
    so drifting load on a shared machine hits all settings alike); ratios are against ``clean``."""
    device = torch.device(device)
    for s in settings:
        s.run()
    times: dict[str, list[float]] = {s.name: [] for s in settings}
    peaks: dict[str, float] = {s.name: 0.0 for s in settings}
    for r in range(repeats):
        for s in settings:
            t, peak = _time_once(s, device)
            times[s.name].append(t)
            peaks[s.name] = max(peaks[s.name], peak)
        log(f"  round {r + 1}/{repeats} done")
    results = [_measurement(s, times[s.name], peaks[s.name]) for s in settings]
    clean = next(m for m in results if m.name == "clean").median_s
    for s, m in zip(settings, results):
        if s.per_call > 1:  # per generation
            n = s.per_call
            m.mean_s, m.std_s, m.median_s, m.min_s = m.mean_s / n, m.std_s / n, m.median_s / n, m.min_s / n
            m.times_s = [t / n for t in m.times_s]
        m.ratio = m.median_s / clean
    return results


def environment(device) -> dict:
    """Device, versions and date of a bench run."""
    import diffusers

    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    return {"device": str(device), "device_name": name, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "diffusers": diffusers.__version__, "python": platform.python_version(),
            "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def save(path: str | Path, bench: str, config: dict, results: list[Measurement], env) -> Path:
    """Write one bench's results as JSON (device, versions, date, config, per-setting numbers).

    ``env`` is the :func:`environment` dict of the run, or the device to compute it for.
    """
    doc = {"bench": bench, "environment": env if isinstance(env, dict) else environment(env), "config": config,
           "results": [asdict(m) for m in results]}
    return atomic_write(path, json.dumps(doc, indent=2, sort_keys=False) + "\n")


def table(results: list[Measurement]) -> str:
    """The ratio table as Markdown."""
    rows = ["| setting | group | median ms | std ms | × clean | peak MiB | note |", "|---|---|---:|---:|---:|---:|---|"]
    for m in results:
        rows.append(f"| {m.name} | {m.group} | {m.median_s * 1000:.1f} | {m.std_s * 1000:.1f} | {m.ratio:.2f} | "
                    f"{m.peak_mb:.0f} | {m.note} |")
    return "\n".join(rows)
